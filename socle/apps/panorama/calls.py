"""Calls for AI projects: an administration submits a project to an open call; the jury marks each project
on the seven published criteria (0 to 5 each) with a comment; the ranking of a call is by the jurors'
mean total. A selected product then records its two impact indicators — one quantitative, one
qualitative — and their values over time.

Who sees what: the calls are public to every reader; a project is seen by the agent who submitted it, by
the jury and by ``panorama:edit``; anyone else gets 404. A juror's marks are seen with the ranking by the
jury and the editors only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.panorama import audit
from socle.apps.panorama.models import (
    PanoramaCall,
    PanoramaIndicator,
    PanoramaMeasure,
    PanoramaProject,
    PanoramaScore,
)
from socle.apps.panorama.permissions import EDIT, JURY, READ, require
from socle.apps.panorama.vocabulary import JURY_CRITERIA, MARK_MAX
from socle.audit.service import AuditTrail
from socle.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from socle.identity.permissions import Principal

Decision = Literal["submitted", "selected", "declined"]
Kind = Literal["quantitative", "qualitative"]
DECIDED = {"selected": audit.PROJECT_SELECTED, "declined": audit.PROJECT_DECLINED,
           "submitted": audit.PROJECT_RECONSIDERED}


class CallFields(BaseModel):
    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    closes_on: date | None = None


class ProjectFields(BaseModel):
    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    administration: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field(min_length=1, max_length=10_000, description="The problem, the users, what AI brings.")
    team: str = Field(default="", max_length=5000, description="The public agents involved.")
    data: str = Field(default="", max_length=5000, description="The data that exists and how to reach it.")


class ScoreFields(BaseModel):
    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    marks: dict[str, int] = Field(description=f"Each of the seven criteria ({', '.join(JURY_CRITERIA)}) → 0..5.")
    comment: str = Field(default="", max_length=5000)

    @field_validator("marks")
    @classmethod
    def _marks(cls, marks: dict[str, int]) -> dict[str, int]:
        if set(marks) != set(JURY_CRITERIA):
            missing, extra = set(JURY_CRITERIA) - set(marks), set(marks) - set(JURY_CRITERIA)
            raise ValueError(f"mark every criterion once (missing: {sorted(missing)}, unknown: {sorted(extra)})")
        if any(not 0 <= m <= MARK_MAX for m in marks.values()):
            raise ValueError(f"a mark is between 0 and {MARK_MAX}")
        return {c: marks[c] for c in JURY_CRITERIA}


class IndicatorFields(BaseModel):
    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="", max_length=50)


class MeasureFields(BaseModel):
    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    measured_on: date
    value: float | None = None
    note: str = Field(default="", max_length=5000)


@dataclass(slots=True)
class Ranked:
    project: PanoramaProject
    rank: int
    jurors: int
    mean_total: float | None  # out of 35
    mean_marks: dict[str, float]
    scores: list[PanoramaScore] = field(default_factory=list)


@dataclass(slots=True)
class Indicator:
    indicator: PanoramaIndicator
    measures: list[PanoramaMeasure]


def call_dict(call: PanoramaCall) -> dict[str, Any]:
    return {"id": call.id, "title": call.title, "description": call.description, "status": call.status,
            "closes_on": call.closes_on, "created_at": call.created_at.isoformat()}


def project_dict(project: PanoramaProject) -> dict[str, Any]:
    return {"id": project.id, "call_id": project.call_id, "administration": project.administration,
            "title": project.title, "summary": project.summary, "team": project.team, "data": project.data,
            "status": project.status, "created_at": project.created_at.isoformat()}


def indicator_dict(item: Indicator) -> dict[str, Any]:
    i = item.indicator
    return {"id": i.id, "kind": i.kind, "name": i.name, "unit": i.unit,
            "measures": [{"measured_on": m.measured_on, "value": m.value, "note": m.note} for m in item.measures]}


class CallService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail) -> None:
        self._sessions = sessions
        self._audit = audit

    # -- calls ------------------------------------------------------------------------------------
    async def create_call(self, principal: Principal, fields: CallFields) -> PanoramaCall:
        require(principal, EDIT)
        call = PanoramaCall(title=fields.title, description=fields.description, status="open",
                            closes_on=fields.closes_on.isoformat() if fields.closes_on else None)
        async with self._sessions() as session, session.begin():
            session.add(call)
            await session.flush()
            await self._audit.record_in(session, audit.CALL_CREATED, actor=principal, target=(audit.CALL, call.id),
                                        details={"title": call.title})
        return call

    async def calls(self, principal: Principal) -> list[PanoramaCall]:
        require(principal, READ)
        async with self._sessions() as session:
            return list(await session.scalars(select(PanoramaCall).order_by(PanoramaCall.id.desc())))

    async def call(self, principal: Principal, call_id: int) -> PanoramaCall:
        require(principal, READ)
        async with self._sessions() as session:
            call = await session.get(PanoramaCall, call_id)
        if call is None:
            raise NotFound(f"Call {call_id} not found.", param="call_id")
        return call

    async def set_status(self, principal: Principal, call_id: int, status: Literal["open", "closed"]) -> PanoramaCall:
        require(principal, EDIT)
        async with self._sessions() as session, session.begin():
            call = await session.get(PanoramaCall, call_id)
            if call is None:
                raise NotFound(f"Call {call_id} not found.", param="call_id")
            if call.status != status:
                call.status = status
                await self._audit.record_in(session, audit.CALL_CLOSED if status == "closed" else audit.CALL_REOPENED,
                                            actor=principal, target=(audit.CALL, call.id))
        return call

    # -- projects ---------------------------------------------------------------------------------
    async def submit(self, principal: Principal, call_id: int, fields: ProjectFields) -> PanoramaProject:
        require(principal, READ)
        async with self._sessions() as session, session.begin():
            call = await session.get(PanoramaCall, call_id)
            if call is None:
                raise NotFound(f"Call {call_id} not found.", param="call_id")
            if call.status != "open":
                raise Conflict("This call is closed: it takes no more projects.", code="call_closed")
            project = PanoramaProject(call_id=call_id, submitter_id=principal.user_id or None, status="submitted",
                                      **fields.model_dump())
            session.add(project)
            await session.flush()
            await self._audit.record_in(session, audit.PROJECT_SUBMITTED, actor=principal,
                                        target=(audit.PROJECT, project.id), details={"call_id": call_id})
        return project

    async def projects(self, principal: Principal, call_id: int) -> list[PanoramaProject]:
        """The call's projects the caller may see: all of them for the jury and editors, else their own."""
        await self.call(principal, call_id)
        query = select(PanoramaProject).where(PanoramaProject.call_id == call_id).order_by(PanoramaProject.id)
        if not (principal.can(EDIT) or principal.can(JURY)):
            query = query.where(PanoramaProject.submitter_id == (principal.user_id or None))
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def project(self, principal: Principal, project_id: int) -> PanoramaProject:
        require(principal, READ)
        async with self._sessions() as session:
            project = await session.get(PanoramaProject, project_id)
        if project is None or not self._sees(principal, project):
            raise NotFound(f"Project {project_id} not found.", param="project_id")
        return project

    @staticmethod
    def _sees(principal: Principal, project: PanoramaProject) -> bool:
        return (principal.can(EDIT) or principal.can(JURY)
                or (project.submitter_id is not None and project.submitter_id == principal.user_id))

    async def decide(self, principal: Principal, project_id: int, status: Decision) -> PanoramaProject:
        require(principal, EDIT)
        async with self._sessions() as session, session.begin():
            project = await session.get(PanoramaProject, project_id)
            if project is None:
                raise NotFound(f"Project {project_id} not found.", param="project_id")
            if project.status != status:
                previous, project.status = project.status, status
                await self._audit.record_in(session, DECIDED[status], actor=principal,
                                            target=(audit.PROJECT, project.id),
                                            details={"call_id": project.call_id, "previous": previous})
        return project

    # -- the jury ---------------------------------------------------------------------------------
    async def score(self, principal: Principal, project_id: int, fields: ScoreFields) -> PanoramaScore:
        """The caller's marks of a project; marking it again replaces them."""
        require(principal, JURY)
        juror = principal.user_id or None
        async with self._sessions() as session, session.begin():
            project = await session.get(PanoramaProject, project_id)
            if project is None:
                raise NotFound(f"Project {project_id} not found.", param="project_id")
            score = await session.scalar(select(PanoramaScore).where(
                PanoramaScore.project_id == project_id,
                PanoramaScore.juror_id.is_(None) if juror is None else PanoramaScore.juror_id == juror))
            action = audit.SCORE_RECORDED if score is None else audit.SCORE_CHANGED
            if score is None:
                score = PanoramaScore(project_id=project_id, juror_id=juror)
                session.add(score)
            elif (score.marks, score.comment) == (fields.marks, fields.comment):
                return score  # the same marking again changes nothing
            score.marks, score.total, score.comment = fields.marks, sum(fields.marks.values()), fields.comment
            await session.flush()
            # The marks and the comment are the juror's opinion: the trail says that they marked, not how.
            await self._audit.record_in(session, action, actor=principal, target=(audit.PROJECT, project_id),
                                        details={"call_id": project.call_id, "score_id": score.id})
        return score

    async def ranking(self, principal: Principal, call_id: int) -> list[Ranked]:
        """The call's projects by the jurors' mean total, best first; projects not yet marked last."""
        if not (principal.can(EDIT) or principal.can(JURY)):
            raise PermissionDenied(f"This action requires the permission '{JURY}' or '{EDIT}'.")
        await self.call(principal, call_id)
        async with self._sessions() as session:
            projects = list(await session.scalars(select(PanoramaProject)
                                                  .where(PanoramaProject.call_id == call_id)))
            scores = list(await session.scalars(select(PanoramaScore).join(PanoramaProject)
                                                .where(PanoramaProject.call_id == call_id)
                                                .order_by(PanoramaScore.id)))
        by_project: dict[int, list[PanoramaScore]] = {}
        for score in scores:
            by_project.setdefault(score.project_id, []).append(score)
        ranked = []
        for project in projects:
            marks = by_project.get(project.id, [])
            mean = sum(s.total for s in marks) / len(marks) if marks else None
            by_criterion = {c: round(sum(s.marks.get(c, 0) for s in marks) / len(marks), 2) for c in JURY_CRITERIA} \
                if marks else {}
            ranked.append(Ranked(project, 0, len(marks), None if mean is None else round(mean, 2), by_criterion,
                                 marks))
        ranked.sort(key=lambda r: (r.mean_total is None, -(r.mean_total or 0.0), r.project.id))
        for rank, item in enumerate(ranked, start=1):
            item.rank = rank
        return ranked

    # -- impact indicators ------------------------------------------------------------------------
    async def _selected(self, session: AsyncSession, principal: Principal, project_id: int,
                        *, write: bool) -> PanoramaProject:
        project = await session.get(PanoramaProject, project_id)
        if project is None or not self._sees(principal, project):
            raise NotFound(f"Project {project_id} not found.", param="project_id")
        if write and not (principal.can(EDIT) or project.submitter_id == principal.user_id):
            raise PermissionDenied("Only the project's team or an editor records its indicators.")
        if write and project.status != "selected":
            raise Conflict("Only a selected product records impact indicators.", code="not_selected")
        return project

    async def _indicator(self, session: AsyncSession, principal: Principal, project_id: int,
                         kind: Kind) -> PanoramaIndicator | None:
        """A selected product's indicator of this kind (None: not defined yet), for a change by its team."""
        await self._selected(session, principal, project_id, write=True)
        return await session.scalar(select(PanoramaIndicator).where(
            PanoramaIndicator.project_id == project_id, PanoramaIndicator.kind == kind))

    async def define_indicator(self, principal: Principal, project_id: int, kind: Kind,
                               fields: IndicatorFields) -> PanoramaIndicator:
        """A product's quantitative or qualitative indicator (one of each); defining it again renames it."""
        require(principal, READ)
        async with self._sessions() as session, session.begin():
            indicator = await self._indicator(session, principal, project_id, kind)
            if indicator is None:
                indicator = PanoramaIndicator(project_id=project_id, kind=kind)
                session.add(indicator)
            elif (indicator.name, indicator.unit) == (fields.name, fields.unit):
                return indicator
            indicator.name, indicator.unit = fields.name, fields.unit
            await session.flush()
            await self._audit.record_in(session, audit.INDICATOR_DEFINED, actor=principal,
                                        target=(audit.PROJECT, project_id),
                                        details={"indicator_id": indicator.id, "kind": kind, "name": fields.name})
        return indicator

    async def measure(self, principal: Principal, project_id: int, kind: Kind,
                      fields: MeasureFields) -> PanoramaMeasure:
        require(principal, READ)
        async with self._sessions() as session, session.begin():
            indicator = await self._indicator(session, principal, project_id, kind)
            if indicator is None:
                raise NotFound(f"The project has no {kind} indicator yet: define it first.", param="kind")
            if kind == "quantitative" and fields.value is None:
                raise InvalidRequest("A quantitative indicator's measure is a number.", param="value")
            if kind == "qualitative" and not fields.note:
                raise InvalidRequest("A qualitative indicator's measure is a text.", param="note")
            measure = PanoramaMeasure(indicator_id=indicator.id, measured_on=fields.measured_on.isoformat(),
                                      value=fields.value, note=fields.note)
            session.add(measure)
            await session.flush()
            # The value, not the note: a qualitative note is a person's own words.
            await self._audit.record_in(session, audit.MEASURE_RECORDED, actor=principal,
                                        target=(audit.PROJECT, project_id),
                                        details={"indicator_id": indicator.id, "measure_id": measure.id,
                                                 "kind": kind, "measured_on": measure.measured_on,
                                                 "value": measure.value})
        return measure

    async def indicators(self, principal: Principal, project_id: int) -> list[Indicator]:
        require(principal, READ)
        async with self._sessions() as session:
            await self._selected(session, principal, project_id, write=False)
            indicators = list(await session.scalars(select(PanoramaIndicator).where(
                PanoramaIndicator.project_id == project_id).order_by(PanoramaIndicator.kind.desc())))
            measures = list(await session.scalars(select(PanoramaMeasure).where(
                PanoramaMeasure.indicator_id.in_([i.id for i in indicators]))
                .order_by(PanoramaMeasure.measured_on, PanoramaMeasure.id)))
        return [Indicator(i, [m for m in measures if m.indicator_id == i.id]) for i in indicators]
