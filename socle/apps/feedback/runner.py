"""The analysis job: annotates a dataset's messages batch by batch, each batch's annotations committed
with the analysis' counters, so that a killed worker's successor (the job's lease ran out) starts from
the first message without one and never redoes a finished one. A message the engine cannot annotate is
kept as ``invalid`` with its reason; a spent token budget or quota stops the analysis, resumable; once
every message is done, the emerging topics are found."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle.apps.feedback import pii
from socle.apps.feedback.engines import EngineContext, Example, FittedEngines, Interrupted, Item, Outcome
from socle.apps.feedback.models import FeedbackAnalysis, FeedbackAnnotation, FeedbackMessage
from socle.apps.feedback.pii import without_placeholders
from socle.apps.feedback.replies import draft_reply, topic_namer
from socle.apps.feedback.service import ACTIVE, ANALYZE
from socle.db.models import utcnow
from socle.errors import InvalidRequest, NotFound, PermissionDenied, RateLimited
from socle.identity.permissions import SYSTEM
from socle.identity.service import IdentityService
from socle.jobs.kinds import JobKind, Kind
from socle.jobs.worker import PermanentError
from socle.rag.topics import emerging_topics

log = logging.getLogger("socle.feedback")


class AnalysisJob:
    """Runs the ``feedback.analyze`` jobs the front enqueues, as the analysis' owner."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], identity: IdentityService,
                 engines: FittedEngines) -> None:
        self._sessions = sessions
        self._identity = identity
        self._engines = engines

    @property
    def kinds(self) -> list[JobKind]:
        return [Kind(ANALYZE, self.run, self.give_up)]

    async def give_up(self, payload: dict[str, Any], error: str) -> None:
        """The job failed for good (its attempts are spent): the analysis says so, and can be resumed."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(FeedbackAnalysis).where(
                FeedbackAnalysis.id == int(payload["analysis_id"]), FeedbackAnalysis.status.in_(ACTIVE))
                .values(status="failed", error=f"Échec après plusieurs essais : {error}"[:2000],
                        finished_at=utcnow()))

    async def run(self, payload: dict[str, Any]) -> None:
        analysis_id = int(payload["analysis_id"])
        async with self._sessions() as session, session.begin():
            analysis = await session.get(FeedbackAnalysis, analysis_id)
            if analysis is None or analysis.status not in ACTIVE:
                return  # deleted, stopped or already finished: nothing to do
            analysis.status = "running"
            analysis.started_at = analysis.started_at or utcnow()
            owner, engine_name, model, options = analysis.owner_id, analysis.engine, analysis.model, analysis.options
        try:
            principal = SYSTEM if owner is None else await self._identity.principal_of(owner)
            engine = self._engines.get(engine_name, model, principal)
        except (InvalidRequest, NotFound, PermissionDenied) as exc:
            await self._finish(analysis_id, "failed", str(exc))
            raise PermanentError(str(exc)) from exc
        context = self._engines.context(principal)
        examples = await self._examples(analysis_id) if options.get("learn_from_labels") else []
        while True:
            batch = await self._next_batch(analysis_id, engine.batch_size)
            if batch is None:
                return  # stopped meanwhile
            if not batch:
                break
            state = await self._state(analysis_id)
            cost = sum(engine.estimate_tokens(m.text) for m in batch)
            if state.token_budget is not None and state.tokens + cost > state.token_budget:
                await self._finish(analysis_id, "stopped", f"Budget de {state.token_budget} jetons atteint "
                                                           f"({state.tokens} consommés) : reprenez avec un budget plus grand.")
                return
            found = {m.id: pii.detect(m.text) for m in batch}
            items = [Item(m.id, pii.pseudonymise(m.text, found[m.id])) for m in batch]
            try:
                outcomes = await engine.annotate(items, examples)
                if options.get("replies"):
                    await self._draft_replies(context, str(options.get("reply_model") or model), items, outcomes)
            except Interrupted as exc:
                await self._save(analysis_id, items, exc.outcomes, found)
                await self._finish(analysis_id, "stopped", f"Quota atteint : {exc.cause}")
                return
            except RateLimited as exc:
                await self._finish(analysis_id, "stopped", f"Quota atteint : {exc}")
                return
            except (NotFound, PermissionDenied) as exc:
                await self._finish(analysis_id, "failed", str(exc))
                raise PermanentError(str(exc)) from exc
            await self._save(analysis_id, items, outcomes, found)
        await self._topics(analysis_id, engine_name, model, context)

    async def _next_batch(self, analysis_id: int, size: int) -> list[FeedbackMessage] | None:
        async with self._sessions() as session:
            analysis = await session.get(FeedbackAnalysis, analysis_id)
            if analysis is None or analysis.status != "running":
                return None
            done = select(FeedbackAnnotation.message_id).where(FeedbackAnnotation.analysis_id == analysis_id)
            return list(await session.scalars(
                select(FeedbackMessage).where(FeedbackMessage.dataset_id == analysis.dataset_id,
                                              FeedbackMessage.id.not_in(done))
                .order_by(FeedbackMessage.id).limit(size)))

    async def _examples(self, analysis_id: int) -> list[Example]:
        """The dataset's labelled messages, pseudonymised like every text an engine sees."""
        async with self._sessions() as session:
            analysis = await session.get(FeedbackAnalysis, analysis_id)
            assert analysis is not None
            rows = (await session.execute(select(FeedbackMessage.id, FeedbackMessage.text, FeedbackMessage.labels)
                                          .where(FeedbackMessage.dataset_id == analysis.dataset_id,
                                                 FeedbackMessage.labels.is_not(None)))).all()
        return [Example(r.id, pii.pseudonymise(r.text), r.labels) for r in rows if r.labels]

    async def _state(self, analysis_id: int) -> FeedbackAnalysis:
        async with self._sessions() as session:
            found = await session.get(FeedbackAnalysis, analysis_id)
            assert found is not None
            return found

    async def _draft_replies(self, context: EngineContext, model: str, items: list[Item],
                             outcomes: list[Outcome]) -> None:
        """A draft for each annotated message; a quota that refuses one keeps the batch up to it."""
        for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
            if outcome.result is None:
                continue
            try:
                outcome.result["draft_reply"], tokens = await draft_reply(context, model, item.text, outcome.result)
            except RateLimited as exc:
                raise Interrupted(outcomes[:index], exc) from exc
            outcome.tokens += tokens

    async def _save(self, analysis_id: int, items: list[Item], outcomes: list[Outcome],
                    found: dict[int, list[pii.Span]]) -> None:
        texts = {item.message_id: item.text for item in items}
        rows = [FeedbackAnnotation(
            analysis_id=analysis_id, message_id=o.message_id, status="ok" if o.result is not None else "invalid",
            text=texts[o.message_id], result=o.result, error=o.error, tokens=o.tokens, attempts=o.attempts,
            personal_data=[{"kind": s.kind, "start": s.start, "end": s.end} for s in found[o.message_id]],
            vector=None if o.vector is None else np.asarray(o.vector, dtype="<f4").tobytes()) for o in outcomes]
        try:
            async with self._sessions() as session, session.begin():
                session.add_all(rows)
                await session.flush()
                await session.execute(update(FeedbackAnalysis).where(FeedbackAnalysis.id == analysis_id).values(
                    done=FeedbackAnalysis.done + sum(r.status == "ok" for r in rows),
                    failed=FeedbackAnalysis.failed + sum(r.status != "ok" for r in rows),
                    tokens=FeedbackAnalysis.tokens + sum(r.tokens for r in rows)))
        except IntegrityError:  # another worker wrote this batch first (a lease that ran out): theirs stands
            log.warning("analysis %d: a batch was already annotated", analysis_id)

    async def _topics(self, analysis_id: int, engine_name: str, model: str, context: EngineContext) -> None:
        async with self._sessions() as session:
            rows = (await session.execute(
                select(FeedbackAnnotation.message_id, FeedbackAnnotation.text, FeedbackAnnotation.vector,
                       FeedbackAnnotation.result)
                .where(FeedbackAnnotation.analysis_id == analysis_id, FeedbackAnnotation.vector.is_not(None))
                .order_by(FeedbackAnnotation.message_id))).all()
        topics: list[dict[str, object]] = []
        if rows:
            vectors = np.stack([np.frombuffer(r.vector, dtype="<f4") for r in rows])
            fit = [max((t["confidence"] for t in (r.result or {}).get("themes", [])), default=0.0) for r in rows]
            namer = topic_namer(context, model) if engine_name == "llm" else None
            found = await emerging_topics([r.message_id for r in rows], [r.text for r in rows], vectors, fit,
                                          namer=namer, clean=without_placeholders)
            topics = [t.as_dict() for t in found]
        async with self._sessions() as session, session.begin():
            await session.execute(update(FeedbackAnalysis).where(FeedbackAnalysis.id == analysis_id,
                                                                 FeedbackAnalysis.status == "running")
                                  .values(topics=topics, status="done", finished_at=utcnow()))

    async def _finish(self, analysis_id: int, status: str, error: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(FeedbackAnalysis).where(FeedbackAnalysis.id == analysis_id)
                                  .values(status=status, error=error[:2000], finished_at=utcnow()))
