"""Browser tests of the web UI: a really running server, driven through Debian's Chromium by Playwright
(``/usr/bin/chromium``: no browser is ever downloaded). Each page is saved as a screenshot under
``tests/ui/artifacts/`` and checked with axe-core (installed by the build, injected from the local file)."""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, ViewportSize, expect, sync_playwright

from tests.conftest import _on_postgres, database_url
from tests.support.servers import ROOT, SOCLE, Server, free_port, start_server, stop, wait_until_up

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless: no browser is ever downloaded."""
    assert CHROMIUM.exists(), "Debian's Chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()
AXE = ROOT / "socle" / "ui" / "node_modules" / "axe-core" / "axe.min.js"
AXE_FRENCH = AXE.parent / "locales" / "fr.json"  # the rules' descriptions in French, for the statement
RECORDED = ROOT / "socle" / "ui" / "accessibilite.json"  # shipped: the accessibility statement shows it
CHECKED: dict[str, dict[str, Any]] = {}  # this run's pages, by screenshot name
ARTIFACTS = Path(__file__).parent / "artifacts"
# The README's screenshots (docs/ecrans/), refreshed by running the tests that show these pages with
# SOCLE_RECORD_SCREENSHOTS=1: what a window of 1280 × 900 shows, in at most 96 colours.
SCREENS = ROOT / "docs" / "ecrans"
SCREENED = {"chat", "chat-fiche-modele", "documents", "consommation", "compte", "tableau-de-bord",
            "admin-utilisateurs", "admin-groupes", "admin-roles", "admin-quotas", "admin-modeles",
            "admin-journal-audit", "admin-parametres", "chat-accueil", "avis-rapport", "affiner", "affiner-essai"}
PHONE: ViewportSize = {"width": 390, "height": 844}  # every checked page is also seen on a phone's screen
PASSWORD = "un mot de passe bien long"
CATALOGUE = """
models:
  - {{id: smollm2-135m, type: chat, backends: [{{type: llamacpp}}], max_context_length: 4096}}
  - {{id: multilingual-e5-small, type: embeddings, backends: [{{type: e5}}]}}
  - {{id: remote-endless, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-endless}}]}}
  - {{id: hostile, type: chat, backends: [{{type: openai, url: "{hostile}/v1"}}]}}
"""
ENV = {"SOCLE_UI_COOKIE_SECURE": "false",  # the tests speak plain http to 127.0.0.1
       "SOCLE_MAX_BODY_BYTES": "65536", "SOCLE_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024), "SOCLE_INGESTION_WORKERS": "1"}


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    password: str


@pytest.fixture(scope="session")
def hostile_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("hostile") / "hostile.log"
    process = subprocess.Popen([sys.executable, "-m", "tests.ui.hostile_backend", "--port", str(port)], cwd=ROOT,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url + "/stats", process, log)
    yield url
    stop(process)


@pytest.fixture(scope="session")
def ui_catalogue(tmp_path_factory: pytest.TempPathFactory, mock_backend: str, hostile_backend: str) -> Path:
    config = tmp_path_factory.mktemp("ui-config") / "models.yaml"
    config.write_text(CATALOGUE.format(mock=mock_backend, hostile=hostile_backend))
    return config


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory, ui_catalogue: Path) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("ui-server"), config=ui_catalogue, extra_env=ENV)
    yield server
    stop(server.process)


@pytest.fixture(scope="session")
def ui_postgres_server(tmp_path_factory: pytest.TempPathFactory, ui_catalogue: Path,
                       postgres_admin: str) -> Iterator[Server]:
    """The same server on PostgreSQL (+ pgvector), in a database of its own."""
    name = f"socle_ui_{secrets.token_hex(4)}"
    _on_postgres(postgres_admin, f'CREATE DATABASE "{name}"')
    server = start_server(tmp_path_factory.mktemp("ui-postgres-server"), config=ui_catalogue,
                          database_url=database_url(postgres_admin, name), extra_env=ENV)
    yield server
    stop(server.process)
    _on_postgres(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def api_of(server: Server) -> httpx.Client:
    """The platform's API as its first admin (close it after use)."""
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                        timeout=60)


@pytest.fixture(scope="session")
def admin_api(ui_server: Server) -> Iterator[httpx.Client]:
    with api_of(ui_server) as http:
        yield http


def new_account(server: Server, admin_api: httpx.Client, *, role: str = "user") -> Account:
    """A user with a password, set the way an operator does it: ``socle users set-password --password-stdin``."""
    email = f"agent-{secrets.token_hex(4)}@ministere.gouv.fr"
    response = admin_api.post("/users", json={"email": email, "name": "Agent", "role": role})
    assert response.status_code == 201, response.text
    done = subprocess.run([str(SOCLE), "users", "set-password", email, "--password-stdin"], input=PASSWORD + "\n",
                          env=server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Account(response.json()["id"], email, PASSWORD)


@pytest.fixture
def account(ui_server: Server, admin_api: httpx.Client) -> Account:
    return new_account(ui_server, admin_api)


@pytest.fixture(scope="package")  # closed before other packages' async tests: its loop would be theirs
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def context(browser: Browser, ui_server: Server) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=ui_server.url, locale="fr-FR", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of deletions
    return page


@contextmanager
def page_on(browser: Browser, server: Server, **options: Any) -> Iterator[Page]:
    """A page in a browser context of its own on another server than ``ui_server`` (``options``: the
    context's, e.g. extra HTTP headers)."""
    context = browser.new_context(base_url=server.url, locale="fr-FR", viewport={"width": 1280, "height": 900},
                                  **options)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Page, account: Account) -> None:
    page.goto("/ui/connexion")
    page.get_by_label("Adresse électronique").fill(account.email)
    page.get_by_label("Mot de passe").fill(account.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url("/ui/chat")


def tab_to(page: Page, selector: str, key: str = "Tab", *, presses: int = 150) -> None:
    """Move the focus with the keyboard alone until it reaches ``selector``; every stop shows its focus."""
    for _ in range(presses):
        page.keyboard.press(key)
        focused = page.evaluate("""(selector) => {
            const element = document.activeElement;
            const style = getComputedStyle(element);
            return {reached: element.matches(selector), visible: element === document.body ||
                    (element.matches(":focus-visible") && style.outlineStyle !== "none")};
        }""", selector)
        assert focused["visible"], page.evaluate("document.activeElement.outerHTML")
        if focused["reached"]:
            return
    raise AssertionError(f"the keyboard never reaches {selector}")


def http_sign_in(server: Server, account: Account) -> str:
    """Sign in without a browser; the session cookie's value."""
    with httpx.Client(base_url=server.url) as http:
        response = http_sign_in_attempt(http, account.email, account.password)
        assert response.status_code == 303, response.text
        return response.cookies["socle_session"]


def http_sign_in_attempt(http: httpx.Client, email: str, password: str,
                         headers: dict[str, str] | None = None) -> httpx.Response:
    """The sign-in form, filled and sent as a browser does (its token and cookie) with ``http``."""
    form = http.get("/ui/connexion", headers=headers)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return http.post("/ui/connexion", data={"email": email, "password": password, "csrf_token": token.group(1)},
                     headers=headers)


@pytest.fixture(scope="session", autouse=True)
def accessibility_record() -> Iterator[None]:
    """After the run, what axe-core found on each page, as the accessibility statement shows it: always under
    ``artifacts/``; into the package (``socle/ui/accessibilite.json``) with ``SOCLE_RECORD_ACCESSIBILITY=1``,
    on a run of the whole of ``tests/ui``."""
    yield
    if not CHECKED:
        return
    record = {"checked_at": datetime.now(UTC).date().isoformat(),
              **{key: value for checked in CHECKED.values() for key, value in checked.pop("about").items()},
              "pages": sorted(CHECKED.values(), key=lambda checked: checked["name"])}
    ARTIFACTS.mkdir(exist_ok=True)
    text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"
    (ARTIFACTS / "accessibilite.json").write_text(text)
    if os.environ.get("SOCLE_RECORD_ACCESSIBILITY") == "1":
        RECORDED.write_text(text)


def _kind_of_page(page: Page) -> str:
    """The page as the statement names it: its title, or for a page about one thing (an id in its address: a
    collection, a user...) the menu entry it belongs to, never the test's data."""
    if not re.search(r"/\d+(/|$)", urlsplit(page.url).path):
        return page.title().removesuffix(" — Socle IA")
    for menu in ("#menu-admin", "#navigation"):
        current = page.locator(f'{menu} [aria-current="page"]')
        if current.count():
            return f"{(current.first.text_content() or '').strip()} (page d'un élément)"
    return "Page d'un élément"


def check_page(page: Page, name: str, shots: Path = ARTIFACTS) -> None:
    """Screenshot the page into ``shots`` (as the test's window shows it, and on a phone's screen of 390 × 844:
    ``<name>.telephone.png``), then run axe-core on it (its descriptions in French): no serious or critical
    violation. What it found is kept for the accessibility statement (:func:`accessibility_record`)."""
    shots.mkdir(exist_ok=True)
    page.screenshot(path=shots / f"{name}.png", full_page=True)
    window = page.viewport_size
    if window is not None and window["width"] > PHONE["width"]:
        page.set_viewport_size(PHONE)
        page.screenshot(path=shots / f"{name}.telephone.png", full_page=True)
        page.set_viewport_size(window)
    if os.environ.get("SOCLE_RECORD_SCREENSHOTS") == "1" and name in SCREENED:
        _record_screen(page, name)
    page.evaluate(AXE.read_text())
    page.evaluate("(locale) => axe.configure({locale})", json.loads(AXE_FRENCH.read_text()))
    violations: list[dict[str, Any]] = page.evaluate("""async () => {
        const results = await axe.run(document, {resultTypes: ["violations"]});
        return results.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                                               nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}));
    }""")
    (shots / f"{name}.axe.json").write_text(json.dumps(violations, indent=2, ensure_ascii=False))
    browser = page.context.browser
    CHECKED[name] = {"name": name, "path": urlsplit(page.url).path, "title": _kind_of_page(page),
                     "violations": [{key: v[key] for key in ("id", "impact", "help")} for v in violations],
                     "about": {"tool": f"axe-core {page.evaluate('axe.version')}",
                               "browser": f"Chromium {browser.version if browser else ''}".strip()}}
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, f"{name}: {json.dumps(serious, indent=2, ensure_ascii=False)}"


def _record_screen(page: Page, name: str) -> None:
    """The page as a window shows it, for the README, made small: a palette of 96 colours (text stays sharp)."""
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(page.screenshot())).convert("RGB")
    SCREENS.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(SCREENS / f"{name}.png", optimize=True)


def create_collection(page: Page, name: str) -> int:
    """A private collection, created through its form; its id."""
    page.goto("/ui/documents")
    page.get_by_label("Nom").fill(name)
    page.get_by_role("button", name="Créer la collection").click()
    expect(page).to_have_url(re.compile(r"/ui/documents/\d+\?ok=collection-creee$"))
    return int(page.url.split("?")[0].rsplit("/", 1)[1])


def upload_ready(page: Page, collection_id: int, name: str, content: bytes, *, timeout_s: float = 180) -> int:
    """A file sent the way the documents page sends it (the session's cookie and CSRF token), once it is ready
    and embedded (so that hybrid search ranks it the same on every run)."""
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    response = page.request.post("/ui/api/documents", headers={"x-csrf-token": csrf}, multipart={
        "collection": str(collection_id), "file": {"name": name, "mimeType": "application/octet-stream",
                                                   "buffer": content}})
    assert response.status == 201, response.text()
    document_id = int(response.json()["id"])
    deadline = time.monotonic() + timeout_s
    while (state := page.request.get(f"/ui/api/documents/{document_id}").json())["status"] != "ready" \
            or state["embedded"] < state["chunks"]:
        assert state["status"] != "failed" and time.monotonic() < deadline, state
        time.sleep(0.2)
    return document_id


def model_picker(page: Page) -> Locator:
    return page.get_by_role("combobox", name=re.compile("^Modèle"))


def ask(page: Page, model: str, text: str) -> None:
    model_picker(page).select_option(model)
    page.get_by_role("textbox", name=re.compile("^Votre (message|question)")).fill(text)
    page.get_by_role("button", name="Envoyer").click()


def answered(page: Page, index: int = 0, *, timeout_ms: int = 60_000) -> Locator:
    """The ``index``-th answer of the conversation, once it is complete."""
    answer = page.locator(".socle-message--assistant").nth(index)
    expect(answer.locator(".socle-message__body")).to_have_attribute("data-done", "true", timeout=timeout_ms)
    return answer


def csrf_of(page: Page) -> str:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    return token
