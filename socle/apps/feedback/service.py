"""Feedback datasets and their analyses, each its owner's alone (anyone else's answers 404): importing a
file, estimating and starting an analysis (a durable job, accepted with it in one transaction), following
it, and reading its annotations."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.feedback.importing import parse
from socle.apps.feedback.models import FeedbackAnalysis, FeedbackAnnotation, FeedbackDataset, FeedbackMessage
from socle.apps.feedback.permissions import USE
from socle.db.models import utcnow
from socle.errors import Conflict, InvalidRequest, NotFound
from socle.identity.permissions import Permission, Principal, require
from socle.jobs.queue import JobQueue

ANALYZE = "feedback.analyze"
ACTIVE = ("queued", "running")
# An analysis' options, unless its caller says otherwise: no drafts; the embedding engine learns from the
# dataset's own labelled messages (never to annotate those very messages).
DEFAULT_OPTIONS: dict[str, Any] = {"replies": False, "reply_model": None, "learn_from_labels": True}


@dataclass(frozen=True, slots=True)
class Imported:
    dataset: FeedbackDataset
    added: int
    already_there: int
    skipped: list[str]


@dataclass(frozen=True, slots=True)
class AnnotatedMessage:
    message: FeedbackMessage
    annotation: FeedbackAnnotation


def _owner(principal: Principal) -> int | None:
    """The operator at the console (user 0) owns the datasets it imports: none of any user's."""
    return principal.user_id or None


def owned(column: Any, principal: Principal) -> ColumnElement[bool]:
    owner = _owner(principal)
    return column.is_(None) if owner is None else column == owner


class FeedbackService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue, *,
                 max_messages: int = 100_000, max_upload_bytes: int = 100 * 1024 * 1024) -> None:
        self._sessions = sessions
        self._queue = queue
        self.max_messages = max_messages
        self.max_upload_bytes = max_upload_bytes

    # -- datasets ---------------------------------------------------------------------------------
    async def import_file(self, actor: Principal, name: str, filename: str, data: bytes,
                          mapping: Mapping[str, str] | None = None) -> Imported:
        """Add a file's messages to the dataset ``name`` (created if new); a message already there (same
        id) is kept as it is, so importing the same export again adds only what is new."""
        require(actor, USE)
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("A dataset needs a name of 1 to 200 characters.", param="name")
        parsed = await asyncio.to_thread(parse, filename, data, mapping, max_messages=self.max_messages)
        async with self._sessions() as session, session.begin():
            dataset = await session.scalar(select(FeedbackDataset).where(
                owned(FeedbackDataset.owner_id, actor), FeedbackDataset.name == name).with_for_update())
            if dataset is None:
                dataset = FeedbackDataset(owner_id=_owner(actor), name=name, source=filename[:500],
                                          source_format=parsed.source_format, messages=0, labelled=0)
                session.add(dataset)
                await session.flush()
            known = set(await session.scalars(select(FeedbackMessage.external_id)
                                              .where(FeedbackMessage.dataset_id == dataset.id)))
            fresh = [r for r in parsed.records if r.external_id not in known]
            if dataset.messages + len(fresh) > self.max_messages:
                raise InvalidRequest(f"A dataset holds at most {self.max_messages} messages.", param="file",
                                     code="too_many_messages")
            session.add_all(FeedbackMessage(dataset_id=dataset.id, external_id=r.external_id[:200], text=r.text,
                                            written_on=r.written_on, service=(r.service or None) and r.service[:300],
                                            channel=(r.channel or None) and r.channel[:200], rating=r.rating,
                                            labels=r.labels, extra=r.extra or None) for r in fresh)
            dataset.messages += len(fresh)
            dataset.labelled += sum(1 for r in fresh if r.labels)
            dataset.source = filename[:500]
        return Imported(dataset, len(fresh), len(parsed.records) - len(fresh), parsed.skipped)

    async def list_datasets(self, actor: Principal) -> list[FeedbackDataset]:
        require(actor, USE)
        async with self._sessions() as session:
            return list(await session.scalars(select(FeedbackDataset).where(owned(FeedbackDataset.owner_id, actor))
                                              .order_by(FeedbackDataset.id.desc())))

    async def get_dataset(self, actor: Principal, dataset: int | str) -> FeedbackDataset:
        """By id, or by name (what the CLI is given)."""
        require(actor, USE)
        async with self._sessions() as session:
            return await self._dataset(session, actor, dataset)

    @staticmethod
    async def _dataset(session: AsyncSession, actor: Principal, dataset: int | str) -> FeedbackDataset:
        which = FeedbackDataset.id == dataset if isinstance(dataset, int) else FeedbackDataset.name == dataset
        found = await session.scalar(select(FeedbackDataset).where(which, owned(FeedbackDataset.owner_id, actor)))
        if found is None:
            raise NotFound(f"Feedback dataset {dataset!r} not found.", param="dataset")
        return found

    async def delete_dataset(self, actor: Principal, dataset_id: int) -> None:
        require(actor, USE)
        async with self._sessions() as session, session.begin():
            dataset = await self._dataset(session, actor, dataset_id)
            running = await session.scalar(select(func.count()).select_from(FeedbackAnalysis).where(
                FeedbackAnalysis.dataset_id == dataset.id, FeedbackAnalysis.status.in_(ACTIVE)))
            if running:
                raise Conflict("An analysis of this dataset is running: wait for its end before deleting it.")
            await session.execute(delete(FeedbackDataset).where(FeedbackDataset.id == dataset.id))

    async def messages(self, actor: Principal, dataset_id: int) -> list[FeedbackMessage]:
        """Every message of a dataset, in import order (evaluation and estimates read them all)."""
        require(actor, USE)
        async with self._sessions() as session:
            dataset = await self._dataset(session, actor, dataset_id)
            return list(await session.scalars(select(FeedbackMessage).where(FeedbackMessage.dataset_id == dataset.id)
                                              .order_by(FeedbackMessage.id)))

    # -- analyses ---------------------------------------------------------------------------------
    async def start(self, actor: Principal, dataset_id: int, *, engine: str, model: str,
                    token_budget: int | None = None, options: dict[str, Any] | None = None) -> FeedbackAnalysis:
        """Accept an analysis and its job together: from then on it runs, and resumes after a crash."""
        require(actor, USE)
        require(actor, Permission.MODELS_USE)
        if token_budget is not None and token_budget < 1:
            raise InvalidRequest("token_budget must be a positive number of tokens.", param="token_budget")
        async with self._sessions() as session, session.begin():
            dataset = await self._dataset(session, actor, dataset_id)
            if not dataset.messages:
                raise InvalidRequest("This dataset holds no message to analyse.", param="dataset")
            analysis = FeedbackAnalysis(dataset_id=dataset.id, owner_id=_owner(actor), engine=engine, model=model,
                                        options={**DEFAULT_OPTIONS, **(options or {})}, status="queued",
                                        total=dataset.messages, done=0, failed=0, tokens=0,
                                        token_budget=token_budget)
            session.add(analysis)
            await session.flush()
            await self._queue.enqueue(ANALYZE, {"analysis_id": analysis.id, "run": 0},
                                      dedupe_key=f"{ANALYZE}:{analysis.id}:0", max_attempts=10, session=session)
        return analysis

    async def resume(self, actor: Principal, analysis_id: int, *, token_budget: int | None = None) -> FeedbackAnalysis:
        """Start a stopped analysis again (its budget or quota ran out): only the messages left are done."""
        require(actor, USE)
        async with self._sessions() as session, session.begin():
            analysis = await self._analysis(session, actor, analysis_id)
            if analysis.status in ACTIVE or analysis.status == "done":
                raise Conflict(f"Analysis {analysis_id} is {analysis.status}: there is nothing to resume.")
            runs = int(analysis.options.get("runs", 0)) + 1
            analysis.options = {**analysis.options, "runs": runs}
            analysis.status, analysis.error, analysis.finished_at = "queued", None, None
            if token_budget is not None:
                analysis.token_budget = token_budget
            await self._queue.enqueue(ANALYZE, {"analysis_id": analysis.id, "run": runs},
                                      dedupe_key=f"{ANALYZE}:{analysis.id}:{runs}", max_attempts=10, session=session)
        return analysis

    async def get(self, actor: Principal, analysis_id: int) -> FeedbackAnalysis:
        require(actor, USE)
        async with self._sessions() as session:
            return await self._analysis(session, actor, analysis_id)

    async def list_analyses(self, actor: Principal, dataset_id: int | None = None) -> list[FeedbackAnalysis]:
        require(actor, USE)
        query = select(FeedbackAnalysis).where(owned(FeedbackAnalysis.owner_id, actor))
        if dataset_id is not None:
            query = query.where(FeedbackAnalysis.dataset_id == dataset_id)
        async with self._sessions() as session:
            return list(await session.scalars(query.order_by(FeedbackAnalysis.id.desc())))

    @staticmethod
    async def _analysis(session: AsyncSession, actor: Principal, analysis_id: int) -> FeedbackAnalysis:
        found = await session.scalar(select(FeedbackAnalysis).where(
            FeedbackAnalysis.id == analysis_id, owned(FeedbackAnalysis.owner_id, actor)))
        if found is None:
            raise NotFound(f"Feedback analysis {analysis_id} not found.", param="analysis")
        return found

    async def annotations(self, actor: Principal, analysis_id: int) -> list[AnnotatedMessage]:
        """An analysis' annotations with their messages, in import order."""
        require(actor, USE)
        async with self._sessions() as session:
            analysis = await self._analysis(session, actor, analysis_id)
            rows = await session.execute(
                select(FeedbackMessage, FeedbackAnnotation)
                .join(FeedbackAnnotation, FeedbackAnnotation.message_id == FeedbackMessage.id)
                .where(FeedbackAnnotation.analysis_id == analysis.id).order_by(FeedbackMessage.id))
            return [AnnotatedMessage(m, a) for m, a in rows.tuples()]

    async def cancel(self, actor: Principal, analysis_id: int) -> FeedbackAnalysis:
        """Stop an analysis at its next batch; what is annotated stays, and it can be resumed."""
        require(actor, USE)
        async with self._sessions() as session, session.begin():
            analysis = await self._analysis(session, actor, analysis_id)
            if analysis.status in ACTIVE:
                await session.execute(update(FeedbackAnalysis).where(FeedbackAnalysis.id == analysis.id)
                                      .values(status="stopped", error="Arrêtée à la demande.", finished_at=utcnow()))
                await session.refresh(analysis)
            return analysis
