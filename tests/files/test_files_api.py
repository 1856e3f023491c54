"""/v1/files through the official openai SDK against a running server, on SQLite and on PostgreSQL."""
from __future__ import annotations

import io
import json
import secrets
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest

from tests.support.documents import wait_ingested
from tests.support.servers import Server

GOOD = b"".join(json.dumps({"messages": [
    {"role": "system", "content": "Réponds en une phrase."},
    {"role": "user", "content": f"Question {i} ?"},
    {"role": "assistant", "content": f"Réponse {i}."}]}, ensure_ascii=False).encode() + b"\n" for i in range(5))


@dataclass
class Person:
    id: int
    sdk: openai.OpenAI
    http: httpx.Client


@pytest.fixture
def people(any_server: Server, admin: httpx.Client) -> Iterator[tuple[Person, Person]]:
    """Two ordinary users (the role every new account gets), each with a key."""
    made = []
    for _ in range(2):
        user = admin.post("/users", json={"email": f"f-{secrets.token_hex(4)}@x.gouv.fr"}).json()
        key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
        made.append(Person(user["id"], openai.OpenAI(base_url=any_server.base_url, api_key=key, max_retries=0),
                           httpx.Client(base_url=any_server.base_url, headers={"Authorization": f"Bearer {key}"},
                                        timeout=60)))
    yield made[0], made[1]
    for person in made:
        person.http.close()


def test_a_fine_tuning_file_goes_round_trip(people: tuple[Person, Person]) -> None:
    me, _ = people
    created = me.sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.filename, created.purpose, created.bytes, created.status) == ("train.jsonl", "fine-tune",
                                                                                  len(GOOD), "processed")
    assert created.status_details is None and created.created_at > 1_700_000_000
    assert me.sdk.files.retrieve(created.id) == created
    assert me.sdk.files.content(created.id).read() == GOOD
    assert [f.id for f in me.sdk.files.list(purpose="fine-tune")] == [created.id]
    deleted = me.sdk.files.delete(created.id)
    assert (deleted.id, deleted.deleted) == (created.id, True)
    with pytest.raises(openai.NotFoundError):
        me.sdk.files.retrieve(created.id)
    assert list(me.sdk.files.list()) == []


def test_another_persons_file_is_not_found(people: tuple[Person, Person]) -> None:
    me, other = people
    mine = me.sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    for attempt in (other.sdk.files.retrieve, other.sdk.files.content, other.sdk.files.delete):
        with pytest.raises(openai.NotFoundError) as caught:
            attempt(mine.id)
        assert caught.value.body["code"] == "file_not_found"
    assert list(other.sdk.files.list()) == []
    assert me.sdk.files.retrieve(mine.id).id == mine.id  # untouched
    with pytest.raises(openai.NotFoundError):
        me.sdk.files.retrieve("file-999999999")
    with pytest.raises(openai.NotFoundError):
        me.sdk.files.retrieve("not-a-file")


def test_a_bad_training_file_names_its_lines(people: tuple[Person, Person]) -> None:
    me, _ = people
    lines = [GOOD.splitlines()[0], b'{"messages": [{"role": "user", "content": "Bonjour"}', b"",
             b'{"prompt": "Bonjour", "completion": "Salut"}',
             b'{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "  "}]}',
             b'{"messages": [{"role": "robot", "content": "Q"}, {"role": "assistant", "content": "R"}]}',
             b'{"messages": [{"role": "assistant", "content": "R"}, {"role": "user", "content": "Q"}]}']
    bad = me.sdk.files.create(file=("bad.jsonl", b"\n".join(lines)), purpose="fine-tune")
    assert bad.status == "error"
    assert bad.status_details.startswith("line 2: the line is not valid JSON"), bad.status_details
    assert 'line 4: the legacy "prompt"/"completion" format is not accepted' in bad.status_details
    assert "line 5: message 1 (assistant) has no text content" in bad.status_details
    assert "(and 2 more)" in bad.status_details  # lines 6 and 7
    assert me.sdk.files.retrieve(bad.id).status == "error"


def test_purpose_and_form_are_checked(people: tuple[Person, Person]) -> None:
    me, _ = people
    with pytest.raises(openai.BadRequestError) as caught:
        me.sdk.files.create(file=("x.jsonl", GOOD), purpose="vision-magic")  # type: ignore[arg-type]
    assert caught.value.body["param"] == "purpose"
    response = me.http.post("/files", files={"file": ("x.jsonl", GOOD)})
    assert response.status_code == 400 and response.json()["error"]["param"] == "purpose"
    both = me.http.post("/files", files={"file": ("x.jsonl", GOOD)},
                        data={"purpose": "batch", "request": '{"collection": 1}'})
    assert both.status_code == 400 and both.json()["error"]["param"] == "request"
    for purpose in ("batch", "assistants", "user_data"):
        assert me.sdk.files.create(file=("x.jsonl", GOOD), purpose=purpose).status == "processed"  # type: ignore


def test_too_large_a_file_is_refused_and_nothing_is_kept(any_server: Server, people: tuple[Person, Person]) -> None:
    me, _ = people
    before = sorted(p.name for p in (any_server.data_dir / "files").glob("*"))
    with pytest.raises(openai.APIStatusError) as caught:  # the fine-tuning bound of the tests: 256 KiB
        me.sdk.files.create(file=("big.jsonl", GOOD * (300 * 1024 // len(GOOD))), purpose="fine-tune")
    assert caught.value.status_code == 413 and caught.value.body["param"] == "file"
    with pytest.raises(openai.APIStatusError) as caught:  # other files: 1 MiB
        me.sdk.files.create(file=("big.jsonl", b"x" * (1024 * 1024 + 1)), purpose="batch")
    assert caught.value.status_code == 413
    with pytest.raises(openai.APIStatusError) as caught:  # beyond what a request may carry at all
        me.sdk.files.create(file=("big.jsonl", b"x" * (4 * 1024 * 1024)), purpose="batch")
    assert caught.value.status_code == 413
    assert list(me.sdk.files.list()) == []
    assert sorted(p.name for p in (any_server.data_dir / "files").glob("*")) == before


def test_listing_pages_through_the_sdk(people: tuple[Person, Person]) -> None:
    me, _ = people
    ids = [me.sdk.files.create(file=(f"{i}.jsonl", GOOD), purpose="batch").id for i in range(3)]
    first = me.sdk.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2] and first.has_more
    assert [f.id for f in me.sdk.files.list(limit=2)] == ids[::-1]  # the SDK follows `after`
    assert [f.id for f in me.sdk.files.list(limit=2, order="asc")] == ids
    assert me.sdk.files.list(purpose="fine-tune").data == []
    with pytest.raises(openai.BadRequestError) as caught:
        me.sdk.files.list(after="page-2")
    assert caught.value.body["param"] == "after"


def test_albert_upload_lands_a_document_in_a_collection(people: tuple[Person, Person]) -> None:
    me, other = people
    collection = me.http.post("/collections", json={"name": "Albert"}).json()["id"]
    text = "Le passeport se renouvelle en mairie. Le délai est de trois semaines.\n" * 20
    request = json.dumps({"collection": collection, "chunker": {
        "name": "LangchainRecursiveCharacterTextSplitter", "args": {"chunk_size": 300, "chunk_overlap": 20}}})
    response = me.http.post("/files", files={"file": ("passeport.txt", text.encode())}, data={"request": request})
    assert response.status_code == 201, response.text
    document_id = response.json()["id"]
    assert set(response.json()) == {"id"}
    document = wait_ingested(me.http, [document_id], embedded=False)[document_id]
    assert (document["collection_id"], document["status"], document["chunk_size"]) == (collection, "ready", 300)
    assert document["chunks"] > 1
    defaults = me.http.post("/files", files={"file": ("b.md", b"# Titre\n\nUn texte.")},
                            data={"request": json.dumps({"collection": collection})})
    assert defaults.status_code == 201
    assert me.http.get(f"/documents/{defaults.json()['id']}").json()["chunk_size"] == 512  # Albert's default
    refused = other.http.post("/files", files={"file": ("c.txt", b"texte")},
                              data={"request": json.dumps({"collection": collection})})
    assert refused.status_code == 404  # another person's collection
    for request, param in (("{not json", "request"), ('{"collection": 1, "private": true}', "request"),
                           (json.dumps({"collection": collection, "chunker": {"args": {"separators": ["|"]}}}),
                            "separators")):
        broken = me.http.post("/files", files={"file": ("c.txt", b"texte")}, data={"request": request})
        assert broken.status_code == 400 and broken.json()["error"]["param"] == param, broken.text
    assert list(me.sdk.files.list()) == []  # a document, not a file


def test_files_are_exported_and_erased_with_their_owner(any_server: Server, admin: httpx.Client,
                                                        people: tuple[Person, Person]) -> None:
    me, _ = people
    kept = me.sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    number = kept.id.removeprefix("file-")
    archive = zipfile.ZipFile(io.BytesIO(me.http.get("/me/export").content))
    data = json.loads(archive.read("donnees.json"))
    assert [(f["filename"], f["purpose"], f["bytes"]) for f in data["files"]] == [("train.jsonl", "fine-tune",
                                                                                   len(GOOD))]
    assert archive.read(data["files"][0]["file"]) == GOOD
    path = any_server.data_dir / "files" / number
    assert path.is_file()
    assert admin.delete(f"/users/{me.id}").status_code == 204
    assert not path.exists()
    trail = admin.get("/audit", params={"target_type": "file", "target_id": number}).json()["data"]
    assert [event["action"] for event in trail] == ["file.uploaded"]
