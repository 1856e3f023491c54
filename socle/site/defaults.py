"""The site's settings before the administration changes them: the environment's values (``SOCLE_SITE_*``), and
French texts for the legal pages, written from what the platform really stores and for how long."""
from __future__ import annotations

from collections.abc import Mapping

from socle.compliance.retention import KINDS
from socle.settings import Settings

WELCOME = ("Bonjour. Écrivez votre demande ci-dessous : rédiger ou reformuler un texte, résumer une note, "
           "traduire, trouver des idées. Les réponses sont produites par une intelligence artificielle : "
           "relisez-les avant de les utiliser. Pour une question sur vos propres fichiers, utilisez "
           "« Interroger mes documents ».")
SUGGESTIONS = (
    "Reformule ce paragraphe dans un style administratif clair :",
    "Résume ce texte en cinq points :",
    "Propose un plan pour une note à ma hiérarchie sur le sujet suivant :",
    "Traduis en anglais le message suivant :",
)


def _days(days: int) -> str:
    return "sans limite de durée (jusqu'à leur suppression)" if days == 0 else f"{days} jours"


def legal_notice(organisation: str) -> str:
    who = organisation or "l'administration qui exploite cette plateforme"
    return f"""## Éditeur

Ce site est édité par {who}.

## Hébergement

La plateforme est installée sur les serveurs de {who} : les conversations, les documents et les modèles
d'intelligence artificielle y restent ; rien n'est envoyé à un service extérieur.

## Logiciel

Socle IA est un logiciel libre, publié sous la licence Apache-2.0.

## Propriété intellectuelle

Les textes produits par l'intelligence artificielle sont fournis à titre d'aide : ils n'engagent pas
l'administration tant qu'un agent ne les a pas relus et repris à son compte.
"""


def retention_days(settings: Settings) -> dict[str, int]:
    """The environment's retention periods (``SOCLE_RETENTION_<KIND>_DAYS``), by kind."""
    return {kind: int(getattr(settings, f"retention_{kind}_days")) for kind in KINDS}


def privacy(organisation: str, contact: str, days: Mapping[str, int]) -> str:
    who = organisation or "l'administration qui exploite cette plateforme"
    write = f" ({contact})" if contact else ""
    return f"""## Responsable du traitement

Le responsable du traitement est {who}. Pour exercer vos droits (accès, rectification, effacement,
limitation, opposition), adressez-vous à son délégué à la protection des données{write}.

## Données traitées et durée de conservation

- **Votre compte** : adresse électronique, nom, rôle et groupes — tant que le compte existe.
- **Vos conversations** avec l'assistant — {_days(days['conversations'])} après leur dernière
  utilisation.
- **Vos documents** (le fichier déposé, tel quel, et les passages qui en sont extraits) —
  {_days(days['documents'])} ; un fichier joint à une conversation est supprimé avec elle.
- **Votre consommation** (nombre de demandes, volume de texte traité, modèle utilisé, sans le contenu des
  échanges) — {_days(days['usage'])}.
- **Le journal d'audit** des actions sensibles (connexions, changements de droits) —
  {_days(days['audit'])}.

## Finalité

Ces données servent uniquement à vous fournir le service, à en suivre l'usage et à en assurer la sécurité.
Elles ne servent pas à entraîner les modèles et ne quittent pas les serveurs de l'administration.

## Vos droits

Vous pouvez demander une copie de vos données ou leur effacement. Si vous estimez que vos droits ne sont pas
respectés, vous pouvez adresser une réclamation à la CNIL (cnil.fr).
"""


COOKIES = """## Les cookies de ce site

Ce site ne dépose que les cookies nécessaires à son fonctionnement ; ils ne demandent pas votre consentement :

- **socle_session** : garde votre connexion ouverte (il expire à la déconnexion ou après une période
  d'inactivité) ;
- **socle_connexion** : protège le formulaire de connexion pendant que vous le remplissez.

Aucun cookie de mesure d'audience, de publicité ou de réseau social n'est déposé, et aucune donnée n'est
transmise à un tiers.

## Paramètres d'affichage

Le thème choisi (clair, sombre ou celui du système) est gardé dans votre navigateur (stockage local), pas dans
un cookie.
"""


def accessibility_notes() -> str:
    return ("Aucun contenu non accessible n'a été recensé à ce jour en dehors des résultats des vérifications "
            "automatiques ci-dessus. Les réponses de l'intelligence artificielle sont du texte : elles sont lues "
            "par les lecteurs d'écran comme le reste de la page.")
