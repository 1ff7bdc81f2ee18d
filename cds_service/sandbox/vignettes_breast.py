"""Breast pCR / RCB vignettes (prefix ``PCR``) -> FHIR patients, in the representations of docs/fhir-inputs-breast.md.

The surgical pathology of a real record: a breast-surgery Procedure on the surgery date and a pathology
DiagnosticReport (LOINC 60568-3, category LP7839-6) that groups the results -
* separate ``ypT`` / ``ypN`` -> mCODE pathologic TNM category Observations (SNOMED 384625004 + LOINC 21899-0, SNOMED
  371494008 + LOINC 21900-6) whose value text is the category as written ("ypN0 (0/3 sentinel nodes)");
* a combined ``ypTN`` ("ypT1a ypN0") -> the narrative report only ("Pathologic stage (AJCC 8th): ypT1a ypN0"), the
  most common shape in practice;
* residual DCIS / LVI -> project-coded Observations (valueBoolean);
* RCB inputs (``tumor_bed_d1_mm`` ... with the unit in the field-name suffix, mm or cm) -> project-coded
  Observations with UCUM units;
* not operated because of progression -> a breast-surgery Procedure with status not-done and the reason, and a
  project-coded Observation on the progression date;
* free pathology text (``pathology_report``, ``report_text``) and a reported RCB class/index -> the report text.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from cds_service.sandbox.builders import PatientBuilder, coding, concept
from cds_service.sandbox.vignettes import Vignette, _pid, converter
from fhir_mappings import breast as m
from fhir_mappings.record import LOINC, SNOMED
from rules import breast as engine

Json = dict[str, Any]
AJCC8 = concept(SNOMED, "897275008", "American Joint Committee on Cancer, Cancer Staging Manual, 8th edition")

_RCB_FIELDS = (  # vignette field stem -> (project code, kind)
    (re.compile(r"^(?:tumou?r_bed_)?d1(?:_|$)|tumou?r_bed_d1|tumou?r_bed_dimension_1|bed_d1", re.I), m.RCB_D1, "len"),
    (re.compile(r"^(?:tumou?r_bed_)?d2(?:_|$)|tumou?r_bed_d2|tumou?r_bed_dimension_2|bed_d2", re.I), m.RCB_D2, "len"),
    (re.compile(r"cellularity|^ca_pct|percent_ca|pct_ca", re.I), m.RCB_CELLULARITY, "pct"),
    (re.compile(r"in_situ|cis_pct|pct_cis|percent_cis", re.I), m.RCB_IN_SITU, "pct"),
    (re.compile(r"positive_(?:lymph_)?nodes|^ln$|nodes_positive|positive_ln|number_positive", re.I), m.RCB_NODES, "count"),
    (re.compile(r"largest_(?:nodal_)?metastasis|d_met|dmet|largest_met", re.I), m.RCB_DMET, "len"),
)


def _unit_of(key: str, kind: str) -> str:
    k = key.lower()
    if kind == "len":
        return "cm" if k.endswith("_cm") else "mm"
    if kind == "pct":
        return "%"
    return "{#}"


def _dec(x: Any) -> Decimal | None:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float, Decimal)):
        return Decimal(str(x))
    mm = re.search(r"[0-9]+(?:\.[0-9]+)?", str(x))
    return Decimal(mm.group()) if mm else None


def _tnm(p: PatientBuilder, when: str, which: str, text: str) -> Json:
    sct, loinc, disp = (("384625004", "21899-0", "Pathological primary tumor category") if which == "T" else
                        ("371494008", "21900-6", "Pathological regional lymph nodes category"))
    obs = p.observation(f"{SNOMED}|{sct}", when, display=disp, category="laboratory", method=AJCC8)
    obs["code"]["coding"].append(coding(LOINC, loinc))
    obs["valueCodeableConcept"] = {"text": text}
    return obs


def _flag(p: PatientBuilder, code: str, when: str, value: bool, display: str) -> Json:
    return p.observation(code, when, display=display, value_bool=value)


def _procedure(p: PatientBuilder, when: str | None, text: str, *, not_done_reason: str | None = None) -> Json:
    res: Json = {"resourceType": "Procedure", "id": p._id("proc"), "status": "not-done" if not_done_reason else "completed",
                 "subject": p.subject, "code": {"text": text}}
    if when:
        res["performedDateTime"] = when
    if not_done_reason:
        res["statusReason"] = {"text": not_done_reason}
    return p.add(res)


@converter("PCR", engine.CRITERIA)
def breast(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    p = PatientBuilder(_pid(v))
    p.condition(icd10="C50.911", text="Invasive ductal carcinoma of right breast", onset=inp.get("diagnosis_date"))
    when = inp.get("surgery_date") or inp.get("date")
    progression = bool(inp.get("not_operated_due_to_progression") or inp.get("progression_before_surgery")
                       or inp.get("not_operated"))
    has_rcb = False
    if progression or (not when and inp.get("progression_date")):
        pd = inp.get("progression_date") or when
        _procedure(p, pd, "Partial mastectomy with sentinel lymph node biopsy",
                   not_done_reason="Disease progression on neoadjuvant chemotherapy")
        if pd:
            _flag(p, m.NOT_OPERATED, pd, True, "Not operated because of progression on neoadjuvant therapy")
    if when:
        _procedure(p, when, str(inp.get("surgery") or "Partial mastectomy with sentinel lymph node biopsy"))
        results: list[Json] = []
        text_lines: list[str] = []
        if inp.get("ypTN"):
            text_lines.append(f"Pathologic stage (AJCC 8th edition): {inp['ypTN']}.")
        if inp.get("ypT"):
            results.append(_tnm(p, when, "T", str(inp["ypT"])))
        if inp.get("ypN"):
            results.append(_tnm(p, when, "N", str(inp["ypN"])))
        for key, code, display in (("residual_DCIS", m.RESIDUAL_DCIS, "Residual ductal carcinoma in situ"),
                                   ("residual_dcis", m.RESIDUAL_DCIS, "Residual ductal carcinoma in situ"),
                                   ("DCIS", m.RESIDUAL_DCIS, "Residual ductal carcinoma in situ"),
                                   ("LVI", m.RESIDUAL_LVI, "Residual lymphovascular invasion"),
                                   ("lvi", m.RESIDUAL_LVI, "Residual lymphovascular invasion"),
                                   ("residual_LVI", m.RESIDUAL_LVI, "Residual lymphovascular invasion")):
            if isinstance(inp.get(key), bool):
                results.append(_flag(p, code, when, inp[key], display))
        for key, raw in inp.items():
            for rx, code, kind in _RCB_FIELDS:
                if rx.search(key):
                    value = _dec(raw)
                    if value is None:
                        continue
                    has_rcb = True
                    results.append(p.observation(code, when, display=code.split("|", 1)[1].replace("-", " "),
                                                 value=value, unit=_unit_of(key, kind)))
                    break
        for key in ("RCB_class_reported", "reported_RCB_class", "RCB_reported"):
            if inp.get(key):
                text_lines.append(f"Residual cancer burden: {inp[key]}.")
        for key in ("pathology_report", "report_text", "pathology", "pathology_text"):
            if isinstance(inp.get(key), str):
                text_lines.append(inp[key])
        rep = p.report(when, category="pathology", code=(LOINC, "60568-3", "Pathology Synoptic report"),
                       results=results, conclusion=" ".join(text_lines) or None)
        rep["code"]["text"] = "Surgical pathology, breast, post-neoadjuvant"
    crit = v.get("criteria")
    if crit not in (engine.CRITERIA, engine.CRITERIA_RCB):
        crit = engine.CRITERIA_RCB if has_rcb else engine.CRITERIA
    p.card_criteria = crit  # type: ignore[attr-defined]
    return p
