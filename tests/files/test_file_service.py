"""The file service on real SQLite and PostgreSQL: a file a fine-tuning job will still read cannot be deleted;
a job reads its owner's file by the owner's id."""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from socle.db import migrate
from socle.db.models import FineTuningJob, Role, User
from socle.errors import Conflict, NotFound, PermissionDenied
from socle.identity.permissions import Principal
from socle.platform import Mode, Platform
from socle.settings import Settings

EXAMPLE = b'{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "R"}]}\n'


@pytest.fixture(params=["sqlite", "postgres"])
async def platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_database"))
    migrate.upgrade(url)
    opened = Platform.build(Settings(data_dir=tmp_path, database_url=url, _env_file=None),  # type: ignore[call-arg]
                            Mode.ADMIN)
    yield opened
    await opened.close()


async def person(p: Platform, email: str, role_name: str = "user") -> Principal:
    """A person with a role as the migrations left it."""
    async with p.sessions() as session, session.begin():
        role = await session.scalar(select(Role).where(Role.name == role_name))
        assert role is not None
        user = User(email=email, name=email, role=role)
        session.add(user)
        await session.flush()
        return Principal(user_id=user.id, email=email, role=role.name, permissions=frozenset(role.permissions))


async def test_a_file_in_use_by_an_unfinished_job_stays(platform: Platform) -> None:
    owner = await person(platform, "a@x.gouv.fr")
    stored = await platform.files.create(owner, "train.jsonl", EXAMPLE, "fine-tune")
    assert (stored.status, stored.checks) == ("processed", {"examples": 1, "tokens": 12, "error_count": 0,
                                                            "errors": []})
    async with platform.sessions() as session, session.begin():
        job = FineTuningJob(owner_id=owner.user_id, model="smollm2-135m", training_file_id=stored.id,
                            hyperparameters={}, status="running")
        session.add(job)
    with pytest.raises(Conflict) as refused:
        await platform.files.delete(owner, stored.id)
    assert refused.value.code == "file_in_use" and f"ftjob-{job.id}" in refused.value.message
    assert await platform.files.content_for_owner(owner.user_id, stored.id) == EXAMPLE
    async with platform.sessions() as session, session.begin():
        await session.execute(update(FineTuningJob).where(FineTuningJob.id == job.id).values(status="succeeded"))
    await platform.files.delete(owner, stored.id)
    with pytest.raises(NotFound):
        await platform.files.content_for_owner(owner.user_id, stored.id)
    assert not platform.files.path(stored.id).exists()


async def test_a_job_reads_only_its_owners_files(platform: Platform) -> None:
    owner, other = await person(platform, "b@x.gouv.fr"), await person(platform, "c@x.gouv.fr")
    stored = await platform.files.create(owner, "train.jsonl", EXAMPLE, "fine-tune")
    with pytest.raises(NotFound):
        await platform.files.content_for_owner(other.user_id, stored.id)
    with pytest.raises(NotFound):
        await platform.files.content(other, stored.id)
    assert [f.id for f in await platform.files.list(owner, purpose="fine-tune")] == [stored.id]
    assert await platform.files.list(other) == []


async def test_uploading_needs_the_permission(platform: Platform) -> None:
    async with platform.sessions() as session, session.begin():  # a role without files:own
        session.add(Role(name="lecteur", permissions=["models:read"]))
    reader = await person(platform, "d@x.gouv.fr", "lecteur")
    with pytest.raises(PermissionDenied):
        await platform.files.create(reader, "train.jsonl", EXAMPLE, "fine-tune")
