"""iwCLL 2018 vignettes (prefix ``CLL``) -> FHIR patients in the representations of docs/fhir-inputs-iwcll.md.

Each assessment (``baseline``, ``history`` items, ``current``, or the flat inputs) becomes dated Observations:
blood counts with LOINC codes and UCUM units taken from the field-name suffix (criteria.md §15), node / organ sizes
and findings with the project codes or SNOMED CT findings, the marrow as a bone-marrow report text, a recorded
earlier category as ``iwcll-response``. The pre-treatment baseline is marked as such (``iwcll-response`` =
baseline). Therapy named in the inputs (drug names, "N months after end of fixed-duration therapy") becomes a
MedicationRequest with its period. MRD fields become the project's MRD Observation.
"""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.sandbox.builders import PatientBuilder
from cds_service.sandbox.vignettes import Vignette, VignetteInputError, _pid, check_keys, converter, count_unit, parse_quantity
from cds_service.sandbox.vignettes_mrd import _birth, mrd_observation
from fhir_mappings import iwcll as c
from fhir_mappings.record import LOINC, SNOMED
from rules.iwcll2018 import add_months

Json = dict[str, Any]
UNIT_SUFFIXES = (("_10e9_per_l", "10*9/L"), ("_x10e9_per_l", "10*9/L"), ("_10e3_per_ul", "10*3/uL"),
                 ("_k_per_ul", "10*3/uL"), ("_per_ul", "/uL"), ("_per_mm3", "/mm3"), ("_g_dl", "g/dL"),
                 ("_g_l", "g/L"), ("_mmol_l", "mmol/L"), ("_cm2", "cm2"), ("_mm2", "mm2"), ("_cm", "cm"),
                 ("_mm", "mm"), ("_pct", "%"), ("_percent", "%"))
NON_TP_KEYS = {"baseline", "history", "current", "timing", "therapy", "treatment", "regimen", "disease", "age",
               "therapy_end", "end_of_therapy", "therapy_start", "treatment_start", "bcr_inhibitor", "note",
               "notes", "age_years"}


def _isnum(v: Any) -> bool:
    return isinstance(v, Decimal) or _num(v)


def _is_known(lk: str) -> bool:
    """Field names write_assessment reads (prefixes as there)."""
    return lk.startswith(("largest_node", "largest_ln", "ldi", "node_spd", "lymph_nodes", "lymphadenopathy", "nodes",
                          "lymph_node_status", "adenopathy", "spd", "lymph_node_spd", "spleen", "liver",
                          "constitutional", "b_symptoms", "lymphocyte", "alc", "abs_lymph", "platelet", "plt",
                          "neutrophil", "anc", "hemoglobin", "haemoglobin", "hb", "marrow", "bone_marrow")) or lk in (
        "transfused", "transfusion", "transfusion_dependent", "red_cell_transfusion", "category", "response",
        "reported_category", "iwcll_category", "new_lesion", "new_lesions", "transformation", "richter",
        "richter_transformation", "cytopenia_due_to_cll", "cytopenia_secondary_to_cll") or "mrd" in lk


def _d(v: Any) -> Decimal:
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))


def _unit(key: str, default: str) -> str:
    lk = key.lower()
    for suf, unit in UNIT_SUFFIXES:
        if lk.endswith(suf):
            return unit
    return default


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# units written in a value ("12 cm", "1.8 x10^9/L", "12.8 g/dL") -> UCUM; counts via count_unit
_VALUE_UNITS = {"mm": "mm", "cm": "cm", "mm2": "mm2", "mm²": "mm2", "cm2": "cm2", "cm²": "cm2", "g/dl": "g/dL",
                "g/l": "g/L", "mmol/l": "mmol/L", "%": "%"}


_SUFFIX_OF_UNIT = {"mm": "mm", "cm": "cm", "mm2": "mm2", "cm2": "cm2", "g/dL": "g_dl", "g/L": "g_l", "mmol/L": "mmol_l",
                   "%": "pct", "10*9/L": "10e9_per_l", "10*3/uL": "10e3_per_ul", "/uL": "per_ul"}


def _with_unit(key: str, v: Any) -> tuple[Decimal, str | None] | None:
    """(value, unit written in the value or None) of a number or a string such as "12 cm" / "1.8 x10^9/L";
    None when ``v`` is not a number (words are read elsewhere).  An unknown unit raises VignetteInputError."""
    if _num(v):
        return _d(v), None
    q = parse_quantity(v) if isinstance(v, str) else None
    if q is None or q[1] is not None:
        return None
    if not q[2]:
        return q[0], None
    text = re.sub(r"\s+", "", q[2]).lower()
    unit = _VALUE_UNITS.get(text) or count_unit(q[2])
    if unit is None:
        raise VignetteInputError("?", key, f"unknown unit in {v!r}")
    return q[0], unit


def _truthy(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        t = v.strip().lower()
        if re.match(r"^(no|none|absent|false|normal|not palpable|nil|negative|not enlarged|non-?palpable|"
                    r"impalpable|within normal|normal size|resolved)\b", t):
            return False
        return True if t else None
    return None


def _finding(p: PatientBuilder, key: str, when: str, present: bool, display: str, text: str | None = None) -> Json:
    """A SNOMED CT finding Observation (exam): value Present / Absent."""
    val = (SNOMED, "52101004") if present else (SNOMED, "2667000")
    obs = p.observation(key, when, display=display, value_code=val, category="exam", note=text)
    obs["valueCodeableConcept"]["coding"][0]["display"] = "Present" if present else "Absent"
    return obs


_RELEVANT = re.compile(r"node|lymph|spleen|splen|liver|hepat|platelet|^plt|^hb|hemoglobin|haemoglobin|neutro|^anc|"
                       r"^alc|marrow|mrd|symptom|transfus|cytopenia|richter|transform|lesion|spd")


def write_assessment(p: PatientBuilder, tp: dict, when: str, where: str = "") -> None:
    for k, raw in tp.items():
        if raw is None or k == "date":
            continue
        lk = k.lower()
        q = _with_unit(k, raw)
        v: Any = raw
        if q is not None:
            v = q[0]
            if q[1]:
                if q[1] not in _SUFFIX_OF_UNIT:
                    raise VignetteInputError("?", f"{where}{k}", f"unit {q[1]} not accepted here")
                k = f"{k}_{_SUFFIX_OF_UNIT[q[1]]}"
                lk = k.lower()
        if re.search(r"doubling|ldt|kinetic", lk):
            continue  # lymphocyte doubling time: a prognostic fact, not a Table 4 parameter
        if lk.startswith(("largest_lymph_node", "largest_node", "largest_ln", "ldi", "lymph_node_largest",
                          "max_node", "largest_lymphadenopathy")):
            lk = "largest_node" + lk[len(lk.split("_cm")[0].split("_mm")[0]):]
        elif not _is_known(lk) and _RELEVANT.search(lk):
            raise VignetteInputError("?", f"{where}{k}", "field not read by the iwCLL vignette converter "
                                                         "(rename it to a documented field or extend the converter)")
        if lk.startswith("largest_node") or lk.startswith("largest_ln") or lk.startswith("ldi"):
            if _isnum(v):
                p.observation(c.LARGEST_NODE, when, display="Largest lymph node, longest diameter", value=_d(v),
                              unit=_unit(k, "mm"), category="imaging")
        elif lk.startswith("node_spd") or lk.startswith("spd") or lk.startswith("lymph_node_spd"):
            if _isnum(v):
                p.observation(c.NODE_SPD, when, display="Lymph nodes, sum of products of diameters", value=_d(v),
                              unit=_unit(k, "mm2"), category="imaging")
        elif lk.startswith(("lymph_nodes", "lymphadenopathy", "nodes", "lymph_node_status", "adenopathy")):
            t = _truthy(v) if not re.match(r"^\s*(?:none|no)\b[^;]*(?:>=?|≥|over|above)\s*1[.,]5\s*cm", str(v), re.I) \
                else False
            if t is None:
                raise VignetteInputError("?", f"{where}{k}", f"cannot read {v!r} as lymphadenopathy present / absent")
            _finding(p, c.LYMPHADENOPATHY, when, t, "Lymphadenopathy", str(v))
        elif lk.startswith("spleen"):
            if _isnum(v):
                p.observation(c.SPLEEN_LENGTH, when, display="Spleen craniocaudal length", value=_d(v),
                              unit=_unit(k, "cm"), category="imaging")
            elif _truthy(v) is not None:
                _finding(p, c.SPLENOMEGALY, when, bool(_truthy(v)), "Splenomegaly", str(v))
        elif lk.startswith("liver"):
            if _isnum(v):
                p.observation(c.LIVER_SIZE, when, display="Liver craniocaudal length", value=_d(v),
                              unit=_unit(k, "cm"), category="imaging")
            elif _truthy(v) is not None:
                _finding(p, c.HEPATOMEGALY, when, bool(_truthy(v)), "Hepatomegaly", str(v))
        elif lk.startswith("constitutional") or lk.startswith("b_symptoms"):
            t = _truthy(v)
            if t is not None:
                p.observation(c.CONSTITUTIONAL, when, display="Constitutional (B) symptoms", value_bool=t,
                              category="exam", note=v if isinstance(v, str) else None)
        elif lk.startswith("lymphocyte") or lk.startswith("alc") or lk.startswith("abs_lymph"):
            if _isnum(v):
                p.observation(f"{LOINC}|731-0", when, display="Lymphocytes [#/volume] in Blood by Automated count",
                              value=_d(v), unit=_unit(k, "10*9/L"))
        elif lk.startswith("platelet") or lk.startswith("plt"):
            if _isnum(v):
                p.observation(f"{LOINC}|777-3", when, display="Platelets [#/volume] in Blood by Automated count",
                              value=_d(v), unit=_unit(k, "10*9/L"))
        elif lk.startswith("neutrophil") or lk.startswith("anc"):
            if _isnum(v):
                p.observation(f"{LOINC}|751-8", when, display="Neutrophils [#/volume] in Blood by Automated count",
                              value=_d(v), unit=_unit(k, "10*9/L"))
        elif lk.startswith("hemoglobin") or lk.startswith("haemoglobin") or lk.startswith("hb"):
            if _isnum(v):
                unit = _unit(k, "g/dL")
                code = "59260-0" if unit == "mmol/L" else "718-7"
                p.observation(f"{LOINC}|{code}", when, display="Hemoglobin in Blood", value=_d(v), unit=unit)
        elif lk in ("transfused", "transfusion", "transfusion_dependent", "red_cell_transfusion"):
            t = _truthy(v)
            if t is not None:
                p.observation(c.TRANSFUSED, when, display="Red-cell transfusion or ESA before this haemoglobin",
                              value_bool=t, category="therapy")
        elif lk.startswith("marrow") or lk.startswith("bone_marrow"):
            if _isnum(v) and (lk.endswith("_pct") or "cll" in lk or "infiltr" in lk):
                p.observation(c.MARROW_INFILTRATION, when, display="CLL cells in bone marrow", value=_d(v), unit="%")
            elif isinstance(v, str) and not re.search(r"not (done|performed)|^n/?a$", v.strip(), re.I):
                p.report(when, category="pathology", code=(LOINC, "48807-2", "Bone marrow aspiration report"),
                         conclusion=v)
        elif lk in ("category", "response", "reported_category", "iwcll_category"):
            p.observation(c.REPORTED, when, display="iwCLL 2018 response (recorded)", value_code=str(v),
                          category="survey")
        elif lk in ("new_lesion", "new_lesions"):
            t = _truthy(v)
            if t is not None:
                p.observation(c.NEW_LESION, when, display="New lesion", value_bool=t, category="imaging")
        elif lk in ("transformation", "richter", "richter_transformation"):
            t = _truthy(v)
            if t is not None:
                p.observation(c.TRANSFORMATION, when, display="Richter transformation", value_bool=t,
                              category="exam")
        elif lk in ("cytopenia_due_to_cll", "cytopenia_secondary_to_cll"):
            t = _truthy(v)
            if t is not None:
                p.observation(c.CYTOPENIA_DUE_TO_CLL, when, display="Cytopenia attributed to CLL", value_bool=t,
                              category="exam")
        elif "mrd" in lk:
            item = v if isinstance(v, dict) else ({k: v} if _isnum(v) else {"result": str(v)})
            if isinstance(v, str):
                item["sample"] = "peripheral blood" if re.search(r"\bpb\b|blood", v, re.I) else ""
            mrd_observation(p, item, when)


def _assessments(inp: dict) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    if isinstance(inp.get("baseline"), dict):
        out.append(("baseline", inp["baseline"]))
    for h in inp.get("history") or ():
        if isinstance(h, dict):
            out.append(("history", h))
    if isinstance(inp.get("current"), dict):
        out.append(("current", inp["current"]))
    elif not out or any(k not in NON_TP_KEYS for k in inp):
        flat = {k: x for k, x in inp.items() if k not in NON_TP_KEYS}
        if flat:
            out.append(("current", flat))
    return out


def _offset(text: str, when: date) -> date | None:
    m = re.search(r"(\d+)\s*(month|week|day)s?\s*(?:after|post|from|following)[- ]?\s*(?:the\s*)?(?:end|completion|"
                  r"completing|last dose|stop|treatment|therapy|fixed)", text)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    if unit == "month":
        return add_months(when, -n)
    return when - timedelta(days=n * (7 if unit == "week" else 1))


@converter("CLL", "iwCLL 2018")
def cll(v: Vignette) -> PatientBuilder:
    inp = v.get("inputs") or {}
    items = _assessments(inp)
    dates = [str(tp.get("date") or inp.get("date") or "2024-06-01") for _, tp in items]
    age = inp.get("age") or inp.get("age_years")
    years = int(age) if _num(age) else 67
    first = date.fromisoformat(min(dates))
    p = PatientBuilder(_pid(v), birth_date=_birth(first.isoformat(), years), gender="male")
    p.condition(icd10="C91.10", text="Chronic lymphocytic leukemia of B-cell type not having achieved remission",
                onset=(first - timedelta(days=400)).isoformat())
    baseline_date = None
    for (role, tp), when in zip(items, dates):
        where = "history[]." if role == "history" else f"{role}." if inp.get(role) is tp else ""
        write_assessment(p, tp, when, where)
        if role == "baseline":
            baseline_date = when
            p.observation(c.REPORTED, when, display="iwCLL assessment: pre-treatment baseline",
                          value_code="baseline", category="survey")

    # therapy
    current = date.fromisoformat(dates[-1]) if dates else first
    text = json.dumps(inp).lower()
    names = [w for w in c.CLL_THERAPY if w in text and w not in ("fixed-duration", "cll therapy", "cll treatment")]
    if inp.get("bcr_inhibitor") is True and not any(w in c.BCR_INHIBITORS for w in names):
        names.append("BTK inhibitor")
    end = None
    for k in ("therapy_end", "end_of_therapy", "end_of_treatment", "last_dose"):
        if isinstance(inp.get(k), str):
            end = date.fromisoformat(inp[k][:10])
    if end is None:
        end = _offset(" ".join(str(inp.get(k, "")) for k in ("timing", "therapy", "treatment", "regimen")).lower(),
                      current)
    start = None
    for k in ("therapy_start", "treatment_start"):
        if isinstance(inp.get(k), str):
            start = date.fromisoformat(inp[k][:10])
    if start is None and baseline_date:
        start = date.fromisoformat(baseline_date) + timedelta(days=1)
    if names or end or start:
        label = " + ".join(dict.fromkeys(names)) or "CLL therapy (fixed duration)"
        when = (start or (first - timedelta(days=1))).isoformat()
        med = p.medication(when, label, status="completed" if end else "active")
        bounds: Json = {}
        if start:
            bounds["start"] = start.isoformat()
        if end:
            bounds["end"] = end.isoformat()
        if not start:
            # the start of therapy is not known from the vignette: do not invent one
            med.pop("authoredOn", None)
            if not end:
                med["authoredOn"] = (first - timedelta(days=1)).isoformat()
        if bounds:
            med["dosageInstruction"] = [{"timing": {"repeat": {"boundsPeriod": bounds}}}]
    return p
