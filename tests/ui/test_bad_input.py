"""The pages answer bad input with a 4xx error page, never a 500, on SQLite and on PostgreSQL: ids beyond
what the stores hold, NUL characters in forms and addresses, numbers that are not numbers."""
from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import Server
from tests.ui.conftest import http_sign_in, new_account


@pytest.fixture(params=["ui_server", "ui_postgres_server"])
def admin_page(request: pytest.FixtureRequest) -> Iterator[tuple[httpx.Client, str]]:
    """A signed-in administrator's browser, without the browser; and its CSRF token."""
    server: Server = request.getfixturevalue(request.param)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=60) as api:
        account = new_account(server, api, role="admin")
    with httpx.Client(base_url=server.url, cookies={"socle_session": http_sign_in(server, account)},
                      timeout=60) as http:
        token = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/ui/cles").text)
        assert token is not None
        yield http, token.group(1)


def _error_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "fr-container" in response.text or "<main" in response.text


@pytest.mark.parametrize("path", ["/ui/admin/utilisateurs/{id}", "/ui/documents/{id}", "/ui/admin/roles/{id}",
                                  "/ui/avis/{id}", "/ui/chat/{id}"])
def test_an_id_out_of_range_is_an_error_page(admin_page: tuple[httpx.Client, str], path: str) -> None:
    http, _ = admin_page
    _error_page(http.get(path.format(id=2**64)), 422)
    _error_page(http.get(path.format(id=2**31)), 404)  # a possible id, of no row


def test_a_nul_character_in_a_form_or_an_address_is_an_error_page(
        admin_page: tuple[httpx.Client, str]) -> None:
    http, token = admin_page
    _error_page(http.post("/ui/cles", data={"name": "a\x00b", "expires": "", "csrf_token": token}), 400)
    _error_page(http.post("/ui/admin/groupes", data={"name": "a\x00b", "csrf_token": token}), 400)
    _error_page(http.get("/ui/admin/utilisateurs", params={"page": "\x00"}), 400)


def test_a_group_that_is_not_a_number_is_an_error_page(admin_page: tuple[httpx.Client, str]) -> None:
    http, token = admin_page
    response = http.post("/ui/documents", data={"name": "c", "visibility": "group", "group_id": "²",
                                                "csrf_token": token})
    _error_page(response, 422)


def test_a_name_longer_than_its_column_is_an_error_page(admin_page: tuple[httpx.Client, str]) -> None:
    http, token = admin_page
    _error_page(http.post("/ui/admin/groupes", data={"name": "g" * 201, "csrf_token": token}), 422)
