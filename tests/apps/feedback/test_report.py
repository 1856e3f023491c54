"""The feedback report and the annotations' CSV.

The first tests render them from hand-made annotations (fast: escaping, formula injection, Excel's format,
never the message as imported). The last one goes end to end, as a civil servant would: a real server with
its embedded e5 model, a file of real-looking messages (``datasets/feedback/messages.jsonl``, whose planted
personal data each message lists under ``pii``) imported through the "Avis usagers" page, a real analysis by
the embedding engine, then the report in Chromium (charts, no console error, no failed request, axe-core),
the self-contained file (charts, not one network request) and the CSV (one row per message, no planted
personal data anywhere)."""
from __future__ import annotations

import csv
import io
import json
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from socle.apps.feedback.exports import annotations_csv
from socle.apps.feedback.models import FeedbackAnalysis, FeedbackAnnotation, FeedbackDataset, FeedbackMessage
from socle.apps.feedback.report import render_report, render_report_fragment
from socle.apps.feedback.service import AnnotatedMessage
from socle.apps.feedback.taxonomy import load_taxonomy
from tests.support.servers import ROOT, Server, start_server, stop
from tests.ui.conftest import ENV, Account, check_page, chromium, csrf_of, http_sign_in, new_account, sign_in

DATASET = ROOT / "datasets" / "feedback" / "messages.jsonl"
SAMPLE = ROOT / "datasets" / "feedback" / "export-experiences-sample.csv"
IN_BROWSER = 60  # messages analysed end to end: e5 reads about 8 a second on 2 cores
CHART_TITLES = {"Messages par mois et par thème", "Messages par thème", "Messages par sous-thème"}
CATALOGUE = "models:\n  - {id: multilingual-e5-small, type: embeddings, backends: [{type: e5}]}\n"
RAW = "Texte brut jamais montré"  # what a message holds before pseudonymisation, in the hand-made rows


# -- hand-made annotations ------------------------------------------------------------------------------

def _rows(taxonomy: Any, count: int = 24) -> list[AnnotatedMessage]:
    themes, subthemes = taxonomy.theme_keys, taxonomy.subtheme_keys
    rows = []
    for i in range(count):
        message = FeedbackMessage(id=i + 1, dataset_id=1, external_id=f"m{i}", text=f"{RAW} {i} Jean Dupont",
                                  written_on=f"2024-0{1 + i % 4}-{10 + i % 9}",
                                  service=["CAF <b>de Paris</b>", "=HYPERLINK(\"http://x\")", "France Travail"][i % 3],
                                  channel="web")
        ok = i != 5
        result = {"themes": [{"label": themes[i % len(themes)], "confidence": 0.82}],
                  "subthemes": [{"label": subthemes[i % len(subthemes)], "confidence": 0.7}],
                  "sentiment": ("negative", "neutral", "positive")[i % 3], "sentiment_confidence": 0.9,
                  "irritant": "<script>alert('irritant')</script> trop long" if i % 3 == 0 else None,
                  "urgent": i % 7 == 0, "urgency_reason": "+33 expulsion annoncée" if i % 7 == 0 else None,
                  "draft_reply": "@Bonjour, merci." if i == 0 else None}
        annotation = FeedbackAnnotation(analysis_id=1, message_id=i + 1, status="ok" if ok else "invalid",
                                        text=f"-Bonjour [NOM_1], message {i} <img src=x onerror=alert(1)>",
                                        result=result if ok else None, error=None if ok else "JSON invalide",
                                        personal_data=[{"kind": "name", "start": 0, "end": 4},
                                                       {"kind": "email", "start": 8, "end": 20},
                                                       {"kind": "name", "start": 30, "end": 34}])
        rows.append(AnnotatedMessage(message, annotation))
    return rows


def _analysis(**changes: Any) -> FeedbackAnalysis:
    values: dict[str, Any] = dict(
        id=1, dataset_id=1, engine="embedding", model="multilingual-e5-small", options={}, status="done", total=24,
        done=23, failed=1, tokens=4321, created_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        finished_at=datetime(2024, 5, 1, 8, 5, tzinfo=UTC),
        topics=[{"name": "Rendez-vous <préfecture>", "size": 6, "keywords": ["rendez", "titre"],
                 "examples": ["Pas de rendez-vous [NOM_1]"], "message_ids": [1, 2], "theme_fit": 0.31,
                 "outside_taxonomy": True}])
    values.update(changes)
    return FeedbackAnalysis(**values)


def test_the_report_states_its_engine_escapes_everything_and_shows_only_pseudonymised_text() -> None:
    taxonomy = load_taxonomy()
    dataset = FeedbackDataset(id=1, name="Avis <CAF> 2024", source="export.csv", messages=24)
    html = render_report(_analysis(), dataset, _rows(taxonomy), taxonomy)
    assert html.startswith("<!doctype html>") and "lang=\"fr\"" in html
    assert RAW not in html and "Jean Dupont" not in html  # never the message as imported
    assert "<script" not in html and "<img" not in html and "Avis &lt;CAF&gt; 2024" in html
    assert "multilingual-e5-small" in html and "classement par ressemblance" in html  # which engine produced it
    assert re.search(r"Annotations invalides</dt><dd>1<", html) and "4\u202f321" in html
    assert "du 10/01/2024 au" in html
    assert html.count("<svg") == 4 and html.count("<details") == 4
    titles = re.findall(r"<svg[^>]*>\s*<title[^>]*>([^<]+)</title>\s*<desc", html)
    assert CHART_TITLES <= set(titles) and any(t.startswith("Sentiment par service") for t in titles)
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "@import" not in html and "url(" not in html
    assert "Hors taxonomie" in html and "Rendez-vous &lt;préfecture&gt;" in html
    assert "Messages urgents à traiter" in html and "+33 expulsion annoncée" in html
    assert "@media print" in html
    fragment = str(render_report_fragment(_analysis(), dataset, _rows(taxonomy), taxonomy))
    assert "<h1" not in fragment and "<style>" in fragment and fragment.count("<svg") == 4


def test_an_unfinished_analysis_gives_a_partial_report() -> None:
    taxonomy = load_taxonomy()
    rows = _rows(taxonomy)[:10]
    html = render_report(_analysis(status="running", total=24, topics=None, finished_at=None),
                         FeedbackDataset(id=1, name="Partiel", source="", messages=24), rows, taxonomy)
    assert "Rapport partiel" in html and "10 messages" in html
    assert "sont cherchés une fois tous les messages analysés" in html
    empty = render_report(_analysis(status="running", topics=None), FeedbackDataset(id=1, name="Vide", source=""),
                          [], taxonomy)
    assert "<svg" not in empty and "Aucun message" in empty


def test_the_csv_opens_in_french_excel_and_starts_no_formula() -> None:
    taxonomy = load_taxonomy()
    rows = _rows(taxonomy)
    text = annotations_csv(rows, taxonomy)
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    header, body = table[0], table[1:]
    assert header[:5] == ["id", "date", "service", "canal", "texte"] and len(body) == len(rows)
    first = dict(zip(header, body[0], strict=True))
    assert first["texte"].startswith("'-Bonjour [NOM_1]")  # a leading "-" would start a formula
    assert first["urgent"] == "oui" and first["raison_urgence"] == "'+33 expulsion annoncée"
    assert first["brouillon_reponse"] == "'@Bonjour, merci." and first["donnees_personnelles"] == "name,email"
    assert first["statut"] == "ok" and first["sentiment"] == "négatif" and first["confiances_themes"] == "0,82"
    assert dict(zip(header, body[1], strict=True))["service"] == "'=HYPERLINK(\"http://x\")"
    invalid = dict(zip(header, body[5], strict=True))
    assert invalid["statut"] == "invalid" and invalid["erreur"] == "JSON invalide" and invalid["themes"] == ""
    assert RAW not in text
    for row in body:
        assert all(not cell or cell[0] not in "=+-@" for cell in row)


# -- end to end ---------------------------------------------------------------------------------------------

def _personal_values(pii: object) -> list[str]:
    """The planted values, whatever the shape (a list of strings or of {value|text}, a mapping of lists)."""
    if isinstance(pii, str):
        return [pii]
    if isinstance(pii, dict):
        if "value" in pii or "text" in pii:
            return _personal_values(pii.get("value", pii.get("text")))
        return [v for value in pii.values() for v in _personal_values(value)]
    if isinstance(pii, list):
        return [v for item in pii for v in _personal_values(item)]
    return []


def _messages() -> tuple[str, bytes, list[str], int]:
    """The file to import (name, bytes), the personal data planted in it, and how many messages it holds."""
    if DATASET.exists():
        lines = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
        with_pii = [m for m in lines if m.get("pii")]
        chosen = (with_pii[: IN_BROWSER // 2] + [m for m in lines if not m.get("pii")])[:IN_BROWSER]
        planted = [v for m in chosen for v in _personal_values(m.get("pii")) if len(v) >= 4]
        body = "\n".join(json.dumps({k: v for k, v in m.items() if k != "pii"}, ensure_ascii=False) for m in chosen)
        return "messages.jsonl", body.encode(), planted, len(chosen)
    messages = [
        ("2024-01-08", "CAF de la Gironde", "Cela fait trois mois que j'attends le versement de mon APL. Personne "
         "ne répond au téléphone. Je m'appelle Sophie Marchand, joignable au 06 12 34 56 78.",
         ["Sophie Marchand", "06 12 34 56 78"]),
        ("2024-01-15", "France Travail Bordeaux", "Conseillère très aimable et à l'écoute, merci pour votre aide.", []),
        ("2024-01-22", "Préfecture de la Gironde", "Impossible d'obtenir un rendez-vous pour renouveler mon titre de "
         "séjour qui expire la semaine prochaine, je vais perdre mon emploi. Écrivez-moi à k.benali@exemple.fr",
         ["k.benali@exemple.fr"]),
        ("2024-02-03", "CPAM de Paris", "Le site bugue à chaque fois que je veux télécharger mon attestation.", []),
        ("2024-02-10", "CAF de la Gironde", "On me demande encore les mêmes justificatifs que j'ai envoyés trois "
         "fois. Mon numéro de sécurité sociale est 2 84 05 33 063 042 17.", ["2 84 05 33 063 042 17"]),
        ("2024-02-19", "Impots.gouv", "Démarche en ligne simple et rapide, rien à redire.", []),
        ("2024-03-02", "France Travail Bordeaux", "Plus aucun revenu depuis deux mois, je n'ai plus rien à manger, "
         "aidez-moi. Jean-Pierre Lefèvre.", ["Jean-Pierre Lefèvre"]),
        ("2024-03-11", "CPAM de Paris", "L'agent au guichet a été méprisant et m'a parlé très mal.", []),
        ("2024-03-18", "Préfecture de la Gironde", "Les informations du site et celles du guichet se contredisent.", []),
        ("2024-03-25", "Impots.gouv", "Je ne comprends pas pourquoi mon montant a changé, aucune explication.", []),
    ]
    rows = ["id;date;service;texte"] + [f"{n};{d};{s};\"{t}\"" for n, (d, s, t, _) in enumerate(messages * 3, 1)]
    return "avis.csv", "\n".join(rows).encode(), [v for *_, pii in messages for v in pii], len(messages) * 3


@pytest.fixture(scope="module")
def feedback_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("avis-config") / "models.yaml"
    config.write_text(CATALOGUE)
    server = start_server(tmp_path_factory.mktemp("avis-server"), config=config,
                          extra_env={**ENV, "SOCLE_FEEDBACK_WORKERS": "1"})
    yield server
    stop(server.process)


@pytest.fixture(scope="module")
def feedback_browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def agent(feedback_server: Server) -> Account:
    with httpx.Client(base_url=feedback_server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {feedback_server.admin_key}"}) as admin_api:
        return new_account(feedback_server, admin_api)


def _watch(page: Page) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors, failed


def _chart_titles(page: Page) -> list[str]:
    return page.locator(".rapport-graphique svg[role=img] > title").evaluate_all("els => els.map(e => e.textContent)")


def test_a_real_analysis_gives_a_report_with_its_charts_and_a_clean_csv(
        feedback_server: Server, feedback_browser: Browser, agent: Account, tmp_path: Path) -> None:
    filename, content, planted, count = _messages()
    assert planted, "the test data plants personal data in some messages"
    context = feedback_browser.new_context(base_url=feedback_server.url, locale="fr-FR",
                                           viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, agent)

    # Import through the page's form (multipart, with its CSRF token).
    page.get_by_role("link", name="Avis usagers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Avis usagers")
    check_page(page, "avis")
    page.get_by_label("Nom du jeu de données").fill("Avis du trimestre")
    upload = tmp_path / filename
    upload.write_bytes(content)
    page.locator("#fichier-avis").set_input_files(upload)
    page.get_by_role("button", name="Importer").click()
    expect(page.locator("#resultat-import")).to_contain_text(f"{count} messages ajoutés")
    expect(page.get_by_role("heading", level=1)).to_have_text("Avis du trimestre")

    # The dry run, then the analysis itself, followed by the page's script until it ends.
    page.get_by_role("button", name="Estimer").click()
    expect(page.locator("#estimation")).to_contain_text(f"{count} messages")
    expect(page.locator("#estimation")).to_contain_text("jetons au plus")
    check_page(page, "avis-jeu")
    page.get_by_role("button", name="Lancer l'analyse").click()
    expect(page).to_have_url(re.compile(r"/ui/avis/\d+\?fait=analyse-lancee$"))
    expect(page.locator(".socle-analyse [data-role=etat]")).to_have_text("terminée", timeout=300_000)
    expect(page.locator(".socle-analyse [data-role=compte]")).to_contain_text(f"{count} / {count}")

    # The report in the UI: its charts, no console error, no failed request, no serious axe violation.
    errors, failed = _watch(page)
    page.get_by_role("link", name=re.compile("^Voir le rapport")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rapport : Avis du trimestre")
    charts = page.locator(".rapport-graphique svg[role=img]")
    expect(charts).to_have_count(4)
    titles = _chart_titles(page)
    assert CHART_TITLES <= set(titles) and any(t.startswith("Sentiment par service") for t in titles), titles
    expect(page.get_by_text("Moteur d'analyse")).to_be_visible()
    expect(page.locator(".rapport-entete .rapport-fiche")).to_contain_text("multilingual-e5-small")
    page.get_by_text("Les données du graphique (tableau)").first.click()
    expect(page.get_by_role("table", name="Messages par mois et par thème : les données")).to_be_visible()
    check_page(page, "avis-rapport")
    shown = page.content()
    assert not errors, errors
    assert not failed, failed

    # The self-contained file: the same charts, and not one request when it is opened.
    response = page.request.get(page.url + "/rapport.html")
    assert response.status == 200 and "attachment" in response.headers["content-disposition"]
    standalone = response.text()
    offline = context.new_page()
    requests: list[str] = []
    offline.on("request", lambda r: requests.append(r.url))
    offline.route("**/*", lambda route: (requests.append(route.request.url), route.abort()))
    offline_errors: list[str] = []
    offline.on("console", lambda m: offline_errors.append(m.text) if m.type == "error" else None)
    offline.set_content(standalone)
    expect(offline.locator("svg[role=img]")).to_have_count(4)
    assert CHART_TITLES <= set(_chart_titles(offline))
    expect(offline.get_by_role("heading", level=1)).to_have_text("Analyse des avis usagers : Avis du trimestre")
    check_page(offline, "avis-rapport-autonome")
    offline.emulate_media(media="print")
    offline.screenshot(path=ROOT / "tests" / "ui" / "artifacts" / "avis-rapport-impression.png", full_page=True)
    assert not requests, requests
    assert not offline_errors, offline_errors
    offline.close()

    # The CSV: Excel's format, one row per message, none of the planted personal data.
    response = page.request.get(page.url + "/annotations.csv")
    assert response.status == 200 and response.headers["content-type"].startswith("text/csv")
    raw = response.body()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert len(table) == count and {r["statut"] for r in table} <= {"ok", "invalid"}
    assert any(r["donnees_personnelles"] for r in table)

    # Someone else sees none of it (404, as if it did not exist), and a form without its token is refused.
    report_path = urllib.parse.urlsplit(page.url).path
    dataset_path = page.locator(".fr-breadcrumb__link").nth(1).get_attribute("href") or ""
    analysis_id = report_path.rsplit("/", 1)[1]
    token = csrf_of(page)
    again = page.request.post(f"/ui/avis/analyses/{analysis_id}/reprendre", form={"csrf_token": token})
    assert again.status == 409  # a finished analysis has nothing to resume
    stopped = page.request.post(f"/ui/avis/analyses/{analysis_id}/arreter", form={"csrf_token": token})
    assert stopped.ok and "terminée" in stopped.text()  # stopping a finished one changes nothing
    context.close()
    with httpx.Client(base_url=feedback_server.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {feedback_server.admin_key}"}) as admin_api:
        other = new_account(feedback_server, admin_api)
    with httpx.Client(base_url=feedback_server.url, cookies={"socle_session": http_sign_in(feedback_server, other)},
                      timeout=60) as http:
        for path in (dataset_path, report_path, report_path + "/rapport.html", report_path + "/annotations.csv",
                     f"/ui/api/avis/analyses/{analysis_id}"):
            assert http.get(path).status_code == 404, path
        assert "Avis du trimestre" not in http.get("/ui/avis").text
        refused = http.post("/ui/avis/importer", data={"name": "x"}, files={"file": ("a.csv", b"texte\nbonjour")})
        assert refused.status_code == 403
        theirs = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/ui/avis").text)
        assert theirs is not None
        for action in ("arreter", "reprendre"):
            answer = http.post(f"/ui/avis/analyses/{analysis_id}/{action}", data={"csrf_token": theirs.group(1)})
            assert answer.status_code == 404, action

    leaked = [value for value in planted if value in text or value in standalone or value in shown]
    assert not leaked, f"personal data in the report or the CSV: {leaked}"
