"""Usage records (one per call, written in batches), cost and carbon estimates, reports."""
