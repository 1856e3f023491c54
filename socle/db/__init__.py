"""Relational storage: SQLAlchemy models, async sessions, Alembic migrations."""
