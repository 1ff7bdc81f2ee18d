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
from cds_service.sandbox.vignettes import Vignette, _pid, converter
from cds_service.sandbox.vignettes_pcwg3 import (
    add_therapy,
    d,
    days_before,
    drug_from,
    in_record,
    is_baseline,
    is_number,
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


@converter("GCIG", "GCIG CA-125 (2011)")
def gcig(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    p = PatientBuilder(_pid(v), gender="female", birth_date="1958-05-01")
    rows = in_record(list(inp.get("ca125") or inp.get("CA125") or inp.get("ca_125") or []), inp.get("as_of"))
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
    if uln is None:  # "ULN": 35 without a unit suffix: the CA-125 unit
        uln = next((x for x in uln_fields.values() if is_number(x)), None)
        uln_unit = "U/mL"
    for r in rows:
        value, unit = value_with_unit(r, CA125_UNITS)
        if value is None:
            continue
        extra: dict[str, Any] = {}
        if uln is not None:
            extra["referenceRange"] = [{"high": qty(uln, uln_unit)}]
        p.observation(m.CA125_CODES[0], r["date"], display="Cancer Ag 125 [Units/volume] in Serum or Plasma",
                      value=value, unit=unit, extra=extra or None)
    _procedures(p, inp, pre_date)
    _mouse(p, inp, first)
    return p


