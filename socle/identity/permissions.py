"""Permissions and the caller's identity, as seen by every service.

Roles are rows in the database that hold lists of permission names (these, and those the installed apps
add: :class:`Catalogue`); code only ever asks
"may this principal do X?" through :meth:`Principal.can` or :func:`require`.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    AUDIT_READ = "audit:read"  # read and export the audit trail and the register of processing activities
    SITE_ADMIN = "site:admin"  # the site's settings: its texts, footer, welcome screen, quota presets
    MODELS_ADMIN = "models:admin"  # the catalogue: models, their backends and cards, tested and changed at run time
    FILES_OWN = "files:own"  # upload, read and delete one's own files (/v1/files: training data, batches)


LABELS: dict[str, str] = {
    Permission.ALL: "Toutes les permissions, y compris celles à venir (administrateur)",
    Permission.MODELS_READ: "Voir la liste des modèles",
    Permission.MODELS_USE: "Utiliser les modèles d'IA (conversation, rédaction, recherche dans les documents)",
    Permission.KEYS_OWN: "Créer et révoquer ses propres clés d'API",
    Permission.KEYS_ALL: "Gérer les clés d'API de tout le monde",
    Permission.USERS_ADMIN: "Administrer les comptes et les groupes",
    Permission.ROLES_ADMIN: "Administrer les rôles",
    Permission.COLLECTIONS_OWN: "Créer des collections de documents et les alimenter",
    Permission.COLLECTIONS_PUBLISH: "Publier une collection pour tous les utilisateurs",
    Permission.QUOTAS_ADMIN: "Administrer les quotas",
    Permission.METRICS_READ: "Lire l'état de santé et les métriques de la plateforme",
    Permission.USAGE_READ_ALL: "Lire la consommation de tout le monde (tableau de bord)",
    Permission.AUDIT_READ: "Lire et exporter le journal d'audit et le registre des traitements",
    Permission.SITE_ADMIN: "Modifier les paramètres du site (textes, pied de page, accueil, modèles de quotas)",
    Permission.MODELS_ADMIN: "Ajouter, modifier, tester et retirer les modèles et leurs serveurs de calcul",
    Permission.FILES_OWN: "Déposer ses propres fichiers (exemples pour affiner un modèle, lots de demandes)",
}
"""What each of the platform's own permissions allows, in French (the roles page shows it)."""
assert set(LABELS) == set(Permission)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every permission a role may hold: the platform's own and those the installed apps add (``<app>:<verb>``),
    each with what it allows in French, in the order the roles page lists them."""

    labels: dict[str, str]

    @classmethod
    def of(cls, added: Iterable[tuple[str, str]] = ()) -> Catalogue:
        """The platform's permissions, then ``added`` (name, label) pairs; a name given twice is refused."""
        labels: dict[str, str] = {str(name): label for name, label in LABELS.items()}
        for name, label in added:
            if name in labels:
                raise ValueError(f"the permission {name!r} is declared twice")
            labels[name] = label
        return cls(labels)

    def __contains__(self, name: object) -> bool:
        return name in self.labels

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def label(self, name: str) -> str:
        """What ``name`` allows, in French (its technical name for a permission no longer known)."""
        return self.labels.get(name, name)


PLATFORM_PERMISSIONS = Catalogue.of()
"""The platform's permissions alone (what a service built without the installed apps knows)."""


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


def require(principal: Principal, permission: Permission | str) -> None:
    """An app checks its own permissions by name (``"<app>:<verb>"``), the platform by its enum."""
    if not principal.can(permission):
        raise PermissionDenied(f"This action requires the permission '{permission}'.")
