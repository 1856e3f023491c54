"""Apps built on the platform: they use its services (inference, jobs, quotas, usage) like any caller."""
