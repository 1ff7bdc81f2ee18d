"""Routing + mapping + assessment for a whole record: one registry of criteria mappers.

Each criteria set registers one :class:`CriteriaMapper`: the codes it reads (discovery builds the prefetch
templates from them) and a function from the record to an ``Assessment`` (or the reasons it could not
assess). Adding a criteria set means adding one entry here; the service, cards and timeline need no change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Mapping

from fhir_mappings.record import MappingIssue, PatientRecord
from fhir_mappings.routing import RoutedCancer, route
from rules.base import Assessment, frozen_builder


@dataclass(frozen=True)
class MapperOutput:
    assessment: Assessment | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # the not-evaluable assessment is itself the criterion's verdict (GCIG "not evaluable for CA-125 response"
    # after mouse antibodies or a paracentesis): show it as an assessment card, not an "insufficient data" one
    show_not_evaluable: bool = False


new_mapper_output = frozen_builder(MapperOutput)  # every field, in order (no frozen __init__ per field)

MapFn = Callable[[PatientRecord, RoutedCancer, date, Mapping[str, Any]], MapperOutput]


@dataclass(frozen=True)
class CriteriaMapper:
    criteria: str
    observation_codes: tuple[str, ...]     # "system|code" the mapper reads from Observation.code
    report_categories: tuple[str, ...] = ()  # DiagnosticReport categories it reads (system|code)
    fn: MapFn = None  # type: ignore[assignment]
    needs: tuple[str, ...] = ("Observation",)  # resource types beyond Patient/Condition
    # whether this criteria set applies to this patient at all (e.g. iRECIST only on checkpoint inhibitors);
    # when False the criteria set is skipped silently (no "insufficient data" card)
    applies: Callable[[PatientRecord, RoutedCancer, Mapping[str, Any]], bool] | None = None
    # criteria sets this one replaces when it applies (iRECIST replaces RECIST 1.1 on immunotherapy)
    replaces: tuple[str, ...] = ()


@dataclass
class CriteriaResult:
    cancer: RoutedCancer
    criteria: str
    assessment: Assessment | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    issues: list[MappingIssue] = field(default_factory=list)
    show_not_evaluable: bool = False


REGISTRY: dict[str, CriteriaMapper] = {}


def register(mapper: CriteriaMapper) -> None:
    REGISTRY[mapper.criteria] = mapper


def observation_codes(extra: Mapping[str, tuple[str, ...]] | None = None) -> list[str]:
    """Every Observation code any registered mapper reads, plus configured local codes (for prefetch)."""
    out: dict[str, None] = {}
    for m in REGISTRY.values():
        for c in m.observation_codes:
            out[c] = None
    for codes_ in (extra or {}).values():
        for c in codes_:
            out[c] = None
    return list(out)


def assess_record(record: PatientRecord, as_of: date, options: Mapping[str, Any] | None = None) -> list[CriteriaResult]:
    """Every cancer in the record, every applicable registered criteria set."""
    options = options or {}
    results: list[CriteriaResult] = []
    for routed in route(record):
        wanted = list(routed.cancer.criteria)
        wanted += [m.criteria for m in REGISTRY.values()
                   if m.replaces and set(m.replaces) & set(wanted) and m.criteria not in wanted]
        active = []
        for crit in wanted:
            m = REGISTRY.get(crit)
            if m is not None and m.applies is not None:
                try:
                    if not m.applies(record, routed, options):
                        continue
                except Exception as exc:  # noqa: BLE001 - malformed data: assume it does not apply
                    record.issue(None, f"{crit} applicability could not be read", type(exc).__name__)
                    continue
            active.append(crit)
        replaced = {r for c in active if c in REGISTRY for r in REGISTRY[c].replaces}
        for crit in active:
            if crit in replaced:
                continue
            mapper = REGISTRY.get(crit)
            if mapper is None:
                results.append(CriteriaResult(routed, crit, None, (f"{crit} is not implemented by this service yet",)))
                continue
            before = len(record.issues)
            try:
                out = mapper.fn(record, routed, as_of, options)
            except Exception as exc:  # noqa: BLE001 - a malformed record must never take the service down
                record.issue(None, f"{crit} could not read the record", f"unexpected data shape ({type(exc).__name__})")
                out = MapperOutput(None, (f"the record's data for {crit} could not be read",))
            results.append(CriteriaResult(routed, crit, out.assessment, out.missing, out.notes,
                                          list(record.issues[before:]), out.show_not_evaluable))
    return results


def _load_builtin() -> None:
    """Import every ``fhir_mappings/*_entry.py``: each registers one criteria set."""
    import importlib
    import pkgutil

    import fhir_mappings

    for mod in sorted(pkgutil.iter_modules(fhir_mappings.__path__), key=lambda m: m.name):
        if mod.name.endswith("_entry"):
            importlib.import_module(f"fhir_mappings.{mod.name}")


_load_builtin()
