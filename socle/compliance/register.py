"""The register of processing activities (GDPR art. 30), produced from the platform's actual configuration.

Every recipient is a configured backend, named by its model and the host that serves it (never a URL's
credentials or path); the retention periods are those in force — the site's settings, the
``SOCLE_RETENTION_*`` settings by default (and each installed app's for its own data); the security measures
say what this installation does, including where it falls short of the recommendation (TLS, cookies). Each
installed app's personal data adds its activity.
"""
from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from socle.settings import ModelConfig, Settings

if TYPE_CHECKING:
    from socle.apps.base import PersonalData

KINDS = ("conversations", "usage", "documents", "audit", "sessions")  # the platform's; then the apps'
_KIND_LABELS = {"conversations": "Conversations", "usage": "Lignes d'usage", "documents": "Documents déposés",
                "audit": "Journal d'audit", "sessions": "Sessions web"}
_IN_PROCESS = "sur ce serveur, dans le processus de la plateforme (aucune donnée ne sort)"
_PUBLIC_TASK = "Mission d'intérêt public (RGPD art. 6.1.e)"
_AGENTS = "Agents publics de l'administration qui utilisent la plateforme"
_TRANSFERS = ("La plateforme n'envoie de données qu'aux serveurs de modèles listés ci-dessus : vérifiez "
              "que chacun est hébergé dans l'Union européenne.")


@dataclass(frozen=True, slots=True)
class Activity:
    name: str
    purpose: str
    legal_basis: str
    persons: list[str]
    data: list[str]
    recipients: list[str]  # the models (see Recipient) that receive this data
    retention: str


@dataclass(frozen=True, slots=True)
class Recipient:
    model: str
    type: str
    backend: str  # "llamacpp", "e5", "openai"
    where: str  # a host, or in process
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class Register:
    generated_at: str
    controller: str
    storage: list[str]
    activities: list[Activity]
    recipients: list[Recipient]
    retention: dict[str, str]
    security: list[str]
    transfers: str = _TRANSFERS
    labels: dict[str, str] = field(default_factory=dict)  # the apps' kinds of data, in French

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        del found["labels"]
        return found

    def kind_label(self, kind: str) -> str:
        """A kind of data, in French."""
        return self.labels.get(kind) or kind_label(kind)

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2)


def host_of(url: str) -> str:
    """``host[:port]`` of a URL: what names a server in the register, without its credentials or path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def retention_periods(settings: Settings, personal_data: Sequence[PersonalData] = (),
                      chosen: Mapping[str, int] | None = None) -> dict[str, int | None]:
    """Days each kind of data is kept: ``chosen`` (the administrators' periods, in the site's settings), else
    ``SOCLE_RETENTION_<KIND>_DAYS`` (None: no such setting), then the apps' kinds, from their own settings."""
    chosen = chosen or {}
    return {**{kind: chosen.get(kind, getattr(settings, f"retention_{kind}_days", None)) for kind in KINDS},
            **{data.kind: data.retention_days for data in personal_data}}


def kind_label(kind: str) -> str:
    return _KIND_LABELS.get(kind, kind)


def _days(value: int | None) -> str:
    if value is None:
        return "non défini (conservées jusqu'à leur suppression)"
    if value == 0:
        return "jusqu'à leur suppression par leur titulaire ou un administrateur"
    return f"{value} jours"


def _recipients(models: list[ModelConfig]) -> list[Recipient]:
    found = []
    for model in models:
        card = model.model_card
        for backend in model.backends:
            url = getattr(backend, "url", None)
            found.append(Recipient(model=model.id, type=model.type, backend=backend.type,
                                   where=f"serveur {host_of(url)}" if url else _IN_PROCESS,
                                   provider=card.provider if card is not None else None))
    return found


def _storage(settings: Settings) -> list[str]:
    url = settings.resolved_database_url
    database = (f"Base de données PostgreSQL sur {host_of(url)}" if url.startswith("postgres")
                else f"Base de données SQLite dans le répertoire de données ({settings.data_dir})")
    places = [database, "Fichiers originaux des documents déposés, gardés avec leur document (pour leur "
              f"indexation et leur téléchargement) : {settings.documents_dir}"]
    if settings.redis_url:
        places.append("Compteurs des quotas et des connexions (sans contenu) : Redis sur "
                      f"{host_of(settings.redis_url)}")
    return places


def _activities(settings: Settings, recipients: list[Recipient], personal_data: Sequence[PersonalData],
                chosen: Mapping[str, int] | None, proconnect: bool) -> list[Activity]:
    periods = {kind: _days(days) for kind, days in retention_periods(settings, (), chosen).items()}
    chat = sorted({r.model for r in recipients if r.type == "chat"})
    every_model = sorted({r.model for r in recipients})
    sign_in = ["ProConnect (fournisseur d'identité de l'État)"] if proconnect else []
    return [
        Activity("Comptes et accès", "Identifier les utilisateurs, leur donner des droits, sécuriser l'accès "
                 "(clés d'API, sessions web, connexion par mot de passe ou ProConnect)", _PUBLIC_TASK,
                 [_AGENTS, "Administrateurs"],
                 ["Adresse électronique, nom", "Rôle, groupes", "Empreinte du mot de passe (argon2id)",
                  "Empreintes des clés d'API", "Sessions web"], sign_in,
                 "Comptes : à la suppression du compte (effacement : art. 17) ; sessions : "
                 f"{periods['sessions']} après leur expiration"),
        Activity("Assistant conversationnel", "Répondre aux questions des agents avec un modèle de langage",
                 _PUBLIC_TASK, [_AGENTS, "Personnes citées dans les échanges"],
                 ["Contenu des conversations (questions et réponses)", "Identifiant de l'utilisateur"], chat,
                 f"Conversations : {periods['conversations']} sans utilisation"),
        Activity("Documents et recherche", "Indexer les documents des agents et y rechercher les passages "
                 "qui répondent à une question", _PUBLIC_TASK,
                 [_AGENTS, "Personnes citées dans les documents"],
                 ["Documents déposés (le fichier original, son texte découpé en passages)",
                  "Représentations vectorielles du texte", "Fichiers déposés dans une conversation"],
                 every_model, f"Documents (fichier original, texte et passages) : {periods['documents']} ; "
                 "fichiers déposés dans une conversation : supprimés avec elle"),
        Activity("Mesure de l'usage et quotas", "Appliquer les quotas, mesurer la consommation, le coût et "
                 "l'impact environnemental", _PUBLIC_TASK, [_AGENTS],
                 ["Identifiants de l'utilisateur et de la clé", "Modèle, jetons, durée, coût, énergie"], [],
                 f"Lignes d'usage : {periods['usage']} ; après effacement d'un compte, conservées "
                 "pseudonymisées pour la comptabilité"),
        Activity("Journal d'audit", "Tracer les actions sensibles pour la sécurité (connexions, clés, "
                 "droits, exports, effacements) et en prouver l'intégrité", "Obligation de sécurité (RGPD art. 32)",
                 [_AGENTS, "Administrateurs"],
                 ["Identifiants de l'auteur et de la cible (jamais de nom ni d'adresse électronique)",
                  "Adresse IP du client", "Action, date et heure"], [],
                 f"Entrées du journal : {periods['audit']}"),
        *(data.activity(_days(data.retention_days), every_model) for data in personal_data),
    ]


def _security(settings: Settings, models: list[ModelConfig]) -> list[str]:
    plain = sorted({f"{model.id} ({host_of(backend.url)})" for model in models for backend in model.backends
                    if getattr(backend, "url", "").startswith("http://")})
    cookies = (", réservés à HTTPS" if settings.ui_cookie_secure
               else " — ATTENTION : cookies autorisés sans HTTPS (SOCLE_UI_COOKIE_SECURE=false)")
    tls = f" — ATTENTION : en HTTP sans TLS : {', '.join(plain)}" if plain else ""
    return [
        "Clés d'API : seule l'empreinte SHA-256 de leur secret (256 bits) est conservée",
        "Mots de passe : empreinte argon2id (RFC 9106) ; connexions échouées limitées par compte et par "
        "adresse",
        "Cloisonnement : chaque collection est privée, partagée avec un groupe ou publique ; les recherches "
        "sont filtrées dans les requêtes elles-mêmes",
        "Journal d'audit chaîné par empreintes SHA-256 : toute modification, suppression ou réorganisation "
        "est détectée par « socle audit verify »",
        f"Pages web : politique de sécurité du contenu stricte, jeton anti-CSRF, cookies HttpOnly et "
        f"SameSite{cookies}",
        "Chiffrement des échanges : TLS recommandé devant la plateforme (mandataire inverse) et vers chaque "
        f"serveur de modèles{tls}",
        "Aucun appel sortant hors des serveurs de modèles configurés ; aucun modèle téléchargé à l'exécution",
        "Quotas par clé, utilisateur, groupe, rôle et modèle",
    ]


def build(settings: Settings, personal_data: Sequence[PersonalData], *, controller: str = "",
          chosen: Mapping[str, int] | None = None, proconnect: bool | None = None) -> Register:
    """The register for this configuration (the catalogue is read and validated) and the installed apps'
    personal data. ``chosen``: the retention periods in force (the site's settings); ``proconnect``: whether
    ProConnect is on (by default, whether the environment configures it)."""
    proconnect = bool(settings.oidc_issuer) if proconnect is None else proconnect
    models = settings.catalogue().models
    recipients = _recipients(models)
    return Register(generated_at=datetime.now(UTC).isoformat(timespec="seconds"), controller=controller,
                    storage=_storage(settings),
                    activities=_activities(settings, recipients, personal_data, chosen, proconnect),
                    recipients=recipients,
                    retention={kind: _days(days)
                               for kind, days in retention_periods(settings, personal_data, chosen).items()},
                    security=_security(settings, models), labels={data.kind: data.label for data in personal_data})


def as_markdown(register: Register) -> str:
    lines = ["# Registre des activités de traitement (RGPD, article 30)", "",
             f"Produit le {register.generated_at} à partir de la configuration de la plateforme Socle IA.",
             ""]
    if register.controller:
        lines += [f"Responsable du traitement : {register.controller}", ""]
    lines += ["## Où sont les données", "", *(f"- {place}" for place in register.storage), ""]
    for activity in register.activities:
        lines += [f"## {activity.name}", "", f"- Finalité : {activity.purpose}",
                  f"- Base légale : {activity.legal_basis}",
                  f"- Personnes concernées : {' ; '.join(activity.persons)}",
                  f"- Données : {' ; '.join(activity.data)}",
                  f"- Destinataires : {', '.join(activity.recipients) or 'aucun hors de la plateforme'}",
                  f"- Conservation : {activity.retention}", ""]
    lines += ["## Destinataires : les modèles et leurs serveurs", "",
              "| modèle | type | moteur | où | fournisseur |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r.model} | {r.type} | {r.backend} | {r.where} | {r.provider or '—'} |"
              for r in register.recipients]
    lines += ["", "## Durées de conservation", "",
              *(f"- {register.kind_label(kind)} : {days}" for kind, days in register.retention.items()), ""]
    lines += ["## Transferts", "", register.transfers, "", "## Mesures de sécurité", "",
              *(f"- {measure}" for measure in register.security), ""]
    return "\n".join(lines)
