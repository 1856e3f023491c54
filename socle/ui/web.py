"""Rendering pages: the templates, the French wording of errors and notices, and the error pages.

A :class:`SocleError` that a page lets through is the UI's exception handler's: the DSFR error page in French
(JSON for the pages' own fetches under ``/ui/api/``), with the status the API would answer
(``socle.api.errors.status_of``, the one rule). A page catches an error only to show it on the form that
caused it (:func:`inline`).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from socle import __version__
from socle.api.errors import HANDLERS as API_HANDLERS
from socle.api.errors import status_of
from socle.api.strict import UnreadableInput
from socle.errors import RateLimited, SocleError
from socle.formats import french_number
from socle.identity.permissions import Permission
from socle.rag import extractive
from socle.site.service import SiteSettings
from socle.ui import markdown, security
from socle.ui.security import CsrfRejected, SignInRequired, Visitor

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=HERE / "templates")  # autoescapes every .html template
TEMPLATES.env.globals.update(version=__version__, Permission=Permission)
TEMPLATES.env.filters["markdown"] = lambda text: Markup(markdown.to_html(text))  # raw HTML escaped by to_html
TEMPLATES.env.filters["nombre"] = french_number  # 12 345, the French way
TEMPLATES.env.tests["extraits"] = extractive.is_extracts  # an answer quoting documents, written by no model
API_PREFIX = "/ui/api/"
STATIC_PREFIX = "/ui/static/"
log = logging.getLogger("socle.ui")

# Notices after a redirect are named by a fixed code, never by text taken from the URL.
NOTICES = {
    "deconnecte": "Vous êtes déconnecté.",
    "collection-creee": "La collection a été créée.",
    "collection-supprimee": "La collection a été supprimée.",
    "document-supprime": "Le document a été supprimé.",
    "cle-revoquee": "La clé a été révoquée : elle ne donne plus accès à la plateforme.",
    "conversation-renommee": "La conversation a été renommée.",
    "conversation-supprimee": "La conversation a été supprimée.",
    "avis-enregistre": "Merci : votre avis sur cette réponse est enregistré.",
    "utilisateur-cree": "Le compte a été créé. Son titulaire se connecte une fois son mot de passe défini "
                        "(socle users set-password) ou par ProConnect.",
    "utilisateur-modifie": "Le compte a été modifié.",
    "mot-de-passe-defini": "Le mot de passe est défini : transmettez-le à la personne par un autre moyen que celui "
                           "de son adresse. Ses sessions ouvertes sont fermées.",
    "mot-de-passe-choisi": "Votre mot de passe est enregistré : vous êtes connecté.",
    "mot-de-passe-change": "Votre mot de passe est changé. Vos autres sessions ouvertes sont fermées.",
    "utilisateur-desactive": "Le compte est désactivé : ses sessions et ses clés ne donnent plus accès.",
    "utilisateur-reactive": "Le compte est réactivé.",
    "utilisateur-supprime": "Le compte et ses données ont été supprimés ; sa consommation est conservée sous un "
                            "pseudonyme.",
    "groupe-cree": "Le groupe a été créé.",
    "membre-ajoute": "Le membre a été ajouté au groupe.",
    "membre-retire": "Le membre a été retiré du groupe.",
    "quota-cree": "Le quota a été créé : il s'applique dans les secondes qui viennent.",
    "affinage-annule": "L'affinage est annulé : s'il s'entraînait, il s'arrête dans quelques secondes.",
    "modele-partage": "Le partage du modèle est enregistré : il s'applique dans les secondes qui viennent.",
    "modele-ajoute": "Le modèle a été ajouté : toute la plateforme le sert dans les secondes qui viennent.",
    "modele-modifie": "Le modèle a été modifié : la modification s'applique dans les secondes qui viennent.",
    "modele-en-service": "Le modèle est remis en service.",
    "modele-hors-service": "Le modèle est hors service : il n'est plus proposé.",
    "modele-retire": "Le modèle a été retiré.",
    "serveur-ajoute": "Le serveur a été ajouté au modèle.",
    "serveur-retire": "Le serveur a été retiré du modèle.",
    "quota-supprime": "Le quota a été supprimé.",
    "groupe-supprime": "Le groupe a été supprimé.",
    "role-cree": "Le rôle a été créé : il peut être donné aux utilisateurs.",
    "role-modifie": "Le rôle a été modifié : ses utilisateurs ont ses nouvelles permissions dès leur prochaine "
                    "demande.",
    "role-supprime": "Le rôle a été supprimé.",
    "parametres-enregistres": "Les paramètres sont enregistrés : ils s'affichent sur chaque page dans les secondes "
                              "qui viennent.",
}

_MESSAGES_BY_KIND = {
    "not_found": "Cet élément n'existe pas ou ne vous est pas accessible.",
    "permission_denied": "Votre rôle ne vous permet pas de faire cela.",
    "too_large": "Le fichier est trop volumineux.",
    "rate_limited": "Vous avez atteint une limite d'utilisation : réessayez plus tard.",
    "unavailable": "Le modèle est momentanément indisponible : réessayez dans un instant.",
    "bad_gateway": "Le modèle a rencontré une erreur : réessayez dans un instant.",
    "gateway_timeout": "Le modèle a mis trop de temps à répondre.",
    "conflict": "Cet élément existe déjà.",
}
_MESSAGES_BY_CODE = {
    "unsupported_file_type": "Ce type de fichier n'est pas pris en charge (PDF, DOCX, ODT, HTML, Markdown, "
                             "texte, CSV ou JSON).",
    "empty_file": "Le fichier est vide.",
    "insufficient_quota": "Votre budget d'utilisation est épuisé pour cette période.",
    "model_not_found": "Ce modèle n'existe pas.",
    # signing in with ProConnect
    "oidc_no_attempt": "Cette connexion avec ProConnect n'a pas été commencée depuis ce navigateur, ou elle a "
                       "expiré : elle est refusée. Recommencez depuis cette page.",
    "oidc_state_mismatch": "La réponse de ProConnect ne correspond pas à la connexion commencée depuis ce "
                           "navigateur : elle est refusée. Recommencez depuis cette page.",
    "oidc_nonce_mismatch": "La réponse de ProConnect ne correspond pas à cette connexion : elle est refusée. "
                           "Recommencez depuis cette page.",
    "oidc_invalid_token": "La réponse de ProConnect n'a pas pu être vérifiée : la connexion est refusée. "
                          "Recommencez ; si cela persiste, prévenez l'équipe qui administre la plateforme.",
    "oidc_provider_error": "ProConnect n'a pas pu mener la connexion à son terme. Recommencez dans un instant.",
    "oidc_denied": "La connexion avec ProConnect a été annulée.",
    "oidc_unavailable": "ProConnect est momentanément injoignable : réessayez dans un instant, ou connectez-vous "
                        "avec votre mot de passe.",
    "oidc_no_email": "ProConnect n'a pas transmis votre adresse électronique : la connexion est impossible.",
    "oidc_email_unverified": "Votre fournisseur d'identité ne garantit pas votre adresse électronique : la "
                             "connexion est refusée.",
    "no_account": "Aucun compte Socle IA n'est ouvert à votre adresse électronique. Demandez à l'équipe qui "
                  "administre la plateforme de vous en créer un, puis reconnectez-vous.",
    "inactive_user": "Votre compte Socle IA est désactivé : adressez-vous à l'équipe qui administre la "
                     "plateforme.",
    # accounts and passwords
    "password_too_short": "Le mot de passe doit compter au moins 12 caractères : une phrase de quelques mots "
                          "convient très bien.",
    "password_too_long": "Le mot de passe est trop long (1 024 caractères au plus).",
    "passwords_differ": "Les deux saisies du mot de passe sont différentes.",
    "invalid_link": "Ce lien ne fonctionne pas : il a déjà servi, il a expiré, ou un lien plus récent l'a remplacé.",
    "email_taken": "Un compte existe déjà à cette adresse électronique.",
    "invalid_email": "Cette adresse électronique n'est pas valide.",
    "mail_not_configured": "Cette page n'existe pas ici : pour un nouveau mot de passe, adressez-vous à l'équipe qui "
                           "administre la plateforme.",
    "import_no_header": "La première ligne du fichier doit nommer les colonnes, dont l'adresse électronique "
                        "(nom, courriel, rôle, groupes).",
    "import_too_large": "Le fichier est trop volumineux (512 Kio au plus).",
    "import_too_many": "Le fichier compte trop de lignes (1 000 comptes au plus par fichier).",
    "import_not_csv": "Ce fichier n'est pas un fichier CSV (texte).",
    "import_has_problems": "Le fichier comporte des erreurs : rien n'a été importé. Corrigez les lignes signalées "
                           "puis recommencez.",
    # roles
    "role_exists": "Un rôle porte déjà ce nom.",
    "invalid_role_name": "Le nom d'un rôle compte de 1 à 64 caractères : lettres minuscules sans accent, "
                         "chiffres, « _ » ou « - », en commençant par une lettre ou un chiffre.",
    "role_in_use": "Ce rôle est encore donné à des utilisateurs : donnez-leur un autre rôle avant de le supprimer.",
    "builtin_role": "Ce rôle fait partie de la plateforme : il ne peut pas être supprimé.",
    "admin_keeps_all": "Le rôle admin garde toutes les permissions (« * »).",
}


def french(exc: SocleError) -> str:
    """What to tell a person about a refused action; the technical message only when nothing fits."""
    if exc.code in _MESSAGES_BY_CODE:
        return _MESSAGES_BY_CODE[exc.code]
    if exc.kind in _MESSAGES_BY_KIND:
        return _MESSAGES_BY_KIND[exc.kind]
    if exc.kind == "invalid_request":
        return f"Demande invalide : {exc.message}"
    if exc.kind == "upstream_rejected":
        return f"Le modèle a refusé la demande : {exc.message}"
    return "Une erreur est survenue. Réessayez ; si elle persiste, prévenez l'équipe qui administre la plateforme."


class Inline(TypedDict):
    status_code: int
    error: str


def inline(exc: SocleError) -> Inline:
    """A refusal shown on the form that caused it, the page re-rendered around it: the API's status, the French
    words (``**inline(exc)`` into the page's own renderer)."""
    return {"status_code": status_of(exc), "error": french(exc)}


def page(request: Request, template: str, visitor: Visitor | None, *, title: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("ok", ""))
    return TEMPLATES.TemplateResponse(request, template, {"visitor": visitor, "title": title, "notice": notice,
                                                          "path": request.url.path, "site": site_of(request),
                                                          **context},
                                      status_code=status_code)


def site_of(request: Request) -> SiteSettings | None:
    """The site's settings :class:`SiteLoader` read for this request; else the last ones read (a page rendered
    before the loader ran, or while the database does not answer)."""
    loaded: SiteSettings | None = getattr(request.state, "site", None)
    if loaded is not None:
        return loaded
    built = getattr(request.app.state, "platform", None)
    return built.site.latest if built is not None else None


class SiteLoader:
    """Reads the site's settings (a cached copy, re-read every few seconds) before each page, so that whatever
    answers — the page, or its error page — shows the administration's footer and texts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_page(scope.get("path", "")):
            built = getattr(scope["app"].state, "platform", None)
            if built is not None:
                try:
                    scope.setdefault("state", {})["site"] = await built.site.current()
                except Exception:  # the database does not answer: the page says so; its footer is the last known
                    log.warning("the site's settings could not be read", exc_info=True)
        await self.app(scope, receive, send)


def is_page(path: str) -> bool:
    """A page of the UI (not one of its fetches, not an asset): answered with a page, the site's texts around."""
    return path.startswith("/ui/") and not path.startswith((API_PREFIX, STATIC_PREFIX))


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)  # after a POST: the browser follows with a GET


def error_page(request: Request, visitor: Visitor | None, status_code: int, message: str) -> Response:
    if request.url.path.startswith(API_PREFIX):
        return JSONResponse({"error": {"message": message}}, status_code=status_code)
    return page(request, "erreur.html", visitor, title="Erreur", status_code=status_code, message=message)


async def refused(request: Request, exc: Exception) -> Response:
    """Any :class:`SocleError` a page lets through, under the API's status rule; the API's routes keep their
    error envelope."""
    assert isinstance(exc, SocleError)
    if not request.url.path.startswith("/ui/"):
        return await API_HANDLERS[SocleError](request, exc)
    visitor: Visitor | None = getattr(request.state, "visitor", None)  # set once the session is resolved
    response = error_page(request, visitor, status_of(exc), french(exc))
    if isinstance(exc, RateLimited):
        response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
    return response


async def sign_in_required(request: Request, _: Exception) -> Response:
    if request.url.path.startswith(API_PREFIX):
        return JSONResponse({"error": {"message": "Votre session a expiré : reconnectez-vous."}}, status_code=401)
    target = request.url.path if request.method == "GET" else "/ui/"
    return redirect("/ui/connexion?" + urlencode({"suivant": target}))


async def csrf_rejected(request: Request, _: Exception) -> Response:
    return error_page(request, None, 403, "Cette demande n'a pas été faite depuis une page de Socle IA ouverte "
                      "dans votre session : elle est refusée. Rechargez la page et recommencez.")


async def invalid_input(request: Request, exc: Exception) -> Response:
    """An address or a form a page cannot take (an id out of range, a NUL character...): the error page.
    The API's routes keep their error envelope."""
    if not request.url.path.startswith("/ui/"):
        return await API_HANDLERS[type(exc)](request, exc)
    status_code = exc.status_code if isinstance(exc, UnreadableInput) else 422
    return error_page(request, None, status_code, "Demande invalide : l'adresse ou le formulaire contient une "
                      "valeur que la plateforme ne peut pas accepter. Revenez à la page précédente et corrigez-la.")


async def optional_visitor(request: Request) -> Visitor | None:
    """Who is signed in, if anyone, for a page open to all (it shows the menu to those signed in)."""
    if request.method not in ("GET", "HEAD"):
        return None
    try:
        return await security.visitor(request)
    except SignInRequired:
        return None




async def http_error(request: Request, exc: Exception) -> Response:
    """An address no page answers (404) or a method a page does not take: the DSFR's error page in French.
    The API's routes keep their error envelope."""
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/ui/"):
        return await API_HANDLERS[HTTPException](request, exc)
    visitor = getattr(request.state, "visitor", None) or await optional_visitor(request)
    if exc.status_code == 404:
        message = ("La page que vous cherchez est introuvable : l'adresse est peut-être mal saisie, ou la page "
                   "n'existe plus.")
    else:
        message = "Cette page ne peut pas répondre à cette demande."
    if not is_page(request.url.path):
        return error_page(request, visitor, exc.status_code, message)
    return page(request, "erreur.html", visitor, title="Page non trouvée" if exc.status_code == 404 else "Erreur",
                status_code=exc.status_code, message=message, code=exc.status_code,
                heading="Page non trouvée" if exc.status_code == 404 else "Erreur")


async def unexpected(request: Request, exc: Exception) -> Response:
    """A fault of the platform itself (500): logged, then the DSFR's error page in French for a page; the API's
    routes keep their error envelope."""
    if not request.url.path.startswith("/ui/"):
        return await API_HANDLERS[Exception](request, exc)
    log.error("unhandled error on a page", exc_info=exc)
    message = ("Une erreur inattendue est survenue de notre côté. Réessayez dans un instant ; si elle persiste, "
               "prévenez l'équipe qui administre la plateforme.")
    visitor: Visitor | None = getattr(request.state, "visitor", None)
    if not is_page(request.url.path):
        response = error_page(request, visitor, 500, message)
    else:
        response = page(request, "erreur.html", visitor, title="Erreur inattendue", status_code=500,
                        message=message, code=500, heading="Erreur inattendue")
    # Starlette answers a fault from outside every middleware, the security headers' included: set here.
    for name, value in security.page_headers(request.scope):
        response.headers[name.decode()] = value.decode()
    return response


EXCEPTION_HANDLERS = {SocleError: refused, SignInRequired: sign_in_required, CsrfRejected: csrf_rejected,
                      RequestValidationError: invalid_input, UnreadableInput: invalid_input,
                      HTTPException: http_error, Exception: unexpected}
