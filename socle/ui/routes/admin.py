"""Administration pages: users (invite, import from a CSV file, password links, role and groups, deactivate), groups
and their members, quotas, and the models' backends with their health. Roles have their own module
(``routes.roles``).

An invitation or a reset link is shown once, on the page that answers the form (never in an address, never
again): the admin copies it, and it is e-mailed too when a mail server is configured.

Each page calls the same services as the API, which check the permission (``users:admin``,
``quotas:admin``); the backends' page asks ``metrics:read``, the permission of the platform's health figures.
Lists that grow with the platform (users, groups, quotas) are shown a page at a time.

Whom a quota binds, and whom a group gains, is picked by name: the field suggests people, groups or keys as one
types (``/ui/api/admin/sujets``, what the identity service lets the admin see), each suggestion ending with its
number (« n° 12 »), which is what the form really submits.
"""
from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from starlette.responses import JSONResponse, Response

from socle.api.strict import StrictRoute
from socle.db.integers import Id
from socle.errors import InvalidRequest, PermissionDenied, SocleError
from socle.identity import imports
from socle.identity.imports import MAX_BYTES as IMPORT_MAX_BYTES
from socle.identity.invitations import IssuedLink
from socle.identity.permissions import Permission, require
from socle.quotas.service import PERIODS, PRESETS, SCOPES, presets_with
from socle.ui import security
from socle.ui.paging import Paging
from socle.ui.security import SignedIn, Visitor, platform
from socle.ui.web import french, inline, page, redirect

router = APIRouter(prefix="/ui/admin", include_in_schema=False, route_class=StrictRoute)
pickers = APIRouter(prefix="/ui/api/admin", include_in_schema=False, route_class=StrictRoute)  # the pages' fetches
SCOPE_LABELS = {"user": "Un utilisateur", "group": "Un groupe", "role": "Chaque utilisateur d'un rôle",
                "key": "Une clé d'API", "global": "Toute la plateforme"}
PERIOD_LABELS = {"day": "Par jour", "month": "Par mois"}
LIMITS = {"requests_per_minute": "Requêtes par minute", "requests_per_day": "Requêtes par jour",
          "tokens_per_minute": "Jetons par minute", "budget_tokens": "Budget en jetons",
          "budget_cost": "Budget en coût"}
assert set(SCOPE_LABELS) == set(SCOPES) and set(PERIOD_LABELS) == set(PERIODS)
PRESET_LABELS = {"agent": ("Agent", "une personne qui utilise les pages et une ou deux clés"),
                 "application": ("Application", "la clé d'une application interne, pour tous ses usagers"),
                 "equipe": ("Équipe", "un groupe qui partage une même enveloppe")}
assert set(PRESET_LABELS) == set(PRESETS)
PICKED = ("user", "group", "key")  # the subjects found by name; a role is named, the platform is everyone
_NUMBER = re.compile(r"n°\s*([0-9]{1,19})\s*$")

Text = Annotated[str, Form(max_length=320)]
Name = Annotated[str, Form(max_length=200)]  # a user's or a group's name: the columns' size
PageNumber = Annotated[str | None, Query(alias="page", max_length=10)]
USERS_PER_PAGE = 50
GROUPS_PER_PAGE = 20  # each shows its members
QUOTAS_PER_PAGE = 50


# ---- users -----------------------------------------------------------------------------------------

@router.get("/utilisateurs")
async def users_page(request: Request, visitor: SignedIn, number: PageNumber = None) -> Response:
    return await _users(request, visitor, requested=number)


@router.post("/utilisateurs")
async def invite_user(request: Request, visitor: SignedIn, email: Text = "", name: Name = "", role: Text = "user",
                      groups: Annotated[list[str] | None, Form()] = None) -> Response:
    """The account and its invitation link, shown here once (and e-mailed when a mail server is configured)."""
    try:
        issued = await platform(request).account_links.invite(visitor.principal, email=email, name=name.strip(),
                                                              role=role, groups=groups or [])
    except SocleError as exc:
        return await _users(request, visitor, **inline(exc),
                            form={"email": email, "name": name, "role": role, "groups": groups or []})
    return await _users(request, visitor, links=[_shown(request, issued)],
                        notice="Le compte a été créé. Transmettez-lui le lien ci-dessous : il y choisira son mot de "
                               "passe.")


@router.get("/utilisateurs/import")
async def import_page(request: Request, visitor: SignedIn) -> Response:
    require(visitor.principal, Permission.USERS_ADMIN)
    return _import(request, visitor)


@router.post("/utilisateurs/import")
async def preview_import(request: Request, visitor: SignedIn, file: Annotated[UploadFile, File()]) -> Response:
    """What the file would create, line by line, with what stops each line: nothing is written yet."""
    data = await file.read(IMPORT_MAX_BYTES + 1)
    return await _preview(request, visitor, data)


@router.post("/utilisateurs/import/confirmer")
async def confirm_import(request: Request, visitor: SignedIn,
                         content: Annotated[str, Form(max_length=IMPORT_MAX_BYTES)] = "") -> Response:
    """The previewed file, sent back by the preview's form, imported whole; every invitation link shown once."""
    try:
        issued = await platform(request).account_links.import_accounts(visitor.principal, content.encode())
    except SocleError as exc:
        return await _preview(request, visitor, content.encode(), error=french(exc))
    return _import(request, visitor, links=[_shown(request, link) for link in issued],
                   notice=f"{len(issued)} compte{'s' if len(issued) > 1 else ''} créé{'s' if len(issued) > 1 else ''}. "
                          "Transmettez à chacun son lien ci-dessous.")


async def _preview(request: Request, visitor: Visitor, data: bytes, *, error: str | None = None) -> Response:
    try:
        plan = await platform(request).account_links.plan_import(visitor.principal, data)
    except SocleError as exc:
        return _import(request, visitor, **inline(exc))
    return _import(request, visitor, plan=plan, content=imports.decoded(data), error=error,
                   problems=IMPORT_PROBLEMS, status_code=200 if plan.ready else 400)


def _import(request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any) -> Response:
    return page(request, "admin_utilisateurs_import.html", visitor, title="Importer des comptes",
                status_code=status_code, mails=platform(request).account_links.mails, **context)


@router.post("/utilisateurs/{user_id}/lien")
async def new_link(user_id: Id, request: Request, visitor: SignedIn) -> Response:
    """A new link for the person to choose a password (the previous unused one stops working)."""
    try:
        issued = await platform(request).account_links.reset(visitor.principal, user_id)
    except SocleError as exc:
        return await _user(request, visitor, user_id, **inline(exc))
    return await _user(request, visitor, user_id, links=[_shown(request, issued)],
                       notice="Un nouveau lien est prêt : transmettez-le à la personne. Son mot de passe actuel, "
                              "s'il en a un, reste valable jusqu'à ce qu'elle en choisisse un nouveau.")


@router.post("/utilisateurs/{user_id}/mot-de-passe")
async def set_password(user_id: Id, request: Request, visitor: SignedIn,
                       password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """A password typed by the admin, to be handed over by other means; the person's sessions end."""
    try:
        await platform(request).identity.set_password(visitor.principal, user_id, password)
    except SocleError as exc:
        return await _user(request, visitor, user_id, **inline(exc))
    return redirect(f"/ui/admin/utilisateurs/{user_id}?ok=mot-de-passe-defini")


IMPORT_PROBLEMS = {
    "email_missing": "adresse électronique manquante",
    "invalid_email": "adresse électronique invalide",
    "confusable": "adresse qui mélange des alphabets (elle pourrait passer pour une autre)",
    "email_taken": "un compte existe déjà à cette adresse",
    "email_twice": "adresse déjà présente plus haut dans le fichier",
    "name_too_long": "nom trop long (200 caractères au plus)",
    "unknown_role": "rôle inconnu",
    "unknown_group": "groupe inconnu",
}


def _shown(request: Request, link: IssuedLink) -> dict[str, Any]:
    """A link as the admin sees it once: its full address, for whom, until when, whether it was e-mailed."""
    base = platform(request).settings.public_url
    url = base + link.path if base else security.public_url(request, link.path)
    return {"url": url, "email": link.email, "name": link.name, "expires_at": link.expires_at,
            "mailed": link.mailed, "invitation": link.purpose == "invitation"}


@router.get("/utilisateurs/{user_id}")
async def user_page(user_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await _user(request, visitor, user_id)


@router.post("/utilisateurs/{user_id}")
async def update_user(user_id: Id, request: Request, visitor: SignedIn, name: Name = "", role: Text = "user",
                      groups: Annotated[list[str] | None, Form()] = None) -> Response:
    try:
        await platform(request).identity.update_user(visitor.principal, user_id, name=name.strip(), role=role,
                                                     groups=groups or [])
    except SocleError as exc:
        return await _user(request, visitor, user_id, **inline(exc))
    return redirect(f"/ui/admin/utilisateurs/{user_id}?ok=utilisateur-modifie")


@router.post("/utilisateurs/{user_id}/activation")
async def set_active(user_id: Id, request: Request, visitor: SignedIn,
                     active: Annotated[str, Form()] = "0") -> Response:
    try:
        if user_id == visitor.principal.user_id and active != "1":
            raise InvalidRequest("vous ne pouvez pas désactiver votre propre compte.", param="user_id")
        await platform(request).identity.update_user(visitor.principal, user_id, is_active=active == "1")
    except SocleError as exc:
        return await _user(request, visitor, user_id, **inline(exc))
    done = "utilisateur-reactive" if active == "1" else "utilisateur-desactive"
    return redirect(f"/ui/admin/utilisateurs/{user_id}?ok={done}")


@router.post("/utilisateurs/{user_id}/supprimer")
async def erase_user(user_id: Id, request: Request, visitor: SignedIn) -> Response:
    """Erase the account and everything about it (``socle.compliance.erasure``)."""
    try:
        await platform(request).erasure.erase_user(visitor.principal, user_id)
    except SocleError as exc:
        return await _user(request, visitor, user_id, **inline(exc))
    return redirect("/ui/admin/utilisateurs?ok=utilisateur-supprime")


async def _users(request: Request, visitor: Visitor, *, status_code: int = 200, requested: str | None = None,
                 **context: Any) -> Response:
    identity, actor = platform(request).identity, visitor.principal
    paging = Paging.of(requested, await identity.count_users(actor), per_page=USERS_PER_PAGE,
                       path="/ui/admin/utilisateurs")
    users = await identity.list_users(actor, limit=paging.per_page, offset=paging.offset)
    roles, groups = await identity.list_roles(actor), await identity.list_groups(actor)
    return page(request, "admin_utilisateurs.html", visitor, title="Utilisateurs", status_code=status_code,
                users=users, roles=roles, groups=groups, paging=paging, mails=platform(request).account_links.mails,
                **context)


async def _user(request: Request, visitor: Visitor, user_id: int, *, status_code: int = 200,
                **context: Any) -> Response:
    identity = platform(request).identity
    roles = await identity.list_roles(visitor.principal)
    user = await identity.get_user(visitor.principal, user_id)
    groups = await identity.list_groups(visitor.principal)
    return page(request, "admin_utilisateur.html", visitor, title=f"Utilisateur {user.email}",
                status_code=status_code, user=user, roles=roles, groups=groups,
                member_of={g.name for g in user.groups}, mails=platform(request).account_links.mails, **context)


# ---- groups ----------------------------------------------------------------------------------------

@router.get("/groupes")
async def groups_page(request: Request, visitor: SignedIn, number: PageNumber = None) -> Response:
    return await _groups(request, visitor, requested=number)


@router.post("/groupes")
async def create_group(request: Request, visitor: SignedIn, name: Name = "",
                       description: Annotated[str, Form(max_length=500)] = "") -> Response:
    if not name.strip():
        return await _groups(request, visitor, status_code=400, error="Donnez un nom au groupe.")
    try:
        await platform(request).identity.create_group(visitor.principal, name=name.strip(),
                                                      description=description.strip())
    except SocleError as exc:
        return await _groups(request, visitor, **inline(exc))
    return redirect("/ui/admin/groupes?ok=groupe-cree")


@router.post("/groupes/{group_id}/membres")
async def add_member(group_id: Id, request: Request, visitor: SignedIn, email: Text = "") -> Response:
    """The person picked by name (« … n° 12 ») or typed by address."""
    identity = platform(request).identity
    try:
        picked = _NUMBER.search(email)
        user_id = int(picked.group(1)) if picked else (await identity.find_user(visitor.principal, email)).id
        await identity.set_membership(visitor.principal, group_id, user_id, member=True)
    except SocleError as exc:
        return await _groups(request, visitor, **inline(exc))
    return redirect("/ui/admin/groupes?ok=membre-ajoute")


@router.post("/groupes/{group_id}/membres/{user_id}/retirer")
async def remove_member(group_id: Id, user_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        await platform(request).identity.set_membership(visitor.principal, group_id, user_id, member=False)
    except SocleError as exc:
        return await _groups(request, visitor, **inline(exc))
    return redirect("/ui/admin/groupes?ok=membre-retire")


@router.post("/groupes/{group_id}/supprimer")
async def delete_group(group_id: Id, request: Request, visitor: SignedIn) -> Response:
    """Its members leave it; the collections shared with it go with it (the page's confirmation says so)."""
    try:
        await platform(request).identity.delete_group(visitor.principal, group_id)
    except SocleError as exc:
        return await _groups(request, visitor, **inline(exc))
    return redirect("/ui/admin/groupes?ok=groupe-supprime")


async def _groups(request: Request, visitor: Visitor, *, status_code: int = 200, requested: str | None = None,
                  **context: Any) -> Response:
    identity, actor = platform(request).identity, visitor.principal
    paging = Paging.of(requested, await identity.count_groups(actor), per_page=GROUPS_PER_PAGE,
                       path="/ui/admin/groupes")
    groups = await identity.list_groups(actor, limit=paging.per_page, offset=paging.offset)
    return page(request, "admin_groupes.html", visitor, title="Groupes", status_code=status_code, groups=groups,
                paging=paging, **context)


# ---- quotas ----------------------------------------------------------------------------------------

@router.get("/quotas")
async def quotas_page(request: Request, visitor: SignedIn, number: PageNumber = None) -> Response:
    return await _quotas(request, visitor, requested=number)


@router.post("/quotas")
async def create_quota(request: Request, visitor: SignedIn, scope: Text = "", subject: Text = "", model: Text = "",
                       budget_period: Text = "month", requests_per_minute: Text = "", requests_per_day: Text = "",
                       tokens_per_minute: Text = "", budget_tokens: Text = "", budget_cost: Text = "") -> Response:
    given = {"requests_per_minute": requests_per_minute, "requests_per_day": requests_per_day,
             "tokens_per_minute": tokens_per_minute, "budget_tokens": budget_tokens, "budget_cost": budget_cost}
    try:
        limits = {name: _number(name, value) for name, value in given.items()}
        await platform(request).quotas.create(visitor.principal, scope=scope, subject=_subject(scope, subject),
                                              model=model.strip() or None, budget_period=budget_period, **limits)
    except SocleError as exc:
        return await _quotas(request, visitor, **inline(exc))
    return redirect("/ui/admin/quotas?ok=quota-cree")


@router.post("/quotas/{quota_id}/supprimer")
async def delete_quota(quota_id: Id, request: Request, visitor: SignedIn) -> Response:
    await platform(request).quotas.delete(visitor.principal, quota_id)
    return redirect("/ui/admin/quotas?ok=quota-supprime")


def _subject(scope: str, text: str) -> str:
    """A picked person, group or key is submitted as its label ending with its number: the number."""
    picked = _NUMBER.search(text)
    return picked.group(1) if scope in PICKED and picked else text.strip()


@pickers.get("/sujets")
async def find_subjects(request: Request, visitor: SignedIn,
                        scope: Annotated[str, Query(alias="portee", max_length=10)] = "user",
                        text: Annotated[str, Query(alias="texte", max_length=200)] = "") -> Response:
    """At most ten people, groups or keys whose name (or address) contains ``texte``, for a picker."""
    if scope not in PICKED:
        raise InvalidRequest("Choisissez une personne, un groupe ou une clé.", param="portee")
    found = await platform(request).identity.find_subjects(visitor.principal, scope, text)
    return JSONResponse({"data": [{"id": subject.id, "label": subject.label} for subject in found]})


def _number(name: str, value: str) -> int | float | None:
    """An empty field sets no limit; the budget in cost may have decimals (a comma, the French way)."""
    text = value.strip().replace(",", ".").replace(" ", "").replace("\u202f", "")
    if not text:
        return None
    try:
        return float(text) if name == "budget_cost" else int(text)
    except ValueError as exc:
        raise InvalidRequest(f"{LIMITS[name]} : « {value} » n'est pas un nombre.", param=name) from exc


async def _quotas(request: Request, visitor: Visitor, *, status_code: int = 200, requested: str | None = None,
                  **context: Any) -> Response:
    service, actor = platform(request).quotas, visitor.principal
    paging = Paging.of(requested, await service.count(actor), per_page=QUOTAS_PER_PAGE, path="/ui/admin/quotas")
    quotas = await service.list(actor, limit=paging.per_page, offset=paging.offset)
    return page(request, "admin_quotas.html", visitor, title="Quotas", status_code=status_code, quotas=quotas,
                scopes=SCOPE_LABELS, periods=PERIOD_LABELS, limits=LIMITS, paging=paging,
                currency=platform(request).usage.currency, names=await subject_names(request, visitor, quotas),
                presets={key: (*PRESET_LABELS[key], values) for key, values in
                         presets_with((await platform(request).site.current()).quota_presets).items()},
                roles=await _role_names(request, visitor), **context)


async def subject_names(request: Request, visitor: Visitor, quotas: list[Any]) -> dict[tuple[str, str], str]:
    """Whom each quota binds, by name: (scope, subject) → the picker's words; those deleted since stay numbers."""
    identity, names = platform(request).identity, {}
    for scope in PICKED:
        ids = {int(q.subject) for q in quotas if q.scope == scope and q.subject.isdigit()}
        try:
            found = await identity.name_subjects(visitor.principal, scope, ids)
        except PermissionDenied:
            continue
        names.update({(scope, str(number)): subject.label for number, subject in found.items()})
    return names


async def _role_names(request: Request, visitor: Visitor) -> list[str]:
    try:
        return [role.name for role in await platform(request).identity.list_roles(visitor.principal)]
    except PermissionDenied:  # a quota administrator who does not manage accounts types the role's name
        return []


# ---- models and backends ---------------------------------------------------------------------------
# The catalogue as the administrators change it (``models:admin``): a change is applied here at once, and by every
# other process within SOCLE_CATALOGUE_REFRESH_S. Those who only watch the platform (``metrics:read``) see the
# models in service and their backends' health.

USES = {"chat": "Conversation", "embeddings": "Recherche dans les documents (calcul du sens des textes)",
        "rerank": "Classement des passages trouvés", "transcription": "Transcription de la parole en texte",
        "moderation": "Modération des textes"}
ROUTINGS = {"least-busy": "Au serveur le moins occupé", "round-robin": "À chaque serveur tour à tour",
            "weighted": "Selon le poids donné à chaque serveur"}
Long = Annotated[str, Form(max_length=2000)]
Secret = Annotated[str, Form(max_length=4096)]


@router.get("/modeles")
async def backends_page(request: Request, visitor: SignedIn) -> Response:
    return await _models(request, visitor)


@router.post("/modeles/export")
async def export_models(request: Request, visitor: SignedIn) -> Response:
    """The models in service as a catalogue file (keys are never in it); a form's button, not a link: a download,
    not a page."""
    content = await platform(request).models.export_yaml(visitor.principal)
    return Response(content, media_type="application/yaml; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="catalogue.yaml"'})


@router.get("/modeles/nouveau")
async def new_model_page(request: Request, visitor: SignedIn) -> Response:
    require(visitor.principal, Permission.MODELS_ADMIN)
    return _new_model(request, visitor, form={"type": "chat", "timeout_s": "60"})


@router.post("/modeles/nouveau")
async def create_model(request: Request, visitor: SignedIn, id: Name = "", type: Text = "chat", url: Long = "",
                       model: Name = "", api_key: Secret = "", timeout_s: Text = "60", description: Long = "",
                       provider: Name = "", license: Name = "", intended_use: Long = "", limitations: Long = "",
                       languages: Text = "", runs_on: Long = "", card_url: Long = "") -> Response:
    form = {"id": id, "type": type, "url": url, "model": model, "timeout_s": timeout_s, "description": description,
            "provider": provider, "license": license, "intended_use": intended_use, "limitations": limitations,
            "languages": languages, "runs_on": runs_on, "card_url": card_url}
    try:
        entry = await platform(request).models.create(visitor.principal, _model_settings(form),
                                                      _remote_backend(form), api_key=api_key)
    except SocleError as exc:
        return _new_model(request, visitor, form=form, **inline(exc))
    return redirect(f"/ui/admin/modeles/{entry.id}?ok=modele-ajoute")


@router.get("/modeles/{entry_id}")
async def model_page(entry_id: Id, request: Request, visitor: SignedIn) -> Response:
    return await _model(request, visitor, entry_id)


@router.post("/modeles/{entry_id}")
async def update_model(entry_id: Id, request: Request, visitor: SignedIn, type: Text = "chat",
                       routing: Text = "least-busy", description: Long = "", provider: Name = "", license: Name = "",
                       intended_use: Long = "", limitations: Long = "", languages: Text = "", runs_on: Long = "",
                       card_url: Long = "") -> Response:
    form = {"type": type, "routing": routing, "description": description, "provider": provider, "license": license,
            "intended_use": intended_use, "limitations": limitations, "languages": languages, "runs_on": runs_on,
            "card_url": card_url}
    service = platform(request).models
    try:
        current = await service.entry(visitor.principal, entry_id)
        kept = current.config.model_dump(mode="json", exclude={"id", "backends", "card", "type", "routing"},
                                         exclude_defaults=True)
        await service.update(visitor.principal, entry_id, {**kept, **_model_settings(form)})
    except SocleError as exc:
        return await _model(request, visitor, entry_id, form=form, **inline(exc))
    return redirect(f"/ui/admin/modeles/{entry_id}?ok=modele-modifie")


@router.post("/modeles/{entry_id}/tester")
async def test_model(entry_id: Id, request: Request, visitor: SignedIn) -> Response:
    """Call each of the model's backends now, and show what they answered and how fast."""
    try:
        probes = await platform(request).models.test(visitor.principal, entry_id, platform(request).registry.running)
    except SocleError as exc:
        return await _model(request, visitor, entry_id, **inline(exc))
    return await _model(request, visitor, entry_id, probes=probes)


@router.post("/modeles/{entry_id}/activation")
async def enable_model(entry_id: Id, request: Request, visitor: SignedIn,
                       active: Annotated[str, Form()] = "0") -> Response:
    try:
        await platform(request).models.set_enabled(visitor.principal, entry_id, active == "1")
    except SocleError as exc:
        return await _model(request, visitor, entry_id, **inline(exc))
    return redirect(f"/ui/admin/modeles/{entry_id}?ok={'modele-en-service' if active == '1' else 'modele-hors-service'}")


@router.post("/modeles/{entry_id}/supprimer")
async def delete_model(entry_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        await platform(request).models.delete(visitor.principal, entry_id)
    except SocleError as exc:
        return await _model(request, visitor, entry_id, **inline(exc))
    return redirect("/ui/admin/modeles?ok=modele-retire")


@router.post("/modeles/{entry_id}/serveurs")
async def add_backend(entry_id: Id, request: Request, visitor: SignedIn, url: Long = "", model: Name = "",
                      api_key: Secret = "", timeout_s: Text = "60", name: Name = "") -> Response:
    form = {"url": url, "model": model, "timeout_s": timeout_s, "name": name}
    try:
        await platform(request).models.add_backend(visitor.principal, entry_id, _remote_backend(form),
                                                   api_key=api_key)
    except SocleError as exc:
        return await _model(request, visitor, entry_id, backend_form=form, **inline(exc))
    return redirect(f"/ui/admin/modeles/{entry_id}?ok=serveur-ajoute")


@router.post("/modeles/{entry_id}/serveurs/{backend_id}/retirer")
async def remove_backend(entry_id: Id, backend_id: Id, request: Request, visitor: SignedIn) -> Response:
    try:
        await platform(request).models.remove_backend(visitor.principal, entry_id, backend_id)
    except SocleError as exc:
        return await _model(request, visitor, entry_id, **inline(exc))
    return redirect(f"/ui/admin/modeles/{entry_id}?ok=serveur-retire")


def _model_settings(form: dict[str, str]) -> dict[str, Any]:
    """A model's settings as the catalogue writes them, from the form; the card only when something of it is given."""
    settings: dict[str, Any] = {"type": form["type"]}
    if "id" in form:
        settings["id"] = form["id"].strip()
    if form.get("routing"):
        settings["routing"] = form["routing"]
    card = {"description": form["description"].strip(), "provider": form["provider"].strip(),
            "license": form["license"].strip(), "intended_use": form["intended_use"].strip(),
            "limitations": form["limitations"].strip(), "runs_on": form["runs_on"].strip(),
            "languages": [part.strip() for part in form["languages"].replace(";", ",").split(",") if part.strip()],
            "url": form["card_url"].strip() or None}
    if any(card.values()):
        settings["card"] = card
    return settings


def _remote_backend(form: dict[str, str]) -> dict[str, Any]:
    """A backend of the browser: an OpenAI-compatible server (vLLM, TEI, Albert API...)."""
    timeout = form.get("timeout_s", "").strip().replace(",", ".") or "60"
    backend: dict[str, Any] = {"type": "openai", "url": form["url"].strip(), "timeout_s": timeout}
    if form.get("model", "").strip():
        backend["model"] = form["model"].strip()
    if form.get("name", "").strip():
        backend["name"] = form["name"].strip()
    return backend


def _new_model(request: Request, visitor: Visitor, *, status_code: int = 200, **context: Any) -> Response:
    return page(request, "admin_modele_nouveau.html", visitor, title="Ajouter un modèle", status_code=status_code,
                uses=USES, **context)


async def _model(request: Request, visitor: Visitor, entry_id: int, *, status_code: int = 200,
                 **context: Any) -> Response:
    entry = await platform(request).models.entry(visitor.principal, entry_id)
    card = entry.config.card
    form = context.pop("form", None) or {
        "type": entry.config.type, "routing": entry.config.routing,
        **({"description": card.description, "provider": card.provider, "license": card.license,
            "intended_use": card.intended_use, "limitations": card.limitations,
            "languages": ", ".join(card.languages), "runs_on": card.runs_on, "card_url": card.url or ""}
           if card is not None else {})}
    return page(request, "admin_modele.html", visitor, title=f"Modèle {entry.name}", status_code=status_code,
                entry=entry, form=form, backend_form=context.pop("backend_form", {"timeout_s": "60"}), uses=USES,
                routings=ROUTINGS, served=entry.name in platform(request).registry.configs, **context)


async def _models(request: Request, visitor: Visitor, **context: Any) -> Response:
    """Every model of the catalogue (for ``models:admin``; the others see those in service), with the health of the
    backends in service, checked now (this page is seldom looked at)."""
    actor = visitor.principal
    if not actor.can(Permission.MODELS_ADMIN):
        require(actor, Permission.METRICS_READ)
    registry = platform(request).registry
    health = await registry.health()
    now = time.monotonic()
    live = {served.id: served for served in registry.models}
    entries = await platform(request).models.entries(actor) if actor.can(Permission.MODELS_ADMIN) else None
    models = []
    for name, config, entry in ([(e.name, e.config, e) for e in entries] if entries is not None
                                else [(s.id, s.config, None) for s in registry.models]):
        served = live.get(name)
        states = {state.index: state for state in served.pool.states} if served is not None else {}
        backends = []
        for index, backend in enumerate(config.backends):
            state = states.get(index)
            backends.append({
                "name": config.backend_label(index),
                "location": state.backend.location if state is not None else entry.backends[index].location,
                "has_key": entry.backends[index].has_key if entry is not None else None,
                "healthy": health.get(f"{name}[{index}]", False) if state is not None else None,
                "circuit_open": state is not None and state.open_until > now,
                "in_flight": state.in_flight if state is not None else 0,
                "failures": state.failures if state is not None else 0})
        models.append({"id": name, "type": config.type, "routing": config.routing, "entry": entry,
                       "served": served is not None, "backends": backends})
    return page(request, "admin_modeles.html", visitor, title="Modèles et serveurs", models=models, uses=USES,
                routings=ROUTINGS, manage=entries is not None, **context)
