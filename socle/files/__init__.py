"""A person's own files (/v1/files): training data for fine-tuning, batch input, files for assistants."""
