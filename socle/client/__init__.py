"""Clients of a running platform's API (what ``socle ingest`` uses)."""
