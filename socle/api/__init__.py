"""HTTP layer: request/response schemas, routers, error envelope. No business logic here."""
