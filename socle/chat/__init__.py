"""Conversations kept per user (their messages, the sources of answers about documents, ratings), and the
turns taken in them, for the web UI and the API alike."""
