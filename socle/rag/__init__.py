"""Retrieval-augmented generation: parsing, chunking, ingestion, retrieval, answering."""
