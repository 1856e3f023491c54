"""The audit trail: an append-only, hash-chained record of security-relevant actions.

Entries name people by their account and key ids only, never by e-mail or name: erasing a person never
rewrites the chain, and names are resolved when the trail is read."""
