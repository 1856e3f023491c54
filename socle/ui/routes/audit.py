"""The auditor's pages (``audit:read``): the audit trail, filtered and a page at a time, with its CSV export;
and the register of processing activities, produced from the configuration."""
from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from socle.api.strict import StrictRoute
from socle.audit.exports import actor_label, csv_chunks
from socle.audit.service import Action
from socle.audit.store import AuditFilter
from socle.compliance import register
from socle.errors import InvalidRequest
from socle.identity.permissions import Permission, require
from socle.ui.paging import Paging
from socle.ui.security import SignedIn, platform
from socle.ui.web import french, page

router = APIRouter(prefix="/ui/admin", include_in_schema=False, route_class=StrictRoute)
EVENTS_PER_PAGE = 50
ACTION_LABELS = {
    Action.SIGN_IN: "Connexion", Action.SIGN_IN_FAILED: "Connexion refusée",
    Action.USER_CREATED: "Compte créé", Action.USER_UPDATED: "Compte modifié",
    Action.USER_DELETED: "Compte supprimé", Action.PASSWORD_SET: "Mot de passe défini",
    Action.PASSWORD_CHANGED: "Mot de passe changé par son titulaire",
    Action.PASSWORD_RESET_REQUESTED: "Mot de passe oublié : lien demandé",
    Action.ACCOUNT_LINK_CREATED: "Lien d'invitation ou de réinitialisation créé",
    Action.USERS_IMPORTED: "Comptes importés",
    Action.GROUP_CREATED: "Groupe créé", Action.GROUP_DELETED: "Groupe supprimé",
    Action.GROUP_MEMBER_ADDED: "Membre ajouté à un groupe",
    Action.GROUP_MEMBER_REMOVED: "Membre retiré d'un groupe",
    Action.ROLE_CREATED: "Rôle créé", Action.ROLE_UPDATED: "Rôle modifié",
    Action.ROLE_DELETED: "Rôle supprimé", Action.KEY_CREATED: "Clé créée", Action.KEY_REVOKED: "Clé révoquée",
    Action.QUOTA_CREATED: "Quota créé", Action.QUOTA_UPDATED: "Quota modifié",
    Action.QUOTA_DELETED: "Quota supprimé",
    Action.MODEL_CREATED: "Modèle ajouté", Action.MODEL_CHANGED: "Modèle modifié",
    Action.MODEL_DELETED: "Modèle retiré", Action.MODEL_TESTED: "Connexion à un modèle testée",
    Action.COLLECTION_PUBLISHED: "Collection publiée", Action.COLLECTION_UNPUBLISHED: "Collection dépubliée",
    Action.FILE_UPLOADED: "Fichier déposé", Action.FILE_DELETED: "Fichier supprimé",
    Action.FINE_TUNING_CREATED: "Affinage d'un modèle lancé", Action.FINE_TUNING_CANCELLED: "Affinage annulé",
    Action.DATA_EXPORTED: "Données d'une personne exportées", Action.USER_ERASED: "Personne effacée",
    Action.OTHERS_DATA_READ: "Lecture des données d'autrui", Action.AUDIT_EXPORTED: "Journal exporté",
    Action.AUDIT_PRUNED: "Entrées anciennes supprimées (conservation)",
    Action.SITE_SETTINGS_CHANGED: "Paramètres du site modifiés",
    Action.RETENTION_CHANGED: "Durées de conservation modifiées",
    Action.QUOTA_PRESETS_CHANGED: "Modèles de quotas modifiés",
    Action.PROCONNECT_CHANGED: "Connexion ProConnect modifiée",
    Action.SECRETS_RESEALED: "Secrets chiffrés de nouveau (changement de clé)",
}
FAMILIES = {"auth.": "Connexions", "user.": "Comptes", "group.": "Groupes", "role.": "Rôles",
            "key.": "Clés d'API", "quota.": "Quotas",
            "data.": "Données personnelles (exports, effacements, lectures)",
            "collection.": "Collections", "file.": "Fichiers déposés", "model.": "Modèles", "audit.": "Journal d'audit",
            "site.": "Paramètres du site"}
CHANNELS = {"api": "API", "ui": "Site", "console": "Console", "system": "Plateforme"}
assert set(ACTION_LABELS) == set(Action)

Text = Annotated[str | None, Query(max_length=64)]


def _vocabulary(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """The actions' labels and families: the platform's, then each installed app's (under its name)."""
    apps = [installed.app for installed in platform(request).apps.values()]
    labels = {**ACTION_LABELS, **{action: label for app in apps for action, label in app.audit_actions.items()}}
    families = {**FAMILIES, **{f"{app.name}.": app.title for app in apps if app.audit_actions}}
    return labels, families


def _filters(request: Request, action: str | None, acteur: str | None, depuis: str | None,
             jusqu_au: str | None) -> AuditFilter:
    """The page's filters (French names, dates as the date fields send them) as the trail's."""
    def day(value: str | None, name: str) -> datetime | None:
        if not value:
            return None
        try:
            return datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), time(), tzinfo=UTC)
        except ValueError as exc:
            raise InvalidRequest(f"« {value} » n'est pas une date (AAAA-MM-JJ).", param=name) from exc

    if acteur and not acteur.isdigit():
        raise InvalidRequest("l'auteur est désigné par le numéro de son compte.", param="acteur")
    until = day(jusqu_au, "jusqu_au")
    labels, families = _vocabulary(request)
    return AuditFilter(action=action if action in families or action in labels else None,
                       actor_user_id=int(acteur) if acteur and int(acteur) < 2**63 else None,
                       since=day(depuis, "depuis"),
                       until=until + timedelta(days=1) if until else None)  # the whole of that day


@router.get("/audit")
async def audit_page(request: Request, visitor: SignedIn, action: Text = None, acteur: Text = None,
                     depuis: Text = None, jusqu_au: Text = None,
                     number: Annotated[str | None, Query(alias="page", max_length=10)] = None) -> Response:
    trail = platform(request).audit
    labels, families = _vocabulary(request)
    form = {name: value or "" for name, value in
            (("action", action), ("acteur", acteur), ("depuis", depuis), ("jusqu_au", jusqu_au))}
    query = urlencode({name: value for name, value in form.items() if value})
    try:
        filters = _filters(request, action, acteur, depuis, jusqu_au)
        paging = Paging.of(number, await trail.count(visitor.principal, filters), per_page=EVENTS_PER_PAGE,
                           path="/ui/admin/audit" + (f"?{query}" if query else ""))
        events = await trail.events(visitor.principal, filters, limit=paging.per_page, offset=paging.offset)
    except InvalidRequest as exc:  # a filter the page cannot read: the page, empty, says which
        return page(request, "admin_audit.html", visitor, title="Journal d'audit", status_code=400, events=[],
                    paging=Paging.of(1, 0, per_page=EVENTS_PER_PAGE, path="/ui/admin/audit"), form=form, query="",
                    labels=labels, families=families, channels=CHANNELS, actor_label=actor_label,
                    error=french(exc))
    return page(request, "admin_audit.html", visitor, title="Journal d'audit", events=events, paging=paging,
                form=form, query=query, labels=labels, families=families, channels=CHANNELS,
                actor_label=actor_label)


@router.get("/audit.csv")
async def audit_csv(request: Request, visitor: SignedIn, action: Text = None, acteur: Text = None,
                    depuis: Text = None, jusqu_au: Text = None) -> Response:
    filters = _filters(request, action, acteur, depuis, jusqu_au)
    rows = await platform(request).audit.export(visitor.principal, filters)
    return StreamingResponse(csv_chunks(rows), media_type="text/csv; charset=utf-8",
                             headers={"content-disposition": 'attachment; filename="journal-audit.csv"'})


@router.get("/registre")
async def register_page(request: Request, visitor: SignedIn) -> Response:
    require(visitor.principal, Permission.AUDIT_READ)
    site = await platform(request).site.current()
    built = register.build(platform(request).settings, platform(request).personal_data,
                           chosen=site.retention_days, proconnect=site.proconnect is not None)
    return page(request, "admin_registre.html", visitor, title="Registre des activités de traitement",
                register=built, kind_label=built.kind_label)

