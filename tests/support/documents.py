"""Real documents to upload (PDF, DOCX, HTML, Markdown), and waiting for their ingestion."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docx
import httpx
from fpdf import FPDF

PASSPORT_PAGES = [
    "Guide du passeport. La demande de passeport se fait en mairie, sur rendez-vous, après une pré-demande "
    "en ligne sur le site de l'Agence nationale des titres sécurisés.",
    "Délai de fabrication. Une fois la demande déposée, le délai de fabrication du passeport est d'environ "
    "trois semaines ; il peut être plus long avant l'été. Le titulaire est prévenu par SMS.",
    "Tarif. Le timbre fiscal coûte 86 euros pour un majeur, 42 euros pour un mineur de 15 ans ou plus.",
]
TELEWORK = {"Objet": "La présente circulaire précise les modalités du télétravail des agents du ministère.",
            "Quotité": "Un agent peut télétravailler trois jours par semaine au plus, sur demande écrite à son "
                       "chef de service, qui répond dans un délai d'un mois."}
HTML = """<html><head><title>Carte grise</title></head><body><nav>Menu Accueil Contact</nav>
<h1>Certificat d'immatriculation</h1><p>Le changement d'adresse sur la carte grise est gratuit et doit être
déclaré dans le mois qui suit le déménagement, en ligne sur le site de l'ANTS.</p>
<script>alert('jamais indexé')</script></body></html>"""
MARKDOWN = """# Congés annuels

## Durée
Chaque agent a droit à cinq fois ses obligations hebdomadaires de service en jours de congés annuels.

## Report
Les congés non pris peuvent être reportés sur l'année suivante avec l'accord du chef de service,
ou versés sur le compte épargne-temps.
"""


def pdf(path: Path, pages: list[str] = PASSPORT_PAGES, title: str = "Guide du passeport") -> Path:
    document = FPDF()
    document.set_title(title)
    document.set_font("Helvetica", size=12)
    for page in pages:
        document.add_page()
        document.multi_cell(0, 8, page)
    document.output(str(path))
    return path


def word(path: Path, sections: dict[str, str] = TELEWORK, title: str = "Circulaire télétravail") -> Path:
    document = docx.Document()
    document.core_properties.title = title
    for heading, text in sections.items():
        document.add_heading(heading, level=1)
        document.add_paragraph(text)
    document.save(str(path))
    return path


def upload(client: httpx.Client, collection_id: int, path: Path, **form: Any) -> httpx.Response:
    with path.open("rb") as handle:
        return client.post("/documents", files={"file": (path.name, handle)},
                           data={"collection": str(collection_id), **{k: str(v) for k, v in form.items()}})


def wait_ingested(client: httpx.Client, document_ids: list[int], *, embedded: bool = True,
                  timeout_s: float = 120.0) -> dict[int, dict[str, Any]]:
    """Each document's final state: ready (and, if asked, fully embedded) or failed."""
    deadline = time.monotonic() + timeout_s
    states: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        states = {i: client.get(f"/documents/{i}").json() for i in document_ids}
        if all(s["status"] == "failed" or (s["status"] == "ready" and (not embedded or s["embedded"] == s["chunks"]))
               for s in states.values()):
            return states
        time.sleep(0.2)
    raise AssertionError(f"ingestion did not finish in {timeout_s} s: {states}")
