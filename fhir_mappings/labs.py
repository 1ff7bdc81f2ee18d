"""Dated lab values, coded results and report text from a record, normalised and with issues recorded.

Every criteria mapper reads its inputs through these helpers, so units are converted one way (UCUM), local
codes configured by the health-IT team are honoured one way (``options["local_codes"][input_name]``), and
unusable values are skipped with an issue one way.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings.record import (
    PatientRecord,
    Resource,
    concept_keys,
    concept_text,
    effective_date,
    quantity,
    ref_of,
)
from fhir_mappings.units import UnitError, UnitSpec, normalise


@dataclass(frozen=True)
class LabValue:
    date: date
    value: Decimal                 # in the spec's canonical unit
    ref: str | None
    comparator: str | None = None  # "<", "<=", ">", ">=" when the lab reported a bound
    resource: Resource | None = None

    @property
    def below_detection(self) -> bool:
        return self.comparator in ("<", "<=")


@dataclass(frozen=True)
class CodedValue:
    date: date
    code: str | None       # "system|code" of the value, or None for text/boolean values
    text: str              # display / text / string value, lower-cased
    boolean: bool | None
    ref: str | None
    resource: Resource


def _list(value: Any) -> list:
    """A FHIR array element as a list; a malformed one (a number, a string) as empty, never an exception."""
    return value if isinstance(value, list) else []


def local_codes(options: Mapping[str, Any] | None, input_name: str) -> list[tuple[str, str | None]]:
    """Configured extra codes for one input: [(system|code, unit or None)]."""
    out = []
    for item in ((options or {}).get("local_codes") or {}).get(input_name, ()):
        if isinstance(item, str):
            out.append((item, None))
        elif isinstance(item, (tuple, list)) and item:
            out.append((item[0], item[1] if len(item) > 1 else None))
        elif isinstance(item, Mapping):
            out.append((f"{item['system']}|{item['code']}", item.get("unit")))
    return out


def _observations(record: PatientRecord, codes: Iterable[str], input_name: str | None,
                  options: Mapping[str, Any] | None) -> list[tuple[Resource, str | None]]:
    keys = list(codes)
    default_units: dict[str, str | None] = {}
    if input_name:
        for key, unit in local_codes(options, input_name):
            keys.append(key)
            default_units[key] = unit
    obs = record.with_codes(keys, "Observation")
    out = []
    for o in obs:
        unit = None
        for k in concept_keys(o.get("code")):
            if k in default_units:
                unit = default_units[k]
        out.append((o, unit))
    return out


def lab_series(record: PatientRecord, codes: Iterable[str], spec: UnitSpec, *, input_name: str | None = None,
               options: Mapping[str, Any] | None = None, what: str | None = None) -> list[LabValue]:
    """Numeric values of Observations with any of ``codes``, converted to ``spec.canonical``, in date order."""
    label = what or spec.name
    out: list[LabValue] = []
    for obs, default_unit in _observations(record, codes, input_name, options):
        d = effective_date(obs)
        if d is None:
            record.issue(obs, f"{label} skipped", "no date")
            continue
        v, unit, comp = quantity(obs.get("valueQuantity"))
        if v is None:
            if obs.get("dataAbsentReason") or obs.get("valueCodeableConcept") or obs.get("valueString"):
                continue  # a coded or absent result: read by coded_series
            record.issue(obs, f"{label} skipped", "no numeric value")
            continue
        try:
            value = normalise(v, unit or default_unit, spec)
        except UnitError as exc:
            record.issue(obs, f"{label} skipped", str(exc))
            continue
        if value < 0:
            record.issue(obs, f"{label} skipped", "negative value")
            continue
        out.append(LabValue(d, value, ref_of(obs), comp, obs))
    return out


def coded_series(record: PatientRecord, codes: Iterable[str], *, input_name: str | None = None,
                 options: Mapping[str, Any] | None = None) -> list[CodedValue]:
    """Coded, boolean or string results (e.g. immunofixation positive/negative) in date order."""
    out = []
    for obs, _ in _observations(record, codes, input_name, options):
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "coded result skipped", "no date")
            continue
        vc = obs.get("valueCodeableConcept")
        keys = sorted(concept_keys(vc))
        text = concept_text(vc) or (obs.get("valueString") if isinstance(obs.get("valueString"), str) else "")
        boolean = obs.get("valueBoolean") if isinstance(obs.get("valueBoolean"), bool) else None
        if not keys and not text and boolean is None:
            continue
        out.append(CodedValue(d, keys[0] if keys else None, (text or "").lower(), boolean, ref_of(obs), obs))
    return out


def component_value(obs: Resource, codes: Iterable[str], spec: UnitSpec | None = None) -> Decimal | None:
    wanted = set(codes)
    for c in _list(obs.get("component")):
        if isinstance(c, dict) and concept_keys(c.get("code")) & wanted:
            v, unit, _ = quantity(c.get("valueQuantity"))
            if v is None:
                continue
            if spec is None:
                return v
            try:
                return normalise(v, unit, spec)
            except UnitError:
                return None
    return None


def report_text(report: Resource) -> str:
    """conclusion plus text/plain or text/html presentedForm of a DiagnosticReport (decoded)."""
    parts = []
    if isinstance(report.get("conclusion"), str):
        parts.append(report["conclusion"])
    for att in _list(report.get("presentedForm")):
        if not isinstance(att, dict) or not isinstance(att.get("data"), str):
            continue
        ctype = att["contentType"].lower() if isinstance(att.get("contentType"), str) else "text/plain"
        if not (ctype.startswith("text/") or "xml" in ctype):
            continue
        try:
            raw = base64.b64decode(att["data"], validate=False).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            continue
        if "html" in ctype or "xml" in ctype:
            raw = re.sub(r"<[^>]+>", " ", raw)
        parts.append(raw)
    return "\n".join(parts)


def reports(record: PatientRecord, category_keys: Iterable[str] | None = None) -> list[Resource]:
    wanted = set(category_keys or ())
    out = []
    for rep in record.of_type("DiagnosticReport"):
        if wanted:
            cats = set()
            for c in _list(rep.get("category")):
                cats |= concept_keys(c)
            if not cats & wanted:
                continue
        out.append(rep)
    return sorted(out, key=lambda r: (effective_date(r) or date.min, ref_of(r) or ""))
