"""IMWG 2016 and IMWG 2016 MRD vignettes -> the FHIR a myeloma record would carry (docs/fhir-inputs-imwg.md).

Labs become Observations with their LOINC code and the UCUM unit the field name states (``serum_M_g_L`` is sent in
g/L, ``kappa_FLC_mg_L`` in mg/L: the mapper converts), immunofixation a coded result, marrow and imaging results their
own Observations, plasmacytomas mCODE TumorSize with a BodyStructure per lesion.  The vignette's shortcuts become the
resources a record holds for them: the baseline is the last sample before an anti-myeloma MedicationRequest (the
vignette's "baseline" is pre-treatment), ``new_therapy_start`` a MedicationRequest for another regimen,
``confirmed_nadir`` / ``previous_confirmed_category`` / ``measurable_by`` / ``involved_FLC`` recorded assessments
in the project's code system.  The expected answer is never written.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import (
    NotMine,
    Vignette,
    VignetteInputError,
    _pid,
    check_keys,
    converter,
    parse_quantity,
)
from fhir_mappings import codes
from fhir_mappings import imwg as m
from fhir_mappings.record import LOCAL, LOINC, SNOMED

Json = dict[str, Any]

UNIT_SUFFIX = {"g_dL": "g/dL", "g_dl": "g/dL", "g_L": "g/L", "g_l": "g/L", "mg_dL": "mg/dL", "mg_dl": "mg/dL",
               "mg_L": "mg/L", "mg_l": "mg/L", "mg_24h": "mg/(24.h)", "g_24h": "g/(24.h)", "mg_d": "mg/d",
               "g_d": "g/d", "mg_day": "mg/d", "pct": "%", "percent": "%", "per_uL": "/uL", "per_ul": "/uL",
               "10e9_per_L": "10*9/L", "mm2": "mm2", "cm2": "cm2", "mm": "mm", "cm": "cm"}
_SUFFIX_RE = re.compile(r"_(" + "|".join(sorted((re.escape(k) for k in UNIT_SUFFIX), key=len, reverse=True)) + r")$")
META = {"date", "note", "notes", "sample_id", "sample", "comment", "timepoint", "label", "id"}


def _unit(key: str, default: str) -> str:
    mm = _SUFFIX_RE.search(key)
    return UNIT_SUFFIX[mm.group(1)] if mm else default


_DERIVED = re.compile(r"(?:^|_)(?:pct_|percent_)?(?:change|drop|reduction|decrease|increase|delta|response)(?:_|$)")


def _kind(key: str) -> str | None:
    k = key.lower()
    if k in META or _DERIVED.search(k):
        return None  # a derived number ("serum_M_pct_change") is not a measurement: recomputed, never read
    if "ife" in k or "immunofix" in k:
        return "serum_IFE" if "serum" in k or k.startswith("s_") else "urine_IFE" if "urine" in k else "serum_IFE"
    if "ihc" in k:
        return "PCs_counted" if "count" in k else "IHC"
    if "plasmacytoma" in k:
        return "SPD" if "spd" in k else "plasmacytoma"
    if "new" in k and "lesion" in k:
        return "new_lesions"
    if "lesion" in k and "progress" not in k:
        return "lesions_text"
    if "bone" in k and "progress" in k:
        return "bone_progression"
    if "circulating" in k or k.startswith("cpc"):
        return "CPC"
    if "dflc" in k:
        return "dFLC"
    if "ratio" in k and ("flc" in k or ("kappa" in k and "lambda" in k)):
        return "FLC_ratio"
    if "kappa" in k:
        return "kappa"
    if "lambda" in k:
        return "lambda"
    if "bmpc" in k or ("plasma" in k and ("marrow" in k or "bm" in k)) or re.match(r"(bm|marrow)_?pcs?(_|$)", k) \
            or re.match(r"plasma_?cells?(_pct|_percent|$)", k):
        return "BMPC"
    if "urine" in k or "upep" in k or "bence" in k:
        return "urine_spot" if "spot" in k or "random" in k else "urine"
    if k.startswith("serum_m") or "m_protein" in k or "m_spike" in k or "spep" in k or k.startswith("serum_protein") \
            or "paraprotein" in k or re.match(r"(serum_)?m_?(component|band|peak)(_|$)", k):
        return "serum"
    return None


# units written in a value ("1.4 g/dL", "800 mg/24h", "3 %") -> UCUM (criteria.md §1 units of the IMWG inputs)
_VALUE_UNITS = {"g/dl": "g/dL", "g/l": "g/L", "mg/dl": "mg/dL", "mg/l": "mg/L", "mg/24h": "mg/(24.h)",
                "mg/24hr": "mg/(24.h)", "mg/24hrs": "mg/(24.h)", "mg/24hours": "mg/(24.h)", "mg/(24.h)": "mg/(24.h)",
                "mg/d": "mg/d", "mg/day": "mg/d", "g/24h": "g/(24.h)", "g/d": "g/d", "g/day": "g/d", "%": "%",
                "/ul": "/uL", "cells/ul": "/uL"}
_RELEVANT = re.compile(r"serum|urine|upep|spep|m_?protein|spike|paraprotein|flc|kappa|lambda|ife|immunofix|"
                       r"plasma|bmpc|marrow|plasmacytoma|lesion|ratio|ihc|nadir|lowest")
_IGNORED = re.compile(r"^(?:hb|hgb|ha?emoglobin|calcium|ca|creatinine|egfr|ldh|albumin|beta2|b2m|b2_micro|"
                      r"ig[gamde]|quantitative|wbc|anc|platelets?|neutrophils?)(?:_|$)")


def _ratio(key: str, val: Any) -> Any:
    """A ratio written as a number or as "2:1" / "1:2" (kappa:lambda)."""
    if isinstance(val, str):
        mm = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*[:/]\s*([0-9]*\.?[0-9]+)\s*", val)
        if mm:
            return Decimal(mm.group(1)) / Decimal(mm.group(2))
        q = parse_quantity(val)
        if q is None or q[2]:
            raise VignetteInputError("?", key, f"cannot read {val!r} as a ratio (a number or 'a:b')")
        return q[0]
    return val


def _ife_word(key: str, val: Any) -> Any:
    """IFE given as a yes/no under a name that says which: ``serum_IFE_negative: true``."""
    if not isinstance(val, bool):
        return val
    k = key.lower()
    if "neg" in k:
        return "negative" if val else "positive"
    if "pos" in k or "detect" in k:
        return "positive" if val else "negative"
    raise VignetteInputError("?", key, "a yes/no immunofixation needs a name saying what it answers "
                                       "(e.g. serum_IFE_negative) or a value 'negative'/'positive'")


def _ife_value(v: Any) -> Json:
    text = str(v)
    res = m.pos_neg(set(), text.lower())
    if res == "negative":
        return concept(SNOMED, "260385009", "Negative", text=text)
    if res == "positive":
        return concept(SNOMED, "10828004", "Positive", text=text)
    return {"text": text}


class _Imwg:
    def __init__(self, v: Vignette) -> None:
        self.v = v
        self.p = PatientBuilder(_pid(v))
        self.lesions: dict[str, Json] = {}

    def lab(self, code: str, when: str, value: Any, unit: str, extra: Json | None = None, display: str | None = None,
            components: list[Json] | None = None) -> Json:
        if isinstance(value, str):
            t = value.strip()
            q = parse_quantity(t)
            if q is not None and q[2] and q[1] is None:
                unit_text = re.sub(r"\s+", "", q[2]).lower()
                if unit_text not in _VALUE_UNITS:
                    raise VignetteInputError("?", display or code, f"unknown unit in {value!r}")
                given = _VALUE_UNITS[unit_text]
                return self.p.observation(code, when, display=display, value=q[0], unit=given, extra=extra,
                                          components=components or ())
            mm = re.fullmatch(r"([<>]=?)\s*([0-9]*\.?[0-9]+)", t)
            if mm:
                obs = self.p.observation(code, when, display=display, value=Decimal(mm.group(2)), unit=unit,
                                         extra=extra)
                obs["valueQuantity"]["comparator"] = mm.group(1)
                return obs
            if re.fullmatch(r"[0-9]*\.?[0-9]+", t):
                value = t
            elif m.pos_neg(set(), t.lower()) == "negative" or t.lower() in ("0", "undetectable", "none"):
                return self.p.observation(code, when, display=display, value_code=(SNOMED, "260415000"), extra=extra)
            else:
                return self.p.observation(code, when, display=display, value_string=t, extra=extra)
        return self.p.observation(code, when, display=display, value=Decimal(str(value)), unit=unit, extra=extra,
                                  components=components or ())

    def plasmacytomas(self, when: str, raw: Any) -> None:
        items: list[tuple[str, list[Any]]] = []
        if isinstance(raw, str) or raw is None or raw == [] or raw is False:
            self.p.observation(m.PLASMACYTOMA_STATUS, when, value_bool=False, category="imaging")
            return
        if isinstance(raw, dict):
            raw = [raw]
        if raw and not isinstance(raw[0], (list, tuple, dict)):
            raw = [raw]
        for i, it in enumerate(raw):
            if isinstance(it, dict):
                dims = next((val for k, val in it.items() if isinstance(val, (list, tuple))), None)
                if dims is None:
                    dims = [val for k, val in it.items() if k.endswith("_mm") or k.endswith("_cm")]
                lid = str(it.get("id") or it.get("lesion_id") or it.get("site") or f"P{i + 1}")
                unit = "cm" if any(k.endswith("_cm") for k in it) else "mm"
            else:
                dims, lid, unit = list(it), f"P{i + 1}", "mm"
            items.append((lid, [dims, unit]))
        results = []
        for lid, (dims, unit) in items:
            if lid not in self.lesions:
                self.lesions[lid] = self.p.lesion(lid, "soft-tissue plasmacytoma")
                self.lesions[lid]["morphology"] = {"text": "Plasmacytoma"}
            obs = self.p.tumor_size(self.lesions[lid], when, longest_mm=dims[0], unit=unit)
            if len(dims) > 1:
                obs["component"].append({"code": concept(codes.OTHER_DIMENSION), "valueQuantity": qty(dims[1], unit)})
            results.append(obs)
        if not results:
            self.p.observation(m.PLASMACYTOMA_STATUS, when, value_bool=False, category="imaging")

    def timepoint(self, raw: dict, top_plasmacytoma: Any = None, where: str = "") -> None:
        when = raw["date"]
        check_keys(self.v, raw, where, lambda k: _kind(k) is not None or k.lower() in META or bool(
            _IGNORED.match(k.lower())), _RELEVANT, "IMWG 2016")
        extra = None
        sid = raw.get("sample_id") or raw.get("sample")
        if sid:
            extra = {"specimen": {"reference": f"Specimen/{_pid(self.v)}-{sid}", "display": "serum"}}
        ihc_counted = None
        for key, val in raw.items():
            if val is None:
                continue
            kind = _kind(key)
            if kind == "PCs_counted":
                ihc_counted = val
        for key, val in raw.items():
            kind = _kind(key)
            if kind is None or val is None:
                continue
            if kind == "serum":
                self.lab(m.SERUM_M, when, val, _unit(key, "g/dL"), extra, "M protein SerPl Elph-mCnc")
            elif kind == "urine":
                self.lab(m.URINE_M_24H, when, val, _unit(key, "mg/(24.h)"), extra, "M protein 24h Ur Elph-mRate")
            elif kind == "urine_spot":
                self.lab(m.URINE_M_SPOT[0], when, val, _unit(key, "mg/dL"), extra)
            elif kind in ("serum_IFE", "urine_IFE"):
                code = m.SERUM_IFE if kind == "serum_IFE" else m.URINE_IFE
                obs = self.p.observation(code, when, extra=extra)
                obs["valueCodeableConcept"] = _ife_value(_ife_word(key, val))
            elif kind == "kappa":
                self.lab(m.KAPPA[0], when, val, _unit(key, "mg/dL"), extra, "Kappa LC free SerPl-mCnc")
            elif kind == "lambda":
                self.lab(m.LAMBDA[0], when, val, _unit(key, "mg/dL"), extra, "Lambda LC free SerPl-mCnc")
            elif kind == "FLC_ratio":
                obs = self.p.observation(m.FLC_RATIO[0], when, extra=extra)
                obs["valueQuantity"] = {"value": float(_ratio(key, val)), "unit": "{ratio}",
                                        "system": "http://unitsofmeasure.org", "code": "{ratio}"}
            elif kind == "BMPC":
                self.lab(m.BMPC[0], when, val, _unit(key, "%"))
            elif kind == "IHC":
                comps = [{"code": concept(m.PCS_COUNTED), "valueInteger": int(ihc_counted)}] if ihc_counted else []
                obs = self.p.observation(m.IHC_RATIO, when, components=comps)
                obs["valueQuantity"] = {"value": float(_ratio(key, val)), "unit": "{ratio}",
                                        "system": "http://unitsofmeasure.org", "code": "{ratio}"}
            elif kind == "CPC":
                self.lab(m.CPC, when, val, _unit(key, "/uL"))
            elif kind == "plasmacytoma":
                self.plasmacytomas(when, val)
            elif kind == "lesions_text":
                t = str(val).lower()
                if isinstance(val, bool) or "new" in t or t in ("none", "no", "false"):
                    flag = val if isinstance(val, bool) else ("new" in t and not re.search(r"\bno new\b", t))
                    self.p.observation(m.NEW_LESION, when, value_bool=flag, category="imaging", note=str(val))
            elif kind in ("new_lesions", "bone_progression"):
                code = m.NEW_LESION if kind == "new_lesions" else m.BONE_PROGRESSION
                flag = val if isinstance(val, bool) else str(val).strip().lower() not in ("no", "none", "false", "0")
                self.p.observation(code, when, value_bool=flag, category="imaging")
        if top_plasmacytoma is not None and not any(_kind(k) == "plasmacytoma" for k in raw):
            self.plasmacytomas(when, top_plasmacytoma)

    def recorded(self, code: str, when: str, value: str, components: list[Json] | None = None) -> Json:
        obs = self.p.observation(code, when, category="survey", components=components or ())
        obs["valueCodeableConcept"] = {"coding": [{"system": LOCAL, "code": value}], "text": value}
        obs["method"] = {"text": "IMWG 2016"}
        return obs

    def nadir(self, n: dict, when: str) -> None:
        comps = []
        codes_ = {"serum": (m.SERUM_M, "g/dL"), "urine": (m.URINE_M_24H, "mg/(24.h)"), "dFLC": (m.DFLC, "mg/dL"),
                  "BMPC": (m.BMPC[0], "%"), "SPD": (m.SPD, "mm2"), "CPC": (m.CPC, "/uL")}
        for key, val in n.items():
            kind = _kind(key)
            if kind == "plasmacytoma" and "spd" in key.lower():
                kind = "SPD"
            elif kind == "plasmacytoma" and val is not None:
                # plasmacytoma diameters at the nadir: the measurement the record holds on that date (the PD rules
                # compare SPD and each lesion's longest diameter with the nadir, criteria.md §6.2 row PD)
                self.plasmacytomas(when, val)
                continue
            if kind in codes_ and val is not None:
                code, default = codes_[kind]
                comps.append({"code": concept(code), "valueQuantity": qty(Decimal(str(val)), _unit(key, default))})
        obs = self.p.observation(m.NADIR, when, category="survey", components=comps)
        obs["method"] = {"text": "IMWG 2016 lowest confirmed response value"}


def _dates(inp: dict) -> list[date]:
    out = []
    for tp in [inp.get("baseline") or {}] + list(inp.get("assessments") or []) + [inp.get("confirmed_nadir") or {}]:
        if isinstance(tp, dict) and isinstance(tp.get("date"), str):
            out.append(date.fromisoformat(tp["date"][:10]))
    for k in ("previous_confirmed_date", "new_therapy_start", "new_therapy", "treatment_start"):
        mm = re.search(r"\d{4}-\d{2}-\d{2}", inp[k]) if isinstance(inp.get(k), str) else None
        if mm:
            out.append(date.fromisoformat(mm.group(0)))
    return sorted(out)


_ASSESSMENT_LISTS = ("assessments", "timepoints", "follow_up", "followup", "followups", "results", "labs",
                     "responses", "serial_assessments")
_PREVIOUS = ("previous_confirmed_category", "previous_category", "prior_category", "previous_response",
             "prior_response", "last_confirmed_category", "confirmed_category", "current_confirmed_category")
_FLAT_GROUP = re.compile(r"^(?P<group>baseline|pretreatment|pre_treatment|nadir|lowest_confirmed|lowest_confirmed_value|"
                         r"lowest|confirmed_nadir)_(?P<rest>.+)$", re.I)
_UNDATED_RESULTS = {"bone_marrow", "marrow", "imaging", "lesions", "new_lesions", "new_bone_lesions", "bone_lesions",
                    "skeletal_survey", "pet_ct", "mri", "low_dose_ct", "bone_progression", "new_plasmacytoma"}
_KNOWN_TOP = {"baseline", "confirmed_nadir", *_UNDATED_RESULTS, "previous_confirmed_date", "new_therapy_start", "new_therapy",
              "treatment_start", "measurable_by", "involved_flc", "plasmacytoma", "note", "notes", "disease",
              "treatment", "regimen", "therapy", "setting", "bone_marrow", "marrow", "imaging", "lesions",
              *_ASSESSMENT_LISTS, *_PREVIOUS}


def _normalise(v: Vignette) -> dict:
    """The inputs with other authors' spellings renamed: assessment lists (``timepoints``, ``follow_up``...), an
    earlier category (``previous_category``...), and flat ``baseline_<x>`` / ``nadir_<x>`` / ``lowest_confirmed_<x>``
    fields with their ``..._date`` gathered into the ``baseline`` / ``confirmed_nadir`` objects."""
    inp = dict(v["inputs"])
    for key in _ASSESSMENT_LISTS[1:]:
        if "assessments" not in inp and isinstance(inp.get(key), list):
            inp["assessments"] = inp.pop(key)
    for key in _PREVIOUS[1:]:
        if "previous_confirmed_category" not in inp and isinstance(inp.get(key), str):
            inp["previous_confirmed_category"] = inp.pop(key)
    for key in list(inp):
        mm = _FLAT_GROUP.match(key)
        if not mm or isinstance(inp[key], (dict, list)):
            continue
        group = "baseline" if mm.group("group").lower() in ("baseline", "pretreatment", "pre_treatment") \
            else "confirmed_nadir"
        target = inp.setdefault(group, {})
        if not isinstance(target, dict):
            continue
        rest = mm.group("rest")
        target["date" if rest.lower() == "date" else rest] = inp.pop(key)
    check_keys(v, inp, "", lambda k: k.lower() in _KNOWN_TOP, _RELEVANT, "IMWG 2016")
    for key in list(inp):
        if key.lower() not in _UNDATED_RESULTS:
            continue
        val = inp[key]
        if isinstance(val, str) and not re.search(r"not (done|performed|repeated|available|assessed)|^none\b|^no\b|"
                                                  r"^negative|unchanged|stable", val.strip().lower()):
            raise VignetteInputError(v["id"], key, "an undated result: put it in the assessment it belongs to "
                                                   "(assessments[].BMPC_pct, ...new_lesions)")
        if isinstance(val, bool) and val and re.search(r"lesion|progress", key.lower()):
            raise VignetteInputError(v["id"], key, "an undated finding: put it in the assessment it belongs to")
    return inp


@converter("IMWG", "IMWG 2016")
def imwg(v: Vignette) -> PatientBuilder:
    inp = _normalise(v)
    c = _Imwg(v)
    p = c.p
    dates = _dates(inp)
    first = dates[0] if dates else date(2024, 1, 1)
    p.condition(icd10="C90.00", text="Multiple myeloma not having achieved remission",
                onset=(first - timedelta(days=30)).isoformat())
    base = inp.get("baseline") if isinstance(inp.get("baseline"), dict) else None
    if base is not None and not base.get("date"):
        # an undated baseline is the pre-treatment sample: four weeks before the first assessment
        firsts = sorted(a["date"] for a in inp.get("assessments") or [] if isinstance(a, dict) and a.get("date"))
        when = date.fromisoformat(firsts[0][:10]) - timedelta(days=28) if firsts else first
        base = {**base, "date": when.isoformat()}
        first = min(first, when)
    # the start of the line of therapy whose response is assessed
    if isinstance(inp.get("treatment_start"), str):
        start = date.fromisoformat(inp["treatment_start"][:10])
    elif base and base.get("date"):
        start = date.fromisoformat(base["date"][:10]) + timedelta(days=1)
    else:
        start = first - timedelta(days=1)
    p.medication(start.isoformat(), "Anti-myeloma induction regimen (bortezomib, lenalidomide, dexamethasone)")
    new = inp.get("new_therapy_start") or inp.get("new_therapy")
    new_date = re.search(r"\d{4}-\d{2}-\d{2}", new) if isinstance(new, str) else None
    if new_date:
        p.medication(new_date.group(0), "New line of anti-myeloma therapy (consolidation / next regimen)")
    if isinstance(inp.get("measurable_by"), str):
        c.recorded(m.MEASURABLE, start.isoformat(), inp["measurable_by"])
    if isinstance(inp.get("involved_FLC"), str):
        c.recorded(m.INVOLVED, start.isoformat(), inp["involved_FLC"])
    if base:
        c.timepoint(base, inp.get("plasmacytoma"), "baseline.")
    if isinstance(inp.get("confirmed_nadir"), dict):
        n = inp["confirmed_nadir"]
        c.nadir(n, n.get("date") or start.isoformat())
    prev = inp.get("previous_confirmed_category")
    if isinstance(prev, str):
        when = inp.get("previous_confirmed_date") or (inp.get("confirmed_nadir") or {}).get("date")
        if not when:
            firsts = [a["date"] for a in inp.get("assessments") or [] if a.get("date")]
            when = (date.fromisoformat(min(firsts)) - timedelta(days=1)).isoformat() if firsts else start.isoformat()
        c.recorded(m.IMWG_RESPONSE, when[:10], _response_category(prev) or prev)
    for i, a in enumerate(inp.get("assessments") or []):
        if isinstance(a, dict) and a.get("date"):
            c.timepoint(a, where=f"assessments[{i}].")
        elif isinstance(a, dict):
            raise VignetteInputError(v["id"], f"assessments[{i}].date", "every assessment needs its date")
    return p


# --- IMWG 2016 MRD ------------------------------------------------------------------------------------

def _is_imwg_mrd(v: Vignette) -> bool:
    crit = str(v.get("criteria", "")).lower()
    return "imwg" in crit


def _as_fraction(key: str, val: Any) -> Any:
    """A fraction from a field whose name gives the unit (``_pct`` / ``_percent``: divided by 100)."""
    if key.lower().endswith(("_pct", "_percent")) and not isinstance(val, bool):
        q = parse_quantity(val)
        if q is None or q[1] is not None:
            raise VignetteInputError("?", key, f"cannot read {val!r} as a percentage")
        return q[0] / 100
    return val


def _lod(t: dict) -> Any:
    for k in ("LOD_fraction", "limit_of_detection_fraction", "sensitivity_fraction", "lod_fraction",
              "sensitivity", "LOD", "limit_of_detection"):
        if t.get(k) is not None:
            return t[k]
    for k, val in t.items():  # LOD_pct, sensitivity_percent, detection_limit_fraction ...
        if val is not None and re.search(r"lod|sensitiv|limit_of_detection|detection_limit", k, re.I):
            return _as_fraction(k, val)
    return None


def _level(t: dict) -> Any:
    for k in ("level_fraction", "MRD_level_fraction", "mrd_level_fraction", "level"):
        if t.get(k) is not None:
            return t[k]
    for k, val in t.items():  # level_pct, MRD_pct, clonal_fraction ...
        if val is not None and re.fullmatch(r"(?:mrd_)?(?:level|mrd|clonal(?:_cells)?)_(?:pct|percent|fraction)", k,
                                            re.I):
            return _as_fraction(k, val)
    return None


def _mrd_observation(p: PatientBuilder, t: dict, when: str, default_sample: str | None) -> Json:
    method = str(t.get("method") or t.get("assay") or "")
    result = str(t.get("result", ""))
    res = m.pos_neg(set(), result.lower())
    lod = _lod(t)
    level = _level(t)
    comps: list[Json] = []
    if lod is not None:
        if isinstance(lod, str) and not re.fullmatch(r"[0-9.eE+-]+", lod.strip()):
            comps.append({"code": concept(m.MRD_SENSITIVITY), "valueString": lod})
        else:
            comps.append({"code": concept(m.MRD_SENSITIVITY), "valueQuantity": qty(Decimal(str(lod)), "1")})
    cells = t.get("cells_evaluated") or t.get("cells_counted")
    if cells is not None:
        comps.append({"code": concept(m.CELLS_COUNTED), "valueInteger": int(cells)})
    if level is not None and res != "negative":
        comps.append({"code": concept(m.MRD_LEVEL), "valueQuantity": qty(Decimal(str(level)), "1")})
    sample = t.get("sample") or default_sample or "bone marrow aspirate"
    extra = {"specimen": {"reference": f"Specimen/{p.patient_id}-mrd-{when}", "display": str(sample)},
             "method": {"text": method}}
    if res == "negative":
        value = (SNOMED, "260415000")
    elif res == "positive":
        value = (SNOMED, "260373001")
    else:
        value = None
    obs = p.observation(m.MRD, when, display="Minimal residual disease", components=comps, extra=extra,
                        value_string=None if value else result)
    if value:
        obs["valueCodeableConcept"] = concept(value[0], value[1], text=result)
    return obs


def _response_category(text: str, relapse: bool = True) -> str | None:
    t = text.strip()
    if relapse and re.match(r"relapse", t, re.I):
        return "relapse from CR"
    for pat, cat in ((r"\bsCR\b|stringent", "sCR"), (r"\bVGPR\b|very good", "VGPR"), (r"\bCR\b|complete resp", "CR"),
                     (r"\bPR\b|partial resp", "PR"), (r"\bMR\b|minimal resp", "MR"), (r"\bSD\b|stable", "SD"),
                     (r"\bPD\b|progress", "PD")):
        if re.search(pat, t, re.I):
            return cat
    return None


@converter("MRD", "IMWG 2016 MRD")
def imwg_mrd(v: Vignette) -> PatientBuilder:
    if not _is_imwg_mrd(v):
        raise NotMine(v["id"])
    inp = v["inputs"]
    p = PatientBuilder(_pid(v))
    p.card_criteria = "IMWG 2016 MRD"
    tests = list(inp.get("mrd_tests") or inp.get("tests") or [])
    if not tests:
        tests = [inp]
    tdates = sorted(str(t.get("date") or inp.get("date"))[:10] for t in tests)
    first = date.fromisoformat(tdates[0])
    p.condition(icd10="C90.01", text="Multiple myeloma in remission", onset=(first - timedelta(days=400)).isoformat())
    for t in tests:
        _mrd_observation(p, t, str(t.get("date") or inp.get("date"))[:10], inp.get("sample"))
    # PET/CT reads: keys "PET_CT_<date>", or "PET_CT" / "pet_ct" (the MRD date), or a dict with a date
    for key, val in inp.items():
        if not re.match(r"pet", key, re.I):
            continue
        mm = re.search(r"(\d{4}-\d{2}-\d{2})", key)
        items = val if isinstance(val, list) else [val]
        for it in items:
            when = mm.group(1) if mm else None
            text = it
            if isinstance(it, dict):
                when = str(it.get("date", when or tdates[-1]))[:10]
                text = it.get("result") or it.get("finding") or it.get("conclusion") or ""
            when = when or tdates[-1]
            p.report(when, category="radiology", code=(LOINC, "18748-4", "Diagnostic imaging study"),
                     conclusion=str(text), text=f"FDG PET/CT whole body. Impression: {text}")
    # the IMWG response at the MRD tests (a recorded assessment)
    status = inp.get("response") or inp.get("response_status") or inp.get("imwg_response")
    if isinstance(status, str):
        cat = _response_category(status, relapse=False)
        if cat:
            confirmed = not re.search(r"unconfirmed|not confirmed|awaiting confirmation", status, re.I)
            lost = re.search(r"not maintained|lost|relapse", status, re.I)
            at = tdates[:1] if lost or not re.search(r"both|all|each|throughout", status, re.I) else tdates
            if len(tdates) > 1 and not lost and cat in ("CR", "sCR"):
                at = tdates
            for when in at:
                obs = p.observation(m.IMWG_RESPONSE, when, category="survey",
                                    components=[{"code": concept(m.CONFIRMED), "valueBoolean": confirmed}])
                obs["valueCodeableConcept"] = {"coding": [{"system": LOCAL, "code": cat}], "text": status}
                obs["method"] = {"text": "IMWG 2016"}
            if lost and len(tdates) > 1:
                mid = first + (date.fromisoformat(tdates[-1]) - first) / 2
                obs = p.observation(m.IMWG_RESPONSE, mid.isoformat(), category="survey")
                obs["valueCodeableConcept"] = {"coding": [{"system": LOCAL, "code": "relapse from CR"}],
                                               "text": status}
    return p
