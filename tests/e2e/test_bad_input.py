"""Bad input gets the right 4xx in the OpenAI envelope, and the server keeps serving."""
from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.servers import Server


@pytest.fixture
def http(server: Server) -> httpx.Client:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as client:
        yield client


def _error(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def test_malformed_json_is_a_400(http: httpx.Client) -> None:
    response = http.post("/chat/completions", content=b'{"model": "remote-chat", "messages": [',
                         headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_json"


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert error.value.body["code"] == "model_not_found"
    assert error.value.body["param"] == "model"


@pytest.mark.parametrize("body, param", [
    ({"model": "remote-chat", "messages": "hello"}, "messages"),
    ({"model": "remote-chat", "messages": []}, "messages"),
    ({"model": "remote-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}, "max_tokens"),
    ({"model": "remote-chat", "messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature"),
    ({"model": "remote-chat", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
])
def test_wrong_types_are_a_422_naming_the_field(http: httpx.Client, body: dict, param: str) -> None:
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 422
    assert _error(response)["param"] == param


def test_oversized_body_is_a_413(http: httpx.Client) -> None:
    big = {"model": "remote-chat", "messages": [{"role": "user", "content": "x" * 100_000}]}
    response = http.post("/chat/completions", json=big)
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_oversized_chunked_body_is_a_413(http: httpx.Client) -> None:
    def chunks():
        yield b'{"model": "remote-chat", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}]}'

    response = http.post("/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_max_tokens_over_the_limit_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}],
                                       max_tokens=5000)
    assert error.value.body["param"] == "max_tokens"
    assert error.value.body["code"] == "max_tokens_too_large"


def test_unknown_route_is_a_404_envelope(http: httpx.Client) -> None:
    response = http.get("/nowhere")
    assert response.status_code == 404
    assert _error(response)["type"] == "invalid_request_error"


def test_the_server_keeps_serving_after_bad_input(http: httpx.Client, client: openai.OpenAI) -> None:
    for _ in range(3):
        http.post("/chat/completions", content=b"\xff\xfe garbage", headers={"content-type": "application/json"})
    assert client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "x"}]).choices


# ---- integers beyond what the stores hold, NUL characters and lone surrogates: on both stores ----------

BIG = 2**64 + 1
ID_ROUTES = [
    ("GET", "/users/{id}"), ("PATCH", "/users/{id}"), ("DELETE", "/users/{id}"),
    ("PUT", "/groups/{id}/members/{id}"), ("DELETE", "/groups/{id}/members/{id}"), ("DELETE", "/groups/{id}"),
    ("PATCH", "/roles/{id}"), ("DELETE", "/roles/{id}"), ("DELETE", "/keys/{id}"),
    ("PATCH", "/quotas/{id}"), ("DELETE", "/quotas/{id}"),
    ("GET", "/collections/{id}"), ("PATCH", "/collections/{id}"), ("DELETE", "/collections/{id}"),
    ("GET", "/documents/{id}"), ("DELETE", "/documents/{id}"), ("GET", "/chunks/{id}"),
    ("GET", "/feedback/datasets/{id}"), ("DELETE", "/feedback/datasets/{id}"),
    ("GET", "/feedback/analyses/{id}"), ("POST", "/feedback/analyses/{id}/resume"),
    ("POST", "/feedback/analyses/{id}/cancel"), ("GET", "/feedback/analyses/{id}/annotations"),
    ("GET", "/feedback/analyses/{id}/report"), ("GET", "/feedback/analyses/{id}/evaluation"),
]


def _refused(response: httpx.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers.get("connection") != "close"  # the keep-alive connection stays open
    error = _error(response)
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize("method, route", ID_ROUTES)
def test_ids_out_of_range_are_refused_and_ids_past_32_bits_are_not_found(admin: httpx.Client, method: str,
                                                                          route: str) -> None:
    body = {} if method in ("PATCH", "POST") else None
    for value in (BIG, 2**63, -1, 0):
        response = admin.request(method, route.format(id=value), json=body)
        assert _refused(response, 422)["param"].endswith("_id")
    _refused(admin.request(method, route.format(id=2**31), json=body), 404)  # a possible id, of no row


@pytest.mark.parametrize("method, path, body, param", [
    ("GET", f"/documents?offset={BIG}", None, "offset"),
    ("GET", f"/documents?collection={BIG}", None, "collection"),
    ("GET", f"/collections?offset={2**63}", None, "offset"),
    ("GET", f"/users?offset={BIG}", None, "offset"),
    ("GET", f"/usage?user_id={BIG}", None, "user_id"),
    ("GET", f"/usage?offset={BIG}", None, "offset"),
    ("GET", f"/keys?user_id={BIG}", None, "user_id"),
    ("GET", f"/feedback/analyses?dataset={BIG}", None, "dataset"),
    ("POST", "/search", {"prompt": "x", "collections": [BIG]}, "collections.0"),
    ("POST", "/keys", {"user_id": BIG}, "user_id"),
    ("POST", "/collections", {"name": "c", "visibility": "group", "group_id": 2**63}, "group_id"),
    ("POST", "/quotas", {"scope": "global", "requests_per_minute": 2**31}, "requests_per_minute"),
    ("POST", "/quotas", {"scope": "global", "budget_tokens": 2**63}, "budget_tokens"),
    ("POST", "/feedback/analyses", {"dataset": BIG}, "dataset"),
])
def test_integers_out_of_range_are_a_422_naming_them(admin: httpx.Client, method: str, path: str,
                                                     body: dict | None, param: str) -> None:
    _refused(admin.request(method, path, json=body), 422, param)


def test_integers_beyond_64_bits_in_passed_through_fields_are_a_422(admin: httpx.Client) -> None:
    """Fields a gateway passes to the backend unchecked: the encoder towards the backend takes 64 bits."""
    for body, param in [({"model": "remote-embed", "input": [[1, -(2**70)]]}, "input.0.1"),
                        ({"model": "remote-chat", "messages": [{"role": "user", "content": "x"}], "x": 2**64},
                         "x")]:
        path = "/embeddings" if "input" in body else "/chat/completions"
        assert _refused(admin.post(path, json=body), 422, param)["code"] == "invalid_value"
    assert admin.post("/embeddings", json={"model": "remote-embed", "input": [[1, 2]]}).status_code == 200


def test_a_quota_subject_must_be_an_id_in_ascii_digits(admin: httpx.Client) -> None:
    _refused(admin.post("/quotas", json={"scope": "group", "subject": "²", "requests_per_minute": 1}), 400,
             "subject")


NUL = "a\x00b"


@pytest.mark.parametrize("method, path, body, param", [
    ("POST", "/users", {"email": "nul\x00@example.fr"}, "email"),
    ("POST", "/users", {"email": "nul@example.fr", "name": NUL}, "name"),
    ("POST", "/groups", {"name": NUL}, "name"),
    ("POST", "/groups", {"name": "g", "description": NUL}, "description"),
    ("POST", "/roles", {"name": "r", "permissions": [], "description": NUL}, "description"),
    ("POST", "/keys", {"name": NUL}, "name"),
    ("POST", "/quotas", {"scope": "role", "subject": NUL, "requests_per_minute": 1}, "subject"),
    ("POST", "/quotas", {"scope": "global", "model": NUL, "requests_per_minute": 1}, "model"),
    ("POST", "/collections", {"name": NUL}, "name"),
    ("POST", "/collections", {"name": "c", "description": NUL}, "description"),
    ("POST", "/chat/completions", {"model": "remote-chat", "messages": [{"role": "user", "content": NUL}]},
     "messages.0.content"),
    ("POST", "/chat/completions", {"model": "remote-chat", "messages": [{"role": "user", "content": "x"}],
                                   "logit_bias": {NUL: 1}}, "logit_bias.a\\x00b"),
])
def test_a_nul_character_is_a_400_naming_the_field(admin: httpx.Client, method: str, path: str, body: dict,
                                                   param: str) -> None:
    assert _refused(admin.request(method, path, json=body), 400, param)["code"] == "invalid_text"


def test_a_nul_character_in_a_query_or_a_form_is_a_400(admin: httpx.Client) -> None:
    _refused(admin.get("/usage", params={"model": NUL}), 400, "model")
    _refused(admin.get("/usage/summary", params={"model": NUL}), 400, "model")
    collection = admin.post("/collections", json={"name": "nul"}).json()["id"]
    raw_name = (b'--b\r\nContent-Disposition: form-data; name="collection"\r\n\r\n%d\r\n'
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.txt"\r\n'
                b'Content-Type: text/plain\r\n\r\nhello\r\n--b--\r\n' % collection)
    response = admin.post("/documents", content=raw_name,
                          headers={"content-type": "multipart/form-data; boundary=b"})
    _refused(response, 400, "file")
    response = admin.post("/feedback/datasets", data={"name": NUL},
                          files={"file": ("a.csv", b"text\nhello\n")})
    _refused(response, 400, "name")
    response = admin.post("/feedback/datasets", data={"name": "n", "mapping": '{"text": "a\\u0000"}'},
                          files={"file": ("a.csv", b"text\nhello\n")})
    assert response.status_code < 500


SURROGATE = rb'"\ud800"'


@pytest.mark.parametrize("path, template, param", [
    ("/chat/completions", b'{"model": "remote-chat", "messages": [{"role": "user", "content": %s}]}',
     "messages.0.content"),
    ("/completions", b'{"model": "remote-chat", "prompt": %s}', "prompt"),
    ("/embeddings", b'{"model": "remote-embed", "input": [%s]}', "input.0"),
    ("/users", b'{"email": "s@example.fr", "groups": [%s]}', "groups.0"),
    ("/quotas", b'{"scope": "role", "subject": %s, "requests_per_minute": 1}', "subject"),
    ("/groups", b'{"name": %s}', "name"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(admin: httpx.Client, path: str, template: bytes,
                                                    param: str) -> None:
    response = admin.post(path, content=template % SURROGATE, headers={"content-type": "application/json"})
    assert _refused(response, 400, param)["code"] == "invalid_text"


def test_a_surrogate_pair_is_text_like_any_other(admin: httpx.Client) -> None:
    body = b'{"model": "remote-chat", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    response = admin.post("/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.is_success


def test_nul_characters_in_an_imported_file_are_dropped(admin: httpx.Client) -> None:
    data = b"text;service\nbon\x00jour;mai\x00rie\n"
    response = admin.post("/feedback/datasets", data={"name": "nul-cells"},
                          files={"file": ("avis.csv", data)})
    assert response.status_code == 201, response.text
    assert response.json()["added"] == 1


def test_text_longer_than_its_column_is_a_400(admin: httpx.Client) -> None:
    """PostgreSQL refuses a value longer than its column, where SQLite would store it."""
    _refused(admin.post("/quotas", json={"scope": "role", "subject": "r" * 201, "requests_per_minute": 1}), 400,
             "subject")
    _refused(admin.post("/quotas", json={"scope": "global", "model": "m" * 201, "requests_per_minute": 1}), 400,
             "model")
    collection = admin.post("/collections", json={"name": "long names"}).json()["id"]
    response = admin.post("/documents", data={"collection": str(collection)},
                          files={"file": ("n" * 497 + ".txt", b"hello")})
    _refused(response, 400, "file")


def test_a_search_in_a_chat_names_a_collection_id_out_of_range(admin: httpx.Client) -> None:
    body = {"model": "remote-chat", "messages": [{"role": "user", "content": "x"}],
            "search": {"collections": [2**63]}}
    _refused(admin.post("/chat/completions", json=body), 400, "search.collections.0")
