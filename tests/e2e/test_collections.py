"""Collections are partitioned: randomized probes find no collection, document or chunk a caller may not
read — listed, fetched or searched by any method —, on both stores."""
from __future__ import annotations

import random
import secrets

import httpx

from tests.support.documents import wait_ingested
from tests.support.servers import Server


def _secret(collection_id: int) -> str:
    return f"zqx{collection_id * 7919:x}k"


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_owner_lifecycle_and_errors(any_server: Server, admin: httpx.Client) -> None:
    user = admin.post("/users", json={"email": f"c-{secrets.token_hex(4)}@x.gouv.fr"}).json()
    key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
    with _client(any_server, key) as client:
        created = client.post("/collections", json={"name": "Circulaires", "description": "2026"})
        assert created.status_code == 201
        collection = created.json()
        assert (collection["visibility"], collection["owner_id"]) == ("private", user["id"])
        renamed = client.patch(f"/collections/{collection['id']}", json={"name": "Circulaires RH"}).json()
        assert renamed["name"] == "Circulaires RH" and renamed["description"] == "2026"
        assert client.post("/collections", json={"name": "x", "visibility": "public"}).status_code == 403
        assert client.post("/collections", json={"name": "x", "visibility": "group"}).status_code == 400
        assert client.post("/collections", json={"name": "x", "visibility": "group", "group_id": 999999}
                           ).status_code == 404
        assert client.post("/collections", json={"name": "x", "visibility": "secret"}).status_code == 422
        assert client.delete(f"/collections/{collection['id']}").status_code == 204
        assert client.get(f"/collections/{collection['id']}").status_code == 404


def test_an_owner_who_left_the_group_keeps_the_collection_in_hand(any_server: Server,
                                                                   admin: httpx.Client) -> None:
    group, elsewhere = (admin.post("/groups", json={"name": f"g-{secrets.token_hex(4)}"}).json()["id"]
                        for _ in range(2))
    people = [admin.post("/users", json={"email": f"o-{secrets.token_hex(4)}@x.gouv.fr"}).json()["id"]
              for _ in range(2)]
    owner, reader = (admin.post("/keys", json={"user_id": person}).json()["key"] for person in people)
    for person in people:
        admin.put(f"/groups/{group}/members/{person}")
    with _client(any_server, owner) as client, _client(any_server, reader) as other:
        shared = client.post("/collections", json={"name": "Notes", "visibility": "group",
                                                   "group_id": group}).json()
        path = f"/collections/{shared['id']}"
        assert admin.delete(f"/groups/{group}/members/{people[0]}").status_code == 200  # the owner leaves
        # Still shared as it was, and still the owner's to manage.
        renamed = client.patch(path, json={"name": "Notes du service", "visibility": "group",
                                           "group_id": group})
        assert renamed.status_code == 200, renamed.text
        assert (renamed.json()["name"], renamed.json()["visibility"]) == ("Notes du service", "group")
        assert other.get(path).json()["name"] == "Notes du service"
        # Never shared anew with a group the owner is not in: neither another one, nor the one left.
        assert client.patch(path, json={"group_id": elsewhere}).status_code == 404
        assert client.patch(path, json={"visibility": "private"}).json()["visibility"] == "private"
        assert other.get(path).status_code == 404
        assert client.patch(path, json={"visibility": "group", "group_id": group}).status_code == 404
        assert client.delete(path).status_code == 204


def test_randomized_probes_find_nothing_they_may_not_read(any_server: Server, admin: httpx.Client) -> None:
    rng = random.Random(20261125)
    groups = [admin.post("/groups", json={"name": f"g-{secrets.token_hex(4)}"}).json()["id"] for _ in range(3)]
    users = []
    for _ in range(5):
        memberships = set(rng.sample(groups, rng.randint(0, 2)))
        user = admin.post("/users", json={"email": f"p-{secrets.token_hex(4)}@x.gouv.fr"}).json()
        for group in memberships:
            admin.put(f"/groups/{group}/members/{user['id']}")
        key = admin.post("/keys", json={"user_id": user["id"]}).json()["key"]
        users.append({"id": user["id"], "key": key, "groups": memberships})

    collections: dict[int, dict] = {}
    for _ in range(25):
        owner = rng.choice(users)
        visibility = rng.choice(["private", "group"] if owner["groups"] else ["private"])
        body = {"name": f"col-{secrets.token_hex(3)}", "visibility": visibility}
        if visibility == "group":
            body["group_id"] = rng.choice(sorted(owner["groups"]))
        with _client(any_server, owner["key"]) as client:
            made = client.post("/collections", json=body).json()
        collections[made["id"]] = made
    public = admin.post("/collections", json={"name": "Guides publics", "visibility": "public"}).json()
    collections[public["id"]] = public
    documents: dict[int, int] = {}  # collection → its one document, which holds the collection's secret word
    for cid, collection in collections.items():
        key = next((u["key"] for u in users if u["id"] == collection["owner_id"]), any_server.admin_key)
        with _client(any_server, key) as client:
            text = f"# Note {cid}\n\nLe code de ce dossier est {_secret(cid)} ; il est confidentiel.".encode()
            documents[cid] = client.post("/documents", files={"file": (f"note-{cid}.md", text)},
                                         data={"collection": str(cid)}).json()["id"]
            wait_ingested(client, [documents[cid]])

    def may_read(user: dict, collection: dict) -> bool:
        return (collection["owner_id"] == user["id"] or collection["visibility"] == "public"
                or (collection["visibility"] == "group" and collection["group_id"] in user["groups"]))

    def probe() -> None:
        for user in users:
            with _client(any_server, user["key"]) as client:
                listed = {c["id"] for c in client.get("/collections", params={"limit": 1000}).json()["data"]}
                allowed = {cid for cid, c in collections.items() if may_read(user, c)}
                assert listed & set(collections) == allowed
                for cid, collection in collections.items():
                    status = client.get(f"/collections/{cid}").status_code
                    assert status == (200 if may_read(user, collection) else 404)
                    if collection["owner_id"] != user["id"]:  # readers never change or delete
                        assert client.patch(f"/collections/{cid}", json={"name": "x"}).status_code in (403, 404)
                        assert client.delete(f"/collections/{cid}").status_code in (403, 404)
                        refused = client.post("/documents", files={"file": ("x.md", b"# x")},
                                              data={"collection": str(cid)})
                        assert refused.status_code in (403, 404)
                        assert client.delete(f"/documents/{documents[cid]}").status_code in (403, 404)
                    expected = 200 if may_read(user, collection) else 404
                    assert client.get(f"/documents/{documents[cid]}").status_code == expected
                    assert client.get(f"/chunks/{documents[cid]}").status_code == expected
                    alone = client.post("/search", json={"prompt": _secret(cid), "collections": [cid]})
                    assert alone.status_code == expected
                    if expected == 200:
                        assert _secret(cid) in alone.json()["data"][0]["chunk"]["content"]
                listed_documents = {d["id"] for d in client.get("/documents", params={"limit": 1000}).json()["data"]}
                assert listed_documents & set(documents.values()) == {documents[cid] for cid in allowed}
                every_secret = " ".join(_secret(cid) for cid in collections)
                for method in ("lexical", "semantic", "hybrid"):
                    found = client.post("/search", json={"prompt": every_secret, "collections": sorted(allowed),
                                                         "method": method, "k": 200}).json()["data"]
                    seen = {r["chunk"]["metadata"]["collection_id"] for r in found}
                    assert seen <= allowed, (method, seen - allowed)
                    if method == "lexical":
                        assert seen == allowed

    probe()
    # Membership changes take effect at once; deleted collections disappear for everyone.
    mover = next(u for u in users if u["groups"])
    left = sorted(mover["groups"])[0]
    admin.delete(f"/groups/{left}/members/{mover['id']}")
    mover["groups"].discard(left)
    doomed = rng.sample(sorted(cid for cid in collections if cid != public["id"]), 5)
    for cid in doomed:
        owner = next(u for u in users if u["id"] == collections[cid]["owner_id"])
        with _client(any_server, owner["key"]) as client:
            assert client.delete(f"/collections/{cid}").status_code == 204
        del collections[cid]
    probe()
    for cid in doomed:
        assert admin.get(f"/collections/{cid}").status_code == 404
