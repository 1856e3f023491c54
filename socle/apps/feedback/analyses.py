"""The front of analyses: plan one (its engine and models checked now rather than failing later), estimate
what it will cost, start it (a durable job: :mod:`socle.apps.feedback.runner` runs it), and read its report
and annotations."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from socle.apps.feedback.engines import ENGINES, FittedEngines
from socle.apps.feedback.exports import annotations_csv
from socle.apps.feedback.models import FeedbackAnalysis, FeedbackDataset
from socle.apps.feedback.permissions import USE
from socle.apps.feedback.report import render_report, render_report_fragment
from socle.apps.feedback.service import DEFAULT_OPTIONS, FeedbackService
from socle.apps.feedback.taxonomy import Taxonomy
from socle.errors import InvalidRequest
from socle.identity.permissions import Principal, require

REPLY_OVERHEAD = 400  # a draft's instructions and its longest answer, in tokens


@dataclass(frozen=True, slots=True)
class Plan:
    """An analysis as asked, checked: its engine, its model (the engine's default when none was named) and
    its options (the service's defaults, overridden)."""

    engine: str
    model: str
    options: dict[str, Any]

    def matches(self, analysis: FeedbackAnalysis) -> bool:
        """``analysis`` was started from the same plan (the CLI resumes it rather than start another)."""
        return (analysis.engine, analysis.model) == (self.engine, self.model) and \
            all(analysis.options.get(k) == v for k, v in self.options.items())


@dataclass(frozen=True, slots=True)
class Estimate:
    messages: int
    tokens: int  # at most: prompts estimated generously, completions at their limit
    engine: str
    model: str


class Analyses:
    """Analyses as their owners see them; every call acts as ``principal`` and checks its permission."""

    def __init__(self, feedback: FeedbackService, engines: FittedEngines) -> None:
        self._feedback = feedback
        self._engines = engines

    @property
    def taxonomy(self) -> Taxonomy:
        return self._engines.taxonomy

    def plan(self, principal: Principal, engine: str, model: str | None = None, *, replies: bool = False,
             reply_model: str | None = None, learn_from_labels: bool | None = None) -> Plan:
        """An analysis checked now rather than failing later (an unknown engine, a model the caller may not
        see or of the wrong kind), its models chosen and its options complete."""
        chosen = self._model(principal, engine, model)
        drafts_by = self._model(principal, "llm", reply_model) if replies else None
        options = {**DEFAULT_OPTIONS, "replies": drafts_by is not None, "reply_model": drafts_by}
        if learn_from_labels is not None:
            options["learn_from_labels"] = learn_from_labels
        return Plan(engine, chosen, options)

    def _model(self, principal: Principal, engine: str, model: str | None) -> str:
        """The model ``engine`` will use: ``model``, or the engine's default."""
        require(principal, USE)
        if engine not in ENGINES:
            raise InvalidRequest(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.", param="engine")
        wanted = "embeddings" if engine == "embedding" else "chat"
        if model is None:
            if engine == "embedding" and self._engines.embedding_model is not None:
                return self._engines.embedding_model
            models = self._engines.inference.list_models(principal)
            model = next((m.id for m in models if m.config.type == wanted), None)
            if model is None:
                raise InvalidRequest(f"No {wanted} model is configured for the {engine} engine.", param="model")
        served = self._engines.inference.get_model(principal, model)
        if served.config.type != wanted:
            raise InvalidRequest(f"The {engine} engine needs a {wanted} model; '{served.id}' is a "
                                 f"{served.config.type} model.", param="model", code="model_not_supported")
        if engine == "embedding" and self._engines.embedding_model is None:
            raise InvalidRequest("The embedding engine needs the platform's embeddings model: none is configured.",
                                 param="engine")
        return served.id

    async def estimate(self, principal: Principal, dataset_id: int, plan: Plan) -> Estimate:
        """What an analysis of the dataset will cost at most, before it starts (the dry run): no model is
        called."""
        texts = [m.text for m in await self._feedback.messages(principal, dataset_id)]
        chosen = self._engines.get(plan.engine, plan.model, principal)
        tokens = sum(chosen.estimate_tokens(text) for text in texts)
        if plan.options["replies"]:
            tokens += sum(len(text) // 3 + REPLY_OVERHEAD for text in texts)
        return Estimate(messages=len(texts), tokens=tokens, engine=plan.engine, model=plan.model)

    async def start(self, principal: Principal, dataset_id: int, plan: Plan, *,
                    token_budget: int | None = None) -> FeedbackAnalysis:
        return await self._feedback.start(principal, dataset_id, engine=plan.engine, model=plan.model,
                                          token_budget=token_budget, options=plan.options)

    async def report(self, principal: Principal, analysis_id: int, *,
                     fragment: bool = False) -> tuple[FeedbackAnalysis, FeedbackDataset, str]:
        """An analysis' report: the self-contained HTML file, or (``fragment``) its body for a page of the UI.
        Drawn off the event loop: its charts take a while on a large dataset."""
        analysis = await self._feedback.get(principal, analysis_id)
        dataset = await self._feedback.get_dataset(principal, analysis.dataset_id)
        rows = await self._feedback.annotations(principal, analysis.id)
        render = render_report_fragment if fragment else render_report
        return analysis, dataset, await asyncio.to_thread(render, analysis, dataset, rows, self._engines.taxonomy)

    async def annotations_csv(self, principal: Principal, analysis_id: int) -> str:
        """One row per annotated message, for a spreadsheet."""
        rows = await self._feedback.annotations(principal, analysis_id)
        return await asyncio.to_thread(annotations_csv, rows, self._engines.taxonomy)
