"""Backups and restores: the database and the files of the data directory in one ``.tar.gz``, consistent together.

Archive layout: ``database/socle.sqlite3`` (SQLite, taken with the online backup API) or
``database/socle.pgdump`` (PostgreSQL, ``pg_dump --format=custom``), ``documents/<id>`` (uploads waiting for
their ingestion), ``files/<id>`` (the bytes of ``/v1/files``: fine-tuning data, batch input and results),
``fine_tuning/job-<id>/...`` (the trainings' adapters and complete checkpoints), ``data/admin.key`` and
``data/models.manifest.json`` when present, and ``manifest.json`` last (format, versions, schema revision,
SHA-256 of every other member). Written and read as a stream:
memory stays bounded whatever the size; the database dump is staged in a temporary file next to the output.

Why the documents are taken *after* the database snapshot: an upload's file is written and synced before
its row is committed (:mod:`socle.rag.documents`), so every row of the snapshot had its file on disk when
the snapshot was taken. A file can still vanish afterwards (its ingestion finished, or it was deleted):
files are therefore pinned (hard-linked) right after the snapshot and every document the snapshot still
needs a file for (queued or processing) is checked against its content hash; should one be missing, a new
snapshot is taken, in which that document is ingested or gone. The same holds for ``/v1/files``, whose every
row needs its bytes (written before the row too, :mod:`socle.files.service`). Files the snapshot does not
reference (uploaded after it) are harmless orphans: no row points at them, and a restore keeps them untouched.
The trainings' folders are pinned after the snapshot too; a checkpoint being written (a hidden ``.partial-``
folder, renamed when complete) is left out.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import URL, make_url

from socle import __version__
from socle.db import migrate
from socle.settings import Settings

FORMAT = "socle-backup"
FORMAT_VERSION = 2  # 2: files/ and fine_tuning/ too (an older version refuses such an archive by its format)
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/socle.sqlite3"
PG_MEMBER = "database/socle.pgdump"
DATA_FILES = ("admin.key", "models.manifest.json")  # small state files of the data directory
FINE_TUNING = "fine_tuning"  # the trainings' working folders under the data directory (socle.platform)
FOLDERS = ("documents", "files", FINE_TUNING)  # the folders of the data directory a restore replaces
_NEEDS_FILE = ("queued", "processing")  # document states whose ingestion still reads the uploaded file
_ATTEMPTS = 5
_BLOCK = 1024 * 1024
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,200}"  # a path component: never hidden, never ".."
_TREE_FILE = re.compile(rf"job-[0-9]+(/{_PART}){{1,8}}")
_MEMBER = re.compile(r"(database/socle\.(sqlite3|pgdump)|(documents|files)/[0-9]+|data/(admin\.key|models\.manifest\.json)"
                     rf"|{FINE_TUNING}/{_TREE_FILE.pattern})")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass
class Snapshot:
    """What the database snapshot says: its schema revisions and the files it still needs."""

    revisions: list[str]
    needed: dict[str, str] = field(default_factory=dict)  # document file name -> content SHA-256
    files: dict[str, str] = field(default_factory=dict)  # /v1/files file name -> content SHA-256 (every row)


# ---- backup ----------------------------------------------------------------------------------------

def backup(settings: Settings, out: Path) -> dict[str, Any]:
    """Write the archive to ``out`` (refused if it exists); returns its manifest."""
    if out.exists():
        raise BackupError(f"{out} exists: choose a new file name.")
    out.parent.mkdir(parents=True, exist_ok=True)
    url = make_url(settings.resolved_database_url)
    with tempfile.TemporaryDirectory(prefix=".socle-backup-", dir=out.parent) as tmp:
        work = Path(tmp)
        pins = _pin_dir(settings.data_dir, work)
        try:
            if _kind(url) == "sqlite":
                member, dump, snapshot = SQLITE_MEMBER, work / "socle.sqlite3", None
                for _ in range(_ATTEMPTS):
                    snapshot = _sqlite_snapshot(_sqlite_path(url), dump)
                    if _pin_needed(settings, pins, snapshot):
                        break
                else:
                    raise BackupError("Documents kept changing during the backup: try again.")
            else:
                member, dump = PG_MEMBER, work / "socle.pgdump"
                snapshot = asyncio.run(_pg_dump(url, dump, settings, pins))
            assert snapshot is not None
            _pin_tree(settings.data_dir / FINE_TUNING, pins / FINE_TUNING)
            members = [(member, dump)]
            for folder in ("documents", "files"):
                pinned = pins / folder
                members += sorted((f"{folder}/{p.name}", p) for p in pinned.iterdir()) if pinned.exists() else []
            trees = pins / FINE_TUNING
            members += sorted((f"{FINE_TUNING}/{p.relative_to(trees).as_posix()}", p) for p in trees.rglob("*")
                              if p.is_file()) if trees.exists() else []
            members += [(f"data/{name}", settings.data_dir / name) for name in DATA_FILES
                        if (settings.data_dir / name).is_file()]
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "platform_version": __version__,
                        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "database": _kind(url), "alembic_revisions": snapshot.revisions, "files": {}}
            _write_archive(out, work / "archive.tar.gz", members, manifest)
        finally:
            shutil.rmtree(pins, ignore_errors=True)
    return manifest


def _write_archive(out: Path, partial: Path, members: list[tuple[str, Path]], manifest: dict[str, Any]) -> None:
    """Stream the members into a gzip'd tar, hashing them as they go; the manifest comes last."""
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # personal data: owner only
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w|gz") as tar:
            for name, path in members:
                with path.open("rb") as handle:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = os.fstat(handle.fileno()).st_size, 0o600, int(path.stat().st_mtime)
                    hashing = _Hashing(handle)
                    tar.addfile(info, hashing)
                    manifest["files"][name] = {"sha256": hashing.digest.hexdigest(), "size": info.size}
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(datetime.now().timestamp())
            tar.addfile(info, _Hashing(_bytes_reader(body)))
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(partial, out)  # the archive appears whole, or not at all


def _pin_dir(data_dir: Path, work: Path) -> Path:
    """A private folder in the data directory, beside the documents and files (same file system: hard links cost
    nothing); in the work folder, where files are copied, when the data directory is read-only to this user."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".backup-", dir=data_dir))
    except OSError:
        (work / "pins").mkdir()
        return work / "pins"


def _pin_needed(settings: Settings, pins: Path, snapshot: Snapshot) -> bool:
    """Pin the documents and the ``/v1/files``; True when every file the snapshot needs is pinned."""
    documents = _pin(settings.documents_dir, pins / "documents", snapshot.needed)
    return _pin(settings.files_dir, pins / "files", snapshot.files) and documents


def _pin_tree(source: Path, pins: Path) -> None:
    """Pin the trainings' folders file by file: adapters and complete checkpoints (a checkpoint being written is a
    hidden folder, left out; a file gone meanwhile, an old checkpoint dropped, is skipped)."""
    for path in sorted(source.rglob("*")) if source.is_dir() else ():
        relative = path.relative_to(source).as_posix()
        if not _TREE_FILE.fullmatch(relative) or not path.is_file():
            continue
        target = pins / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        _link(path, target)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileNotFoundError:
        return  # gone meanwhile
    except OSError:  # no hard links on this file system: a copy
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(source, target)


def _pin(documents: Path, pins: Path, needed: dict[str, str]) -> bool:
    """Pin every file of the folder not pinned yet; True when each needed one is pinned with its content."""
    pins.mkdir(exist_ok=True)
    for source in documents.iterdir() if documents.is_dir() else ():
        target = pins / source.name
        if not source.name.isdigit() or not source.is_file() or target.exists():
            continue  # a file being staged has a hidden name
        _link(source, target)  # ingested or deleted meanwhile: skipped
    complete = True
    for name, digest in needed.items():
        pinned = pins / name
        if not pinned.exists() or _sha256(pinned) != digest:
            pinned.unlink(missing_ok=True)  # a stale pin: taken again next time
            complete = False
    return complete


def _sqlite_snapshot(source: Path, dump: Path) -> Snapshot:
    """Copy the live database with SQLite's online backup API (writers go on meanwhile), then read it."""
    if not source.is_file():
        raise BackupError(f"No database at {source}: nothing to back up.")
    dump.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(dump)
    try:
        src.backup(dst)  # one step: a consistent read of the whole database
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        revisions = [row[0] for row in dst.execute("SELECT version_num FROM alembic_version")]
        needed = {str(i): h for i, h in dst.execute(
            "SELECT id, content_hash FROM documents WHERE status IN (?, ?)", _NEEDS_FILE)}
        has_files = dst.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'files'").fetchone()
        files = {str(i): h for i, h in dst.execute("SELECT id, content_hash FROM files")} if has_files else {}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"Cannot read the database {source}: {exc}") from exc
    finally:
        dst.close()
        src.close()
    return Snapshot(revisions, needed, files)


async def _pg_dump(url: URL, dump: Path, settings: Settings, pins: Path) -> Snapshot:
    """pg_dump from a snapshot exported by our own transaction, whose needed files are pinned first."""
    import asyncpg

    pg_dump = _tool("pg_dump")
    connection = await _connect(url)
    try:
        for _ in range(_ATTEMPTS):
            transaction = connection.transaction(isolation="repeatable_read", readonly=True)
            await transaction.start()
            try:
                exported = await connection.fetchval("SELECT pg_export_snapshot()")
                revisions = [r[0] for r in await connection.fetch("SELECT version_num FROM alembic_version")]
                needed = {str(r[0]): r[1] for r in await connection.fetch(
                    "SELECT id, content_hash FROM documents WHERE status = ANY($1::text[])", list(_NEEDS_FILE))}
                files = {str(r[0]): r[1] for r in await connection.fetch(
                    "SELECT id, content_hash FROM files")} if await connection.fetchval(
                    "SELECT to_regclass('files') IS NOT NULL") else {}
                snapshot = Snapshot(revisions, needed, files)
                if not _pin_needed(settings, pins, snapshot):
                    continue
                await _run([pg_dump, "--format=custom", f"--snapshot={exported}", f"--file={dump}",
                            *_pg_args(url)], url, "pg_dump")
                return snapshot
            finally:
                await transaction.rollback()
    except asyncpg.PostgresError as exc:
        raise BackupError(f"Cannot read the database: {exc}") from exc
    finally:
        await connection.close()
    raise BackupError("Documents kept changing during the backup: try again.")


# ---- restore ---------------------------------------------------------------------------------------

def restore(settings: Settings, archive: Path, *, force: bool = False) -> dict[str, Any]:
    """Check the archive whole, then put it in place and migrate to head; returns its manifest."""
    url = make_url(settings.resolved_database_url)
    kind = _kind(url)
    if not archive.is_file():
        raise BackupError(f"{archive}: no such file.")
    if not force and (held := _holds_state(settings, url)):
        raise BackupError(f"The target is not empty ({held}): restore into an empty data directory and "
                          "database, or add --force to replace what is there (stop the platform first).")
    manifest = verify(archive)
    if manifest.get("database") != kind:
        raise BackupError(f"The archive holds a {manifest['database']} database and this platform uses {kind}: "
                          "restore it into a platform on the same database.")
    _check_revisions(manifest["alembic_revisions"], settings.resolved_database_url, manifest)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=settings.data_dir) as tmp:
        staged = Path(tmp)
        _extract(archive, staged, manifest)
        if kind == "sqlite":
            _put_sqlite(staged / SQLITE_MEMBER, _sqlite_path(url))
        else:
            asyncio.run(_pg_restore(url, staged / PG_MEMBER, force=force))
        for folder in FOLDERS:  # documents_dir and files_dir are these folders of the data directory
            target = settings.data_dir / folder
            if target.exists():
                os.replace(target, staged / f"{folder}.old")
            (staged / folder).mkdir(exist_ok=True)
            os.replace(staged / folder, target)
        for name in DATA_FILES:
            if (staged / "data" / name).is_file():
                os.replace(staged / "data" / name, settings.data_dir / name)
    migrate.upgrade(settings.resolved_database_url)  # an older backup meets newer code
    return manifest


def verify(archive: Path) -> dict[str, Any]:
    """Read the archive through once: every member allowed, listed in the manifest, with its checksum."""
    manifest: dict[str, Any] | None = None
    seen: dict[str, str] = {}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                if member.name == MANIFEST and member.isfile() and member.size <= _BLOCK:
                    handle = tar.extractfile(member)
                    assert handle is not None
                    try:
                        manifest = json.loads(handle.read())
                    except ValueError as exc:
                        raise BackupError(f"{archive}: its manifest is not valid JSON.") from exc
                    continue
                if not (member.isfile() and _MEMBER.fullmatch(member.name)) or member.name in seen:
                    raise BackupError(f"{archive}: unexpected member {member.name!r}: not a backup of this "
                                      "platform, or tampered with.")
                seen[member.name] = _stream_sha256(tar.extractfile(member))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"{archive} is not a readable backup archive (truncated or damaged?): {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("alembic_revisions"), list):
        raise BackupError(f"{archive}: no backup manifest: not an archive made by 'socle backup'.")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise BackupError(f"{archive}: archive format {manifest.get('format_version')} is newer than this "
                          f"version ({__version__}) reads: restore it with version {manifest.get('platform_version')}.")
    files: dict[str, Any] = manifest["files"]
    if set(files) != set(seen) or not any(name.startswith("database/") for name in seen):
        raise BackupError(f"{archive}: its members do not match its manifest (missing or extra files).")
    bad = sorted(name for name, digest in seen.items() if not isinstance(files[name], dict) or files[name].get("sha256") != digest)
    if bad:
        raise BackupError(f"{archive}: checksum mismatch for {', '.join(bad)}: the archive is corrupted.")
    return manifest


def _check_revisions(revisions: list[str], database_url: str, manifest: dict[str, Any]) -> None:
    """Refuse a schema this code does not know: it comes from a newer version."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(database_url))
    for revision in revisions:
        try:
            known = script.get_revision(revision)
        except Exception:  # alembic's resolution errors have no common public base
            known = None
        if known is None:
            raise BackupError(f"The archive's schema (revision {revision}) is newer than this version "
                              f"({__version__}) knows: restore it with version {manifest.get('platform_version')} "
                              "or later.")


def _extract(archive: Path, staged: Path, manifest: dict[str, Any]) -> None:
    """Second pass: write the members under ``staged``, checking each checksum again as it is written."""
    for folder in (*FOLDERS, "data", "database"):
        (staged / folder).mkdir()
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                source = tar.extractfile(member)
                assert source is not None and _MEMBER.fullmatch(member.name)
                target = staged / member.name
                target.parent.mkdir(parents=True, exist_ok=True)  # a training's folders
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    digest = hashlib.sha256()
                    while block := source.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != manifest["files"][member.name]["sha256"]:
                    raise BackupError(f"{archive}: {member.name} changed while it was being restored.")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupError(f"{archive}: cannot be read: {exc}") from exc


def _put_sqlite(staged: Path, target: Path) -> None:
    """Swap the database file in; the old one's WAL files go first, or SQLite would replay them onto it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    final = target.parent / f".{target.name}.restoring"
    shutil.move(staged, final)
    os.replace(final, target)


async def _pg_restore(url: URL, dump: Path, *, force: bool) -> None:
    """pg_restore in one transaction; extensions are created as the migrations do, not by the dump (which
    would need ownership of them)."""
    import asyncpg

    pg_restore = _tool("pg_restore")
    toc = await _run([pg_restore, "--list", str(dump)], url, "pg_restore")
    extensions = re.findall(r"^\d+; \d+ \d+ EXTENSION - (\S+)", toc, flags=re.MULTILINE)
    kept = [line for line in toc.splitlines() if " EXTENSION " not in line]
    listing = dump.with_suffix(".list")
    listing.write_text("\n".join(kept) + "\n")
    connection = await _connect(url)
    try:
        if force:  # tables of a newer schema than the archive's must go too
            await connection.execute(
                "DO $$ DECLARE r record; BEGIN FOR r IN SELECT tablename FROM pg_tables "
                "WHERE schemaname = current_schema() LOOP "
                "EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename); END LOOP; END $$")
        for extension in extensions:
            await connection.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
    except asyncpg.PostgresError as exc:
        raise BackupError(f"Cannot prepare the database: {exc}") from exc
    finally:
        await connection.close()
    await _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction",
                f"--use-list={listing}", *_pg_args(url), str(dump)], url, "pg_restore")


def _holds_state(settings: Settings, url: URL) -> str | None:
    """What the target already holds, or None when it is empty."""
    if (settings.data_dir / "admin.key").exists():
        return f"{settings.data_dir / 'admin.key'} exists"
    for folder in FOLDERS:
        if (settings.data_dir / folder).is_dir() and any((settings.data_dir / folder).iterdir()):
            return f"{settings.data_dir / folder} holds files"
    if _kind(url) == "sqlite":
        path = _sqlite_path(url)
        return f"{path} exists" if path.exists() and path.stat().st_size > 0 else None
    return asyncio.run(_pg_tables(url))


async def _pg_tables(url: URL) -> str | None:
    connection = await _connect(url)
    try:
        count = await connection.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
    finally:
        await connection.close()
    return f"database {url.database!r} has {count} tables" if count else None


# ---- helpers ---------------------------------------------------------------------------------------

def _kind(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return "sqlite"
    if url.get_backend_name() == "postgresql":
        return "postgresql"
    raise BackupError(f"Unsupported database {url.get_backend_name()!r}: SQLite or PostgreSQL.")


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up.")
    return Path(url.database)


async def _connect(url: URL) -> Any:
    import asyncpg

    try:
        return await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"Cannot connect to the database {url.database!r}: {exc}") from exc


def _pg_args(url: URL) -> list[str]:
    """Connection options of pg_dump and pg_restore: never the password (it goes in PGPASSWORD)."""
    host = url.host or url.query.get("host")
    args = [f"--host={host}"] if host else []
    args += [f"--port={url.port}"] if url.port else []
    args += [f"--username={url.username}"] if url.username else []
    return [*args, f"--dbname={url.database}"]


def _pg_env(url: URL) -> dict[str, str]:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password
    mode = url.query.get("sslmode") or url.query.get("ssl")
    if isinstance(mode, str) and mode:
        env["PGSSLMODE"] = {"true": "require", "false": "disable"}.get(mode, mode)
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client tools (Debian: apt install "
                          f"postgresql-client), of the server's major version or later.")
    return found


async def _run(command: list[str], url: URL, what: str) -> str:
    """Run a PostgreSQL tool; its error output (which never holds the password) explains a failure."""
    process = await asyncio.create_subprocess_exec(*command, env=_pg_env(url), stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE)
    out, errors = await process.communicate()
    if process.returncode != 0:
        raise BackupError(f"{what} failed ({process.returncode}): {errors.decode(errors='replace').strip()[-2000:]}")
    return out.decode(errors="replace")


class _Hashing:
    """A reader that hashes what goes through it."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.digest = source, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        block = self.source.read(size)
        self.digest.update(block)
        return block


def _bytes_reader(body: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(body)


def _stream_sha256(handle: IO[bytes] | None) -> str:
    assert handle is not None
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(_BLOCK), b""):
        digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return _stream_sha256(handle)

