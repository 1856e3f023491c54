"""Albert API clients, unchanged, against a running platform: the calls of OpenGateLLM's RAG tutorial
(``docs/tutorials/retrieval_augmented_generation.ipynb``) through ``requests`` and the ``openai`` SDK, then each
Albert-compatible behaviour on its own — on SQLite and PostgreSQL wherever the store is involved."""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import requests
from openai import OpenAI

from tests.support.documents import MARKDOWN, pdf, upload
from tests.support.fake_backend import Answer, FakeBackend
from tests.support.servers import Server, start_server, stop

QUESTION = "Quel est le délai de fabrication d'un passeport ?"


def albert_rag_tutorial(base_url: str, api_key: str, file_path: str) -> None:
    """The tutorial's calls as its users run them (its upload by ``POST /v1/documents``, which the platform runs
    synchronously when asked to, as the Albert API did; its web search step is refused, see the README)."""
    client = OpenAI(base_url=base_url, api_key=api_key)
    session = requests.session()
    session.headers = {"Authorization": f"Bearer {api_key}"}  # type: ignore[assignment]

    language_model, embeddings_model, rerank_model = None, None, None
    for model in client.models.list().data:
        if model.type == "text-generation" and language_model is None:  # type: ignore[attr-defined]
            language_model = model.id
        if model.type == "text-embeddings-inference" and embeddings_model is None:  # type: ignore[attr-defined]
            embeddings_model = model.id
        if model.type == "text-classification" and rerank_model is None:  # type: ignore[attr-defined]
            rerank_model = model.id
    print(f"language model: {language_model}\nembeddings model: {embeddings_model}")

    collection = "tutorial"
    response = session.post(f"{base_url}/collections", json={"name": collection, "model": embeddings_model})
    response = response.json()
    collection_id = response["id"]
    print(f"Collection ID: {collection_id}")

    with open(file_path, "rb") as handle:
        files = {"file": (os.path.basename(file_path), handle, "application/pdf")}
        data = {"collection": collection_id, "wait": "true", "metadata": '{"source": "tutoriel"}'}
        response = session.post(f"{base_url}/documents", data=data, files=files)
    assert response.status_code == 201, response.text

    response = session.get(f"{base_url}/collections/{collection_id}")
    print(f"Number of files in collection: {response.json()['documents']}")

    prompt = QUESTION
    data = {"collections": [collection_id], "k": 6, "prompt": prompt, "method": "semantic"}
    response = session.post(url=f"{base_url}/search", json=data)

    prompt_template = "Answer following question using available documents: {prompt}\n\nDocuments :\n\n{chunks}"
    chunks = "\n\n\n".join([result["chunk"]["content"] for result in response.json()["data"]])
    sources = set([result["chunk"]["metadata"]["document_name"] for result in response.json()["data"]])
    print(f"Sources: {', '.join(sorted(sources))}")
    prompt = prompt_template.format(prompt=prompt, chunks=chunks)

    response = client.chat.completions.create(
        messages=[{"role": "user", "content": prompt}],
        model=language_model,  # type: ignore[arg-type]
        stream=False,
        n=1,
    )
    answer = response.choices[0].message.content
    print(f"Model answer: {bool(answer)}")

    response = session.post(
        url=f"{base_url}/chat/completions",
        json={
            "messages": [{"role": "user", "content": QUESTION}],
            "model": language_model,
            "stream": False,
            "n": 1,
            "search": True,
            "search_args": {"collections": [collection_id], "k": 6, "method": "semantic",
                            "template": "Réponds avec ces documents : {prompt}\n\nDocuments :\n{chunks}"},
        },
    )
    response = response.json()
    sources = [result["chunk"]["content"] for result in response["search_results"]]
    about = "trois semaines" if "trois semaines" in sources[0] else "?"
    print(f"Sources used: {len(sources)}, the first about {about}")

    response = session.post(f"{base_url}/rerank", json={"prompt": QUESTION, "model": rerank_model,
                                                         "input": ["Le timbre fiscal coûte 86 euros.",
                                                                   "Le délai de fabrication est de trois semaines."]})
    best = max(response.json()["data"], key=lambda item: item["score"])
    print(f"Best passage: {best['index']}")


def test_the_albert_rag_tutorial_runs_unchanged(any_server: Server, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    albert_rag_tutorial(any_server.base_url, any_server.admin_key, str(pdf(tmp_path / "passeport.pdf")))
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["language model: smollm2-135m", "embeddings model: multilingual-e5-small"]
    assert printed[2].startswith("Collection ID: ")
    assert printed[3:] == ["Number of files in collection: 1", "Sources: passeport.pdf", "Model answer: True",
                           "Sources used: 3, the first about trois semaines", "Best passage: 1"], printed


# ---- each behaviour on its own --------------------------------------------------------------------------

def _person(server: Server, admin: httpx.Client) -> tuple[int, httpx.Client]:
    user = admin.post("/users", json={"email": f"a-{secrets.token_hex(4)}@x.gouv.fr", "name": "Agent Albert"}).json()
    key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
    return user["id"], httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


@pytest.fixture
def sqlite_admin(server: Server) -> Iterator[httpx.Client]:
    """The admin of the SQLite server, for the tests the store plays no part in."""
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=60) as http:
        yield http


@pytest.fixture
def me(any_server: Server, admin: httpx.Client) -> Iterator[httpx.Client]:
    with _person(any_server, admin)[1] as http:
        yield http


@pytest.fixture
def other(any_server: Server, admin: httpx.Client) -> Iterator[httpx.Client]:
    with _person(any_server, admin)[1] as http:
        yield http


def test_models_carry_the_albert_types_and_the_platform_kind(client: openai.OpenAI) -> None:
    types = {model.id: (model.type, model.kind) for model in client.models.list().data}  # type: ignore[attr-defined]
    assert types["smollm2-135m"] == ("text-generation", "chat")
    assert types["multilingual-e5-small"] == ("text-embeddings-inference", "embeddings")
    assert types["multilingual-e5-small-rerank"] == ("text-classification", "rerank")


def test_collections_take_the_albert_fields(me: httpx.Client) -> None:
    created = me.post("/collections", json={"name": "Albert", "model": "e5-small", "description": None,
                                            "visibility": "private"})
    assert created.status_code == 201, created.text
    collection = created.json()
    assert collection["owner"] == "Agent Albert" and collection["model"] == "multilingual-e5-small"
    assert isinstance(collection["created_at"], int) and abs(collection["created_at"] - time.time()) < 120
    assert collection["updated_at"] >= collection["created_at"] and collection["description"] == ""
    refused = me.post("/collections", json={"name": "x", "model": "smollm2-135m"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "model"
    assert "multilingual-e5-small" in refused.json()["error"]["message"]
    assert me.post("/collections", json={"name": "x", "model": "no-such-model"}).status_code == 404
    assert me.post("/collections", json={"name": "x", "shard": 3}).status_code == 422  # still strict
    changed = me.patch(f"/collections/{collection['id']}", json={"description": "Notes"})
    assert changed.status_code == 200 and changed.json()["description"] == "Notes"
    listed = me.get("/collections").json()["data"]
    assert {c["id"]: c["owner"] for c in listed}[collection["id"]] == "Agent Albert"


def test_upload_with_wait_metadata_and_chunker_options(me: httpx.Client, other: httpx.Client,
                                                       tmp_path: Path) -> None:
    collection = me.post("/collections", json={"name": "Guides"}).json()["id"]
    passport = pdf(tmp_path / "passeport.pdf")
    answered = upload(me, collection, passport, wait="true", chunk_size=512, chunk_overlap=0, chunk_min_size=20,
                      chunker="RecursiveCharacterTextSplitter", length_function="len", is_separator_regex="false",
                      metadata='{"service": "état civil", "annee": 2026, "public": true}')
    assert answered.status_code == 201, answered.text
    document = answered.json()
    assert (document["status"], document["embedded"]) == ("ready", document["chunks"]) and document["chunks"] == 3
    assert document["metadata"] == {"service": "état civil", "annee": 2026, "public": True}
    assert document["chunk_min_size"] == 20
    # Searchable by its meaning the moment the upload answers.
    found = me.post("/search", json={"prompt": QUESTION, "collections": [collection], "method": "semantic", "k": 1})
    best = found.json()["data"][0]["chunk"]
    assert "trois semaines" in best["content"] and best["metadata"]["annee"] == 2026
    assert best["metadata"]["document_id"] == document["id"]

    (tmp_path / "conges.md").write_text(MARKDOWN + "\n## Fin\nVoir.\n", encoding="utf-8")
    leave = upload(me, collection, tmp_path / "conges.md", wait="true", chunk_min_size=10,
                   metadata='{"service": "RH", "annee": 2025}').json()
    chunks = me.get(f"/documents/{leave['id']}/chunks").json()["data"]
    assert [c["content"] for c in chunks if c["content"] == "Voir."] == []  # below chunk_min_size: dropped
    assert all(c["metadata"]["service"] == "RH" for c in chunks) and len(chunks) == leave["chunks"]
    one = me.get(f"/chunks/{leave['id']}/{chunks[0]['id']}")
    assert one.status_code == 200 and one.json() == chunks[0]
    assert me.get(f"/chunks/{document['id']}/{chunks[0]['id']}").status_code == 404  # not that document's
    assert other.get(f"/chunks/{leave['id']}/{chunks[0]['id']}").status_code == 404
    assert other.get(f"/documents/{leave['id']}/chunks").status_code == 404

    for method in ("lexical", "semantic", "hybrid"):
        filtered = me.post("/search", json={"prompt": "congés passeport agent", "collections": [collection],
                                            "method": method, "metadata_filters": {"service": "RH"}}).json()["data"]
        assert filtered and {r["chunk"]["metadata"]["document_id"] for r in filtered} == {leave["id"]}, method
        nothing = me.post("/search", json={"prompt": "passeport", "collections": [collection], "method": method,
                                           "metadata_filters": {"annee": "2026"}}).json()["data"]
        assert nothing == []  # 2026 is a number there, not text
    with_bool = me.post("/search", json={"prompt": "passeport", "collections": [collection],
                                         "metadata_filters": {"public": True, "annee": 2026}}).json()["data"]
    assert {r["chunk"]["metadata"]["document_id"] for r in with_bool} == {document["id"]}


@pytest.mark.parametrize(("form", "param"), [
    ({"chunker": "NoSplitter"}, "chunker"),
    ({"separators": "###"}, "separators"),
    ({"preset_separators": "python"}, "preset_separators"),
    ({"is_separator_regex": "true"}, "is_separator_regex"),
    ({"length_function": "tokens"}, "length_function"),
    ({"force_ocr": "true"}, "force_ocr"),
    ({"shard": "3"}, "shard"),
    ({"metadata": "[1, 2]"}, "metadata"),
    ({"metadata": "{not json"}, "metadata"),
    ({"metadata": '{"document_id": 4}'}, "metadata.document_id"),
    ({"metadata": '{"liste": [1]}'}, "metadata.liste"),
    ({"chunk_min_size": "5000"}, "chunk_min_size"),
])
def test_options_that_cannot_be_honoured_are_refused_by_name(server: Server, sqlite_admin: httpx.Client, tmp_path: Path,
                                                             form: dict[str, str], param: str) -> None:
    _, http = _person(server, sqlite_admin)
    with http:
        collection = http.post("/collections", json={"name": "x"}).json()["id"]
        (tmp_path / "note.txt").write_text(f"Une note {secrets.token_hex(4)}.", encoding="utf-8")
        refused = upload(http, collection, tmp_path / "note.txt", **form)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
        assert http.get("/documents", params={"collection": collection}).json()["data"] == []  # nothing accepted


def test_albert_defaults_are_accepted(me: httpx.Client, tmp_path: Path) -> None:
    collection = me.post("/collections", json={"name": "x"}).json()["id"]
    (tmp_path / "note.txt").write_text("Une note de service sur les horaires d'ouverture.", encoding="utf-8")
    with (tmp_path / "note.txt").open("rb") as handle:
        accepted = me.post("/documents", files={"file": ("note.txt", handle)}, data={
            "collection": str(collection), "separators": ["\n\n", "\n", ". ", " "], "preset_separators": "",
            "force_ocr": "false", "output_format": "markdown", "paginate_output": "false", "metadata": "{}"})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["metadata"] is None


def test_search_reports_usage_honours_rff_k_and_refuses_the_web(any_server: Server, me: httpx.Client,
                                                                 tmp_path: Path) -> None:
    collection = me.post("/collections", json={"name": "x"}).json()["id"]
    assert upload(me, collection, pdf(tmp_path / "passeport.pdf"), wait="true").status_code == 201
    ask = {"prompt": QUESTION, "collections": [collection], "k": 2}
    semantic = me.post("/search", json={**ask, "method": "semantic"}).json()
    assert semantic["usage"]["prompt_tokens"] > 0 and semantic["usage"]["total_tokens"] >= 1
    assert me.post("/search", json={**ask, "method": "lexical"}).json()["usage"]["prompt_tokens"] == 0
    scores = {rff_k: me.post("/search", json={**ask, "rff_k": rff_k}).json()["data"][0]["score"] for rff_k in (1, 60)}
    assert scores[1] == pytest.approx(1.0) and scores[60] == pytest.approx(2 / 61)  # first by both methods
    web = me.post("/search", json={**ask, "web_search": True})
    assert web.status_code == 400 and web.json()["error"]["param"] == "web_search"
    assert "internet" in web.json()["error"]["message"]
    agents = me.post("/search", json={**ask, "method": "multiagent"})
    assert agents.status_code == 400 and agents.json()["error"]["param"] == "method"
    assert me.post("/search", json={**ask, "web_search": False, "web_search_k": 5}).status_code == 200
    assert me.post("/search", json={**ask, "deep": True}).status_code == 422  # an unknown option is not ignored


def test_chat_search_errors_name_the_field_the_client_sent(server: Server, sqlite_admin: httpx.Client) -> None:
    _, http = _person(server, sqlite_admin)
    with http:
        collection = http.post("/collections", json={"name": "x"}).json()["id"]
        chat = {"model": "smollm2-135m", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}
        cases = [({"search": True}, "search_args", "search_args is required when search is true."),
                 ({"search": True, "search_args": {"collections": [collection], "k": 0}}, "search_args.k", None),
                 ({"search": {"collections": [collection], "k": 0}}, "search.k", None),
                 ({"search": True, "search_args": {"collections": [collection], "template": "{prompt}"}},
                  "search_args.template", None),
                 ({"search": True, "search_args": {"collections": [collection], "web_search": True}},
                  "search_args.web_search", None),
                 ({"search": True, "search_args": {"collections": [collection], "method": "multiagent"}},
                  "search_args.method", None)]
        for option, param, message in cases:
            refused = http.post("/chat/completions", json={**chat, **option})
            assert refused.status_code == 400, (option, refused.text)
            assert refused.json()["error"]["param"] == param, refused.json()
            if message is not None:
                assert refused.json()["error"]["message"] == message


def test_rerank_answers_in_the_shape_it_was_asked_in(client: openai.OpenAI, server: Server) -> None:
    texts = ["Le timbre fiscal coûte 86 euros.", "Le délai de fabrication du passeport est de trois semaines."]
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=60) as http:
        albert = http.post("/rerank", json={"model": "multilingual-e5-small-rerank", "prompt": QUESTION,
                                            "input": texts}).json()
        cohere = http.post("/rerank", json={"model": "multilingual-e5-small-rerank", "query": QUESTION,
                                            "documents": texts}).json()
    assert albert["object"] == "list" and "results" not in albert
    assert {item["object"] for item in albert["data"]} == {"rerank"}
    assert sorted(item["index"] for item in albert["data"]) == [0, 1]
    assert "data" not in cohere and {r["index"]: r["relevance_score"] for r in cohere["results"]} == {
        item["index"]: item["score"] for item in albert["data"]}
    assert max(albert["data"], key=lambda item: item["score"])["index"] == 1


def test_account_routes_in_the_albert_shapes(any_server: Server, admin: httpx.Client) -> None:
    user_id, http = _person(any_server, admin)
    _, stranger = _person(any_server, admin)
    with http, stranger:
        me = http.get("/users/me").json()
        assert (me["object"], me["id"], me["name"]) == ("user", user_id, "Agent Albert")
        assert isinstance(me["role"], int) and isinstance(me["created_at"], int)
        role = http.get("/roles/me").json()
        assert (role["object"], role["id"], role["name"]) == ("role", me["role"], "user")
        assert role["permissions"] == [] and "models:use" in role["platform_permissions"]
        assert isinstance(role["limits"], list)
        assert "create_role" in admin.get("/roles/me").json()["permissions"]
        info = http.get("/me/info").json()
        assert (info["id"], info["email"], info["permissions"]) == (user_id, me["email"], [])

        created = http.post("/tokens", json={"name": "mon appli", "expires_at": int(time.time()) + 3600})
        assert created.status_code == 201, created.text
        token = created.json()
        listed = http.get("/tokens").json()["data"]
        assert token["id"] in [t["id"] for t in listed] and all(t["user"] == user_id for t in listed)
        mine = http.get(f"/tokens/{token['id']}").json()
        assert mine["name"] == "mon appli" and token["token"] not in str(listed) and "..." in mine["token"]
        with httpx.Client(base_url=any_server.base_url, headers={"Authorization": f"Bearer {token['token']}"}) as new:
            assert new.get("/users/me").json()["id"] == user_id
        assert stranger.get(f"/tokens/{token['id']}").status_code == 404  # another's token does not exist
        assert stranger.delete(f"/tokens/{token['id']}").status_code == 404
        assert token["id"] not in [t["id"] for t in stranger.get("/tokens").json()["data"]]
        assert http.post("/tokens", json={"name": "x", "expires_at": 1000}).status_code == 400
        assert http.delete(f"/tokens/{token['id']}").status_code == 204
        assert http.get(f"/tokens/{token['id']}").status_code == 404
        with httpx.Client(base_url=any_server.base_url, headers={"Authorization": f"Bearer {token['token']}"}) as gone:
            assert gone.get("/users/me").status_code == 401


def test_usage_takes_albert_paging_and_answers_its_totals(server: Server, sqlite_admin: httpx.Client) -> None:
    _, http = _person(server, sqlite_admin)
    with http:
        for _ in range(3):
            embedded = http.post("/embeddings", json={"model": "multilingual-e5-small", "input": "bonjour"})
            assert embedded.status_code == 200
        deadline = time.monotonic() + 30
        while len(http.get("/usage").json()["data"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # usage rows are written in batches
        first = http.get("/usage", params={"page": 1, "limit": 2, "order_by": "datetime",
                                           "order_direction": "asc", "date_from": int(time.time()) - 3600}).json()
        assert (first["page"], first["limit"], first["total"], first["total_pages"], first["has_more"]) == \
            (1, 2, 3, 2, True)
        assert first["total_requests"] == 3 and first["total_tokens"] == sum(r["total_tokens"] for r in
                                                                             http.get("/usage").json()["data"])
        second = http.get("/usage", params={"page": 2, "limit": 2, "order_direction": "asc"}).json()
        assert (second["page"], len(second["data"]), second["has_more"]) == (2, 1, False)
        rows = first["data"] + second["data"]
        assert [r["datetime"] for r in rows] == sorted(r["datetime"] for r in rows)
        assert all(r["endpoint"] == "embeddings" and r["model"] == "multilingual-e5-small" for r in rows)
        assert {"currency", "object"} <= set(first) and "kwh_min" in rows[0] and "token_id" in rows[0]
        assert http.get("/usage", params={"date_from": int(time.time()) + 3600}).json()["total"] == 0
        assert http.get("/usage", params={"page": 1, "offset": 2}).status_code == 400
        assert http.get("/usage", params={"order_by": "model"}).status_code == 422


# ---- the template reaches generation (a backend that keeps what it received) ----------------------------

@pytest.fixture(scope="module")
async def generating(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Server, FakeBackend]]:
    """A platform whose chat model (not a demonstration one: it generates) is served by a backend that keeps
    every request it gets."""
    async with FakeBackend() as fake:
        config = tmp_path_factory.mktemp("albert-config") / "models.yaml"
        config.write_text(
            "models:\n"
            "  - {id: multilingual-e5-small, type: text-embeddings-inference, backends: [{type: e5}]}\n"
            f"  - {{id: ministral, type: text-generation, backends: [{{type: openai, url: '{fake.url}'}}]}}\n")
        server = await asyncio.to_thread(start_server, tmp_path_factory.mktemp("albert"), config=config)
        try:
            yield server, fake
        finally:
            stop(server.process)


async def test_search_args_template_is_what_the_model_is_given(generating: tuple[Server, FakeBackend],
                                                               tmp_path: Path) -> None:
    server, fake = generating
    fake.script(Answer("Trois semaines."), Answer("Trois semaines."))
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=120) as http:
        models = {m["id"]: m["type"] for m in (await http.get("/models")).json()["data"]}
        assert models == {"multilingual-e5-small": "text-embeddings-inference", "ministral": "text-generation"}
        collection = (await http.post("/collections", json={"name": "x"})).json()["id"]
        with pdf(tmp_path / "passeport.pdf").open("rb") as handle:
            uploaded = await http.post("/documents", files={"file": ("passeport.pdf", handle)},
                                       data={"collection": str(collection), "wait": "true"})
        assert uploaded.status_code == 201, uploaded.text
        template = "Consigne : {prompt}\n---\n{chunks}\n--- fin"
        answer = (await http.post("/chat/completions", json={
            "model": "ministral", "messages": [{"role": "user", "content": QUESTION}], "search": True,
            "search_args": {"collections": [collection], "k": 2, "method": "semantic", "rff_k": 20,
                            "score_threshold": 0.0, "web_search": False, "template": template}})).json()
        given = fake.received[-1].body["messages"][-1]["content"]
        chunks = [result["chunk"]["content"] for result in answer["search_results"]]
        assert len(chunks) == 2 and "trois semaines" in chunks[0]
        assert given == f"Consigne : {QUESTION}\n---\n" + "\n\n\n".join(chunks) + "\n--- fin"
        assert answer["choices"][0]["message"]["content"] == "Trois semaines."
        # Without a template, the platform's own prompt, with numbered excerpts.
        await http.post("/chat/completions", json={
            "model": "ministral", "messages": [{"role": "user", "content": QUESTION}], "search": True,
            "search_args": {"collections": [collection], "k": 2}})
        assert "[1]" in fake.received[-1].body["messages"][-1]["content"]
