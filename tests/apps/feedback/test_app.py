"""The feedback app as the platform installs it: its permission joins the roles' catalogue (the built-in user
role holds it), its retention period is its own setting (its former name still read), and its personal data
is under the platform's duties (export, erasure)."""
from __future__ import annotations

import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from socle.apps.feedback.app import FeedbackServices, FeedbackSettings
from socle.apps.feedback.models import FeedbackDataset
from socle.db import migrate
from socle.errors import InvalidRequest
from socle.identity.permissions import PLATFORM_PERMISSIONS, SYSTEM
from socle.platform import Mode, Platform
from socle.settings import Settings


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'socle.db'}"
    migrate.upgrade(url)
    opened = Platform.build(Settings(data_dir=tmp_path, database_url=url, _env_file=None),  # type: ignore[call-arg]
                            Mode.ADMIN)
    yield opened
    await opened.close()


async def test_a_role_may_hold_the_apps_permission_and_no_unknown_one(platform: Platform) -> None:
    assert "feedback:use" not in PLATFORM_PERMISSIONS
    assert platform.identity.permissions.label("feedback:use") == "Analyser les avis des usagers"
    role = await platform.identity.create_role(SYSTEM, name="analystes", permissions=["feedback:use"])
    assert role.permissions == ["feedback:use"]
    with pytest.raises(InvalidRequest) as refused:
        await platform.identity.create_role(SYSTEM, name="autres", permissions=["feedback:everything"])
    assert refused.value.param == "permissions"
    user = next(r for r in await platform.identity.list_roles(SYSTEM) if r.name == "user")
    assert "feedback:use" in user.permissions  # the app's migration gave it to the built-in role


async def test_its_personal_data_is_under_the_platforms_duties(platform: Platform) -> None:
    assert isinstance(platform.app(FeedbackServices), FeedbackServices)
    assert "feedback" in [data.kind for data in platform.personal_data]
    assert platform.retention.periods.of("feedback") == 365
    assert "feedback" in platform.retention.periods.kinds


def test_its_retention_period_is_read_under_its_name_and_its_former_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOCLE_FEEDBACK_RETENTION_DAYS", raising=False)
    monkeypatch.delenv("SOCLE_RETENTION_FEEDBACK_DAYS", raising=False)
    assert FeedbackSettings(_env_file=None).retention_days == 365  # type: ignore[call-arg]
    monkeypatch.setenv("SOCLE_RETENTION_FEEDBACK_DAYS", "30")
    assert FeedbackSettings(_env_file=None).retention_days == 30  # type: ignore[call-arg]
    monkeypatch.setenv("SOCLE_FEEDBACK_RETENTION_DAYS", "7")
    assert FeedbackSettings(_env_file=None).retention_days == 7  # type: ignore[call-arg]
    assert FeedbackSettings(retention_days=3, _env_file=None).retention_days == 3  # type: ignore[call-arg]


async def test_a_persons_datasets_are_in_their_export_and_go_with_their_erasure(platform: Platform,
                                                                                tmp_path: Path) -> None:
    user = await platform.identity.create_user(SYSTEM, email="agent@ministere.gouv.fr", name="Agent")
    agent = await platform.identity.principal_of(user.id)
    feedback = platform.app(FeedbackServices).datasets
    await feedback.import_file(agent, "Avis du mois", "avis.csv", "id,text\nM-1,Mon dossier attend\n".encode())
    archive = tmp_path / "export.zip"
    await platform.exports.write(SYSTEM, user.id, archive)
    with zipfile.ZipFile(archive) as opened:
        data = json.loads(opened.read("donnees.json"))
    assert [d["name"] for d in data["feedback_datasets"]] == ["Avis du mois"]
    assert data["feedback_datasets"][0]["items"][0] == {
        "external_id": "M-1", "text": "Mon dossier attend", "written_on": None, "service": None, "channel": None,
        "rating": None, "labels": None, "extra": None}
    assert data["feedback_analyses"] == [] and "usage" in data  # the app's lists sit among the platform's
    erased = await platform.erasure.erase_user(SYSTEM, user.id)
    assert erased.counts()["feedback_datasets"] == 1 and erased.counts()["feedback_analyses"] == 0
    async with platform.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(FeedbackDataset)) == 0
