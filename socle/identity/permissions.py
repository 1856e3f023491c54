"""Permissions and the caller's identity, as seen by every service.

Roles are rows in the database that hold lists of these permission names; code only ever asks
"may this principal do X?" through :meth:`Principal.can` or :func:`require`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from socle.errors import PermissionDenied


class Permission(StrEnum):
    ALL = "*"
    MODELS_READ = "models:read"
    MODELS_USE = "models:use"
    KEYS_OWN = "keys:own"          # create, list and revoke one's own keys
    KEYS_ALL = "keys:all"          # anyone's keys
    USERS_ADMIN = "users:admin"    # users and groups
    ROLES_ADMIN = "roles:admin"
    COLLECTIONS_OWN = "collections:own"  # create collections (private, or for one's groups) and fill them
    COLLECTIONS_PUBLISH = "collections:publish"  # make a collection readable by every user
    QUOTAS_ADMIN = "quotas:admin"
    METRICS_READ = "metrics:read"  # scrape /metrics
    USAGE_READ_ALL = "usage:read_all"  # everyone reads their own usage; this, anyone's
    FEEDBACK_USE = "feedback:use"  # import and analyse citizens' feedback (the feedback app)
    AUDIT_READ = "audit:read"  # read and export the audit trail and the register of processing activities


KNOWN_PERMISSIONS = frozenset(p.value for p in Permission)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved once per request from the API key."""

    user_id: int
    email: str
    role: str
    permissions: frozenset[str]
    group_ids: frozenset[int] = field(default_factory=frozenset)
    key_id: int | None = None

    def can(self, permission: Permission | str) -> bool:
        return Permission.ALL in self.permissions or permission in self.permissions


SYSTEM = Principal(user_id=0, email="system", role="admin", permissions=frozenset({Permission.ALL}))
"""The operator at the console (CLI): every permission."""


def require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"This action requires the permission '{permission.value}'.")
