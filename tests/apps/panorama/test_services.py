"""The Panorama app's services as the platform builds them (``Platform.build`` in batch mode, the bundled e5
embedding model loaded, a migrated database): the sample catalogue and the platform's own apps, browsing
with facets, search by need (its top-3 family accuracy on the labelled needs), editing, the census of
needs with its groups and export, and a call for projects from submission to impact indicators."""
from __future__ import annotations

import csv
import io
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from socle.apps.panorama.app import PanoramaServices
from socle.apps.panorama.calls import (
    CallFields,
    IndicatorFields,
    MeasureFields,
    ProjectFields,
    ScoreFields,
)
from socle.apps.panorama.catalogue import Filters
from socle.apps.panorama.evaluation import evaluate, labelled
from socle.apps.panorama.importing import SolutionFields
from socle.apps.panorama.models import PanoramaSolution
from socle.apps.panorama.needs import NeedFields
from socle.apps.panorama.permissions import EDIT, JURY, READ
from socle.apps.panorama.vocabulary import FAMILIES, JURY_CRITERIA
from socle.db import migrate
from socle.errors import Conflict, NotFound, PermissionDenied
from socle.identity.permissions import SYSTEM, Principal
from socle.jobs.queue import JobQueue
from socle.platform import Mode, Platform
from socle.settings import Settings
from tests.apps.panorama.conftest import fresh_database

MODELS = "models:\n  - {id: multilingual-e5-small, type: embeddings, backends: [{type: e5}]}\n"
TOP3_FLOOR = 0.8


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    tmp = tmp_path_factory.mktemp("panorama")
    url = fresh_database(request, tmp)
    (tmp / "models.yaml").write_text(MODELS)
    migrate.upgrade(url)
    settings = Settings(data_dir=tmp, database_url=url, config=tmp / "models.yaml", _env_file=None)  # type: ignore[call-arg]
    opened = Platform.build(settings, Mode.BATCH)
    await opened.start()
    yield opened
    await opened.close()


async def person(p: Platform, *permissions: str) -> Principal:
    """A real user of the platform holding these permissions (as a role would give them)."""
    user = await p.identity.create_user(SYSTEM, email=f"agent-{secrets.token_hex(4)}@ministere.gouv.fr", name="Agent")
    return Principal(user_id=user.id, email=user.email, role="user", permissions=frozenset(permissions))


async def test_the_sample_and_the_platform_apps_make_the_catalogue(platform: Platform) -> None:
    catalogue = platform.app(PanoramaServices).catalogue
    reader = await person(platform, READ)
    listing = await catalogue.browse(reader)
    sample = [s for s in listing.solutions if s.illustrative]
    apps = {s.app: s for s in listing.solutions if s.app}
    assert len(sample) >= 40 and {s.family for s in sample} == {f.code for f in FAMILIES}
    assert set(apps) == {i.app.name for i in platform.apps.values()}  # the platform's own apps, feedback too
    assert apps["panorama"].editor.startswith("Socle IA") and not apps["panorama"].illustrative
    assert sum(listing.facets["family"].values()) == listing.total == len(listing.solutions)

    chosen = await catalogue.browse(reader, Filters(family="parole", open_source=True))
    assert chosen.solutions and all(s.family == "parole" and s.open_source for s in chosen.solutions)
    # A facet counts what choosing its value would leave, the other filters on.
    assert chosen.facets["family"]["parole"] == chosen.total
    assert chosen.facets["open_source"]["false"] == sum(1 for s in listing.solutions
                                                        if s.family == "parole" and not s.open_source)
    assert (await catalogue.browse(reader, Filters(text="COBOL"))).solutions[0].slug == "migration-cobol"
    with pytest.raises(PermissionDenied):
        await catalogue.browse(await person(platform))


async def test_search_by_need_finds_the_family_of_labelled_needs(platform: Platform) -> None:
    catalogue = platform.app(PanoramaServices).catalogue
    needs = labelled()
    assert len(needs) >= 30 and {n.family for n in needs} == {f.code for f in FAMILIES}
    result = await evaluate(catalogue, SYSTEM, needs)
    print(f"\nsearch by need: {result.needs} needs, top-1 {result.top1:.3f}, top-3 {result.top3:.3f}, "
          f"misses {result.misses}")
    assert result.top3 >= TOP3_FLOOR
    matches = await catalogue.search(SYSTEM, "je cherche un outil pour résumer des comptes rendus", k=3)
    assert matches[0].family == "redaction" and matches[0].similarity is not None
    assert matches[0].reason.startswith("Famille « Assistants de rédaction et de synthèse »")
    only = await catalogue.search(SYSTEM, "traduire des documents", k=5, families=["code"])
    assert only and {m.family for m in only} == {"code"}


async def test_editing_the_catalogue(platform: Platform, tmp_path: Path) -> None:
    services = platform.app(PanoramaServices)
    catalogue = services.catalogue
    editor, reader = await person(platform, READ, EDIT), await person(platform, READ)
    fields = SolutionFields(name="Greffe Audio Test", family="Parole et transcription", editor="Éditeur test",
                            description="Transcrit les audiences du greffe pour les magistrats.",
                            keywords="greffe; audience", open_source="oui", hosting="Installable sur site")
    with pytest.raises(PermissionDenied):
        await catalogue.create(reader, fields)
    created = await catalogue.create(editor, fields)
    assert (created.slug, created.family, created.hosting, created.open_source, created.keywords) == (
        "greffe-audio-test", "parole", "sur_site", True, ["greffe", "audience"])
    with pytest.raises(Conflict):
        await catalogue.create(editor, fields)
    # The index follows the edit: the new solution is found by its words at the next search.
    found = await catalogue.search(reader, "transcrire les audiences du greffe", k=3)
    assert "greffe-audio-test" in [m.slug for m in found]
    # The indexing job was queued, and running it leaves every solution with its vector.
    assert await platform.jobs.enqueue("panorama.index", {}, dedupe_key="panorama.index") > 0
    await catalogue.kinds[0].run({})
    async with platform.sessions() as session:
        assert (await session.scalar(select(PanoramaSolution.id).where(PanoramaSolution.vector.is_(None)))) is None

    changed = fields.model_copy(update={"description": "Transcrit et résume les audiences."})
    assert (await catalogue.update(editor, created.slug, changed)).description == "Transcrit et résume les audiences."
    app_entry = (await catalogue.get(reader, "socle-panorama"))
    with pytest.raises(Exception, match="app of the platform"):
        await catalogue.delete(editor, app_entry.slug)
    await catalogue.delete(editor, created.slug)
    with pytest.raises(NotFound):
        await catalogue.get(reader, created.slug)

    exported = await catalogue.export(reader, "csv")
    rows = list(csv.DictReader(io.StringIO(exported), delimiter=";"))
    assert len(rows) == (await catalogue.browse(reader)).total and rows[0]["family"]
    file = tmp_path / "catalogue.csv"
    file.write_text(exported.replace("Plume Synthèse", "Plume Synthèse 2"), encoding="utf-8")
    merged = await catalogue.import_file(editor, file.name, file.read_bytes())
    assert (merged.created, merged.updated) == (0, 1)
    assert (await catalogue.get(reader, "plume-synthese")).name == "Plume Synthèse 2"
    assert isinstance(platform.jobs, JobQueue)


async def test_the_census_of_needs(platform: Platform) -> None:
    needs = platform.app(PanoramaServices).needs
    agent, other, editor = (await person(platform, READ), await person(platform, READ),
                            await person(platform, READ, EDIT))
    declared = []
    for administration, title, irritant in [
        ("Préfecture du Nord", "Comptes rendus interminables", "Nous passons des heures à résumer les comptes "
         "rendus des réunions de service."),
        ("Préfecture du Nord", "Synthèse des réunions", "Rédiger la synthèse de chaque réunion prend une demi-journée."),
        ("Direction des routes", "Relevés de décisions", "Personne n'a le temps de résumer les comptes rendus de "
         "chantier."),
        ("Direction des routes", "Appels au standard", "Le standard est saturé de questions simples des usagers."),
        ("Caisse d'allocations", "Questions répétitives", "Les usagers appellent pour des questions simples dont la "
         "réponse est sur le site."),
        ("Caisse d'allocations", "Accueil téléphonique", "Le standard téléphonique ne répond plus aux usagers aux "
         "heures de pointe."),
    ]:
        declared.append(await needs.declare(agent, NeedFields(
            administration=administration, title=title, irritant=irritant, sufferers="Les agents du service",
            volume="20 par mois", data_available="Des années d'archives", workaround="À la main")))
    first = declared[0]
    assert first.family == "redaction" and len(first.matches) == 3
    assert first.matches[0]["reason"] and first.matches[0]["family"] == "redaction"
    assert declared[3].family == "relation_usager"

    assert [n.id for n in await needs.mine(agent)] == [n.id for n in reversed(declared)]
    assert await needs.mine(other) == []
    with pytest.raises(NotFound):  # someone else's need does not exist for them
        await needs.get(other, first.id)
    assert (await needs.get(editor, first.id)).id == first.id
    with pytest.raises(PermissionDenied):
        await needs.overview(agent)

    overview = await needs.overview(editor)
    assert overview.by_family["redaction"] >= 3 and overview.by_administration["Préfecture du Nord"] >= 2
    assert overview.cross["Direction des routes"]["relation_usager"] >= 1
    groups = await needs.groups(editor)
    ours = {n.id for n in declared}
    grouped = [set(g.message_ids) & ours for g in groups]
    assert any(g >= {declared[0].id, declared[1].id} for g in grouped), groups
    assert not any({declared[0].id, declared[3].id} <= g for g in grouped)  # writing and the switchboard apart

    exported = await needs.export_csv(editor)
    rows = list(csv.reader(io.StringIO(exported), delimiter=";"))
    assert rows[0][:3] == ["id", "administration", "titre"] and len(rows) - 1 == len(overview.needs)
    assert any(row[2] == "Comptes rendus interminables" and row[8] == "Assistants de rédaction et de synthèse"
               for row in rows)


async def test_a_call_for_projects_from_submission_to_impact(platform: Platform) -> None:
    calls = platform.app(PanoramaServices).calls
    editor, team, stranger = (await person(platform, READ, EDIT), await person(platform, READ),
                              await person(platform, READ))
    jurors = [await person(platform, READ, JURY) for _ in range(2)]
    with pytest.raises(PermissionDenied):
        await calls.create_call(team, CallFields(title="Appel"))
    call = await calls.create_call(editor, CallFields(title="Appel à projets IA 2027", closes_on="2027-03-31"))
    projects = [await calls.submit(team, call.id, ProjectFields(administration=f"Administration {i}",
                                                                title=f"Projet {i}", summary="Un projet."))
                for i in range(3)]
    assert [p.id for p in await calls.projects(team, call.id)] == [p.id for p in projects]
    assert await calls.projects(stranger, call.id) == []
    with pytest.raises(NotFound):
        await calls.project(stranger, projects[0].id)
    with pytest.raises(PermissionDenied):
        await calls.score(team, projects[0].id, ScoreFields(marks=dict.fromkeys(JURY_CRITERIA, 3)))
    with pytest.raises(ValueError):
        ScoreFields(marks={"impact": 3})
    with pytest.raises(ValueError):
        ScoreFields(marks=dict.fromkeys(JURY_CRITERIA, 6))

    marks = [(4, 5), (2, 3), (None, None)]  # per project, each juror's mark on every criterion
    for project, given in zip(projects, marks, strict=True):
        for juror, mark in zip(jurors, given, strict=True):
            if mark is not None:
                await calls.score(juror, project.id, ScoreFields(marks=dict.fromkeys(JURY_CRITERIA, mark),
                                                                 comment=f"note {mark}"))
    # A juror's second marking replaces the first.
    await calls.score(jurors[0], projects[1].id, ScoreFields(marks=dict.fromkeys(JURY_CRITERIA, 1)))
    ranking = await calls.ranking(jurors[1], call.id)
    assert [(r.rank, r.project.id, r.jurors, r.mean_total) for r in ranking] == [
        (1, projects[0].id, 2, 31.5), (2, projects[1].id, 2, 14.0), (3, projects[2].id, 0, None)]
    assert ranking[0].mean_marks == dict.fromkeys(JURY_CRITERIA, 4.5)
    with pytest.raises(PermissionDenied):
        await calls.ranking(team, call.id)

    with pytest.raises(Conflict):  # only a selected product records indicators
        await calls.define_indicator(team, projects[0].id, "quantitative", IndicatorFields(name="Agents actifs"))
    await calls.decide(editor, projects[0].id, "selected")
    await calls.define_indicator(team, projects[0].id, "quantitative", IndicatorFields(name="Agents actifs",
                                                                                       unit="agents"))
    await calls.define_indicator(team, projects[0].id, "qualitative", IndicatorFields(name="Satisfaction"))
    for day, value in (("2027-06-30", 40.0), ("2027-09-30", 120.0)):
        await calls.measure(team, projects[0].id, "quantitative", MeasureFields(measured_on=day, value=value))
    await calls.measure(team, projects[0].id, "qualitative",
                        MeasureFields(measured_on="2027-09-30", note="Les agents gagnent une heure par jour."))
    with pytest.raises(PermissionDenied):
        await calls.measure(jurors[0], projects[0].id, "quantitative",
                            MeasureFields(measured_on="2027-10-01", value=1))
    indicators = {i.indicator.kind: i for i in await calls.indicators(team, projects[0].id)}
    assert [m.value for m in indicators["quantitative"].measures] == [40.0, 120.0]
    assert indicators["qualitative"].measures[0].note.startswith("Les agents")

    await calls.set_status(editor, call.id, "closed")
    with pytest.raises(Conflict):
        await calls.submit(team, call.id, ProjectFields(administration="A", title="Tard", summary="Trop tard."))


async def test_a_persons_needs_projects_and_marks_under_the_platforms_duties(platform: Platform) -> None:
    services = platform.app(PanoramaServices)
    agent, editor = await person(platform, READ, JURY), await person(platform, READ, EDIT)
    need = await services.needs.declare(agent, NeedFields(administration="Mairie", title="Traduire les formulaires",
                                                          irritant="Les usagers étrangers ne les comprennent pas.",
                                                          sufferers="Les usagers"))
    call = await services.calls.create_call(editor, CallFields(title="Appel des données"))
    project = await services.calls.submit(agent, call.id, ProjectFields(administration="Mairie", title="Traduction",
                                                                        summary="Traduire."))
    await services.calls.score(agent, project.id, ScoreFields(marks=dict.fromkeys(JURY_CRITERIA, 2)))
    data = platform.apps["panorama"].personal_data[0]
    exported = {name: [row async for row in rows] async for name, rows in data.export(agent.user_id)}
    assert [r["title"] for r in exported["panorama_needs"]] == ["Traduire les formulaires"]
    assert [r["title"] for r in exported["panorama_projects"]] == ["Traduction"]
    assert [r["total"] for r in exported["panorama_scores"]] == [14]

    erased = await platform.erasure.erase_user(SYSTEM, agent.user_id)
    assert {k: v for k, v in erased.apps.items() if k.startswith("panorama")} == {
        "panorama_needs": 1, "panorama_projects": 1, "panorama_scores": 1}
    # The administration's work stays, linked to no one.
    assert (await services.needs.get(editor, need.id)).author_id is None
    assert (await services.calls.project(editor, project.id)).submitter_id is None
    assert (await services.calls.ranking(editor, call.id))[0].mean_total == 14
