"""``/v1/batches``: OpenAI's Batch API, run as durable low-priority jobs."""
