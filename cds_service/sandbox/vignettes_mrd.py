"""MRD vignettes (prefix ``MRD``) -> FHIR patients, for the ALL / CLL / AML MRD schemes of rules/mrd.py.

IMWG 2016 MRD vignettes (criteria "IMWG ...", myeloma) are not converted here: :class:`NotMine` lets the myeloma
converter own them. Each MRD result becomes the Observation documented in docs/fhir-inputs-mrd.md: project code
``mrd-result``, the level as a UCUM quantity (% or fraction ``1``) or a coded detected / not detected value, the
assay sensitivity, LOQ, PCR markers and time point as components, the method as ``Observation.method`` text and the
sample as ``bodySite``. The treatment protocol a real record carries (COG, AIEOP-BFM) is written when the vignette's
population names it; the protocol *version* only when the vignette gives it. Patient age follows the vignette
(explicit age, or paediatric / adult population).
"""
from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import NotMine, Vignette, VignetteInputError, _pid, converter
from fhir_mappings import mrd as m
from fhir_mappings.record import LOINC, SNOMED
from rules import mrd as engine

Json = dict[str, Any]
DEFAULT_DATE = "2024-03-01"
LIST_KEYS = ("MRD", "mrd", "mrd_tests", "MRD_tests", "mrd_results", "MRD_results", "results", "tests",
             "timepoints", "assessments", "series")
SKIP_KEYS = {"other_tests", "history", "baseline", "current"}


def _d(v: Any) -> Decimal:
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))


def _age_years(inp: dict, text: str) -> int | None:
    for k in ("age", "age_years", "patient_age", "age_at_diagnosis"):
        v = inp.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)
        if isinstance(v, str):
            mm = re.search(r"\d+", v)
            if mm:
                return int(mm.group())
    if re.search(r"p(a)?ediatric|child|infant|adolescent|\bcog\b|aieop|bfm|relapse consensus", text):
        return 8
    if re.search(r"\badult\b", text):
        return 45
    return None


def _birth(first: str, years: int) -> str:
    d = date.fromisoformat(first)
    try:
        return d.replace(year=d.year - years).isoformat()
    except ValueError:
        return (d - timedelta(days=365 * years)).isoformat()


def result_items(inp: dict) -> list[dict]:
    for k in LIST_KEYS:
        v = inp.get(k)
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            return v
    for k, v in inp.items():
        if k in SKIP_KEYS:
            continue
        if isinstance(v, list) and v and all(isinstance(x, dict) and "date" in x for x in v):
            return v
    if isinstance(inp.get("MRD"), dict):
        return [{**{k: x for k, x in inp.items() if k != "MRD"}, **inp["MRD"]}]
    split = _split_by_timepoint(inp)
    return split or [inp]


_TP_KEY = re.compile(r"(?:^|_)(day_?\d+|d\d+|tp_?[12]|eoi|end_of_induction)(?:_|$)", re.I)


def _split_by_timepoint(inp: dict) -> list[dict]:
    """Flat inputs with one field per time point ("day8_PB_MRD_pct", "day29_BM_MRD_pct") -> one item each."""
    groups: dict[str, dict] = {}
    for k, v in inp.items():
        m = _TP_KEY.search(k)
        if m and not isinstance(v, (dict, list)):
            tok = m.group(1).lower().replace("_", "")
            rest = (k[:m.start()] + "_" + k[m.end():]).strip("_")
            groups.setdefault(tok, {})[rest or "result"] = v
    if len(groups) < 2 and not any(_is_level_key(k) for g in groups.values() for k in g):
        return []
    common = {k: v for k, v in inp.items() if not _TP_KEY.search(k)}
    out = []
    for tok, fields in groups.items():
        day = re.sub(r"\D", "", tok)
        label = ("end of induction" if tok in ("eoi", "endofinduction") else
                 f"TP{day}" if tok.startswith("tp") else f"day {day}")
        sample = " ".join(k for k in fields if re.search(r"(^|_)(pb|bm)(_|$)", k, re.I))
        item = {**common, **fields, "timepoint": label}
        if sample and "sample" not in fields:
            item["sample"] = "peripheral blood" if re.search(r"(^|_)pb(_|$)", sample, re.I) else "bone marrow"
        if isinstance(fields.get("date"), str):
            item["date"] = fields["date"]
        out.append(item)
    return out


def _is_level_key(k: str) -> bool:
    lk = k.lower()
    if re.search(r"lod|sensitiv|limit_of|loq|quantif|threshold|cut_?off", lk):
        return False
    return bool(re.search(r"(mrd|level|result|value|residual|clonal|leuk|blast|cll|abnormal)", lk)) and \
        bool(re.search(r"(_fraction|_pct|_percent|_per_million|_ppm)$", lk)) or lk in ("pct", "fraction", "level")


def _unit_of_key(k: str) -> str:
    lk = k.lower()
    if lk.endswith(("_pct", "_percent")) or lk == "pct":
        return "%"
    if lk.endswith(("_per_million", "_ppm")):
        return "{cells}/10*6{cells}"
    return "1"


def _bound_qty(item: dict, pattern: str) -> Json | None:
    for k, v in item.items():
        if isinstance(v, bool) or v is None:
            continue
        if re.search(pattern, k, re.I):
            if isinstance(v, (int, float)):
                return qty(_d(v), _unit_of_key(k) if not re.search(r"fraction$", k, re.I) else "1")
            if isinstance(v, str):
                parsed = m.parse_mrd_text("sensitivity " + v)
                if parsed.sensitivity is not None:
                    return qty(parsed.sensitivity, "1")
    return None


def _site(text: str) -> Json | None:
    s = m.sample_of(text)
    if s is engine.Sample.BM:
        return concept(SNOMED, "14016003", "Bone marrow structure", "bone marrow")
    if s is engine.Sample.PB:
        return concept(SNOMED, "87612001", "Blood", "peripheral blood")
    return None


_TEXT_LEVEL_KEYS = ("MRD", "mrd", "MRD_level", "mrd_level", "MRD_value", "mrd_value", "level", "value")


def mrd_observation(p: PatientBuilder, item: dict, default_date: str, *, defaults: dict | None = None) -> Json:
    """One MRD result (vignette dict) as the project's MRD Observation."""
    item = {**(defaults or {}), **item}
    when = str(item.get("date") or default_date)
    method = " ".join(str(item[k]) for k in ("method", "assay", "technique", "test") if item.get(k))
    tp = item.get("timepoint") or item.get("time_point") or item.get("tp")
    if tp is None and isinstance(item.get("day"), (int, float)):
        tp = f"day {int(item['day'])}"
    sample_text = " ".join(str(item[k]) for k in ("sample", "specimen", "source", "tissue") if item.get(k))
    site = _site(sample_text) or _site(str(tp or "")) or _site(method)
    comps: list[Json] = []
    sens = _bound_qty(item, r"lod|sensitiv|limit_of_detection|detection_limit")
    if sens:
        comps.append({"code": concept(m.MRD_SENSITIVITY, display="MRD assay sensitivity (LOD)"), "valueQuantity": sens})
    loq = _bound_qty(item, r"loq|limit_of_quant|quantification")
    if loq:
        comps.append({"code": concept(m.MRD_LOQ, display="MRD limit of quantification"), "valueQuantity": loq})
    markers = item.get("markers") or item.get("n_markers") or item.get("pcr_markers")
    if markers is None:
        mk = re.search(r"(\d+)\s*markers?", method.lower())
        markers = int(mk.group(1)) if mk else None
    if isinstance(markers, (int, float)) and not isinstance(markers, bool):
        comps.append({"code": concept(m.MRD_MARKERS, display="PCR markers"), "valueInteger": int(markers)})
    if tp:
        comps.append({"code": concept(m.MRD_TIMEPOINT, display="MRD time point"), "valueString": str(tp)})

    level_key = next((k for k in item if _is_level_key(k) and isinstance(item[k], (int, float))
                      and not isinstance(item[k], bool)), None)
    # prefer the percentage a lab would report when both forms are given
    pct_key = next((k for k in item if _is_level_key(k) and k.lower().endswith(("_pct", "_percent"))
                    and isinstance(item[k], (int, float)) and not isinstance(item[k], bool)), None)
    level_key = pct_key or level_key
    result_text = " ".join(str(item[k]) for k in ("result", "status", "finding", "interpretation", "MRD_result",
                                                  "mrd_result", *_TEXT_LEVEL_KEYS) if isinstance(item.get(k), str))
    for k in _TEXT_LEVEL_KEYS:  # a bare number under a name without its unit: % or fraction cannot be told
        if isinstance(item.get(k), (int, float)) and not isinstance(item.get(k), bool):
            raise VignetteInputError("?", k, "an MRD level needs its unit in the name (MRD_pct / MRD_fraction) "
                                             "or in the value (\"0.02%\", \"2 x 10^-4\")")
    kwargs: dict[str, Any] = {}
    parsed = m.parse_mrd_text(result_text) if result_text else m.ParsedText()
    if sens is None and parsed.sensitivity is not None:
        comps.insert(0, {"code": concept(m.MRD_SENSITIVITY, display="MRD assay sensitivity (LOD)"),
                         "valueQuantity": qty(parsed.sensitivity, "1")})
    if loq is None and parsed.loq is not None:
        comps.insert(0, {"code": concept(m.MRD_LOQ, display="MRD limit of quantification"),
                         "valueQuantity": qty(parsed.loq, "1")})
    if level_key is not None and not (parsed.detected is False and _d(item[level_key]) != 0):
        kwargs = {"value": _d(item[level_key]), "unit": _unit_of_key(level_key)}
    elif parsed.detected is False:
        kwargs = {"value_code": (SNOMED, "260415000")}
    elif parsed.level is not None and level_key is None:  # "MRD": "0.02%", "MRD_level": "5 x 10^-5"
        kwargs = {"value": parsed.level, "unit": "1"}
    elif parsed.detected and parsed.level is None:
        kwargs = {"value_code": (SNOMED, "260373001")}
    elif result_text:
        kwargs = {"value_string": result_text}
    else:
        kwargs = {"value_code": (SNOMED, "260373001")}
    obs = p.observation(m.MRD_RESULT, when, display="Measurable residual disease", components=comps,
                        method={"text": method} if method else None,
                        note=result_text if result_text and "value_string" not in kwargs else None, **kwargs)
    if "value_code" in kwargs:
        disp = "Not detected" if kwargs["value_code"][1] == "260415000" else "Detected"
        obs["valueCodeableConcept"]["coding"][0]["display"] = disp
        obs["valueCodeableConcept"]["text"] = result_text or disp
    if site:
        obs["bodySite"] = site
    return obs


def _criteria_text(v: Vignette) -> str:
    inp = v.get("inputs") or {}
    return " ".join([str(v.get("criteria", "")), str(inp.get("disease", "")), str(v.get("title", ""))]).lower()


def _scheme_for(v: Vignette) -> engine.Scheme:
    crit = str(v.get("criteria", "")).lower()
    text = _criteria_text(v)
    if "cll" in crit or "chronic lymphocytic" in text or "iwcll" in crit:
        return engine.Scheme.CLL
    if re.search(r"\baml\b|eln|acute myeloid", crit) or re.search(r"\baml\b|acute myeloid", text):
        return engine.Scheme.AML_MFC
    if "aieop" in crit or "bfm" in crit:
        return engine.Scheme.AIEOP_BFM
    if "cog" in crit:
        return engine.Scheme.COG
    if "relapse" in crit:
        return engine.Scheme.ALL_RELAPSE
    if "adult" in crit or re.search(r"\badult\b", text):
        return engine.Scheme.ADULT_ALL
    if "aieop" in text or "bfm" in text:
        return engine.Scheme.AIEOP_BFM
    if re.search(r"\bcog\b", text):
        return engine.Scheme.COG
    return engine.Scheme.COG if re.search(r"p(a)?ediatric|child", text) else engine.Scheme.ADULT_ALL


@converter("MRD", engine.SCHEME_CRITERIA[engine.Scheme.COG])
def mrd(v: Vignette) -> PatientBuilder:
    crit = str(v.get("criteria", ""))
    inp = v.get("inputs") or {}
    blob = json.dumps(inp).lower()
    if crit.upper().startswith("IMWG") or "myeloma" in blob or "myeloma" in crit.lower():
        raise NotMine(v["id"])
    scheme = _scheme_for(v)
    items = result_items(inp)
    first = str(next((x.get("date") for x in items if x.get("date")), None) or inp.get("date") or DEFAULT_DATE)
    text = _criteria_text(v)
    age = _age_years(inp, text)
    if age is None:
        age = {engine.Scheme.CLL: 65, engine.Scheme.AML_MFC: 60, engine.Scheme.ADULT_ALL: 45}.get(scheme, 8)
    p = PatientBuilder(_pid(v), birth_date=_birth(first, age))
    p.card_criteria = engine.SCHEME_CRITERIA[scheme]

    relapse = scheme is engine.Scheme.ALL_RELAPSE or bool(re.search(r"\brelapse", str(inp.get("disease", "")),
                                                                    re.I))
    if scheme is engine.Scheme.CLL:
        p.condition(icd10="C91.10", text="Chronic lymphocytic leukemia of B-cell type not having achieved remission",
                    onset="2022-01-01")
    elif scheme is engine.Scheme.AML_MFC:
        p.condition(icd10="C92.00", text="Acute myeloblastic leukemia, not having achieved remission",
                    onset="2023-06-01")
    elif relapse:
        p.condition(icd10="C91.02", text="Acute lymphoblastic leukemia, in relapse", onset="2022-01-01")
    else:
        lineage = "T-cell " if re.search(r"\bt-all\b|t-cell|t-lymphoblastic", text) else ""
        p.condition(icd10="C91.00", text=f"{lineage}Acute lymphoblastic leukemia not having achieved remission",
                    onset=first)

    protocol = inp.get("protocol") or inp.get("treatment_protocol")
    family = {engine.Scheme.COG: "COG", engine.Scheme.AIEOP_BFM: "AIEOP-BFM ALL"}.get(scheme)
    ptext = str(protocol) if protocol else family
    if ptext:
        p.observation(m.TREATMENT_PROTOCOL, first, display="Treatment protocol", value_string=ptext,
                      category="therapy")
    start = inp.get("induction_start") or inp.get("induction_start_date") or inp.get("treatment_start")
    if isinstance(start, str):
        p.observation(m.INDUCTION_START, start, display="Start of induction therapy", category="therapy",
                      extra={"valueDateTime": start})

    # fields given once for a whole series (e.g. the assay) apply to each of its results
    defaults = {k: x for k, x in inp.items() if isinstance(x, (str, int, float)) and not isinstance(x, bool)
                and k in ("method", "assay", "sample", "specimen", "date")}
    for item in items:
        mrd_observation(p, item, first, defaults=None if item is inp else defaults)
    for item in inp.get("other_tests") or ():
        if isinstance(item, dict):
            if re.search(r"morpholog|blast", json.dumps(item).lower()) and not re.search(
                    r"flow|pcr|ngs|fish|cytogen", str(item.get("method", "")).lower()):
                pct = next((item[k] for k in item if k.lower().endswith("_pct")), None)
                if isinstance(pct, (int, float)):
                    p.observation(f"{LOINC}|11150-0", str(item.get("date") or first),
                                  display="Blasts/100 cells in Bone marrow", value=_d(pct), unit="%")
                    continue
            mrd_observation(p, item, first, defaults={"sample": "bone marrow"})
    return p
