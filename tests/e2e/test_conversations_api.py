"""``/v1/conversations`` on a real server, on both stores, through the official ``openai`` SDK's own HTTP
client (so its usual exceptions prove the error envelope) and raw server-sent events: a conversation's life,
turns with the history kept by the platform, answers grounded in documents with their sources, and each
conversation its owner's alone."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.support.documents import upload, wait_ingested
from tests.support.servers import Server

ANSWER = "tok0 tok1 tok2 tok3 tok4 "  # what the mock backend streams for remote-chat


@pytest.fixture
def people(any_server: Server, admin: httpx.Client) -> Iterator[tuple[openai.OpenAI, openai.OpenAI]]:
    """Two users' clients, each with an API key of their own."""
    clients = []
    for _ in range(2):
        user = admin.post("/users", json={"email": f"conv-{secrets.token_hex(4)}@ministere.gouv.fr"}).json()
        key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
        clients.append(openai.OpenAI(base_url=any_server.base_url, api_key=key, max_retries=0, timeout=60))
    yield clients[0], clients[1]
    for client in clients:
        client.close()


def _get(client: openai.OpenAI, path: str) -> Any:
    return client.get(path, cast_to=object)


def _post(client: openai.OpenAI, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, body=body, cast_to=object)


def _events(client: openai.OpenAI, path: str, body: dict[str, Any]) -> list[Any]:
    """Every event of a streamed turn, ``"[DONE]"`` included, with the key of ``client``."""
    headers = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.stream("POST", f"{client.base_url}{path.lstrip('/')}", json={**body, "stream": True},
                      headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line[6:] if line == "data: [DONE]" else orjson.loads(line[6:]) for line in lines]


def test_a_conversation_is_created_continued_renamed_and_deleted(people: tuple[openai.OpenAI, openai.OpenAI]) -> None:
    alice, _ = people
    created = _post(alice, "/conversations", {"title": "Passeport", "model": "remote-chat"})
    assert (created["object"], created["title"], created["model"], created["collections"]) == (
        "conversation", "Passeport", "remote-chat", [])
    path = f"/conversations/{created['id']}"

    answer = _post(alice, f"{path}/messages", {"content": "Quel est le délai ?"})
    assert (answer["object"], answer["role"], answer["content"]) == ("conversation.message", "assistant", ANSWER)
    assert (answer["conversation_id"], answer["model"], answer["sources"]) == (created["id"], "remote-chat", None)
    second = _post(alice, f"{path}/messages", {"content": "Et pour un mineur ?", "model": "remote-chat"})

    detail = _get(alice, path)
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [
        ("user", "Quel est le délai ?"), ("assistant", ANSWER), ("user", "Et pour un mineur ?"), ("assistant", ANSWER)]
    assert [m["id"] for m in detail["messages"]][1::2] == [answer["id"], second["id"]]
    assert all(m["object"] == "conversation.message" for m in detail["messages"])

    renamed = alice.patch(path, body={"title": "  Passeport de Léa  "}, cast_to=object)
    assert renamed["title"] == "Passeport de Léa" and _get(alice, path)["title"] == "Passeport de Léa"
    listed = _get(alice, "/conversations")
    assert listed["object"] == "list" and [c["id"] for c in listed["data"]] == [created["id"]]

    assert alice.delete(path, cast_to=httpx.Response).status_code == 204
    with pytest.raises(openai.NotFoundError):
        _get(alice, path)
    assert _get(alice, "/conversations")["data"] == []


def test_another_users_conversation_answers_404_to_everything(people: tuple[openai.OpenAI, openai.OpenAI]) -> None:
    alice, bob = people
    mine = _post(alice, "/conversations", {"title": "Privé", "model": "remote-chat"})
    _post(alice, f"/conversations/{mine['id']}/messages", {"content": "Mon dossier"})
    path = f"/conversations/{mine['id']}"
    attempts = [lambda: _get(bob, path), lambda: bob.patch(path, body={"title": "volé"}, cast_to=object),
                lambda: bob.delete(path, cast_to=object),
                lambda: _post(bob, f"{path}/messages", {"content": "Que disait-elle ?"})]
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError) as refused:
            attempt()
        assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert _get(bob, "/conversations")["data"] == []
    with pytest.raises(openai.NotFoundError):  # streamed or not
        bob.post(f"{path}/messages", body={"content": "Et ainsi ?", "stream": True}, cast_to=object)
    assert [m["content"] for m in _get(alice, path)["messages"]] == ["Mon dossier", ANSWER]
    assert _get(alice, path)["title"] == "Privé"


def test_an_answer_streams_as_events_and_is_kept(people: tuple[openai.OpenAI, openai.OpenAI]) -> None:
    alice, _ = people
    created = _post(alice, "/conversations", {"title": "Flux", "model": "remote-chat"})
    events = _events(alice, f"/conversations/{created['id']}/messages", {"content": "Bonjour"})
    question, *deltas, answer, done = events
    assert (question["object"], question["role"], question["content"]) == ("conversation.message", "user", "Bonjour")
    assert {d["object"] for d in deltas} == {"conversation.message.delta"}
    assert {d["conversation_id"] for d in deltas} == {created["id"]}
    assert "".join(d["delta"]["content"] for d in deltas) == ANSWER
    assert (answer["object"], answer["role"], answer["content"]) == ("conversation.message", "assistant", ANSWER)
    assert done == "[DONE]"
    kept = _get(alice, f"/conversations/{created['id']}")["messages"]
    assert [m["id"] for m in kept] == [question["id"], answer["id"]]


def test_an_answer_grounded_in_my_documents_keeps_its_sources(people: tuple[openai.OpenAI, openai.OpenAI],
                                                               any_server: Server, tmp_path: Path) -> None:
    alice, bob = people
    headers = {"Authorization": f"Bearer {alice.api_key}"}
    with httpx.Client(base_url=any_server.base_url, headers=headers, timeout=60) as http:
        collection = http.post("/collections", json={"name": "Démarches"}).json()
        document = tmp_path / "passeport.md"
        document.write_text("# Passeport\n\nLe délai de fabrication du passeport est d'environ trois semaines.\n",
                            encoding="utf-8")
        uploaded = upload(http, collection["id"], document)
        assert uploaded.status_code == 201, uploaded.text
        assert wait_ingested(http, [uploaded.json()["id"]], embedded=False)[uploaded.json()["id"]]["status"] == "ready"

    created = _post(alice, "/conversations", {"title": "Passeport", "model": "remote-chat"})
    path = f"/conversations/{created['id']}/messages"
    answer = _post(alice, path, {"content": "Quel est le délai de fabrication du passeport ?",
                                 "collections": [collection["id"]]})
    assert answer["content"] == ANSWER
    source = answer["sources"][0]
    assert (source["number"], source["document"], source["collection_id"]) == (1, "passeport.md", collection["id"])
    assert "trois semaines" in source["excerpt"]
    assert _get(alice, f"/conversations/{created['id']}")["collections"] == [collection["id"]]

    question, sources, *deltas, streamed, done = _events(
        alice, path, {"content": "Le délai du passeport ?", "collections": [collection["id"]]})
    assert question["role"] == "user" and done == "[DONE]"
    assert sources["object"] == "conversation.sources" and sources["data"][0]["document"] == "passeport.md"
    assert streamed["sources"] == sources["data"] and "".join(d["delta"]["content"] for d in deltas) == ANSWER

    theirs = _post(bob, "/conversations", {"title": "Curieux", "model": "remote-chat"})
    with pytest.raises(openai.NotFoundError):  # alice's private collection is not bob's to search
        _post(bob, f"/conversations/{theirs['id']}/messages", {"content": "Le délai du passeport ?",
                                                                "collections": [collection["id"]]})
    assert _get(bob, f"/conversations/{theirs['id']}")["messages"] == []


def test_failures_use_the_error_envelope_and_keep_what_was_written(people: tuple[openai.OpenAI, openai.OpenAI],
                                                                   any_server: Server) -> None:
    alice, _ = people
    with pytest.raises(openai.NotFoundError) as unknown:
        _post(alice, "/conversations", {"title": "Essai", "model": "inconnu"})
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as not_chat:
        _post(alice, "/conversations", {"title": "Essai", "model": "remote-embed"})
    assert not_chat.value.code == "model_not_supported"
    with pytest.raises(openai.UnprocessableEntityError):
        _post(alice, "/conversations", {"title": "Essai", "model": "remote-chat", "extra": 1})
    with pytest.raises(openai.UnprocessableEntityError):
        _get(alice, "/conversations/0")
    with pytest.raises(openai.NotFoundError):
        _get(alice, f"/conversations/{2**63 - 1}")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=any_server.base_url, api_key="sk-faux", max_retries=0).get("/conversations",
                                                                                           cast_to=object)

    created = _post(alice, "/conversations", {"title": "Pannes", "model": "remote-chat"})
    path = f"/conversations/{created['id']}"
    with pytest.raises(openai.BadRequestError) as empty:
        _post(alice, f"{path}/messages", {"content": "   "})
    assert empty.value.code == "empty_message"
    with pytest.raises(openai.BadRequestError):  # the backend refuses before its first token: nothing kept
        _post(alice, f"{path}/messages", {"content": "Trop long", "model": "remote-reject"})
    assert _get(alice, path)["messages"] == []

    _, *deltas, last = _events(alice, f"{path}/messages", {"content": "Et là ?", "model": "remote-midfail"})
    assert last["error"]["type"] == "api_error"  # the stream ends with an error, not [DONE]
    written = "".join(d["delta"]["content"] for d in deltas)
    assert written and ANSWER.startswith(written) and written != ANSWER
    kept = _get(alice, path)["messages"]
    assert [(m["role"], m["content"]) for m in kept] == [("user", "Et là ?"), ("assistant", written)]
