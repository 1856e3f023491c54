"""Users, groups, roles and permissions, API keys."""
