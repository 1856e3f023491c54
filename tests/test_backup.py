"""``socle backup`` of a platform that serves, ``socle restore`` into a fresh one: the same keys, documents and
search, ``/v1/files`` and trainings' folders, on SQLite and on PostgreSQL; damaged, foreign or newer archives and
non-empty targets are refused."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import sqlite3
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import POSTGRES_ADMIN_DSN, TEST_LIMITS, _on_postgres, database_url
from tests.support.documents import pdf, upload, wait_ingested, word
from tests.support.servers import SOCLE, Server, start_server, stop

FILE_BYTES = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}\n'
TRAINING_FILES = {"adapter/adapter_model.safetensors": b"adapter", "adapter/adapter_config.json": b"{}",
                  "adapter.gguf": b"gguf", "checkpoints/0000010/state.pt": b"state"}


def _env(data_dir: Path, database: str | None) -> dict[str, str]:
    """The environment of a ``socle`` command on that data directory and database. The PostgreSQL tools come
    first from the test server's own installation when the suite started one (its major version)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env.update({"SOCLE_DATA_DIR": str(data_dir), "COLUMNS": "300", "HF_HUB_OFFLINE": "1"})
    if database:
        env["SOCLE_DATABASE_URL"] = database
        if not POSTGRES_ADMIN_DSN:
            from pgserver._commands import POSTGRES_BIN_PATH

            env["PATH"] = f"{POSTGRES_BIN_PATH}{os.pathsep}{env.get('PATH', '')}"
    return env


def socle(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SOCLE), *args], env=env, capture_output=True, text=True, timeout=300)


def _client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest, own_database: str | None) -> Iterator[str | None]:
    """A second, empty database of the same kind as ``own_database``: where the backup is restored."""
    if own_database is None:
        yield None
        return
    admin = request.getfixturevalue("postgres_admin")
    name = f"socle_restored_{secrets.token_hex(4)}"
    _on_postgres(admin, f'CREATE DATABASE "{name}"')
    yield database_url(admin, name)
    _on_postgres(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_while_serving_then_restore_into_a_fresh_platform(tmp_path: Path, own_database: str | None,
                                                                fresh_database: str | None) -> None:
    source = tmp_path / "source"
    server = start_server(source, database_url=own_database, extra_env=TEST_LIMITS)
    try:
        admin = _client(server, server.admin_key)
        user = admin.post("/users", json={"email": "agent@interieur.gouv.fr"}).json()
        key = admin.post("/keys", json={"user_id": user["id"], "name": "sauvegarde"}).json()["key"]
        http = _client(server, key)
        collection = http.post("/collections", json={"name": "guides"}).json()["id"]
        ingested = upload(http, collection, pdf(tmp_path / "passeport.pdf")).json()["id"]
        assert wait_ingested(http, [ingested])[ingested]["status"] == "ready"
        sdk = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        kept = sdk.files.create(file=("lots.jsonl", io.BytesIO(FILE_BYTES)), purpose="batch").id
    finally:
        stop(server.process)
    training = source / "fine_tuning" / "job-1"  # a training's adapter and checkpoints (no GPU needed to back up)
    for relative, body in TRAINING_FILES.items():
        (training / relative).parent.mkdir(parents=True, exist_ok=True)
        (training / relative).write_bytes(body)
    (training / "checkpoints" / ".partial-20").mkdir()  # a checkpoint being written: left out
    (training / "checkpoints" / ".partial-20" / "state.pt").write_bytes(b"half")
    # Restarted without ingestion: the next upload waits, as a file of the data directory, in the backup.
    server = start_server(source, database_url=own_database, extra_env={**TEST_LIMITS, "SOCLE_INGESTION_WORKERS": "0"})
    archive = tmp_path / "backups" / "socle.tar.gz"
    try:
        http = _client(server, key)
        waiting = upload(http, collection, word(tmp_path / "teletravail.docx")).json()["id"]
        assert http.get(f"/documents/{waiting}").json()["status"] == "queued"
        stop_traffic = threading.Event()

        def traffic() -> None:  # the platform keeps serving (and writing usage rows) during the backup
            with _client(server, key) as busy:
                while not stop_traffic.is_set():
                    assert busy.get("/models").status_code == 200

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            done = socle(_env(source, own_database), "backup", str(archive))
        finally:
            stop_traffic.set()
            worker.join()
        assert done.returncode == 0, done.stderr
        assert server.process.poll() is None and http.get("/documents").status_code == 200
    finally:
        stop(server.process)
    names = [member.name for member in tarfile.open(archive)]
    assert names[-1] == "manifest.json" and f"documents/{waiting}" in names and "data/admin.key" in names
    assert f"files/{kept.removeprefix('file-')}" in names
    assert {name for name in names if name.startswith("fine_tuning/")} == {
        f"fine_tuning/job-1/{relative}" for relative in TRAINING_FILES}
    assert oct(archive.stat().st_mode & 0o777) == "0o600"

    target = tmp_path / "restored"
    restored = socle(_env(target, fresh_database), "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    again = socle(_env(target, fresh_database), "restore", str(archive))
    assert again.returncode == 1 and "--force" in again.stderr and "not empty" in again.stderr

    server = start_server(target, database_url=fresh_database, extra_env=TEST_LIMITS)
    try:
        sdk = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        assert "multilingual-e5-small" in {model.id for model in sdk.models.list()}
        http = _client(server, key)
        listed = {d["id"]: d["name"] for d in http.get("/documents", params={"collection": collection}).json()["data"]}
        assert listed == {ingested: "passeport.pdf", waiting: "teletravail.docx"}
        states = wait_ingested(http, [ingested, waiting])  # the waiting one is ingested from the restored file
        assert {s["status"] for s in states.values()} == {"ready"}, states
        for prompt, document in (("délai de fabrication du passeport", ingested),
                                 ("télétravailler trois jours par semaine", waiting)):
            hits = http.post("/search", json={"prompt": prompt, "collections": [collection]}).json()["data"]
            assert hits and hits[0]["chunk"]["metadata"]["document_id"] == document, hits
        assert _client(server, server.admin_key).get("/users").status_code == 200  # the restored admin.key
        assert sdk.files.content(kept).read() == FILE_BYTES and sdk.files.retrieve(kept).purpose == "batch"
        for relative, body in TRAINING_FILES.items():
            assert (target / "fine_tuning" / "job-1" / relative).read_bytes() == body
        assert not (target / "fine_tuning" / "job-1" / "checkpoints" / ".partial-20").exists()
    finally:
        stop(server.process)

    forced = socle(_env(target, fresh_database), "restore", "--force", str(archive))
    assert forced.returncode == 0, forced.stderr


# ---- refusals, on a SQLite platform made without a server ----------------------------------------------

@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A backup of a platform at the current schema, with one uploaded file."""
    env = _env(tmp_path / "made", None)
    assert socle(env, "db", "upgrade").returncode == 0
    (tmp_path / "made" / "documents").mkdir()
    (tmp_path / "made" / "documents" / "7").write_bytes(b"orphan upload: no row points at it")
    (tmp_path / "made" / "files").mkdir()
    (tmp_path / "made" / "files" / "9").write_bytes(b"orphan file: no row points at it")
    (tmp_path / "made" / "fine_tuning" / "job-3").mkdir(parents=True)
    (tmp_path / "made" / "fine_tuning" / "job-3" / "adapter.gguf").write_bytes(b"gguf")
    out = tmp_path / "made.tar.gz"
    done = socle(env, "backup", str(out))
    assert done.returncode == 0, done.stderr
    return out


def _revisions(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return sorted(row[0] for row in connection.execute("SELECT version_num FROM alembic_version"))


def _heads() -> list[str]:
    from alembic.script import ScriptDirectory

    from socle.db.migrate import alembic_config

    return sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def _repack(archive: Path, out: Path, *, member: str, change: bytes | None = None,
            manifest: dict[str, object] | None = None) -> Path:
    """A copy of the archive with one member's content (or the manifest's fields) changed."""
    with tarfile.open(archive) as source, tarfile.open(out, "w:gz") as target:
        for info in source.getmembers():
            body = source.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == member and change is not None:
                body = change
            if info.name == "manifest.json" and manifest:
                body = json.dumps({**json.loads(body), **manifest}).encode()
            info.size = len(body)
            target.addfile(info, io.BytesIO(body))
    return out


def test_an_orphan_upload_is_kept_and_a_restore_upgrades_to_head(tmp_path: Path, archive: Path) -> None:
    env = _env(tmp_path / "target", None)
    done = socle(env, "restore", str(archive))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "target" / "documents" / "7").read_bytes().startswith(b"orphan")
    assert (tmp_path / "target" / "files" / "9").read_bytes().startswith(b"orphan")
    assert (tmp_path / "target" / "fine_tuning" / "job-3" / "adapter.gguf").read_bytes() == b"gguf"
    assert _revisions(tmp_path / "target" / "socle.db") == _heads()


def test_an_older_backup_is_migrated_to_head(tmp_path: Path) -> None:
    env = _env(tmp_path / "old", None)
    assert socle(env, "db", "upgrade", "--revision", "0010").returncode == 0
    assert socle(env, "backup", str(tmp_path / "old.tar.gz")).returncode == 0
    manifest = json.load(tarfile.open(tmp_path / "old.tar.gz").extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["alembic_revisions"] == ["0010"]
    target = _env(tmp_path / "new", None)
    done = socle(target, "restore", str(tmp_path / "old.tar.gz"))
    assert done.returncode == 0, done.stderr
    assert _revisions(tmp_path / "new" / "socle.db") == _heads() != ["0010"]


def test_a_corrupted_archive_is_refused(tmp_path: Path, archive: Path) -> None:
    env = _env(tmp_path / "target", None)
    for member in ("documents/7", "files/9", "fine_tuning/job-3/adapter.gguf"):
        damaged = _repack(archive, tmp_path / "damaged.tar.gz", member=member, change=b"tampered")
        done = socle(env, "restore", str(damaged))
        assert done.returncode == 1 and "checksum mismatch" in done.stderr and member in done.stderr
        assert not (tmp_path / "target" / "socle.db").exists()
        damaged.unlink()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    done = socle(env, "restore", str(truncated))
    assert done.returncode == 1 and "not a readable backup archive" in done.stderr


def test_a_newer_schema_or_another_database_kind_is_refused(tmp_path: Path, archive: Path) -> None:
    env = _env(tmp_path / "target", None)
    newer = _repack(archive, tmp_path / "newer.tar.gz", member="manifest.json",
                    manifest={"alembic_revisions": ["9999"], "platform_version": "9.0.0"})
    done = socle(env, "restore", str(newer))
    assert done.returncode == 1 and "newer than this version" in done.stderr and "9.0.0" in done.stderr
    foreign = _repack(archive, tmp_path / "foreign.tar.gz", member="manifest.json",
                      manifest={"database": "postgresql"})
    done = socle(env, "restore", str(foreign))
    assert done.returncode == 1 and "sqlite" in done.stderr


def test_a_non_empty_target_needs_force(tmp_path: Path, archive: Path) -> None:
    (tmp_path / "files-only" / "files").mkdir(parents=True)
    (tmp_path / "files-only" / "files" / "1").write_bytes(b"x")
    done = socle(_env(tmp_path / "files-only", None), "restore", str(archive))
    assert done.returncode == 1 and "not empty" in done.stderr and "files" in done.stderr
    env = _env(tmp_path / "busy", None)
    assert socle(env, "db", "upgrade").returncode == 0
    done = socle(env, "restore", str(archive))
    assert done.returncode == 1 and "not empty" in done.stderr
    done = socle(env, "restore", "--force", str(archive))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "busy" / "documents" / "7").exists()


def test_an_existing_output_is_not_overwritten(tmp_path: Path, archive: Path) -> None:
    done = socle(_env(tmp_path / "made", None), "backup", str(archive))
    assert done.returncode == 1 and "exists" in done.stderr


# ---- the pieces: consistency of the documents with the snapshot, the PostgreSQL tools -------------------

def test_a_file_the_snapshot_needs_is_pinned_with_its_content_or_the_snapshot_is_taken_again(
        tmp_path: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from socle import backup as backups
    from socle.settings import Settings

    documents, pins = tmp_path / "documents", tmp_path / "pins"
    documents.mkdir()
    pins.mkdir()
    (documents / "5").write_bytes(b"five")
    five = hashlib.sha256(b"five").hexdigest()
    assert not backups._pin(documents, pins, {"6": five})  # ingested meanwhile: its file is gone
    assert backups._pin(documents, pins, {"5": five}) and (pins / "5").read_bytes() == b"five"
    assert not backups._pin(documents, pins, {"5": hashlib.sha256(b"other").hexdigest()})
    assert not (pins / "5").exists()  # a stale pin is dropped, and taken again next time

    real, calls = backups._sqlite_snapshot, []

    def snapshot(source: Path, dump: Path) -> backups.Snapshot:
        calls.append(source)
        taken = real(source, dump)
        return backups.Snapshot(taken.revisions, {"8": five} if len(calls) == 1 else {},
                                {"12": five} if len(calls) == 2 else {})  # a /v1/files file deleted meanwhile

    monkeypatch.setattr(backups, "_sqlite_snapshot", snapshot)
    manifest = backups.backup(Settings(data_dir=tmp_path / "made"), tmp_path / "again.tar.gz")
    assert len(calls) == 3 and {"documents/7", "files/9", "fine_tuning/job-3/adapter.gguf"} <= set(manifest["files"])
    assert manifest["format_version"] == backups.FORMAT_VERSION == 2


def test_postgresql_tools_never_see_the_password_and_their_absence_is_explained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.engine import make_url

    from socle import backup as backups
    from socle.settings import Settings

    url = make_url("postgresql+asyncpg://socle:s3cr%40t@db.example:5433/socle?ssl=require")
    assert not any("s3cr" in arg for arg in backups._pg_args(url))
    env = backups._pg_env(url)
    assert env["PGPASSWORD"] == "s3cr@t" and env["PGSSLMODE"] == "require"
    monkeypatch.setenv("PATH", str(tmp_path))
    settings = Settings(data_dir=tmp_path / "data", database_url="postgresql+asyncpg://socle:x@127.0.0.1:1/socle")
    with pytest.raises(backups.BackupError, match="pg_dump is not installed.*postgresql-client"):
        backups.backup(settings, tmp_path / "out.tar.gz")
