"""GCIG CA-125 vignettes -> FHIR: CA-125 Observations with their reference range, the therapy start as a
MedicationRequest, murine-antibody exposure as a MedicationStatement, paracentesis / thoracentesis as Procedures.

What a record would carry (docs/fhir-inputs-gcig.md): the ULN of the vignette becomes ``referenceRange.high`` on
each CA-125 result (no ULN in the vignette: no reference range, and the mapper assumes 35 U/mL); the treatment
start is the vignette's date, or the pretreatment sample's date plus the "N days before cycle 1" of its label, or
the pretreatment sample's date; a recent paracentesis stated without a date is dated a week before the
pretreatment sample (or the number of days the vignette gives).
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from cds_service.sandbox.builders import PatientBuilder, qty
from cds_service.sandbox.vignettes import Vignette, VignetteInputError, _pid, check_keys, converter
from cds_service.sandbox.vignettes_pcwg3 import (
    UNIT_SUFFIXES,
    add_therapy,
    d,
    days_before,
    drug_from,
    in_record,
    is_baseline,
    is_number,
    number_and_unit,
    start_date,
    value_with_unit,
)
from fhir_mappings import gcig as m
from fhir_mappings.record import SNOMED

CA125_UNITS = ("U/mL", "kU/L", "[IU]/mL", "k[IU]/L")
PROC_KEYS = ("paracentesis", "thoracentesis", "procedure", "serosal", "pleural", "peritoneal", "ascites", "tap",
             "drain")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _pretreatment(rows: list[dict]) -> dict | None:
    labelled = [r for r in rows if is_baseline(r.get("label"))]
    return labelled[-1] if labelled else (rows[0] if rows else None)


def _procedure(p: PatientBuilder, when: date, text: str) -> None:
    pleural = "thora" in text or "pleur" in text
    code, display = ("91602002", "Thoracentesis") if pleural else ("89305009", "Abdominal paracentesis")
    p.procedure(when.isoformat(), f"{SNOMED}|{code}", display)


def _procedures(p: PatientBuilder, inp: dict, pre_date: date | None) -> None:
    anchor = pre_date or date(2024, 1, 1)
    for key, raw in inp.items():
        k = key.lower()
        if not any(w in k for w in PROC_KEYS) or raw in (None, False, "", [], {}):
            continue
        items = raw if isinstance(raw, list) else [raw]
        for item in items:
            text = k
            when = None
            if isinstance(item, dict):
                text += " " + " ".join(str(x).lower() for x in item.values() if isinstance(x, str))
                if item.get("date"):
                    when = d(item["date"])
                elif is_number(item.get("days_before")):
                    when = anchor - timedelta(days=int(item["days_before"]))
            elif isinstance(item, str):
                text += " " + item.lower()
                mm = DATE_RE.search(item)
                if mm:
                    when = d(mm.group(0))
                elif item.lower() in ("no", "none", "false"):
                    continue
            elif is_number(item) and "day" in k:
                when = anchor - timedelta(days=int(item))
            if when is None:  # stated as recent, without a date: a week before the pretreatment sample
                when = anchor - timedelta(days=7)
            _procedure(p, when, text)


def _mouse(p: PatientBuilder, inp: dict, first: date) -> None:
    for key, raw in inp.items():
        k = key.lower()
        if not ("mouse" in k or "murine" in k or "hama" in k) or raw in (None, False, "", "no", "none"):
            continue
        text = raw if isinstance(raw, str) and not DATE_RE.fullmatch(raw) else "murine monoclonal antibody"
        if "mab" not in text.lower() and "murine" not in text.lower() and "mouse" not in text.lower():
            text = f"murine monoclonal antibody ({text})"
        mm = DATE_RE.search(raw) if isinstance(raw, str) else None
        when = d(mm.group(0)) if mm else first - timedelta(days=90)
        p.add({"resourceType": "MedicationStatement", "id": f"{p.patient_id}-mouse-ab", "status": "completed",
               "subject": p.subject, "medicationCodeableConcept": {"text": text},
               "effectiveDateTime": when.isoformat()})


_CA125_LISTS = ("ca125", "ca_125", "ca125_u_ml", "ca_125_u_ml", "ca125_values", "ca125_series", "ca125_results",
                "ca125_ku_l")
_RELEVANT = re.compile(r"ca.?125|uln|paracent|thoracent|pleur|periton|ascites|mouse|murine|hama|antibod|nadir")


def _known(key: str) -> bool:
    k = key.lower()
    return (k.replace("-", "_") in _CA125_LISTS or k.startswith("uln") or k.endswith("_uln") or k.startswith("nadir")
            or any(w in k for w in PROC_KEYS) or "mouse" in k or "murine" in k or "hama" in k
            or k in ("as_of", "setting", "treatment", "treatment_start", "note", "notes", "use_case", "trial_setting")
            or "start" in k or "cycle" in k)


@converter("GCIG", "GCIG CA-125 (2011)")
def gcig(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    p = PatientBuilder(_pid(v), gender="female", birth_date="1958-05-01")
    check_keys(v, inp, "", _known, _RELEVANT, "GCIG CA-125")
    key = next((k for k in inp if k.lower().replace("-", "_") in _CA125_LISTS and isinstance(inp[k], list)), None)
    raw_rows = [dict(r) for r in inp.get(key) or []] if key else []
    unit_suffix = next((suf for suf, _ in UNIT_SUFFIXES if key and key.endswith("_" + suf)), None)
    for r in raw_rows:  # "CA125_U_mL": [{"date", "value"}]: the list's name gives the unit
        if unit_suffix and "value" in r and "unit" not in r:
            r[unit_suffix] = r.pop("value")
    nadir_fields = {k: x for k, x in inp.items() if k.lower().startswith("nadir") and k.lower() != "nadir_date"}
    if nadir_fields:  # a nadir given as a number: the on-study sample that held it (on nadir_date if given)
        nv, nunit = value_with_unit(nadir_fields, CA125_UNITS)
        if nv is None:
            got = next((g for g in (number_and_unit(x, "U/mL") for x in nadir_fields.values()) if g), None)
            nv, nunit = got if got else (None, None)
        if nv is None:
            raise VignetteInputError("?", next(iter(nadir_fields)), "cannot read the nadir as a CA-125 value")
        dated = sorted((r for r in raw_rows if r.get("date")), key=lambda r: d(r["date"]))
        if not any(value_with_unit(r, CA125_UNITS)[0] == nv for r in dated):
            if isinstance(inp.get("nadir_date"), str):
                when = d(inp["nadir_date"])
            elif len(dated) >= 2:
                when = d(dated[0]["date"]) + (d(dated[1]["date"]) - d(dated[0]["date"])) / 2
            else:
                raise VignetteInputError("?", "nadir_date", "a nadir needs its date (or at least two dated samples)")
            suffix = next(suf for suf, unit in UNIT_SUFFIXES if unit == (nunit or "U/mL"))
            raw_rows.append({"date": when.isoformat(), suffix: nv, "label": "nadir"})
    rows = in_record(raw_rows, inp.get("as_of"))
    first = d(rows[0]["date"]) if rows else date(2024, 1, 1)
    cond = p.condition(icd10="C56.9", text="Malignant neoplasm of ovary",
                       onset=(first - timedelta(days=30)).isoformat())
    pre = _pretreatment(rows)
    pre_date = d(pre["date"]) if pre else None

    start = start_date(inp)
    if start is None:  # the pretreatment sample's date, plus "N days before cycle 1" from its label
        start = pre_date + timedelta(days=days_before(pre.get("label")) or 0) if pre is not None else first
    add_therapy(p, cond, start, drug_from(inp.get("setting") or inp.get("treatment"), "carboplatin and paclitaxel"))

    uln_fields = {k: x for k, x in inp.items() if k.lower().startswith("uln") or k.lower().endswith("_uln")}
    uln, uln_unit = value_with_unit(uln_fields, CA125_UNITS)
    if uln is None:  # "ULN": 35 (or "35 U/mL") without a unit suffix: the CA-125 unit
        got = next((g for g in (number_and_unit(x, "U/mL") for x in uln_fields.values()) if g is not None), None)
        uln, uln_unit = got if got is not None else (None, "U/mL")
        if uln is None and uln_fields:
            raise VignetteInputError("?", next(iter(uln_fields)), "cannot read the ULN as a number")
    for i, r in enumerate(rows):
        value, unit = value_with_unit(r, CA125_UNITS)
        if value is None:
            raise VignetteInputError("?", f"{key}[{i}]", "no CA-125 value (U_mL / kU_L, or value + unit)")
        extra: dict[str, Any] = {}
        if uln is not None:
            extra["referenceRange"] = [{"high": qty(uln, uln_unit)}]
        p.observation(m.CA125_CODES[0], r["date"], display="Cancer Ag 125 [Units/volume] in Serum or Plasma",
                      value=value, unit=unit, extra=extra or None)
    _procedures(p, inp, pre_date)
    _mouse(p, inp, first)
    return p


