"""The words of the panorama: functional families, maturity, hosting, the four selection criteria of a
solution and the seven criteria a jury scores a project on. Codes are stored; the French labels are shown.

Each family carries a short description in the words agents use: it is indexed with every solution of the
family, so that a need phrased in everyday terms ("résumer des comptes rendus") finds the family even when
no solution's own text uses those words.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Family:
    code: str
    label: str
    description: str


FAMILIES: tuple[Family, ...] = (
    Family("redaction", "Assistants de rédaction et de synthèse",
           "rédiger, reformuler, résumer, synthétiser des documents, comptes rendus, notes, courriers, "
           "procès-verbaux de réunion, simplifier le langage administratif"),
    Family("recherche", "Recherche documentaire et gestion des connaissances",
           "retrouver une information dans une base documentaire, des textes réglementaires, une doctrine, "
           "jurisprudence, archives, intranet ; questions-réponses sur des documents internes"),
    Family("relation_usager", "Relation usager et agents conversationnels",
           "répondre aux usagers, aux citoyens, aux demandes par courriel ou messagerie, agent conversationnel "
           "(chatbot), tri et routage des demandes, accueil, foire aux questions"),
    Family("parole", "Parole et transcription",
           "transcrire l'audio, la voix, des enregistrements d'entretiens, d'audiences ou de réunions en texte, "
           "sous-titrage, dictée vocale, synthèse vocale, appels téléphoniques"),
    Family("traduction", "Traduction",
           "traduire des documents et des échanges dans d'autres langues, langues étrangères, usagers "
           "non francophones, multilinguisme, interprétariat"),
    Family("image_video", "Analyse d'images et de vidéos",
           "analyser des photos, images satellites ou aériennes, vidéos, reconnaissance de caractères (OCR) "
           "de documents scannés, détection d'objets, contrôle visuel"),
    Family("code", "Aide au développement logiciel",
           "écrire, relire, tester, documenter et moderniser du code informatique, applications, scripts, "
           "migration de langages anciens, assistance aux développeurs"),
    Family("donnees", "Données et prédiction",
           "analyser des données, tableaux, statistiques, prévoir une demande, détecter des fraudes ou des "
           "anomalies, ciblage des contrôles, tableaux de bord, apprentissage automatique"),
    Family("infrastructure", "Infrastructure et modèles",
           "héberger et servir des modèles d'IA, grands modèles de langage ouverts, calcul GPU, plateforme, "
           "passerelle d'API, cloud souverain, entraînement et adaptation de modèles"),
)
FAMILY_BY_CODE = {family.code: family for family in FAMILIES}

MATURITIES = {"experimentation": "En expérimentation", "pilote": "Pilote en cours", "production": "En production"}
HOSTINGS = {"secnumcloud": "Cloud qualifié SecNumCloud", "ue": "Hébergé dans l'Union européenne",
            "sur_site": "Installable sur site", "hors_ue": "Hébergé hors de l'Union européenne"}

SOLUTION_CRITERIA = {
    "criterion_impact": "Impact attendu sur les missions de service public",
    "criterion_maturity": "Maturité fonctionnelle déclarée",
    "criterion_integration": "Capacité d'intégration aux systèmes d'information existants",
    "criterion_compliance": "Conformité déclarée aux exigences de sécurité, de protection des données et "
                            "d'accessibilité",
}

JURY_CRITERIA = {
    "impact": "Impact et bénéfices pour l'administration et ses usagers",
    "pertinence_ia": "Pertinence de l'IA pour le problème posé",
    "defi_technique": "Pertinence du défi technique",
    "equipe": "Équipe d'agents publics mobilisée",
    "donnees": "Existence et accessibilité des données",
    "enseignements": "Enseignements au-delà du projet",
    "accompagnement": "Valeur de l'accompagnement",
}
MARK_MAX = 5  # each criterion is marked 0..5
PROJECT_STATUSES = {"submitted": "Déposé", "selected": "Retenu", "declined": "Non retenu"}
INDICATOR_KINDS = {"quantitative": "Indicateur quantitatif", "qualitative": "Indicateur qualitatif"}
