"""ELN 2022 AML vignettes (id prefix ``ELN``) -> the FHIR an AML record would carry (docs/fhir-inputs-eln.md).

Clinical facts only, never the expected category:

* marrow: blasts % (LOINC 11150-0), nucleated cells counted (38257-2), spicules / biopsy cellularity / sample
  adequacy (project codes) and the bone-marrow aspirate report (48807-2) with the adequacy text;
* pretreatment marrow: the diagnostic marrow, dated before the first course (or before the assessment when no
  therapy is described), with the Condition's onset on that date;
* counts: ANC (751-8) and platelets (777-3) in the unit the vignette gives (field suffix or ``{value, unit}``);
* peripheral-blood blasts: % (26446-5) or a coded present / absent result; extramedullary disease: project code
  with SNOMED CT Present / Absent; MRD: project code ``aml-mrd`` with method, level or detected / not detected,
  LOD and replicates;
* the therapy described in ``context`` (intensive induction courses -> cytarabine + anthracycline orders per
  course; less-intensive therapy -> azacitidine + venetoclax orders at its start; "at landmark" -> a recorded
  protocol landmark), explicit course counts / start dates / landmark dates;
* earlier recorded ELN categories (``history``) -> mCODE CancerDiseaseStatus Observations (LOINC 97509-4) with the
  category as value and ELN 2022 as method.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import (
    Vignette,
    VignetteInputError,
    _pid,
    check_keys,
    converter,
    count_unit,
    parse_quantity,
)
from fhir_mappings import eln as codes
from fhir_mappings.record import LOCAL, LOINC, SNOMED
from rules import eln2022 as engine

PRESENT = (SNOMED, "52101004", "Present")
ABSENT = (SNOMED, "2667000", "Absent")
DETECTED = (SNOMED, "260373001", "Detected")
NOT_DETECTED = (SNOMED, "260415000", "Not detected")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

_UNIT_SUFFIXES = (  # criteria.md §15 field-name suffixes -> UCUM (10e3_per_L is kept: the mapper must reject it)
    ("_10e9_per_l", "10*9/L"), ("_10e3_per_ul", "10*3/uL"), ("_10e3_per_l", "10*3/L"), ("_10e6_per_ml", "10*6/mL"),
    ("_k_per_ul", "10*3/uL"), ("_cells_per_ul", "/uL"), ("_per_ul", "/uL"), ("_per_mm3", "/mm3"),
)
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "first": 1, "second": 2, "third": 3, "fourth": 4}
_LESS = re.compile(r"less[- ]intensive|non[- ]intensive|low[- ]intensity|azacitidine|decitabine|venetoclax|"
                   r"\bhma\b|hypomethylating|low[- ]dose cytarabine|\bldac\b|\baza\b|\bven\b", re.I)
_INTENSIVE = re.compile(r"intensive|7\s*\+\s*3|induction|daunorubicin|idarubicin|cpx-?351|flag|hidac|high[- ]dose",
                        re.I)


def _d(x: Any) -> date | None:
    if isinstance(x, date):
        return x
    if isinstance(x, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?", x.strip()):
        return date.fromisoformat(x.strip()[:10])  # a date-time is read as its date
    return None


def _dec(x: Any) -> Decimal | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        return Decimal(str(x).strip().rstrip("%").strip())
    except (InvalidOperation, ValueError):
        return None


def _iso(d: date) -> str:
    return d.isoformat()


# ---------------------------------------------------------------------------
# Therapy described by the vignette
# ---------------------------------------------------------------------------


def _context(inp: dict) -> str:
    return " ".join(str(inp.get(k, "")) for k in ("context", "therapy", "treatment", "regimen", "timepoint",
                                                   "timing")).lower()


def _courses(inp: dict, ctx: str) -> int | None:
    """Number of courses given: an explicit count field, else the largest count the context names."""
    for k, val in inp.items():
        kl = k.lower()
        if ("course" in kl or "cycle" in kl or "induction" in kl) and isinstance(val, int) \
                and not isinstance(val, bool):
            return val
    found: list[int] = []
    for rx in (r"(?:cycle|course|induction)\s*#?\s*(\d+)\b", r"\b(\d+|\w+)\s+(?:cycles|courses|inductions)\b",
               r"\b(first|second|third|fourth|1st|2nd|3rd|4th)\s+(?:cycle|course|induction)"):
        for m in re.finditer(rx, ctx):
            g = m.group(1)
            n = int(g) if g.isdigit() else _WORDS.get(g, int(g[0]) if g[:1].isdigit() else None)
            if n:
                found.append(n)
    if re.search(r"re-?induction", ctx):
        found.append(2)
    return max(found) if found else None


def _days_into(ctx: str) -> int | None:
    m = re.search(r"day\s*\+?(\d+)", ctx) or re.search(r"(\d+)\s*days?\s+(?:after|from|since|of)", ctx)
    if m:
        return int(m.group(1))
    m = re.search(r"(\d+)\s*months?\s+(?:after|from|since|of)", ctx)
    if m:
        return int(m.group(1)) * 30
    return None


def _therapy(p: PatientBuilder, inp: dict, d: date | None) -> date | None:
    """Write the therapy the vignette describes; returns the first therapy date (None if none)."""
    ctx = _context(inp)
    starts: list[date] = []
    less_start = _d(inp.get("less_intensive_start") or inp.get("less_intensive_start_date"))
    n = _courses(inp, ctx)
    day = _days_into(ctx)
    explicit_starts = [x for x in (_d(s) for s in inp.get("intensive_course_starts") or ()) if x]
    if explicit_starts:
        for s in explicit_starts:
            _intensive_course(p, s, ctx)
        starts += explicit_starts
    elif d is not None and less_start is None and _LESS.search(ctx):
        if n and day is not None and re.search(r"cycle|course", ctx):
            less_start = d - timedelta(days=(n - 1) * 28 + day)
        elif day is not None:
            less_start = d - timedelta(days=day)
        else:
            less_start = d - timedelta(days=28 * (n or 1))
    elif d is not None and (n is not None or _INTENSIVE.search(ctx)):
        intensive = bool(_INTENSIVE.search(ctx)) or any(
            k in inp for k in ("intensive_courses", "intensive_courses_completed"))
        last = d - timedelta(days=day if day is not None else 28)
        for k in range(n or 1):
            s = last - timedelta(days=35 * ((n or 1) - 1 - k))
            starts.append(s)
            if intensive:
                _intensive_course(p, s, ctx)
            else:
                p.medication(_iso(s), "Antileukaemic chemotherapy, cycle %d (regimen not specified)" % (k + 1),
                             status="completed")
    if less_start is not None:
        less_text = ctx
        if "decitabine" in less_text:
            p.medication(_iso(less_start), "decitabine 20 mg/m2 IV days 1-5", rxnorm="15657")
        elif "low-dose cytarabine" in less_text or "ldac" in less_text:
            p.medication(_iso(less_start), "low-dose cytarabine 20 mg SC twice daily days 1-10")
        else:
            p.medication(_iso(less_start), "azacitidine 75 mg/m2 SC days 1-7", rxnorm="1251")
            p.medication(_iso(less_start), "venetoclax 400 mg PO daily", rxnorm="1747556")
        starts.append(less_start)
    landmark = _d(inp.get("landmark_date"))
    if landmark is None and d is not None and "landmark" in ctx \
            and not re.search(r"(before|prior to|ahead of)\s+(?:the\s+)?(?:[\w-]+\s+)?landmark|pre-?landmark|"
                              r"landmark (?:not|is not|has not)|not (?:yet )?(?:at|reached)", ctx):
        landmark = d
    if landmark is not None:
        p.observation(codes.LANDMARK, _iso(landmark), display="AML response landmark (protocol)",
                      extra={"valueDateTime": _iso(landmark)}, category="therapy")
    recorded = inp.get("intensive_courses_completed")
    if isinstance(recorded, int) and not starts and d is not None:
        p.observation(codes.INTENSIVE_COURSES, _iso(d), display="Intensive induction courses given",
                      extra={"valueInteger": recorded}, category="therapy")
    return min(starts) if starts else None


def _intensive_course(p: PatientBuilder, start: date, ctx: str) -> None:
    if "cpx" in ctx or "vyxeos" in ctx:
        p.medication(_iso(start), "daunorubicin and cytarabine liposome (CPX-351) days 1, 3, 5", status="completed")
        return
    anthracycline = ("idarubicin 12 mg/m2 IV days 1-3", "5650") if "idarubicin" in ctx else \
        ("daunorubicin 60 mg/m2 IV days 1-3", "3109")
    p.medication(_iso(start), "cytarabine 200 mg/m2/day continuous IV infusion days 1-7 (7+3 induction)",
                 rxnorm="3041", status="completed")
    p.medication(_iso(start), anthracycline[0] + " (7+3 induction)", rxnorm=anthracycline[1], status="completed")


# ---------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------


def _count_fields(item: dict, stem: re.Pattern) -> tuple[Any, str] | None:
    """(value, UCUM unit) of an ANC / platelet field in any of the vignette spellings: a number with the unit in
    the field-name suffix (criteria.md §15; none = 10^9/L), ``{value, unit}``, or a string with its unit
    ("1.2 x10^9/L", "1,500/uL", "85 K/uL").  A value or unit that cannot be read raises VignetteInputError."""
    for key, raw in item.items():
        k = key.lower().replace("µ", "u").replace("μ", "u").replace("^", "e").replace("*", "e")
        if not stem.match(k) or raw is None:
            continue
        if isinstance(raw, dict) and "value" in raw:
            unit = str(raw.get("unit") or "10*9/L")
            return raw["value"], count_unit(unit) or unit
        suffix_unit = next((unit for suffix, unit in _UNIT_SUFFIXES if k.endswith(suffix)), None)
        q = parse_quantity(raw)
        if q is None or q[1] is not None:
            raise VignetteInputError("?", key, f"cannot read {raw!r} as a blood count (a number, optionally with its "
                                               "unit, e.g. 1.2, \"1.2 x10^9/L\", \"1500/uL\")")
        value, _, unit_text = q
        if unit_text:
            unit = count_unit(unit_text)
            if unit is None:
                raise VignetteInputError("?", key, f"unknown count unit {unit_text!r} (use 10^9/L, 10^3/uL or /uL)")
            if suffix_unit and suffix_unit != unit:
                raise VignetteInputError("?", key, f"the unit in the value ({unit_text}) contradicts the field name")
            return value, unit
        return value, suffix_unit or "10*9/L"
    return None


_ANC_KEY = re.compile(r"^(anc|absolute_neutrophil_count|absolute_neutrophils|neutrophil_count|neutrophils?)(_|$)")
_PLT_KEY = re.compile(r"^(platelets?|plt|platelet_count|plts)(_|$)")


def _counts(p: PatientBuilder, item: dict, when: str) -> None:
    results = []
    anc = _count_fields(item, _ANC_KEY)
    if anc is not None:
        results.append(p.observation(f"{LOINC}|751-8", when, display="Neutrophils [#/volume] in Blood by Automated count",
                                     value=_dec(anc[0]), unit=anc[1]))
    plt = _count_fields(item, _PLT_KEY)
    if plt is not None:
        results.append(p.observation(f"{LOINC}|777-3", when, display="Platelets [#/volume] in Blood by Automated count",
                                     value=_dec(plt[0]), unit=plt[1]))
    if results:
        p.report(when, category="laboratory", code=(LOINC, "58410-2", "CBC panel - Blood by Automated count"),
                 results=results)


def _pb_blasts(p: PatientBuilder, raw: Any, pct: Any, when: str) -> None:
    code = f"{LOINC}|26446-5"
    display = "Blasts/100 leukocytes in Blood"
    if pct is not None and _dec(pct) is not None:
        p.observation(code, when, display=display, value=_dec(pct), unit="%")
        return
    if isinstance(raw, bool):
        p.observation(code, when, display=display, extra={"valueCodeableConcept": concept(*(PRESENT if raw else ABSENT))})
        return
    if isinstance(raw, (int, float)):
        p.observation(code, when, display=display, value=_dec(raw), unit="%")
        return
    if not isinstance(raw, str) or not raw.strip():
        return
    t = raw.lower()
    m = re.search(r"(\d+(?:\.\d+)?)\s*%", t)
    if m:
        p.observation(code, when, display=display, value=Decimal(m.group(1)), unit="%")
    elif re.search(r"absent|none|not (seen|detected|present)|negative|^no\b|^0$", t):
        p.observation(code, when, display=display, extra={"valueCodeableConcept": concept(*ABSENT, text=raw)})
    elif re.search(r"present|seen|detected|positive|yes", t):
        p.observation(code, when, display=display, extra={"valueCodeableConcept": concept(*PRESENT, text=raw)})


def _emd(p: PatientBuilder, raw: Any, when: str) -> None:
    site = None
    if isinstance(raw, dict):
        when = raw.get("date", when)
        site = raw.get("site")
        raw = raw.get("present", raw.get("status", raw.get("result")))
    if isinstance(raw, bool):
        present = raw
    elif isinstance(raw, str) and raw.strip():
        t = raw.lower()
        if re.search(r"absent|none|^no\b|not (present|seen|detected)|negative", t):
            present = False
        elif re.search(r"present|yes|sarcoma|chloroma|cutis|cns|detected|positive|developed|new", t):
            present = True
            m = re.search(r"\(([^)]+)\)", raw) or re.search(r"(?:present|developed)[:,]?\s+(?:in |at |of )?(.+)", raw,
                                                                    re.I)
            site = site or (m.group(1).strip() if m else None)
        else:
            return
    else:
        return
    extra: dict = {"valueCodeableConcept": concept(*(PRESENT if present else ABSENT))}
    if site:
        extra["bodySite"] = {"text": str(site)}
    p.observation(codes.EMD, when, display="Extramedullary disease", category="exam", extra=extra)


def _adequacy(text: Any) -> dict:
    if isinstance(text, dict):
        out = {}
        for k, v in text.items():
            kl = k.lower()
            if "spicule" in kl:
                out["spicules"] = bool(v) if isinstance(v, bool) else ("absent" not in str(v).lower()
                                                                       and "no" != str(v).lower())
            elif "cells" in kl or "nucleated" in kl:
                out["cells"] = int(v) if _dec(v) is not None else None
            elif "cellularity" in kl:
                out["cellularity"] = _dec(v)
            elif "suboptimal" in kl or "inadequate" in kl:
                out["suboptimal"] = bool(v)
        return {k: v for k, v in out.items() if v is not None}
    if not isinstance(text, str):
        return {}
    t = text.lower()
    out: dict = {}
    if re.search(r"no spicules|spicules (absent|not seen)|aparticulate", t):
        out["spicules"] = False
    elif re.search(r"spicules (present|seen|adequate)|spicular|particulate", t):
        out["spicules"] = True
    m = re.search(r"(\d+)\s*(?:nucleated\s+)?cells", t)
    if m:
        out["cells"] = int(m.group(1))
    m = re.search(r"cellularity\s*(?:of\s*)?(\d+(?:\.\d+)?)\s*%", t)
    if m:
        out["cellularity"] = Decimal(m.group(1))
    if re.search(r"dry tap|inadequate|suboptimal|haemodilute|hemodilute|clotted", t):
        out["suboptimal"] = True
    return out


def _marrow(p: PatientBuilder, when: str, blasts: Any, adequacy: Any = None, *, label: str = "") -> None:
    results = []
    b = _dec(blasts)
    if b is not None:
        results.append(p.observation(codes.BM_BLASTS, when, display="Blasts/100 cells in Bone marrow", value=b,
                                     unit="%"))
    a = _adequacy(adequacy)
    if "cells" in a:
        results.append(p.observation(codes.CELLS_COUNTED, when, display="Cells Counted Total [#] in Bone marrow",
                                     value=a["cells"], unit="{cells}"))
    if "spicules" in a:
        results.append(p.observation(codes.SPICULES, when, display="Bone marrow aspirate spicules",
                                     extra={"valueCodeableConcept": concept(*(PRESENT if a["spicules"] else ABSENT))}))
    if "cellularity" in a:
        results.append(p.observation(codes.CELLULARITY, when, display="Bone marrow biopsy cellularity",
                                     value=a["cellularity"], unit="%"))
    if a.get("suboptimal"):
        results.append(p.observation(codes.SAMPLE_ADEQUACY, when, display="Bone marrow sample adequacy",
                                     value_code=(LOCAL, "suboptimal")))
    text = []
    if b is not None:
        text.append(f"Bone marrow aspirate{label}: blasts {b} % of nucleated cells.")
    if isinstance(adequacy, str) and adequacy.strip():
        text.append(adequacy.strip().rstrip(".") + ".")
    if results or text:
        p.report(when, category="pathology", code=(LOINC, "48807-2", "Bone marrow aspiration report"),
                 results=results, conclusion=" ".join(text) or None)


# ---------------------------------------------------------------------------
# MRD
# ---------------------------------------------------------------------------


def _text_fraction(text: str) -> Decimal | None:
    """'0.01%', '1e-4', '1 x 10^-4', '10^-5' -> fraction."""
    t = text.replace("×", "x").replace("−", "-").replace(" ", "")
    m = re.search(r"(\d+(?:\.\d+)?)%", t)
    if m:
        return Decimal(m.group(1)) / 100
    m = re.search(r"(\d+(?:\.\d+)?)(?:x10\^?|e)(-\d{1,2})\b", t, re.I)
    if m:
        return Decimal(m.group(1)) * Decimal(10) ** int(m.group(2))
    m = re.search(r"10\^(-\d{1,2})\b", t)
    if m:
        return Decimal(10) ** int(m.group(1))
    return None


def _frac_field(item: dict, words: tuple[str, ...]) -> Decimal | None:
    """A level given as <word>_pct / <word>_percent (percent), <word>_fraction or a bare number (fraction,
    the canonical MRD unit of criteria.md §1), or a string with % / scientific notation."""
    for key, raw in item.items():
        k = key.lower()
        if not any(w in k for w in words):
            continue
        if isinstance(raw, str) and _dec(raw) is None:
            f = _text_fraction(raw)
            if f is not None:
                return f
            continue
        v = _dec(raw)
        if v is None:
            continue
        if k.endswith("_pct") or k.endswith("_percent") or k.endswith("%"):
            return v / 100
        return v
    return None


def _mrd(p: PatientBuilder, raw: Any, default: date | None) -> None:
    if isinstance(raw, list):
        for item in raw:
            _mrd(p, item, default)
        return
    if isinstance(raw, str) and raw.strip() and default is not None and \
            not re.search(r"not (tested|done|performed|available|assessed)|^none$|^n/?a$", raw.strip().lower()):
        t = raw.lower()
        method = "MFC" if re.search(r"flow|mfc|cytometr", t) else "qPCR" if "pcr" in t else \
            "NGS" if re.search(r"ngs|sequencing", t) else ""
        p.observation(codes.MRD, _iso(default), display="AML measurable residual disease",
                      method={"text": method or raw}, value_string=raw.strip())
        return
    if not isinstance(raw, dict):
        return  # "not tested", "not done"
    when = _d(raw.get("date")) or default
    if when is None:
        return
    result = str(raw.get("result", raw.get("status", ""))).lower()
    detected = None
    if re.search(r"not detected|negative|undetect|\bneg\b", result):
        detected = False
    elif re.search(r"detected|positive|\bpos\b", result):
        detected = True
    lod = _frac_field(raw, ("lod", "sensitivity", "limit"))
    level = _frac_field({k: v for k, v in raw.items() if not any(w in k.lower() for w in ("lod", "sensitivity",
                                                                                          "limit"))},
                        ("value", "level", "mrd", "ratio", "vaf", "copies", "result"))
    method = str(raw.get("method") or raw.get("assay") or raw.get("technique") or "")
    comps = []
    if lod is not None:
        comps.append({"code": concept(codes.MRD_LOD), "valueQuantity": qty(lod * 100, "%")})
    reps = raw.get("replicates_positive")
    tested = raw.get("replicates_tested")
    if isinstance(raw.get("replicates"), str) and "/" in raw["replicates"]:
        a, b = raw["replicates"].split("/", 1)
        reps, tested = int(a), int(b)
    if isinstance(reps, int):
        comps.append({"code": concept(codes.MRD_REPLICATES_POSITIVE), "valueInteger": reps})
    if isinstance(tested, int):
        comps.append({"code": concept(codes.MRD_REPLICATES_TESTED), "valueInteger": tested})
    if isinstance(raw.get("low_level"), bool):
        comps.append({"code": concept(codes.MRD_LOW_LEVEL), "valueBoolean": raw["low_level"]})
    marker = raw.get("marker") or raw.get("target") or raw.get("gene")
    if marker:
        comps.append({"code": concept(codes.MRD_MARKER), "valueString": str(marker)})
    extra: dict = {}
    if level is not None:
        if detected is not None:
            comps.append({"code": concept(codes.MRD_DETECTED),
                          "valueCodeableConcept": concept(*(DETECTED if detected else NOT_DETECTED))})
        extra["valueQuantity"] = qty(level * 100, "%")
    elif detected is not None:
        extra["valueCodeableConcept"] = concept(*(DETECTED if detected else NOT_DETECTED))
    else:
        return
    tissue = str(raw.get("tissue") or raw.get("sample") or raw.get("specimen") or "").lower()
    if tissue:
        extra["specimen"] = {"display": "bone marrow aspirate" if ("marrow" in tissue or tissue == "bm")
                             else ("peripheral blood" if ("blood" in tissue or tissue == "pb") else tissue)}
    p.observation(codes.MRD, _iso(when), display="AML measurable residual disease", method={"text": method or "MFC"},
                  components=comps, extra=extra)


# ---------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------


def _history(inp: dict) -> list[dict]:
    out = []
    for key in ("history", "prior", "prior_categories", "previous_assessments"):
        raw = inp.get(key)
        if isinstance(raw, dict):
            raw = [raw]
        for h in raw or ():
            if isinstance(h, dict) and _d(h.get("date")) and (h.get("category") or h.get("response")):
                findings = {k: x for k, x in h.items() if k not in ("date", "category", "response")}
                out.append({"date": _d(h["date"]), "category": str(h.get("category") or h.get("response")),
                            "item": findings})
    return out


def _all_dates(inp: dict) -> list[date]:
    out = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        else:
            d = _d(x)
            if d:
                out.append(d)
    walk(inp)
    return out


# --- field spellings -> the converter's own names -----------------------------------------------------------

_KEY_MARROW_BLASTS = re.compile(r"^(?:bone_?marrow|marrow|bm)_?blasts?(?:_count)?(?:_?(?:pct|percent|percentage|%))?$|"
                                r"^blasts?_(?:bone_?marrow|marrow|bm)(?:_?(?:pct|percent|%))?$")
_KEY_PB_BLASTS = re.compile(r"^(?:peripheral_?blood|peripheral|pb|circulating|blood)_?blasts?(?P<pct>_?(?:pct|percent|%))?$"
                            r"|^blasts?_(?:peripheral_?blood|pb|blood)(?P<pct2>_?(?:pct|percent|%))?$")
_KEY_EMD = re.compile(r"^(?:emd|extramedullary(?:_disease)?(?:_status)?)$")
_KEY_ADEQUACY = re.compile(r"spicule|nucleated|cells_counted|cell_count_marrow|cellularity|^aparticulate|"
                           r"^(?:marrow_)?(?:sample_)?(?:suboptimal|inadequate)")
_KEY_COUNT_GROUP = re.compile(r"^(?:blood_counts|counts|cbc|blood_count|peripheral_blood_counts|hematology|haematology)$")
_KEY_PREVIOUS = re.compile(r"^(?:previous|prior|last|best)_(?:category|response|eln_category|eln_response|"
                           r"best_response|remission)$|^(?:prior|previous)_best_response$")
_KEY_PREVIOUS_DATE = re.compile(r"^(?:previous|prior|last|best)_(?:category_|response_|remission_)?date$|"
                                r"^(?:cr|remission)_date$")
_CATEGORY_WORD = re.compile(r"\b(CR_MRD-|CRh_MRD-|CRi_MRD-|CRh|CRi|CR|MLFS|PR)\b")


def _canon(item: dict) -> dict:
    """The item with the field spellings of other authors renamed to the ones the converter reads:
    marrow blasts (``bone_marrow_blasts``, ``BM_blasts_pct``, ``marrow_blasts``), PB blasts (``PB_blasts``,
    ``circulating_blasts``), EMD (``EMD``, ``extramedullary``), an undated group of blood counts
    (``blood_counts: {ANC..., platelets...}``), a flat MRD result (``MRD_method``, ``MRD_result``, ``MRD_LOD_pct``...)
    and an earlier category given as ``previous_category`` + ``previous_category_date`` (or in words)."""
    out: dict = {}
    flat_mrd: dict = {}
    adequacy: dict = {}
    for key, val in item.items():
        k = key.lower()
        if _KEY_MARROW_BLASTS.match(k) and not isinstance(val, (dict, list)):
            out.setdefault("bone_marrow_blasts_pct", val)
        elif _KEY_PB_BLASTS.match(k) and k not in ("peripheral_blood",) and not isinstance(val, (dict, list)):
            m = _KEY_PB_BLASTS.match(k)
            pct = m.group("pct") or m.group("pct2") or (isinstance(val, (int, float, Decimal)) and not isinstance(val, bool))
            out.setdefault("peripheral_blood_blasts_pct" if pct else "peripheral_blood_blasts", val)
        elif _KEY_EMD.match(k) and not isinstance(val, list):
            out.setdefault("extramedullary_disease", val)
        elif _KEY_COUNT_GROUP.match(k) and isinstance(val, dict) and not _d(val.get("date")):
            for ck, cv in val.items():
                out.setdefault(ck, cv)
        elif _KEY_ADEQUACY.search(k) and not isinstance(val, (dict, list)):
            adequacy[key] = val  # "spicules": "present", "nucleated_cells_counted": 300, "biopsy_cellularity_pct": 20
        elif k.startswith("mrd_") and k not in ("mrd_tests", "mrd_series") and not isinstance(val, (dict, list)):
            flat_mrd[key[4:]] = val
        else:
            out[key] = val
    if adequacy:
        if isinstance(out.get("marrow_adequacy"), dict):
            out["marrow_adequacy"] = {**adequacy, **out["marrow_adequacy"]}
        elif out.get("marrow_adequacy"):
            raise VignetteInputError("?", next(iter(adequacy)), "marrow adequacy given twice (text and fields)")
        else:
            out["marrow_adequacy"] = adequacy
    if flat_mrd and not any(k in out for k in _MRD_KEYS):
        out["MRD"] = flat_mrd if len(flat_mrd) > 1 or "result" in flat_mrd else \
            next(iter(flat_mrd.values()))
    return out


def _previous_category(inp: dict) -> list[dict]:
    """An earlier category given as its own fields, or history written as words ("CR on 2024-03-18")."""
    out = []
    cat = next((v for k, v in inp.items() if _KEY_PREVIOUS.match(k.lower()) and isinstance(v, str)), None)
    when = next((_d(v) for k, v in inp.items() if _KEY_PREVIOUS_DATE.match(k.lower()) and _d(v)), None)
    texts = [cat] if cat else []
    for key in ("history", "prior"):
        if isinstance(inp.get(key), str):
            texts.append(inp[key])
    for text in texts:
        m = _CATEGORY_WORD.search(text)
        d = when or _d((re.search(r"\d{4}-\d{2}-\d{2}", text) or [None])[0])
        if m is None:
            raise VignetteInputError("?", "history", f"no ELN category (CR, CRh, CRi, MLFS, PR) in {text!r}")
        if d is None:
            raise VignetteInputError("?", "history", f"no date for the earlier category {m.group(1)} "
                                                     "(give previous_category_date or an ISO date in the text)")
        out.append({"date": d, "category": m.group(1), "item": {}})
    return out


_KNOWN_TOP = {
    "assessment_date", "date", "context", "therapy", "treatment", "regimen", "timepoint", "timing",
    "less_intensive_start", "less_intensive_start_date", "intensive_course_starts", "landmark_date",
    "intensive_courses_completed", "history", "prior", "prior_categories", "previous_assessments",
    "bone_marrow_blasts_pct", "marrow_blasts_pct", "bm_blasts_pct", "bone_marrow_blasts_fraction", "blasts_pct",
    "marrow_adequacy", "bone_marrow_adequacy", "adequacy", "bone_marrow_date", "bone_marrow", "blood_counts_date",
    "counts_date", "peripheral_blood_blasts", "peripheral_blood_blasts_pct", "extramedullary_disease",
    "after_transfusion", "recent_platelet_transfusion", "after_gcsf", "gcsf", "extramedullary", "emd",
    "death_date", "date_of_death", "not_evaluable_reason", "bone_marrow_exams", "marrows", "timepoints",
    "assessments", "marrow_assessments", "peripheral_blood", "blood_counts", "counts", "blood_samples",
    "mrd", "mrd_tests", "mrd_series", "blasts", "present", "marker", "note", "notes",
}
_RELEVANT = re.compile(r"blast|^anc|neutro|platelet|^plt|mrd|extramed|^emd|marrow|cellular|spicule|landmark|"
                       r"course|cycle|induction")


def _known(key: str) -> bool:
    k = key.lower()
    return (k in _KNOWN_TOP or bool(_ANC_KEY.match(k) or _PLT_KEY.match(k))
            or (k.startswith(("pretreatment", "pre_treatment", "baseline", "diagnostic")) and "blast" in k)
            or bool(_KEY_PREVIOUS.match(k) or _KEY_PREVIOUS_DATE.match(k))
            or any(w in k for w in ("course", "cycle", "induction")))


_MARROW_BLASTS = ("bone_marrow_blasts_pct", "marrow_blasts_pct", "bm_blasts_pct")
_LIST_KEYS_MARROW = ("bone_marrow", "bone_marrow_exams", "marrows", "timepoints", "assessments", "marrow_assessments")
_LIST_KEYS_BLOOD = ("peripheral_blood", "blood_counts", "counts", "blood_samples")
_MRD_KEYS = ("MRD", "mrd", "MRD_tests", "mrd_tests", "MRD_series", "mrd_series")


def _timepoint(p: PatientBuilder, item: dict, when: date, *, bare_blasts: str | None = None,
               with_mrd: bool = True) -> None:
    """Write one dated set of findings; ``bare_blasts`` says what a bare ``blasts_pct`` means (marrow / blood)."""
    iso = _iso(when)
    item = _canon(item)
    blasts = next((item[k] for k in _MARROW_BLASTS if item.get(k) is not None), None)
    if blasts is None and bare_blasts == "marrow" and item.get("blasts_pct") is not None:
        blasts = item["blasts_pct"]
    if blasts is None and item.get("bone_marrow_blasts_fraction") is not None:
        frac = _dec(item["bone_marrow_blasts_fraction"])
        blasts = frac * 100 if frac is not None else None
    adequacy = item.get("marrow_adequacy") or item.get("bone_marrow_adequacy") or item.get("adequacy")
    bm_when = _iso(_d(item.get("bone_marrow_date")) or when)
    if blasts is not None or adequacy:
        _marrow(p, bm_when, blasts, adequacy)
    bm_text = item.get("bone_marrow")
    if isinstance(bm_text, str) and bm_text.strip() and \
            not re.search(r"not (performed|done|available)|^none$", bm_text.strip().lower()):
        _marrow(p, bm_when, None, bm_text)  # the marrow described in words ("dry tap, inadequate sample")
    _counts(p, item, _iso(_d(item.get("blood_counts_date") or item.get("counts_date")) or when))
    pb_raw = item.get("peripheral_blood_blasts")
    pb_pct = item.get("peripheral_blood_blasts_pct")
    if bare_blasts == "blood":
        pb_raw = pb_raw if pb_raw is not None else item.get("blasts", item.get("present"))
        pb_pct = pb_pct if pb_pct is not None else item.get("blasts_pct")
    _pb_blasts(p, pb_raw, pb_pct, iso)
    if "extramedullary_disease" in item:
        _emd(p, item["extramedullary_disease"], iso)
    if item.get("after_transfusion") or item.get("recent_platelet_transfusion"):
        p.procedure(_iso(when - timedelta(days=1)), f"{SNOMED}|180208003", "Platelet transfusion")
    if item.get("after_gcsf") or item.get("gcsf"):
        p.medication(_iso(when - timedelta(days=3)), "filgrastim 5 mcg/kg SC daily", status="completed")
    if with_mrd:
        for key in _MRD_KEYS:
            _mrd(p, item.get(key), when)


@converter("ELN", engine.CRITERIA)
def eln(v: Vignette) -> PatientBuilder:
    inp = _canon(v["inputs"])
    check_keys(v, inp, "", _known, _RELEVANT, "ELN 2022")
    p = PatientBuilder(_pid(v))
    d = _d(inp.get("assessment_date") or inp.get("date"))
    if d is None and any(k in inp for k in _MARROW_BLASTS + ("peripheral_blood_blasts", "marrow_adequacy")):
        d = date(2024, 3, 18)  # findings without a date: any fixed date (the card's date is not checked then)
    when = _iso(d) if d else None
    history = _history(inp) + _previous_category(inp)
    first_therapy = _therapy(p, inp, d)

    # diagnosis and the pretreatment (diagnostic) marrow
    pre = None
    for k, val in inp.items():
        kl = k.lower()
        if kl.startswith(("pretreatment", "pre_treatment", "baseline", "diagnostic")) and "blast" in kl \
                and _dec(val) is not None:
            pre = _dec(val) * 100 if kl.endswith("_fraction") else _dec(val)
            break
    dates = _all_dates(inp)
    anchor = first_therapy or d or (min(dates) if dates else date(2024, 1, 1))
    diagnosis = anchor - timedelta(days=3 if first_therapy else 35)
    if dates:
        diagnosis = min(diagnosis, min(dates) - timedelta(days=60 if history else 35))
    in_remission = any(h["category"].strip().upper().startswith("CR") for h in history)
    cond = p.condition(icd10="C92.01" if in_remission else "C92.00",
                       text="Acute myeloblastic leukemia, in remission" if in_remission
                       else "Acute myeloblastic leukemia, not having achieved remission", onset=_iso(diagnosis))
    if pre is not None:
        _marrow(p, _iso(diagnosis), pre, None, label=" (diagnostic)")

    # recorded categories (and the findings recorded with them)
    for h in history:
        p.observation(codes.DISEASE_STATUS[0], _iso(h["date"]), display="Cancer Disease Progression",
                      category="survey", method={"text": "ELN 2022 response criteria (Döhner 2022)"},
                      extra={"valueCodeableConcept": {"text": h["category"]},
                             "focus": [{"reference": f"Condition/{cond['id']}"}]})
        if h.get("item"):
            _timepoint(p, h["item"], h["date"])

    # the assessment time point, then further dated samples and examinations
    if d is not None:
        _timepoint(p, inp, d, with_mrd=False)
    for key in _LIST_KEYS_MARROW + _LIST_KEYS_BLOOD:
        raw = inp.get(key)
        for item in ([raw] if isinstance(raw, dict) else raw if isinstance(raw, list) else ()):
            if isinstance(item, dict) and _d(item.get("date")):
                _timepoint(p, item, _d(item["date"]), bare_blasts="blood" if key in _LIST_KEYS_BLOOD else "marrow")
    for key in ("extramedullary", "emd"):
        for e in inp.get(key) or ():
            if isinstance(e, dict):
                _emd(p, e, e.get("date", when))
    for key in _MRD_KEYS:
        _mrd(p, inp.get(key), d)

    death = _d(inp.get("death_date") or inp.get("date_of_death"))
    ctx = _context(inp)
    if death is None and d is not None and re.search(r"\bdied\b|\bdeath\b|deceased", ctx):
        death = d
    if death is not None:
        p.resources[0]["deceasedDateTime"] = _iso(death)
    reason = inp.get("not_evaluable_reason")
    if not reason and re.search(r"withdr[ae]w|lost to follow", ctx):
        reason = next(x.strip() for x in re.split(r"[;,]", ctx) if re.search(r"withdr[ae]w|lost to follow", x))
    if isinstance(reason, str) and reason.strip():
        p.observation(codes.NOT_EVALUABLE_REASON, when or _iso(anchor), display="Response not evaluable: reason",
                      value_string=reason.strip(), category="survey")
    return p
