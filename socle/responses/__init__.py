"""The Responses API (``/v1/responses``): requests translated to chat calls, and the responses kept."""
