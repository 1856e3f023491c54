"""``socle feedback import | analyze | eval | list``: the feedback app at the console, on the platform's
own services (the same database, models, quotas and usage as the server). Acts as the operator, or as a
user (``--user``: their datasets, their quotas)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from socle import console as console_
from socle.apps.feedback.analyses import Plan
from socle.apps.feedback.app import FeedbackServices
from socle.apps.feedback.evaluation import evaluate
from socle.apps.feedback.models import FeedbackAnalysis
from socle.apps.feedback.service import ACTIVE, DEFAULT_OPTIONS
from socle.identity.permissions import SYSTEM, Principal
from socle.platform import Mode, Platform

feedback_app = typer.Typer(help="Citizens' feedback: import, analyse, evaluate.", no_args_is_help=True)
console, err = console_.console, console_.err
T = TypeVar("T")
User = Annotated[str | None, typer.Option("--user", help="Act as this user (their datasets and quotas); "
                                                          "default: the operator")]
Engine = Annotated[str, typer.Option(help="embedding (offline, the embedded default) or llm (a chat model)")]
Model = Annotated[str | None, typer.Option(help="Model of the engine; default: the platform's first of its kind")]
Learn = Annotated[bool, typer.Option(help="The embedding engine also learns from the dataset's labelled messages "
                                          "(never to annotate those very messages)")]


def _run(action: Callable[[FeedbackServices, Principal], Awaitable[T]], user: str | None, *, models: bool) -> T:
    """Prepare the database, open the platform (with its models and this app's analyses when ``models``) and
    run one action as the operator or as ``user``."""
    console_.prepare(console_.settings())

    async def as_principal(platform: Platform) -> T:
        principal = SYSTEM if user is None else await platform.identity.principal_of(
            (await platform.identity.find_user(SYSTEM, user)).id)
        return await action(platform.app(FeedbackServices), principal)
    if models:
        return console_.with_platform(as_principal, mode=Mode.BATCH, pools={"feedback"})
    return console_.with_platform(as_principal)


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: write FIELD=COLUMN (text=Verbatim)", param_hint="--map")
        mapping[field.strip()] = column.strip()
    return mapping


@feedback_app.command("import")
def import_(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".csv, .jsonl or .xlsx")],
            dataset: Annotated[str, typer.Option(help="Dataset name (created if new; messages already there are "
                                                      "kept)")],
            map_: Annotated[list[str], typer.Option("--map", help="FIELD=COLUMN, for fields text, id, date, "
                                                                  "service, channel, rating")] = [],  # noqa: B006
            user: User = None) -> None:
    """Import feedback messages (the Services Publics+ export is recognised without any mapping)."""
    mapping = _mapping(map_)

    async def action(app: FeedbackServices, principal: Principal) -> None:
        done = await app.datasets.import_file(principal, dataset, file.name, file.read_bytes(), mapping)
        d = done.dataset
        console.print(f"Dataset {d.name!r} (id {d.id}, {d.source_format}): {done.added} messages added, "
                      f"{done.already_there} already there; {d.messages} in all, {d.labelled} with labels.")
        for reason in done.skipped[:20]:
            console.print(f"  [yellow]ignoré[/] {reason}")
        if len(done.skipped) > 20:
            console.print(f"  … and {len(done.skipped) - 20} more ignored rows")
    _run(action, user, models=False)


@feedback_app.command("list")
def list_(user: User = None) -> None:
    """Datasets and their analyses."""
    async def action(app: FeedbackServices, principal: Principal) -> None:
        table = Table("dataset", "id", "messages", "labelled", "analyses")
        for d in await app.datasets.list_datasets(principal):
            runs = await app.datasets.list_analyses(principal, d.id)
            table.add_row(d.name, str(d.id), str(d.messages), str(d.labelled),
                          ", ".join(f"#{a.id} {a.engine}/{a.model} {a.status} {a.done + a.failed}/{a.total}"
                                    for a in runs) or "—")
        console.print(table)
    _run(action, user, models=False)


@feedback_app.command()
def analyze(dataset: Annotated[str, typer.Option(help="Dataset name")],
            out: Annotated[Path | None, typer.Option(help="Write annotations.csv and report.html here")] = None,
            engine: Engine = "embedding", model: Model = None,
            replies: Annotated[bool, typer.Option(help="Draft a reply to each message (a chat model)")] = False,
            reply_model: Annotated[str | None, typer.Option(help="Chat model of the drafts")] = None,
            budget: Annotated[int | None, typer.Option(help="Stop once this many tokens are spent")] = None,
            dry_run: Annotated[bool, typer.Option(help="Estimate the tokens, analyse nothing")] = False,
            learn_from_labels: Learn = DEFAULT_OPTIONS["learn_from_labels"], user: User = None) -> None:
    """Analyse a dataset (a durable job: run it again after an interruption and it resumes)."""
    async def action(app: FeedbackServices, principal: Principal) -> None:
        analyses, feedback = app.analyses, app.datasets
        plan = analyses.plan(principal, engine, model, replies=replies, reply_model=reply_model,
                             learn_from_labels=learn_from_labels)
        data = await feedback.get_dataset(principal, dataset)
        if dry_run:
            estimate = await analyses.estimate(principal, data.id, plan)
            console.print(f"Dry run: {estimate.messages} messages, engine {engine} ({plan.model}): at most "
                          f"{estimate.tokens} tokens ({estimate.tokens // max(estimate.messages, 1)} per message).")
            return
        analysis = await _resumable(app, principal, data.id, plan)
        if analysis is None:
            analysis = await analyses.start(principal, data.id, plan, token_budget=budget)
            console.print(f"Analysis #{analysis.id} of {data.name!r}: {analysis.total} messages, engine {engine} "
                          f"({plan.model}).")
        elif analysis.status == "stopped":
            analysis = await feedback.resume(principal, analysis.id, token_budget=budget)
        analysis = await _follow(app, principal, analysis.id)
        console.print(f"Analysis #{analysis.id}: {analysis.status}; {analysis.done} annotated, {analysis.failed} "
                      f"invalid, {analysis.tokens} tokens." + (f" {analysis.error}" if analysis.error else ""))
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            table = await analyses.annotations_csv(principal, analysis.id)
            _, _, report = await analyses.report(principal, analysis.id)
            (out / "annotations.csv").write_text(table, encoding="utf-8")
            (out / "report.html").write_text(report, encoding="utf-8")
            console.print(f"Written: {out / 'annotations.csv'}, {out / 'report.html'}")
        if analysis.status != "done":
            raise typer.Exit(3)
    _run(action, user, models=True)


async def _resumable(app: FeedbackServices, principal: Principal, dataset_id: int,
                     plan: Plan) -> FeedbackAnalysis | None:
    """The unfinished analysis of the same dataset and plan, if there is one: it goes on."""
    for analysis in await app.datasets.list_analyses(principal, dataset_id):
        if plan.matches(analysis) and analysis.status in (*ACTIVE, "stopped"):
            console.print(f"Resuming analysis #{analysis.id}: {analysis.done + analysis.failed}/{analysis.total} "
                          "already done.")
            return analysis
    return None


async def _follow(app: FeedbackServices, principal: Principal, analysis_id: int) -> FeedbackAnalysis:
    with Progress(TextColumn("[bold]analyse"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        analysis = await app.datasets.get(principal, analysis_id)
        task = progress.add_task("analyse", total=analysis.total)
        while analysis.status in ACTIVE:
            progress.update(task, completed=analysis.done + analysis.failed)
            await asyncio.sleep(0.5)
            analysis = await app.datasets.get(principal, analysis_id)
    return analysis


@feedback_app.command("eval")
def eval_(dataset: Annotated[str, typer.Option(help="A dataset imported with its labels")],
          engine: Engine = "embedding", model: Model = None,
          analysis_id: Annotated[int | None, typer.Option("--analysis", help="Score this finished analysis "
                                                                            "rather than the latest")] = None,
          learn_from_labels: Learn = DEFAULT_OPTIONS["learn_from_labels"], user: User = None) -> None:
    """Per-label precision, recall and F1 of an analysis against the dataset's own labels (it runs the
    analysis first if there is none for this engine and model)."""
    async def action(app: FeedbackServices, principal: Principal) -> None:
        analyses, feedback = app.analyses, app.datasets
        data = await feedback.get_dataset(principal, dataset)
        if not data.labelled:
            err.print(f"[bold red]Error:[/] dataset {dataset!r} has no labelled message.")
            raise typer.Exit(1)
        if analysis_id is None:
            plan = analyses.plan(principal, engine, model, learn_from_labels=learn_from_labels)
            found = next((a for a in await feedback.list_analyses(principal, data.id) if plan.matches(a)), None)
            if found is None or found.status != "done":
                found = found if found is not None and found.status in (*ACTIVE, "stopped") else \
                    await analyses.start(principal, data.id, plan)
                if found.status == "stopped":
                    found = await feedback.resume(principal, found.id)
                found = await _follow(app, principal, found.id)
            analysis = found
        else:
            analysis = await feedback.get(principal, analysis_id)
        scores = evaluate(await feedback.annotations(principal, analysis.id), analyses.taxonomy)
        table = Table("kind", "label", "support", "predicted", "precision", "recall", "F1",
                      title=f"Analysis #{analysis.id}: {analysis.engine} ({analysis.model}), {analysis.done} "
                            f"annotated, {analysis.failed} invalid"
                            + (", learning from the dataset's other labelled messages"
                               if analysis.options.get("learn_from_labels") else ", taxonomy anchors only"))
        for s in scores:
            style = "bold" if s.label == "macro" else None
            table.add_row(s.kind, s.label, str(s.support), str(s.predicted), f"{s.precision:.3f}",
                          f"{s.recall:.3f}", f"{s.f1:.3f}", style=style)
        console.print(table)
    _run(action, user, models=True)
