"""Rate limits and budgets: rules in the database, counters in memory or Redis."""
