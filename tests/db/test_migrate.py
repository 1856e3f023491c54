"""Migrations under the database lock, on real SQLite files and real PostgreSQL databases: replicas starting
together migrate once, and a process that wants the lock waits for the one holding it."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from socle.db import migrate
from tests.support.servers import ROOT

UPGRADE = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
           "from socle.db import migrate; migrate.upgrade(sys.argv[1])")


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        (tmp_path / "data").mkdir()
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'socle.db'}"
    else:
        yield request.getfixturevalue("postgres_database")


def _upgrade(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", UPGRADE, url], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_processes_upgrading_at_once_migrate_once(empty_database: str) -> None:
    processes = [_upgrade(empty_database) for _ in range(2)]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    revisions = list(ScriptDirectory.from_config(migrate.alembic_config("")).walk_revisions())
    applied = [line for output in outputs for line in output.splitlines() if "Running upgrade" in line]
    assert len(applied) == len(revisions)  # each migration ran once, all of them in one process
    assert migrate.revisions(empty_database) == migrate.heads() and migrate.is_current(empty_database)


def test_an_upgrade_waits_for_the_process_holding_the_lock(empty_database: str) -> None:
    with migrate.locked(empty_database):
        process = _upgrade(empty_database)
        time.sleep(4)
        assert process.poll() is None, process.communicate()[0]  # held back by the lock
        assert migrate.revisions(empty_database) == frozenset()
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output
    assert "another process is migrating the database" in output
    assert migrate.is_current(empty_database)
    migrate.upgrade(empty_database)  # again, current: nothing to do
    assert migrate.is_current(empty_database)


def test_waiting_for_the_schema_gives_up_after_the_wait(empty_database: str) -> None:
    told: list[str] = []
    started = time.monotonic()
    state = migrate.wait_until_current(empty_database, 1.0, poll_s=0.2, on_wait=told.append)
    assert 1.0 <= time.monotonic() - started < 30
    assert state is not None and "not migrated" in state and told == [state]
    migrate.upgrade(empty_database)
    assert migrate.wait_until_current(empty_database, 1.0) is None
