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
from cds_service.sandbox.vignettes import Vignette, VignetteInputError, _pid, check_keys, converter
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


def _yes_no(key: str, raw: Any) -> bool | None:
    """A finding given as true/false or in words ("yes", "present", "absent", "none")."""
    if isinstance(raw, bool) or raw is None:
        return raw
    t = str(raw).strip().lower()
    if re.match(r"(no|none|absent|negative|not (seen|identified|present)|false|nil)\b", t):
        return False
    if re.match(r"(yes|present|positive|seen|identified|true|focal|extensive|residual)\b", t):
        return True
    raise VignetteInputError("?", key, f"cannot read {raw!r} as present / absent")


_INVASIVE_KEYS = ("residual_invasive", "residual_invasive_breast", "residual_invasive_carcinoma",
                  "residual_invasive_cancer", "invasive_residual", "residual_invasive_disease_breast")
_FLAG_KEYS = (("residual_dcis", m.RESIDUAL_DCIS, "Residual ductal carcinoma in situ"),
              ("dcis", m.RESIDUAL_DCIS, "Residual ductal carcinoma in situ"),
              ("residual_in_situ", m.RESIDUAL_DCIS, "Residual ductal carcinoma in situ"),
              ("lvi", m.RESIDUAL_LVI, "Residual lymphovascular invasion"),
              ("residual_lvi", m.RESIDUAL_LVI, "Residual lymphovascular invasion"),
              ("lymphovascular_invasion", m.RESIDUAL_LVI, "Residual lymphovascular invasion"))
_KNOWN = {"surgery_date", "date", "diagnosis_date", "surgery", "not_operated_due_to_progression",
          "progression_before_surgery", "not_operated", "progression_date", "yptn", "ypt", "ypn", "rcb_class_reported",
          "reported_rcb_class", "rcb_reported", "rcb_class", "rcb_index", "rcb", "pathology_report", "report_text", "pathology", "pathology_text",
          "note", "notes", "subtype", "receptor_status", "her2", "er", "pr", "neoadjuvant", "regimen", "treatment",
          *_INVASIVE_KEYS, *(k for k, _, _ in _FLAG_KEYS)}
_RELEVANT = re.compile(r"yp|pcr|rcb|residual|invasive|dcis|in_situ|lvi|lymphovascular|node|nodal|ln|metasta|tumou?r_bed|"
                       r"cellularity|definition|itc|isolated")


def _known(key: str) -> bool:
    k = key.lower()
    return (k in _KNOWN or any(rx.search(key) for rx, _, _ in _RCB_FIELDS)
            or bool(re.search(r"examined|removed|sampled|retrieved|total_nodes|nodes_total|clinical_|^c[tn]", k)))


def _derived_tn(inp: dict) -> tuple[str | None, str | None]:
    """ypT / ypN written from yes/no findings when the vignette gives no TNM: residual invasive carcinoma in the
    breast no -> ypT0 (ypTis with residual DCIS); positive nodes 0 -> ypN0, 1-3 -> ypN1, 4-9 -> ypN2, >=10 ->
    ypN3 (AJCC 8th).  Residual invasive carcinoma without a ypT cannot be staged here (an error says so)."""
    inv_key = next((k for k in inp if k.lower() in _INVASIVE_KEYS), None)
    ypt = None
    if inv_key is not None:
        inv = _yes_no(inv_key, inp[inv_key])
        if inv:
            raise VignetteInputError("?", inv_key, "residual invasive carcinoma: give ypT (e.g. \"ypT1a\")")
        dcis = next((_yes_no(k, inp[k]) for k in inp if k.lower() in ("residual_dcis", "dcis", "residual_in_situ")),
                    False)
        ypt = "ypTis" if dcis else "ypT0"
    ypn = None
    nodes_key = next((k for k in inp if re.fullmatch(r"positive_(?:lymph_)?nodes|nodes_positive|positive_ln", k, re.I)),
                     None)
    if nodes_key is not None and _dec(inp[nodes_key]) is not None:
        n = int(_dec(inp[nodes_key]))
        ypn = "ypN0" if n == 0 else "ypN1" if n <= 3 else "ypN2" if n <= 9 else "ypN3"
        ypn += f" ({n} positive lymph node{'s' if n != 1 else ''})"
    return ypt, ypn


_DEFINITION_KEYS = ("pcr_definition", "definition", "pcr_definition_used", "definition_of_pcr")


def _pcr_definition(v: Vignette, inp: dict) -> str | None:
    """The pCR definition a vignette states ("ypT0 ypN0" or "ypT0/is ypN0", as the engine names them)."""
    key = next((k for k in inp if k.lower() in _DEFINITION_KEYS), None)
    if key is None:
        return None
    text = re.sub(r"\s+", " ", str(inp[key])).strip().lower()
    if re.search(r"ypt0\s*/\s*t?is|ypt0is|ypt0 or ypt?is|in[ -]situ (allowed|permitted|accepted)", text):
        return "ypT0/is ypN0"
    if re.search(r"ypt0 ?ypn0|ypt0,? ?n0|no (invasive or in[ -]situ|residual (invasive|in[ -]situ) or)", text):
        return "ypT0 ypN0"
    raise VignetteInputError(v["id"], f"inputs.{key}", f"cannot read the pCR definition {inp[key]!r} "
                                                         "(expected 'ypT0 ypN0' or 'ypT0/is ypN0')")


@converter("PCR", engine.CRITERIA)
def breast(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    definition = _pcr_definition(v, inp)
    inp = {k: val for k, val in inp.items() if k.lower() not in _DEFINITION_KEYS}
    check_keys(v, inp, "", _known, _RELEVANT, "breast pCR/RCB")
    if not (inp.get("ypTN") or inp.get("ypT")):
        ypt, ypn = _derived_tn(inp)
        if ypt:
            inp = {**inp, "ypT": ypt, **({"ypN": ypn} if ypn and not inp.get("ypN") else {})}
    p = PatientBuilder(_pid(v))
    if definition:
        p.criteria_options["breast_pcr_definition"] = definition
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
        done = set()
        for key, raw in inp.items():
            row = next((r for r in _FLAG_KEYS if r[0] == key.lower()), None)
            if row is None or row[1] in done:
                continue
            flag = _yes_no(key, raw)
            if flag is not None:
                results.append(_flag(p, row[1], when, flag, row[2]))
                done.add(row[1])
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
        for key in inp:
            if key.lower() in ("rcb_class_reported", "reported_rcb_class", "rcb_reported", "rcb_class", "rcb_index",
                               "rcb") and inp[key] not in (None, ""):
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
