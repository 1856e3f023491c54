"""The feedback app end to end through the API of a really running server: the repository's 240+ French
messages are imported, analysed by the embedding engine with the embedded model, every message gets a
schema-valid annotation, every planted identifier is gone from what is shown and exported, and no one
else sees any of it. The LLM engine's retries, budgets and resumption run against a mock backend."""
from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest

from socle.apps.feedback.report import ENGINES_FR
from socle.apps.feedback.schema import AnnotationValidator
from socle.apps.feedback.taxonomy import load_taxonomy
from tests.apps.feedback.support import MESSAGES, import_file, jsonl, messages, planted, wait_analysis
from tests.support.servers import Server


@pytest.fixture
def http(sqlite_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sqlite_server.base_url, timeout=120,
                      headers={"Authorization": f"Bearer {sqlite_server.admin_key}"}) as client:
        yield client


@pytest.fixture
def any_http(any_server: Server) -> Iterator[httpx.Client]:
    """On SQLite and on PostgreSQL."""
    with httpx.Client(base_url=any_server.base_url, timeout=120,
                      headers={"Authorization": f"Bearer {any_server.admin_key}"}) as client:
        yield client


def _other_user(http: httpx.Client) -> httpx.Client:
    user = http.post("/users", json={"email": f"fb-{secrets.token_hex(4)}@x.gouv.fr"}).json()
    key = http.post("/keys", json={"user_id": user["id"]}).json()["key"]
    return httpx.Client(base_url=str(http.base_url), headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_embedded_analysis_end_to_end(http: httpx.Client) -> None:
    corpus = messages()
    assert len(corpus) >= 200
    dataset = import_file(http, f"avis-{secrets.token_hex(3)}", MESSAGES)
    assert (dataset["messages"], dataset["labelled"], dataset["source_format"]) == (len(corpus), len(corpus), "jsonl")

    estimate = http.post("/feedback/analyses", json={"dataset": dataset["id"], "dry_run": True})
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["messages"] == len(corpus) and estimate.json()["tokens"] > len(corpus)
    assert http.get("/feedback/analyses", params={"dataset": dataset["id"]}).json()["data"] == []  # nothing ran

    started = http.post("/feedback/analyses", json={"dataset": dataset["id"], "engine": "embedding"})
    assert started.status_code == 202, started.text
    analysis = wait_analysis(http, started.json()["id"])
    assert (analysis["status"], analysis["done"], analysis["failed"]) == ("done", len(corpus), 0), analysis
    assert analysis["tokens"] > 0 and analysis["model"] == "multilingual-e5-small"
    assert analysis["topics"], "emerging topics are found"

    rows = http.get(f"/feedback/analyses/{analysis['id']}/annotations").json()["data"]
    assert [r["id"] for r in rows] == [m["id"] for m in corpus]
    validator = AnnotationValidator(load_taxonomy())
    for row in rows:
        assert row["status"] == "ok" and validator.errors(row["annotation"]) == [], row
    by_id = {m["id"]: m for m in corpus}
    with_pii = [r for r in rows if by_id[r["id"]]["pii"]]
    assert len(with_pii) >= 40
    for row in with_pii:
        for value in planted(by_id[row["id"]]):
            assert value not in row["text"], (value, row["text"])
        assert row["personal_data"], row

    exported = http.get(f"/feedback/analyses/{analysis['id']}/annotations", params={"format": "csv"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig")), delimiter=";"))
    assert len(table) == len(corpus)
    for row in table:
        for value in planted(by_id[row["id"]]):
            assert value not in ";".join(row.values()), (value, row)
    for value in (item["value"] for m in corpus for item in m["pii"]):
        assert value not in exported.text, value

    report = http.get(f"/feedback/analyses/{analysis['id']}/report")
    assert report.status_code == 200 and "<svg" in report.text and ENGINES_FR["embedding"] in report.text
    scores = http.get(f"/feedback/analyses/{analysis['id']}/evaluation").json()["data"]
    kinds = {(s["kind"], s["label"]) for s in scores}
    assert {("theme", "macro"), ("subtheme", "macro"), ("sentiment", "macro"), ("urgent", "urgent")} <= kinds

    with _other_user(http) as stranger:  # another user sees none of it
        assert stranger.get("/feedback/datasets").json()["data"] == []
        assert stranger.get("/feedback/analyses").json()["data"] == []
        for path in (f"/feedback/datasets/{dataset['id']}", f"/feedback/analyses/{analysis['id']}",
                     f"/feedback/analyses/{analysis['id']}/annotations", f"/feedback/analyses/{analysis['id']}/report",
                     f"/feedback/analyses/{analysis['id']}/evaluation"):
            assert stranger.get(path).status_code == 404, path
        refused = stranger.post("/feedback/analyses", json={"dataset": dataset["id"]})
        assert refused.status_code == 404 and refused.json()["error"]["param"] == "dataset"
        assert stranger.delete(f"/feedback/datasets/{dataset['id']}").status_code == 404
    assert http.get(f"/feedback/datasets/{dataset['id']}").status_code == 200


SMALL = [{"id": f"m{i}", "text": text, "date": "2025-05-0" + str(i + 1), "service": "CAF"} for i, text in enumerate([
    "Trois mois d'attente pour ma prime d'activité, personne ne répond. Contactez-moi au 06 12 34 56 78.",
    "Accueil très aimable à l'agence de Lyon, merci à Mme Bernadette Roux.",
    "Le formulaire en ligne plante au moment de joindre mon avis d'imposition.",
])]


def test_llm_engine_retries_an_invalid_output_then_marks_what_stays_invalid(any_http: httpx.Client) -> None:
    http = any_http
    dataset = import_file(http, f"petit-{secrets.token_hex(3)}", MESSAGES.with_name("small.jsonl"),
                          content=jsonl(SMALL))
    flaky = wait_analysis(http, http.post("/feedback/analyses", json={
        "dataset": dataset["id"], "engine": "llm", "model": "remote-flaky"}).json()["id"])
    assert (flaky["status"], flaky["done"], flaky["failed"]) == ("done", 3, 0)
    garbage = wait_analysis(http, http.post("/feedback/analyses", json={
        "dataset": dataset["id"], "engine": "llm", "model": "remote-garbage"}).json()["id"])
    assert (garbage["status"], garbage["done"], garbage["failed"]) == ("done", 0, 3)
    rows = http.get(f"/feedback/analyses/{garbage['id']}/annotations").json()["data"]
    assert all(r["status"] == "invalid" and r["annotation"] is None and "JSON" in r["error"] for r in rows)
    assert "06 12 34 56 78" not in str(rows) and "Roux" not in str(rows)


def test_a_reimported_datasets_analysis_runs(any_http: httpx.Client) -> None:
    """The newest dataset deleted and imported again: it and its analysis get new ids, and the analysis runs
    (its job is never mistaken for the deleted analysis's finished one)."""
    http, name = any_http, f"réimport-{secrets.token_hex(3)}"
    analyse = {"engine": "llm", "model": "remote-chat"}
    first = import_file(http, name, MESSAGES.with_name("small.jsonl"), content=jsonl(SMALL))
    done = wait_analysis(http, http.post("/feedback/analyses",
                                         json={"dataset": first["id"], **analyse}).json()["id"])
    assert done["status"] == "done", done
    assert http.delete(f"/feedback/datasets/{first['id']}").status_code == 204

    again = import_file(http, name, MESSAGES.with_name("small.jsonl"), content=jsonl(SMALL))
    assert again["id"] > first["id"]
    started = http.post("/feedback/analyses", json={"dataset": again["id"], **analyse}).json()
    assert started["id"] > done["id"]
    rerun = wait_analysis(http, started["id"], timeout_s=120)
    assert (rerun["status"], rerun["done"]) == ("done", 3), rerun


def test_a_token_budget_stops_an_analysis_that_resumes_where_it_stopped(any_http: httpx.Client) -> None:
    http = any_http
    rows = [{"id": f"b{i}", "text": f"Message numéro {i} : le site ne marche pas depuis {i} jours."} for i in range(40)]
    dataset = import_file(http, f"budget-{secrets.token_hex(3)}", MESSAGES.with_name("budget.jsonl"),
                          content=jsonl(rows))
    estimate = http.post("/feedback/analyses", json={"dataset": dataset["id"], "engine": "llm",
                                                     "model": "remote-chat", "dry_run": True}).json()
    per_batch = estimate["tokens"] // 40 * 16
    stopped = wait_analysis(http, http.post("/feedback/analyses", json={
        "dataset": dataset["id"], "engine": "llm", "model": "remote-chat", "token_budget": per_batch + 10}).json()["id"])
    assert stopped["status"] == "stopped" and "Budget" in stopped["error"], stopped
    assert 0 < stopped["done"] < 40 and stopped["tokens"] <= per_batch + 10
    first = {r["message_id"]: r for r in http.get(f"/feedback/analyses/{stopped['id']}/annotations").json()["data"]}
    resumed = http.post(f"/feedback/analyses/{stopped['id']}/resume", json={"token_budget": 10_000_000})
    assert resumed.status_code == 202, resumed.text
    done = wait_analysis(http, stopped["id"])
    assert (done["status"], done["done"], done["failed"]) == ("done", 40, 0)
    after = {r["message_id"]: r for r in http.get(f"/feedback/analyses/{stopped['id']}/annotations").json()["data"]}
    assert len(after) == 40 and all(after[m] == first[m] for m in first)  # the first batch was not redone
    assert http.post(f"/feedback/analyses/{stopped['id']}/resume", json={}).status_code == 409


def test_bad_requests_get_clear_errors(http: httpx.Client) -> None:
    bad_file = http.post("/feedback/datasets", data={"name": "x"}, files={"file": ("a.pdf", b"%PDF-1.4")})
    assert bad_file.status_code == 400 and bad_file.json()["error"]["code"] == "unsupported_file_type"
    bad_mapping = http.post("/feedback/datasets", data={"name": "x", "mapping": "[1]"},
                            files={"file": ("a.csv", b"texte\nbonjour\n")})
    assert bad_mapping.status_code == 400 and bad_mapping.json()["error"]["param"] == "mapping"
    dataset = import_file(http, f"erreurs-{secrets.token_hex(3)}", MESSAGES.with_name("e.csv"),
                          content=b"texte\nbonjour\n")
    for body, code, param in [
            ({"dataset": dataset["id"], "engine": "llm", "model": "multilingual-e5-small"}, 400, "model"),
            ({"dataset": dataset["id"], "engine": "embedding", "model": "remote-chat"}, 400, "model"),
            ({"dataset": dataset["id"], "engine": "llm", "model": "nope"}, 404, "model"),
            ({"dataset": dataset["id"], "engine": "rules"}, 422, "engine"),
            ({"dataset": dataset["id"], "token_budget": 0}, 422, "token_budget")]:
        answer = http.post("/feedback/analyses", json=body)
        assert answer.status_code == code, (body, answer.text)
        assert answer.json()["error"]["param"] == param, answer.json()
    assert http.get("/feedback/analyses", params={"dataset": dataset["id"]}).json()["data"] == []


def test_draft_replies_are_written_by_the_chosen_chat_model(http: httpx.Client) -> None:
    dataset = import_file(http, f"brouillons-{secrets.token_hex(3)}", MESSAGES.with_name("r.jsonl"),
                          content=jsonl(SMALL))
    started = http.post("/feedback/analyses", json={"dataset": dataset["id"], "engine": "embedding",
                                                    "replies": True, "reply_model": "remote-chat"})
    assert started.status_code == 202, started.text
    done = wait_analysis(http, started.json()["id"])
    assert (done["status"], done["done"]) == ("done", 3)
    rows = http.get(f"/feedback/analyses/{done['id']}/annotations").json()["data"]
    validator = AnnotationValidator(load_taxonomy())
    for row in rows:  # the mock's answer, kept as a draft beside the annotation
        assert row["annotation"]["draft_reply"] == "Bonjour, ceci est une réponse simulée."
        assert validator.errors(row["annotation"]) == []


def test_the_owners_quota_stops_an_analysis_without_losing_what_is_done(http: httpx.Client) -> None:
    user = http.post("/users", json={"email": f"quota-{secrets.token_hex(4)}@x.gouv.fr"}).json()
    key = http.post("/keys", json={"user_id": user["id"]}).json()["key"]
    quota = http.post("/quotas", json={"scope": "user", "subject": str(user["id"]), "model": "remote-chat",
                                       "budget_tokens": 3000, "budget_period": "day"})
    assert quota.status_code == 201, quota.text
    rows = [{"id": f"q{i}", "text": f"Avis {i} : personne ne répond au téléphone."} for i in range(40)]
    with httpx.Client(base_url=str(http.base_url), headers={"Authorization": f"Bearer {key}"}, timeout=60) as own:
        dataset = import_file(own, "quota", MESSAGES.with_name("q.jsonl"), content=jsonl(rows))
        stopped = wait_analysis(own, own.post("/feedback/analyses", json={
            "dataset": dataset["id"], "engine": "llm", "model": "remote-chat"}).json()["id"])
        assert stopped["status"] == "stopped" and stopped["error"].startswith("Quota atteint"), stopped
        assert 0 < stopped["done"] < 40 and stopped["failed"] == 0
        kept = own.get(f"/feedback/analyses/{stopped['id']}/annotations").json()["data"]
        assert len(kept) == stopped["done"]  # what was annotated before the quota ran out stays
    deadline = time.monotonic() + 30  # the analysis' calls are the user's, in the usage records (written in batches)
    while True:
        calls = http.get("/usage", params={"user_id": user["id"], "model": "remote-chat"}).json()["data"]
        if sum(c["status"] == "ok" for c in calls) == stopped["done"]:
            break
        assert time.monotonic() < deadline, calls
        time.sleep(0.3)
