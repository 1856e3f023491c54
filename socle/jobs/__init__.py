"""Durable background jobs: a queue in the relational store and in-process workers (embedded)."""
