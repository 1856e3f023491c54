"""The app's permissions: read is given to every user (the built-in ``user`` role, by the app's migration);
edit (the catalogue, the census's overview, the calls) and jury are given by an administrator."""
from __future__ import annotations

from socle.errors import PermissionDenied
from socle.identity.permissions import Principal

READ = "panorama:read"  # browse the catalogue, search by need, declare needs, submit projects
EDIT = "panorama:edit"  # edit the catalogue, see every need, run the calls, select projects
JURY = "panorama:jury"  # score the projects of a call

PERMISSIONS = {READ: "Consulter le panorama des solutions d'IA, déclarer un besoin, déposer un projet",
               EDIT: "Modifier le catalogue du panorama, consulter le recensement des besoins, gérer les appels "
                     "à projets",
               JURY: "Noter les projets des appels à projets (jury)"}


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"This action requires the permission '{permission}'.")
