"""``socle panorama import | export | eval``: the catalogue at the console, on the platform's own services
(the same database as the server), as the operator."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from socle import console as console_
from socle.apps.panorama.app import PanoramaServices
from socle.apps.panorama.evaluation import NEEDS, evaluate, labelled
from socle.apps.panorama.vocabulary import FAMILY_BY_CODE
from socle.identity.permissions import SYSTEM
from socle.platform import Mode, Platform

panorama_app = typer.Typer(help="Panorama of AI solutions: import, export and evaluate the catalogue.",
                           no_args_is_help=True)
console, err = console_.console, console_.err


@panorama_app.command("import")
def import_(file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False,
                                                        help=".yaml, .csv or .xlsx")] = None,
            sample: Annotated[bool, typer.Option("--sample", help="Load the illustrative sample catalogue")] = False,
            ) -> None:
    """Merge a catalogue file (or the sample) into the catalogue: new slugs are added, known ones updated."""
    if (file is None) == (not sample):
        raise typer.BadParameter("give a FILE or --sample, not both")
    console_.prepare(console_.settings())

    async def run(platform: Platform) -> tuple[int, int]:
        catalogue = platform.app(PanoramaServices).catalogue
        imported = await (catalogue.load_sample(SYSTEM) if file is None
                          else catalogue.import_file(SYSTEM, file.name, file.read_bytes()))
        return imported.created, imported.updated

    created, updated = console_.with_platform(run)
    console.print(f"[bold green]Catalogue imported:[/] {created} added, {updated} updated.")


@panorama_app.command("export")
def export(output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write; default: stdout")] = None,
           format: Annotated[str, typer.Option(help="csv or yaml")] = "csv") -> None:
    """The whole catalogue as CSV (``;``-separated) or YAML, which ``import`` reads back."""
    console_.prepare(console_.settings())

    async def run(platform: Platform) -> str:
        return await platform.app(PanoramaServices).catalogue.export(SYSTEM, format)

    text = console_.with_platform(run)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"Catalogue written to {output}.")


@panorama_app.command("eval")
def evaluate_(needs: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                                  help="Labelled needs (JSONL: need, family)")] = NEEDS,
              json_: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False) -> None:
    """Search by need over the catalogue for each labelled need: top-1 and top-3 family accuracy."""
    console_.prepare(console_.settings())

    async def run(platform: Platform) -> dict[str, object]:
        return (await evaluate(platform.app(PanoramaServices).catalogue, SYSTEM, labelled(needs))).as_dict()

    result = console_.with_platform(run, mode=Mode.BATCH)
    if json_:
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("Famille", "Top-3")
    for family, accuracy in result["by_family"].items():  # type: ignore[union-attr]
        table.add_row(FAMILY_BY_CODE[family].label if family in FAMILY_BY_CODE else family, f"{accuracy:.0%}")
    console.print(table)
    console.print(f"{result['needs']} needs — top-1: {result['top1']:.0%}, top-3: {result['top3']:.0%}")
