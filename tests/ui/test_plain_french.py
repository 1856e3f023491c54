"""Every page speaks plain French: each page reachable from the menus, as an administrator and as a plain user,
is rendered by a running server and its visible text (and what screen readers read: titles, labels) is scanned
for English UI words and the engines' jargon."""
from __future__ import annotations

import re
from collections import deque
from html.parser import HTMLParser

import httpx
import pytest

from tests.support.servers import Server
from tests.ui.conftest import Account, http_sign_in, new_account

# Whole words, any case. Role names (admin, user, auditor) and model names are identifiers, not words of the UI.
FORBIDDEN = [
    # English words of a UI
    "chat", "dashboard", "settings", "submit", "cancel", "delete", "save", "loading", "search", "login",
    "logout", "sign in", "sign out", "error", "welcome", "upload", "download", "password", "email", "users",
    "home", "status", "health", "failover", "streaming", "endpoint", "prompt", "prompts", "tokens",
    # the engines' jargon
    "backend", "backends", "embedding", "embeddings", "rerank", "reranking", "least-busy", "round-robin",
    "disjoncteur", "circuit breaker", "inférence", "inference", "LLM", "chunk", "chunks", "completion",
    "completions", "top_p", "max_tokens", "vLLM", "llama.cpp", "GGUF", "plongement", "plongements", "preset",
    "presets",
]
PATTERN = re.compile(r"(?<![\w@./-])(" + "|".join(re.escape(word) for word in FORBIDDEN) + r")(?![\w@/-])",
                     re.IGNORECASE)
SKIPPED = re.compile(r"\.(csv|html|md|pdf)$|/deconnexion|/proconnect|/static/|/api/")  # downloads, sign-out, fetches
READ_ALOUD = ("title", "aria-label", "placeholder", "alt")
MAX_PAGES = 80


class VisibleText(HTMLParser):
    """The text a person sees or hears: text outside scripts, styles and code samples, and the attributes that
    screen readers read; the links to the UI's own pages."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.links: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code", "template"):
            self._hidden += 1
        found = dict(attrs)
        self.parts.extend(value for name, value in attrs if name in READ_ALOUD and value)
        href = found.get("href")
        if tag == "a" and href and href.startswith("/ui/"):
            self.links.append(href.split("#")[0])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code", "template") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def crawl(server: Server, account: Account, start: list[str]) -> dict[str, list[str]]:
    """Every page reachable from ``start`` through the UI's own links (one of each address pattern): the
    forbidden words each one shows."""
    found: dict[str, list[str]] = {}
    seen_patterns: set[str] = set()
    queue = deque(start)
    cookie = http_sign_in(server, account)
    with httpx.Client(base_url=server.url, cookies={"socle_session": cookie}, timeout=60) as http:
        while queue and len(found) < MAX_PAGES:
            path = queue.popleft()
            pattern = re.sub(r"\d+", "N", path.split("?")[0])
            if pattern in seen_patterns or SKIPPED.search(path.split("?")[0]):
                continue
            seen_patterns.add(pattern)
            response = http.get(path)
            assert response.status_code == 200, (path, response.status_code)
            text = VisibleText()
            text.feed(response.text)
            found[path] = sorted({match.group(0) for match in PATTERN.finditer(" ".join(text.parts))})
            queue.extend(text.links)
    return found


@pytest.mark.parametrize("role", ["admin", "user"])
def test_every_page_speaks_plain_french(ui_server: Server, admin_api: httpx.Client, role: str) -> None:
    account = new_account(ui_server, admin_api, role=role)
    key = admin_api.post("/keys", json={"user_id": account.id, "name": "pages"}).json()["key"]
    with httpx.Client(base_url=ui_server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as api:
        collection = api.post("/collections", json={"name": "Notes de service"}).json()["id"]
        uploaded = api.post("/documents", data={"collection": str(collection)},
                            files={"file": ("note.txt", "La réunion est fixée à mardi.".encode(), "text/plain")})
        assert uploaded.status_code == 201, uploaded.text
        assert api.post("/conversations", json={"title": "Préparer la réunion", "model": "smollm2-135m"}).status_code == 201
    pages = crawl(ui_server, account, ["/ui/chat", "/ui/accessibilite", "/ui/compte"])
    assert len(pages) >= (20 if role == "admin" else 10), sorted(pages)
    assert "/ui/mentions-legales" in pages and "/ui/cookies" in pages and "/ui/donnees-personnelles" in pages
    speaking_jargon = "\n".join(f"{path}: {', '.join(words)}" for path, words in pages.items() if words)
    assert not speaking_jargon, "\n" + speaking_jargon
