"""``/v1/panorama`` on a running server: every user reads the catalogue and searches it by need; editors
change it (a form's JSON, a file); agents declare needs (theirs alone); a call for projects runs from the
submission to the jury's ranking and a selected product's indicators. Refusals use the OpenAI error
envelope: 403 for a missing permission, 404 for what the caller may not see."""
from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator

import httpx
import pytest
from openpyxl import Workbook

from socle.apps.panorama.vocabulary import FAMILIES, JURY_CRITERIA
from tests.support.servers import Server


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300)


def _person(server: Server, admin: httpx.Client, *permissions: str) -> httpx.Client:
    """A new user with its key: the built-in ``user`` role, or a role holding these permissions."""
    role = "user"
    if permissions:
        role = admin.post("/roles", json={"name": f"panorama-{secrets.token_hex(3)}",
                                          "permissions": ["panorama:read", *permissions]}).json()["name"]
    user = admin.post("/users", json={"email": f"agent-{secrets.token_hex(4)}@ministere.gouv.fr", "role": role})
    assert user.status_code == 201, user.text
    key = admin.post("/keys", json={"user_id": user.json()["id"]}).json()["key"]
    return _client(server, key)


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    with _client(server, server.admin_key) as http:
        yield http


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    return response.json()["error"]  # type: ignore[no-any-return]


def test_every_user_browses_and_searches_the_catalogue(server: Server, admin: httpx.Client) -> None:
    with _person(server, admin) as agent:
        listing = agent.get("/panorama/solutions").json()
        assert listing["object"] == "list" and listing["total"] >= 42
        assert {s["family"] for s in listing["data"]} == {f.code for f in FAMILIES}
        assert {s["app"] for s in listing["data"] if s["app"]} == {"feedback", "panorama"}
        families = agent.get("/panorama/families").json()
        assert [f["code"] for f in families["data"]] == [f.code for f in FAMILIES]
        assert families["jury_criteria"] == JURY_CRITERIA

        filtered = agent.get("/panorama/solutions", params={"family": "traduction", "hosting": "sur_site"}).json()
        assert filtered["data"] and all(s["family"] == "traduction" and s["hosting"] == "sur_site"
                                        for s in filtered["data"])
        assert filtered["facets"]["hosting"]["sur_site"] == filtered["total"]

        one = agent.get("/panorama/solutions/transcrit").json()
        assert one["name"] == "Transcrit" and one["illustrative"] and one["criterion_compliance"]
        assert "inexistante" in str(_error(agent.get("/panorama/solutions/inexistante"), 404)["message"])

        found = agent.post("/panorama/search", json={"need": "je cherche un outil pour résumer des comptes rendus",
                                                     "k": 3}).json()["data"]
        assert len(found) == 3 and found[0]["family"] == "redaction" and found[0]["reason"]
        assert agent.post("/panorama/search", json={"need": ""}).status_code in (400, 422)
        assert agent.post("/panorama/search", json={"need": "x", "families": ["inconnue"]}).status_code in (400, 422)

        # Reading is not editing.
        body = {"name": "Refusée", "family": "code", "editor": "E", "description": "D"}
        assert "panorama:edit" in str(_error(agent.post("/panorama/solutions", json=body), 403)["message"])


def test_editors_change_the_catalogue(server: Server, admin: httpx.Client) -> None:
    with _person(server, admin, "panorama:edit") as editor, _person(server, admin) as agent:
        body = {"name": "Tri Postal Test", "family": "Relation usager et agents conversationnels",
                "editor": "Éditeur test", "description": "Trie le courrier papier entrant des usagers.",
                "maturity": "pilote", "hosting": "secnumcloud", "open_source": False, "keywords": ["courrier"]}
        created = editor.post("/panorama/solutions", json=body)
        assert created.status_code == 201, created.text
        assert (created.json()["slug"], created.json()["family"]) == ("tri-postal-test", "relation_usager")
        assert editor.post("/panorama/solutions", json=body).status_code == 409
        assert editor.post("/panorama/solutions", json={**body, "family": "astrologie"}).status_code in (400, 422)
        updated = editor.put("/panorama/solutions/tri-postal-test", json={**body, "maturity": "production"})
        assert updated.json()["maturity"] == "production"
        assert agent.get("/panorama/solutions/tri-postal-test").json()["maturity"] == "production"

        workbook = Workbook()
        sheet = workbook.active
        sheet.append(["Nom", "Famille", "Éditeur", "Description", "Maturité", "Hébergement", "Logiciel libre",
                      "Mots-clés"])
        sheet.append(["Cartes Test", "Données et prédiction", "Éditeur B", "Cartographie des risques.",
                      "En production", "Hébergé dans l'Union européenne", "oui", "carte; risques"])
        excel = io.BytesIO()
        workbook.save(excel)
        imported = editor.post("/panorama/solutions/import", files={"file": ("catalogue.xlsx", excel.getvalue())})
        assert imported.json() == {"object": "panorama.import", "created": 1, "updated": 0}, imported.text
        cartes = agent.get("/panorama/solutions/cartes-test").json()
        assert (cartes["family"], cartes["maturity"], cartes["open_source"], cartes["keywords"]) == (
            "donnees", "production", True, ["carte", "risques"])
        refused = editor.post("/panorama/solutions/import", files={"file": ("catalogue.csv", b"name;family\nX;ovni\n")})
        assert "solution 1" in str(_error(refused, 400)["message"])
        assert agent.post("/panorama/solutions/import", files={"file": ("c.csv", b"a")}).status_code == 403

        exported = agent.get("/panorama/solutions/export", params={"format": "csv"})
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text), delimiter=";"))
        assert {"tri-postal-test", "cartes-test"} <= {r["slug"] for r in rows}
        assert editor.delete("/panorama/solutions/cartes-test").status_code == 204
        assert agent.get("/panorama/solutions/cartes-test").status_code == 404
        assert editor.delete("/panorama/solutions/socle-panorama").status_code == 400  # installed apps stay


def test_needs_are_their_authors_and_the_editors(server: Server, admin: httpx.Client) -> None:
    with _person(server, admin) as agent, _person(server, admin) as other, \
            _person(server, admin, "panorama:edit") as editor:
        need = {"administration": "Tribunal judiciaire de Lille", "title": "Transcrire les audiences",
                "irritant": "Les greffiers retranscrivent à la main les enregistrements des audiences.",
                "sufferers": "Les greffiers", "volume": "30 audiences par semaine",
                "data_available": "Les enregistrements audio", "workaround": "Saisie manuelle"}
        declared = agent.post("/panorama/needs", json=need)
        assert declared.status_code == 201, declared.text
        body = declared.json()
        assert body["family"] == "parole" and len(body["matches"]) == 3 and body["matches"][0]["reason"]
        assert agent.post("/panorama/needs", json={**need, "irritant": ""}).status_code in (400, 422)

        assert [n["id"] for n in agent.get("/panorama/needs").json()["data"]] == [body["id"]]
        assert other.get("/panorama/needs").json()["data"] == []
        assert _error(other.get(f"/panorama/needs/{body['id']}"), 404)["message"]
        assert agent.get("/panorama/needs", params={"scope": "all"}).status_code == 403
        assert agent.get("/panorama/needs/0").status_code in (400, 422)

        everything = editor.get("/panorama/needs", params={"scope": "all"}).json()
        assert body["id"] in [n["id"] for n in everything["data"]]
        assert everything["by_administration"]["Tribunal judiciaire de Lille"] >= 1
        assert everything["by_administration_and_family"]["Tribunal judiciaire de Lille"]["parole"] >= 1
        assert editor.get("/panorama/needs/groups").json()["object"] == "list"
        exported = editor.get("/panorama/needs/export")
        assert exported.headers["content-type"].startswith("text/csv") and "Transcrire les audiences" in exported.text
        assert agent.get("/panorama/needs/export").status_code == 403


def test_a_call_for_projects(server: Server, admin: httpx.Client) -> None:
    with _person(server, admin, "panorama:edit") as editor, _person(server, admin) as team, \
            _person(server, admin, "panorama:jury") as juror, _person(server, admin) as stranger:
        assert team.post("/panorama/calls", json={"title": "Appel"}).status_code == 403
        call = editor.post("/panorama/calls", json={"title": "Appel IA 2027", "closes_on": "2027-03-31"}).json()
        assert call["status"] == "open" and call["closes_on"] == "2027-03-31"
        project = team.post(f"/panorama/calls/{call['id']}/projects", json={
            "administration": "DGFiP", "title": "Lecture des avis d'imposition", "summary": "Un projet.",
            "team": "Deux agents", "data": "Des archives"}).json()
        assert project["status"] == "submitted"
        assert stranger.get(f"/panorama/projects/{project['id']}").status_code == 404
        assert stranger.get(f"/panorama/calls/{call['id']}/projects").json()["data"] == []
        assert team.get(f"/panorama/calls/{call['id']}/ranking").status_code == 403

        marks = dict.fromkeys(JURY_CRITERIA, 4) | {"donnees": 2}
        assert team.put(f"/panorama/projects/{project['id']}/score", json={"marks": marks}).status_code == 403
        assert juror.put(f"/panorama/projects/{project['id']}/score",
                         json={"marks": {"impact": 4}}).status_code in (400, 422)
        scored = juror.put(f"/panorama/projects/{project['id']}/score", json={"marks": marks, "comment": "Solide."})
        assert scored.json()["total"] == 26, scored.text
        ranking = editor.get(f"/panorama/calls/{call['id']}/ranking").json()["data"]
        assert ranking[0]["rank"] == 1 and ranking[0]["mean_total"] == 26 and ranking[0]["scores"][0]["comment"]

        indicator = {"name": "Avis traités", "unit": "avis"}
        refused = team.put(f"/panorama/projects/{project['id']}/indicators/quantitative", json=indicator)
        assert _error(refused, 409)["code"] == "not_selected"
        assert editor.post(f"/panorama/projects/{project['id']}/decision",
                           json={"status": "selected"}).json()["status"] == "selected"
        assert team.put(f"/panorama/projects/{project['id']}/indicators/quantitative", json=indicator).status_code == 200
        assert team.put(f"/panorama/projects/{project['id']}/indicators/qualitative",
                        json={"name": "Ressenti des agents"}).status_code == 200
        for day, value in (("2027-06-30", 1200), ("2027-12-31", 5400)):
            assert team.post(f"/panorama/projects/{project['id']}/indicators/quantitative/measures",
                             json={"measured_on": day, "value": value}).status_code == 201
        assert team.post(f"/panorama/projects/{project['id']}/indicators/qualitative/measures",
                         json={"measured_on": "2027-12-31", "note": "Moins de ressaisie."}).status_code == 201
        shown = {i["kind"]: i for i in team.get(f"/panorama/projects/{project['id']}/indicators").json()["data"]}
        assert [m["value"] for m in shown["quantitative"]["measures"]] == [1200, 5400]
        assert shown["qualitative"]["measures"][0]["note"] == "Moins de ressaisie."

        assert editor.patch(f"/panorama/calls/{call['id']}", json={"status": "closed"}).json()["status"] == "closed"
        late = team.post(f"/panorama/calls/{call['id']}/projects",
                         json={"administration": "A", "title": "Tard", "summary": "Trop tard."})
        assert _error(late, 409)["code"] == "call_closed"
