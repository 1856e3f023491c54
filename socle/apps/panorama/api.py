"""``/v1/panorama``: the panorama of AI solutions over HTTP — the catalogue (browse with facets, a solution,
edit, import, export), search by need, the census of needs, the calls for projects (projects, the jury's
marks, the ranking, the impact indicators of selected products)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, UploadFile, status
from pydantic import BaseModel, Field
from starlette.responses import Response

from socle.api.deps import Caller, app_services
from socle.api.strict import StrictRoute
from socle.apps.panorama.app import PanoramaServices
from socle.apps.panorama.calls import (
    CallFields,
    IndicatorFields,
    MeasureFields,
    ProjectFields,
    ScoreFields,
    call_dict,
    indicator_dict,
    project_dict,
)
from socle.apps.panorama.catalogue import Filters, solution_dict
from socle.apps.panorama.importing import SolutionFields
from socle.apps.panorama.needs import NeedFields, need_dict
from socle.apps.panorama.vocabulary import FAMILIES, HOSTINGS, JURY_CRITERIA, MATURITIES
from socle.db.integers import Id
from socle.errors import PayloadTooLarge

router = APIRouter(prefix="/v1/panorama", tags=["panorama"], route_class=StrictRoute)
IMPORT_PATH = "/v1/panorama/solutions/import"
MAX_FILE = 8 * 1024 * 1024
Services = Annotated[PanoramaServices, Depends(app_services(PanoramaServices))]
Family = Literal[tuple(f.code for f in FAMILIES)]  # type: ignore[valid-type]


class SearchRequest(BaseModel):
    model_config = {"extra": "forbid"}
    need: str = Field(min_length=1, max_length=2000, description="The need, in plain French")
    k: int = Field(default=5, ge=1, le=50)
    families: list[Family] = Field(default_factory=list, description="Only these families")  # type: ignore[valid-type]


class StatusRequest(BaseModel):
    model_config = {"extra": "forbid"}
    status: Literal["open", "closed"]


class DecisionRequest(BaseModel):
    model_config = {"extra": "forbid"}
    status: Literal["submitted", "selected", "declined"]


def _list(data: list[Any], **extra: Any) -> dict[str, Any]:
    return {"object": "list", "data": data, **extra}


# -- the catalogue ----------------------------------------------------------------------------------
@router.get("/families")
async def families(principal: Caller, services: Services) -> dict[str, Any]:
    """The functional families, the maturities and hostings, the solutions' criteria and the jury's."""
    listing = await services.catalogue.browse(principal)
    return _list([{"code": f.code, "label": f.label, "description": f.description,
                   "solutions": listing.facets["family"].get(f.code, 0)} for f in FAMILIES],
                 maturities=MATURITIES, hostings=HOSTINGS, jury_criteria=JURY_CRITERIA)


@router.get("/solutions")
async def list_solutions(principal: Caller, services: Services, family: str | None = None,
                         maturity: str | None = None, hosting: str | None = None, open_source: bool | None = None,
                         q: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """The catalogue, filtered; ``facets`` counts each value with the other filters applied."""
    listing = await services.catalogue.browse(principal, Filters(family, maturity, hosting, open_source, q))
    return _list([solution_dict(s) for s in listing.solutions], total=listing.total, facets=listing.facets)


@router.post("/solutions", status_code=status.HTTP_201_CREATED)
async def create_solution(body: SolutionFields, principal: Caller, services: Services) -> dict[str, Any]:
    return solution_dict(await services.catalogue.create(principal, body))


@router.post("/solutions/import")
async def import_solutions(principal: Caller, services: Services,
                           file: UploadFile = File(description=".yaml, .csv or .xlsx")) -> dict[str, Any]:
    """Merge a file into the catalogue by slug: new solutions are added, known ones updated."""
    data = await file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise PayloadTooLarge(f"The file is larger than {MAX_FILE} bytes.")
    imported = await services.catalogue.import_file(principal, file.filename or "catalogue", data)
    return {"object": "panorama.import", "created": imported.created, "updated": imported.updated}


@router.get("/solutions/export")
async def export_solutions(principal: Caller, services: Services,
                           format: Literal["csv", "yaml"] = "csv") -> Response:
    text = await services.catalogue.export(principal, format)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/yaml; charset=utf-8"
    return Response(text.encode(), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="panorama.{format}"'})


@router.get("/solutions/{slug}")
async def get_solution(slug: str, principal: Caller, services: Services) -> dict[str, Any]:
    return solution_dict(await services.catalogue.get(principal, slug))


@router.put("/solutions/{slug}")
async def update_solution(slug: str, body: SolutionFields, principal: Caller, services: Services) -> dict[str, Any]:
    return solution_dict(await services.catalogue.update(principal, slug, body))


@router.delete("/solutions/{slug}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_solution(slug: str, principal: Caller, services: Services) -> Response:
    await services.catalogue.delete(principal, slug)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/search")
async def search(body: SearchRequest, principal: Caller, services: Services) -> dict[str, Any]:
    """Search by need: the closest solutions by the platform's hybrid search, each with why it matched."""
    matches = await services.catalogue.search(principal, body.need, k=body.k, families=body.families)
    return _list([m.as_dict() for m in matches])


# -- the census of needs ----------------------------------------------------------------------------
@router.post("/needs", status_code=status.HTTP_201_CREATED)
async def declare_need(body: NeedFields, principal: Caller, services: Services) -> dict[str, Any]:
    """Declare a need: it is matched to the closest solutions and takes the family of the first."""
    return need_dict(await services.needs.declare(principal, body))


@router.get("/needs")
async def list_needs(principal: Caller, services: Services,
                     scope: Literal["mine", "all"] = "mine", family: str | None = None,
                     administration: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """The caller's needs; ``scope=all`` (``panorama:edit``): every need with counts by family and
    administration."""
    if scope == "mine":
        return _list([need_dict(n) for n in await services.needs.mine(principal)])
    overview = await services.needs.overview(principal, family=family, administration=administration)
    return _list([need_dict(n) for n in overview.needs], by_family=overview.by_family,
                 by_administration=overview.by_administration, by_administration_and_family=overview.cross)


@router.get("/needs/groups")
async def need_groups(principal: Caller, services: Services) -> dict[str, Any]:
    """The needs grouped by similarity (``panorama:edit``)."""
    return _list([topic.as_dict() for topic in await services.needs.groups(principal)])


@router.get("/needs/export")
async def export_needs(principal: Caller, services: Services) -> Response:
    return Response(("\ufeff" + await services.needs.export_csv(principal)).encode(),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="besoins.csv"'})


@router.get("/needs/{need_id}")
async def get_need(need_id: Id, principal: Caller, services: Services) -> dict[str, Any]:
    return need_dict(await services.needs.get(principal, need_id))


# -- calls for projects -----------------------------------------------------------------------------
@router.post("/calls", status_code=status.HTTP_201_CREATED)
async def create_call(body: CallFields, principal: Caller, services: Services) -> dict[str, Any]:
    return call_dict(await services.calls.create_call(principal, body))


@router.get("/calls")
async def list_calls(principal: Caller, services: Services) -> dict[str, Any]:
    return _list([call_dict(c) for c in await services.calls.calls(principal)])


@router.get("/calls/{call_id}")
async def get_call(call_id: Id, principal: Caller, services: Services) -> dict[str, Any]:
    return call_dict(await services.calls.call(principal, call_id))


@router.patch("/calls/{call_id}")
async def set_call_status(call_id: Id, body: StatusRequest, principal: Caller, services: Services) -> dict[str, Any]:
    return call_dict(await services.calls.set_status(principal, call_id, body.status))


@router.post("/calls/{call_id}/projects", status_code=status.HTTP_201_CREATED)
async def submit_project(call_id: Id, body: ProjectFields, principal: Caller, services: Services) -> dict[str, Any]:
    return project_dict(await services.calls.submit(principal, call_id, body))


@router.get("/calls/{call_id}/projects")
async def list_projects(call_id: Id, principal: Caller, services: Services) -> dict[str, Any]:
    return _list([project_dict(p) for p in await services.calls.projects(principal, call_id)])


@router.get("/calls/{call_id}/ranking")
async def ranking(call_id: Id, principal: Caller, services: Services) -> dict[str, Any]:
    """The call's projects by the jurors' mean total (out of 35), with the marks and comments."""
    ranked = await services.calls.ranking(principal, call_id)
    return _list([{"rank": r.rank, "project": project_dict(r.project), "jurors": r.jurors,
                   "mean_total": r.mean_total, "mean_marks": r.mean_marks,
                   "scores": [{"juror_id": s.juror_id, "marks": s.marks, "total": s.total, "comment": s.comment}
                              for s in r.scores]} for r in ranked])


@router.get("/projects/{project_id}")
async def get_project(project_id: Id, principal: Caller, services: Services) -> dict[str, Any]:
    return project_dict(await services.calls.project(principal, project_id))


@router.put("/projects/{project_id}/score")
async def score_project(project_id: Id, body: ScoreFields, principal: Caller, services: Services) -> dict[str, Any]:
    """The caller's marks (``panorama:jury``): each of the seven criteria 0 to 5, and a comment."""
    score = await services.calls.score(principal, project_id, body)
    return {"object": "panorama.score", "project_id": project_id, "marks": score.marks, "total": score.total,
            "comment": score.comment}


@router.post("/projects/{project_id}/decision")
async def decide(project_id: Id, body: DecisionRequest, principal: Caller, services: Services) -> dict[str, Any]:
    return project_dict(await services.calls.decide(principal, project_id, body.status))


@router.get("/projects/{project_id}/indicators")
async def indicators(project_id: Id, principal: Caller, services: Services) -> dict[str, Any]:
    return _list([indicator_dict(i) for i in await services.calls.indicators(principal, project_id)])


@router.put("/projects/{project_id}/indicators/{kind}")
async def define_indicator(project_id: Id, kind: Literal["quantitative", "qualitative"], body: IndicatorFields,
                           principal: Caller, services: Services) -> dict[str, Any]:
    indicator = await services.calls.define_indicator(principal, project_id, kind, body)
    return {"id": indicator.id, "kind": indicator.kind, "name": indicator.name, "unit": indicator.unit}


@router.post("/projects/{project_id}/indicators/{kind}/measures", status_code=status.HTTP_201_CREATED)
async def record_measure(project_id: Id, kind: Literal["quantitative", "qualitative"], body: MeasureFields,
                         principal: Caller, services: Services) -> dict[str, Any]:
    measure = await services.calls.measure(principal, project_id, kind, body)
    return {"id": measure.id, "measured_on": measure.measured_on, "value": measure.value, "note": measure.note}
