"""GCIG CA-125 inputs from FHIR: CA-125 Observations and their reference range, the start of the current
therapy, mouse-antibody exposure and peritoneal / pleural procedures.

Representations and codes are documented with examples in docs/fhir-inputs-gcig.md.

* CA-125: LOINC 10334-1 (primary), 83082-8 (immunoassay), 15157-1 (by dilution) in U/mL, kU/L, [IU]/mL or
  k[IU]/L (all equal for CA-125); configured local codes under ``options["local_codes"]["ca125"]``.
* ULN: ``referenceRange.high`` of the CA-125 results (the pretreatment sample's when the results disagree);
  without one, 35 U/mL (the common assay cut-off) is assumed and a note says so.
* Treatment start: the start of the current line of anticancer therapy (fhir_mappings.pcwg3.therapy_start);
  the pretreatment sample is the last CA-125 on or before it.
* Mouse antibodies: a medication whose name is a murine antibody (INN stem "-omab": oregovomab, abagovomab,
  catumaxomab, ibritumomab ...) or says "murine"/"mouse antibody", or an Observation with the project's code
  ``mouse-antibody-exposure`` (valueBoolean true).
* Peritoneal / pleural interference: Procedures with SNOMED CT 89305009 (abdominal paracentesis), 91602002
  (thoracentesis), or whose text names paracentesis, thoracentesis, an ascitic / pleural tap or drain,
  pleurodesis, laparotomy, laparoscopy or cytoreductive surgery.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from fhir_mappings.labs import coded_series, lab_series
from fhir_mappings.pcwg3 import items, medication_entries, therapy_start
from fhir_mappings.record import (
    LOCAL,
    LOINC,
    SNOMED,
    PatientRecord,
    concept_keys,
    concept_text,
    effective_date,
    parse_date,
    quantity,
    ref_of,
)
from fhir_mappings.routing import RoutedCancer
from fhir_mappings.units import U_ML, UnitError, normalise
from rules import gcig as engine

CA125_CODES = (f"{LOINC}|10334-1", f"{LOINC}|83082-8", f"{LOINC}|15157-1")  # codes.md §3.5, grade A
CA125_SPEC = U_ML.with_extra(("U/ml", "kU/l"))
MOUSE_ANTIBODY = f"{LOCAL}|mouse-antibody-exposure"
OBSERVATION_CODES = CA125_CODES + (MOUSE_ANTIBODY,)
DEFAULT_ULN = Decimal(35)

SEROSAL_SNOMED = {f"{SNOMED}|89305009": "paracentesis",   # Abdominal paracentesis (grade B)
                  f"{SNOMED}|91602002": "thoracentesis"}  # Thoracentesis (grade B)
SEROSAL_WORDS = re.compile(r"paracentesis|thoracentesis|pleurocentesis|ascitic (?:tap|drain)|pleural (?:tap|drain|"
                           r"aspiration|catheter)|peritoneal (?:drain|catheter|lavage)|chest drain|pleurodesis|"
                           r"laparotomy|laparoscop|cytoreduct|debulking|intraperitoneal|peritonectomy", re.I)
MOUSE_WORDS = re.compile(r"\b[a-z]+omab\b|murine|mouse (?:monoclonal )?antibod", re.I)
OVARIAN_DRUGS = ("carboplatin", "cisplatin", "paclitaxel", "docetaxel", "doxorubicin", "gemcitabine", "topotecan",
                 "bevacizumab", "olaparib", "niraparib", "rucaparib", "mirvetuximab", "trabectedin", "etoposide",
                 "cyclophosphamide", "ifosfamide", "pembrolizumab", "dostarlimab", "oxaliplatin", "letrozole",
                 "tamoxifen")


@dataclass
class GCIGMapping:
    inputs: engine.GCIGInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _uln(obs: dict) -> Decimal | None:
    for rr in items(obs, "referenceRange"):
        if not isinstance(rr, dict):
            continue
        v, unit, _ = quantity(rr.get("high"))
        if v is None:
            continue
        try:
            return normalise(v, unit, CA125_SPEC)
        except UnitError:
            return None
    return None


def _procedures(record: PatientRecord) -> list[engine.SerosalProcedure]:
    out = []
    for proc in record.of_type("Procedure"):
        if proc.get("status") in ("not-done", "preparation"):
            continue
        keys = concept_keys(proc.get("code"))
        hit = next((SEROSAL_SNOMED[k] for k in keys if k in SEROSAL_SNOMED), None)
        text = concept_text(proc.get("code"))
        if hit is None:
            mm = SEROSAL_WORDS.search(text)
            hit = text.lower() if mm else None
        if hit is None:
            continue
        when = effective_date(proc)
        period = proc.get("performedPeriod")
        if isinstance(period, dict) and isinstance(period.get("end"), str):
            when = parse_date(period["end"]) or when  # the window counts from the end of the interference
        if when is None:
            record.issue(proc, "procedure skipped", "no date")
            continue
        out.append(engine.SerosalProcedure(when, hit, ref_of(proc)))
    return out


def _mouse_antibodies(record: PatientRecord, options: Mapping[str, Any] | None, as_of: date) -> tuple[bool, str | None]:
    for med in medication_entries(record):
        if med.status in ("not-taken", "entered-in-error", "cancelled", "draft"):
            continue
        if med.start is not None and med.start > as_of:
            continue
        if MOUSE_WORDS.search(med.text):
            return True, med.ref
    for cv in coded_series(record, [MOUSE_ANTIBODY], input_name="mouse_antibody_exposure", options=options):
        if cv.boolean is True or cv.text in ("yes", "true", "exposed") or (cv.code or "").endswith("|yes"):
            return True, cv.ref
    return False, None


def map_gcig(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
             options: Mapping[str, Any] | None = None) -> GCIGMapping:
    series = [v for v in lab_series(record, CA125_CODES, CA125_SPEC, input_name="ca125", options=options,
                                    what="CA-125") if v.date <= as_of]
    if not series:
        return GCIGMapping(None, ("CA-125 results (LOINC 10334-1 or 83082-8)",))
    notes: list[str] = []
    by_date: dict[date, Any] = {}
    for v in series:
        by_date[v.date] = v
    values = [by_date[k] for k in sorted(by_date)]

    therapy = therapy_start(record, routed, [v.date for v in values], OVARIAN_DRUGS)
    notes.extend(therapy.notes)
    start = therapy.start if therapy.start is not None and therapy.start <= as_of else None
    missing: tuple[str, ...] = ()
    if start is None:
        missing = ("start date of the current anticancer therapy (MedicationRequest, MedicationAdministration or "
                   "MedicationStatement) to identify the pretreatment CA-125 sample",)
    else:
        notes.append(f"Treatment start {start} ({therapy.label}) from the medication record: the pretreatment "
                     "sample is the last CA-125 on or before it.")

    ulns = [(v.date, _uln(v.resource)) for v in values if v.resource is not None]
    ulns = [(dt, u) for dt, u in ulns if u is not None]
    if not ulns:
        uln = DEFAULT_ULN
        notes.append("No reference range on the CA-125 results: ULN 35 U/mL assumed (the usual assay cut-off); "
                     "check the laboratory's range.")
    else:
        pre = [u for dt, u in ulns if start is not None and dt <= start]
        uln = pre[-1] if pre else Counter(u for _, u in ulns).most_common(1)[0][0]
        if len({u for _, u in ulns}) > 1:
            notes.append(f"The CA-125 reference ranges differ between samples (assay change?); ULN {uln} U/mL "
                         "used.")
    mouse, mouse_ref = _mouse_antibodies(record, options, as_of)
    inputs = engine.GCIGInputs(
        tuple(engine.CA125Value(v.date, v.value, v.ref) for v in values), uln, treatment_start=start,
        mouse_antibodies=mouse, mouse_antibodies_ref=mouse_ref,
        serosal_procedures=tuple(p for p in _procedures(record) if p.date <= as_of))
    return GCIGMapping(inputs, missing, tuple(notes))


__all__ = ["OBSERVATION_CODES", "CA125_CODES", "map_gcig"]
