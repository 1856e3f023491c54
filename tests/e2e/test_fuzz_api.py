"""The whole API, fuzzed from its own OpenAPI schema on SQLite and on PostgreSQL: whatever a client sends,
the server answers without a 5xx and keeps its keep-alive connections open.

Each operation gets a fixed number of generated requests, that fit its schema and that do not, from a
derandomized generator: a run is reproducible and bounded. The servers are the test's own, since the
fuzzer creates, changes and deletes whatever it is allowed to.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.conftest import TEST_LIMITS
from tests.support.servers import Server, start_server, stop

EXAMPLES_PER_OPERATION = 30
# Models of the test catalogue that answer at once (the mock backend), put into generated requests.
SERVED_MODELS = ["remote-chat", "remote-embed"]
# What a 5xx may rightly say, by operation: none. /ready answers 200 though the test catalogue names backends
# on closed ports on purpose (a backend down is no reason to take a replica out).
EXPECTED: dict[tuple[str, str], set[int]] = {}
# Calls that would take the fuzzing admin's own account or key away, and end the run's authentication:
# other accounts and keys are fair game.
SELF_DESTRUCTIVE = {("DELETE", "/v1/users/{user_id}"), ("PATCH", "/v1/users/{user_id}"),
                    ("DELETE", "/v1/keys/{key_id}"), ("DELETE", "/v1/tokens/{key_id}")}


def _header(response: schemathesis.Response, name: str) -> str:
    return next((values[0] for key, values in response.headers.items() if key.lower() == name and values), "")


@pytest.fixture(params=["sqlite", "postgres"])
def fuzzed_server(request: pytest.FixtureRequest, tmp_path: Path, catalogue: Path) -> Iterator[Server]:
    database = request.getfixturevalue("postgres_database") if request.param == "postgres" else None
    server = start_server(tmp_path / "server", config=catalogue, database_url=database, extra_env=TEST_LIMITS)
    yield server
    stop(server.process)


def _own(server: Server, session: requests.Session) -> dict[str, int]:
    me = session.get(f"{server.base_url}/me", timeout=30).json()
    keys = session.get(f"{server.base_url}/keys", timeout=30).json()["data"]
    key_id = next(key["id"] for key in keys if server.admin_key.startswith(key["prefix"]))
    return {"user_id": me["id"], "key_id": key_id}


@pytest.mark.slow
def test_no_request_makes_the_server_fail(fuzzed_server: Server) -> None:
    server = fuzzed_server
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {server.admin_key}"
        own = _own(server, session)
        previous = {"label": ""}
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) > 40  # the whole API, not a part of it
        for operation in operations:
            cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                              operation.as_strategy(GenerationMode.NEGATIVE))
            models = st.one_of(st.none(), st.sampled_from(SERVED_MODELS))

            @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=cases, model=models)
            def probe(case: schemathesis.Case, model: str | None) -> None:
                if model and isinstance(case.body, dict) and "model" in case.body:
                    case.body["model"] = model  # a random name stops at "no such model"; a served one goes on
                key = (case.method.upper(), case.path)
                if key in SELF_DESTRUCTIVE:
                    named = case.path_parameters or {}
                    assume(all(named.get(name) != value for name, value in own.items()))
                try:
                    response = case.call(base_url=server.url, session=session, timeout=60)
                except requests.RequestException as exc:  # no answer in time, or a connection dropped
                    failures.append(f"{operation.label} (after {previous['label']}): {exc!r} to "
                                    f"{case.as_curl_command()}"[:2000])
                    return
                previous["label"] = operation.label
                # A 413 closes its connection on purpose: the rest of an oversized body is not read.
                closed = _header(response, "connection").lower() == "close" and response.status_code != 413
                status = response.status_code
                failed = closed or (status >= 500 and status not in EXPECTED.get(key, ()))
                if _header(response, "content-type").startswith("text/event-stream"):
                    failed = failed or b'"server_error"' in response.content  # a stream that ended in failure
                if failed:
                    failures.append(f"{operation.label}: {status} to {case.as_curl_command()}"[:2000])

            probe()
    assert not failures, "\n".join(failures[:30])
