"""The Panorama app's sensitive actions in the platform's audit trail, on SQLite and PostgreSQL (the platform
built as an administration command: the database only): each change leaves exactly one entry naming who did
it to what, without a person's data in its details; a refused or empty action leaves none; the chain still
verifies afterwards."""
from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from socle.apps.panorama import audit, importing
from socle.apps.panorama.app import PanoramaApp, PanoramaServices
from socle.apps.panorama.calls import CallFields, IndicatorFields, MeasureFields, ProjectFields, ScoreFields
from socle.apps.panorama.importing import SolutionFields
from socle.apps.panorama.permissions import EDIT, JURY, READ
from socle.apps.panorama.vocabulary import JURY_CRITERIA
from socle.db import migrate
from socle.db.models import AuditEvent
from socle.errors import Conflict, InvalidRequest, PermissionDenied
from socle.identity.permissions import SYSTEM, Principal
from socle.platform import Mode, Platform
from socle.settings import Settings
from tests.apps.panorama.conftest import fresh_database

T = TypeVar("T")
# What a Panorama entry's details may hold: ids, names of things, counts, dates, states.
DETAIL_KEYS = {"slug", "name", "family", "fields", "source", "solutions", "created", "updated", "title", "call_id",
               "previous", "score_id", "indicator_id", "measure_id", "kind", "measured_on", "value"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    tmp = tmp_path_factory.mktemp("panorama-audit")
    url = fresh_database(request, tmp)
    migrate.upgrade(url)
    settings = Settings(data_dir=tmp, database_url=url, _env_file=None)  # type: ignore[call-arg]
    opened = Platform.build(settings, Mode.ADMIN)
    await opened.start()
    yield opened
    await opened.close()


async def person(p: Platform, *permissions: str) -> Principal:
    user = await p.identity.create_user(SYSTEM, email=f"agent-{secrets.token_hex(4)}@ministere.gouv.fr",
                                        name="Camille Martin")
    return Principal(user_id=user.id, email=user.email, role="user", permissions=frozenset(permissions))


class Trail:
    """The trail's entries added by each step of a test, read from the database itself."""

    def __init__(self, platform: Platform, people: list[Principal]) -> None:
        self.platform = platform
        self.people = people
        self.private: list[str] = []  # what people wrote: it must never reach the trail

    async def _last(self) -> int:
        async with self.platform.sessions() as session:
            return int(await session.scalar(select(func.max(AuditEvent.id))) or 0)

    async def _since(self, mark: int) -> list[AuditEvent]:
        async with self.platform.sessions() as session:
            return list(await session.scalars(select(AuditEvent).where(AuditEvent.id > mark).order_by(AuditEvent.id)))

    async def one(self, action: str, actor: Principal, target: tuple[str, int] | None,
                  doing: Awaitable[T]) -> tuple[T, AuditEvent]:
        """Run ``doing``; exactly one entry is added, ``action`` by ``actor`` on ``target`` (an id of 0: the
        row it created), its details free of personal data."""
        mark = await self._last()
        result = await doing
        entries = await self._since(mark)
        assert [e.action for e in entries] == [action]
        entry = entries[0]
        expected = None if target is None else (target[0], str(target[1] or getattr(result, "id", None)))
        assert (entry.actor_user_id or None, entry.target_type, entry.target_id) == (
            actor.user_id or None, *(expected or (None, None)))
        assert set(entry.details) <= DETAIL_KEYS, entry.details
        text = json.dumps(entry.details, ensure_ascii=False)
        for person in self.people:
            assert person.email not in text
        assert "Camille" not in text
        for words in self.private:
            assert words not in text
        return result, entry

    async def none(self, doing: Awaitable[Any], error: type[Exception] | None = None) -> None:
        """Run ``doing`` (refused with ``error``, or changing nothing): the trail gains no entry."""
        mark = await self._last()
        if error is None:
            await doing
        else:
            with pytest.raises(error):
                await doing
        assert await self._since(mark) == []


def test_the_app_declares_its_actions_with_french_labels() -> None:
    actions = PanoramaApp().audit_actions
    assert all(action.startswith("panorama.") for action in actions)
    assert {audit.SOLUTION_CREATED, audit.CATALOGUE_IMPORTED, audit.CALL_CLOSED, audit.SCORE_CHANGED,
            audit.PROJECT_SELECTED, audit.MEASURE_RECORDED} <= set(actions)
    assert actions[audit.PROJECT_SELECTED] == "Projet retenu" and all(label.strip() for label in actions.values())


async def test_catalogue_changes_are_recorded(platform: Platform, tmp_path: Path) -> None:
    catalogue = platform.app(PanoramaServices).catalogue
    editor, reader = await person(platform, READ, EDIT), await person(platform, READ)
    trail = Trail(platform, [editor, reader])
    # The sample catalogue, loaded by the platform itself the first time the catalogue is read.
    await catalogue.browse(reader)
    async with platform.sessions() as session:
        loaded = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == audit.CATALOGUE_IMPORTED)))
    assert len(loaded) == 1 and loaded[0].actor_user_id is None and loaded[0].channel == "system"
    assert loaded[0].details["source"] == "sample" and loaded[0].details["created"] >= 40

    fields = SolutionFields(name="Greffe Audio Journal", family="parole", editor="Éditeur test",
                            description="Transcrit les audiences du greffe.")
    await trail.none(catalogue.create(reader, fields), PermissionDenied)
    created, entry = await trail.one(audit.SOLUTION_CREATED, editor, (audit.SOLUTION, 0),
                                     catalogue.create(editor, fields))
    assert entry.details == {"slug": "greffe-audio-journal", "name": "Greffe Audio Journal", "family": "parole"}
    await trail.none(catalogue.create(editor, fields), Conflict)

    changed = fields.model_copy(update={"description": "Transcrit et résume les audiences.", "maturity": "pilote"})
    await trail.none(catalogue.update(reader, created.slug, changed), PermissionDenied)
    _, entry = await trail.one(audit.SOLUTION_UPDATED, editor, (audit.SOLUTION, created.id),
                               catalogue.update(editor, created.slug, changed))
    assert entry.details == {"slug": created.slug, "fields": ["description", "maturity"]}
    await trail.none(catalogue.update(editor, created.slug, changed))  # the same again: nothing changed

    exported = await catalogue.export(reader, "csv")
    file = tmp_path / "catalogue-de-camille.csv"
    file.write_text(exported.replace("Plume Synthèse", "Plume Synthèse 2"), encoding="utf-8")
    await trail.none(catalogue.import_file(reader, file.name, file.read_bytes()), PermissionDenied)
    trail.private.append("camille")  # a file's name may name a person: the trail keeps its format only
    _, entry = await trail.one(audit.CATALOGUE_IMPORTED, editor, None,
                               catalogue.import_file(editor, file.name, file.read_bytes()))
    assert entry.details == {"source": "csv", "solutions": len(importing.parse(file.name, file.read_bytes())),
                             "created": 0, "updated": 1}
    await trail.none(catalogue.import_file(editor, file.name, file.read_bytes()))  # already merged
    # At the console, the operator is the actor: the entry says so, without an account.
    file.write_text(exported, encoding="utf-8")
    _, entry = await trail.one(audit.CATALOGUE_IMPORTED, SYSTEM, None,
                               catalogue.import_file(SYSTEM, file.name, file.read_bytes()))
    assert entry.channel == "console" and entry.details["updated"] == 1

    await trail.none(catalogue.delete(reader, created.slug), PermissionDenied)
    await trail.none(catalogue.delete(editor, "socle-panorama"), InvalidRequest)  # an app of the platform stays
    _, entry = await trail.one(audit.SOLUTION_DELETED, editor, (audit.SOLUTION, created.id),
                               catalogue.delete(editor, created.slug))
    assert entry.details == {"slug": created.slug, "name": "Greffe Audio Journal"}
    assert (await platform.audit.verify()).ok


async def test_a_call_for_projects_is_recorded_step_by_step(platform: Platform) -> None:
    calls = platform.app(PanoramaServices).calls
    editor, team, juror = (await person(platform, READ, EDIT), await person(platform, READ),
                           await person(platform, READ, JURY))
    trail = Trail(platform, [editor, team, juror])
    trail.private += ["Un projet pour trier les courriels", "Agents de la cellule courrier", "Très bon projet",
                      "Les agents gagnent une heure"]

    await trail.none(calls.create_call(team, CallFields(title="Appel")), PermissionDenied)
    call, entry = await trail.one(audit.CALL_CREATED, editor, (audit.CALL, 0),
                                  calls.create_call(editor, CallFields(title="Appel à projets IA 2027")))
    assert entry.details == {"title": "Appel à projets IA 2027"}

    fields = ProjectFields(administration="Direction départementale", title="Tri des courriels",
                           summary="Un projet pour trier les courriels", team="Agents de la cellule courrier")
    project, entry = await trail.one(audit.PROJECT_SUBMITTED, team, (audit.PROJECT, 0),
                                     calls.submit(team, call.id, fields))
    assert entry.details == {"call_id": call.id}

    marks = ScoreFields(marks=dict.fromkeys(JURY_CRITERIA, 4), comment="Très bon projet")
    await trail.none(calls.score(team, project.id, marks), PermissionDenied)
    score, entry = await trail.one(audit.SCORE_RECORDED, juror, (audit.PROJECT, project.id),
                                   calls.score(juror, project.id, marks))
    assert entry.details == {"call_id": call.id, "score_id": score.id}  # that they marked, not how
    await trail.none(calls.score(juror, project.id, marks))  # the same marking again
    _, entry = await trail.one(audit.SCORE_CHANGED, juror, (audit.PROJECT, project.id),
                               calls.score(juror, project.id, marks.model_copy(update={"comment": "Très bon projet."})))
    assert entry.details == {"call_id": call.id, "score_id": score.id}

    quantity = IndicatorFields(name="Courriels triés", unit="courriels")
    await trail.none(calls.define_indicator(team, project.id, "quantitative", quantity), Conflict)  # not selected
    await trail.none(calls.decide(juror, project.id, "selected"), PermissionDenied)
    _, entry = await trail.one(audit.PROJECT_SELECTED, editor, (audit.PROJECT, project.id),
                               calls.decide(editor, project.id, "selected"))
    assert entry.details == {"call_id": call.id, "previous": "submitted"}
    await trail.none(calls.decide(editor, project.id, "selected"))  # already selected

    indicator, entry = await trail.one(audit.INDICATOR_DEFINED, team, (audit.PROJECT, project.id),
                                       calls.define_indicator(team, project.id, "quantitative", quantity))
    assert entry.details == {"indicator_id": indicator.id, "kind": "quantitative", "name": "Courriels triés"}
    await trail.one(audit.INDICATOR_DEFINED, team, (audit.PROJECT, project.id),
                    calls.define_indicator(team, project.id, "qualitative", IndicatorFields(name="Satisfaction")))
    measure, entry = await trail.one(audit.MEASURE_RECORDED, team, (audit.PROJECT, project.id), calls.measure(
        team, project.id, "quantitative", MeasureFields(measured_on="2027-06-30", value=1250.5)))
    assert entry.details == {"indicator_id": indicator.id, "measure_id": measure.id, "kind": "quantitative",
                             "measured_on": "2027-06-30", "value": 1250.5}
    _, entry = await trail.one(audit.MEASURE_RECORDED, editor, (audit.PROJECT, project.id), calls.measure(
        editor, project.id, "qualitative", MeasureFields(measured_on="2027-09-30",
                                                         note="Les agents gagnent une heure par jour.")))
    assert entry.details["kind"] == "qualitative"  # the note itself stays out
    await trail.none(calls.measure(juror, project.id, "quantitative",
                                   MeasureFields(measured_on="2027-10-01", value=1)), PermissionDenied)

    other = await calls.submit(team, call.id, fields.model_copy(update={"title": "Second projet"}))
    _, entry = await trail.one(audit.PROJECT_DECLINED, editor, (audit.PROJECT, other.id),
                               calls.decide(editor, other.id, "declined"))
    _, entry = await trail.one(audit.PROJECT_RECONSIDERED, editor, (audit.PROJECT, other.id),
                               calls.decide(editor, other.id, "submitted"))
    assert entry.details == {"call_id": call.id, "previous": "declined"}

    await trail.none(calls.set_status(team, call.id, "closed"), PermissionDenied)
    await trail.one(audit.CALL_CLOSED, editor, (audit.CALL, call.id), calls.set_status(editor, call.id, "closed"))
    await trail.none(calls.set_status(editor, call.id, "closed"))  # already closed
    await trail.none(calls.submit(team, call.id, fields), Conflict)
    await trail.one(audit.CALL_REOPENED, editor, (audit.CALL, call.id), calls.set_status(editor, call.id, "open"))

    verified = await platform.audit.verify()
    assert verified.ok and verified.entries > 10
