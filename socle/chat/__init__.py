"""Conversations kept per user: their messages, the sources of answers about documents, and ratings."""
