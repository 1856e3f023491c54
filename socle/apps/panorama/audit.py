"""What the app records in the platform's audit trail: the changes an auditor must be able to trace — the
catalogue edited, a call for projects run, a project marked or decided, an impact measured — each in the
transaction of the change it records, so that the trail holds the entry if, and only if, the change was
made. Details hold ids, names of things and counts; never a person's text (a comment, a note, a summary).
"""
from __future__ import annotations

SOLUTION_CREATED = "panorama.solution_created"
SOLUTION_UPDATED = "panorama.solution_updated"
SOLUTION_DELETED = "panorama.solution_deleted"
CATALOGUE_IMPORTED = "panorama.catalogue_imported"
CALL_CREATED = "panorama.call_created"
CALL_CLOSED = "panorama.call_closed"
CALL_REOPENED = "panorama.call_reopened"
PROJECT_SUBMITTED = "panorama.project_submitted"
SCORE_RECORDED = "panorama.score_recorded"
SCORE_CHANGED = "panorama.score_changed"
PROJECT_SELECTED = "panorama.project_selected"
PROJECT_DECLINED = "panorama.project_declined"
PROJECT_RECONSIDERED = "panorama.project_reconsidered"
INDICATOR_DEFINED = "panorama.indicator_defined"
MEASURE_RECORDED = "panorama.measure_recorded"

ACTIONS = {
    SOLUTION_CREATED: "Solution ajoutée au panorama",
    SOLUTION_UPDATED: "Solution du panorama modifiée",
    SOLUTION_DELETED: "Solution retirée du panorama",
    CATALOGUE_IMPORTED: "Catalogue du panorama importé",
    CALL_CREATED: "Appel à projets ouvert",
    CALL_CLOSED: "Appel à projets clos",
    CALL_REOPENED: "Appel à projets rouvert",
    PROJECT_SUBMITTED: "Projet déposé à un appel",
    SCORE_RECORDED: "Notation du jury enregistrée",
    SCORE_CHANGED: "Notation du jury modifiée",
    PROJECT_SELECTED: "Projet retenu",
    PROJECT_DECLINED: "Projet non retenu",
    PROJECT_RECONSIDERED: "Projet remis à l'étude",
    INDICATOR_DEFINED: "Indicateur d'impact défini",
    MEASURE_RECORDED: "Valeur d'un indicateur d'impact enregistrée",
}

# What an entry's target names (its type, then the row's id).
SOLUTION = "panorama_solution"
CALL = "panorama_call"
PROJECT = "panorama_project"
