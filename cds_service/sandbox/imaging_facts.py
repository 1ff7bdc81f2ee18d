"""Reading imaging facts out of vignette inputs of several shapes (iRECIST, mRECIST and Choi converters).

Vignettes encode units in field names (``ld_mm``, ``target_sum_cm``, ``mean_attenuation_HU``), give lesions per
lesion or as sums, new lesions as a list, a count, a yes/no or a phrase, and time points either as a
``timepoints`` list or as ``baseline`` + ``followup`` (one or a list).  These helpers turn that into plain
values with a UCUM unit; the converters write them as the FHIR a record would carry.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Iterable

Facts = dict[str, Any]

LENGTH_SUFFIXES = (("mm", "mm"), ("cm", "cm"), ("m", "m"))
HU_SUFFIXES = (("hu", "[hnsf'U]"), ("h_u", "[hnsf'U]"))


def _lower_keys(d: Facts) -> dict[str, str]:
    return {k.lower(): k for k in d}


def _num(v: Any) -> Any:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z\[\]']*)\s*", v)
        if m:
            return float(m.group(1)) if "." in m.group(1) else int(m.group(1))
    return None


def _unit_in_string(v: Any) -> str | None:
    if isinstance(v, str):
        m = re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*([A-Za-z\[\]']+)\s*", v)
        if m:
            return m.group(1)
    return None


def quantity(d: Facts | None, stems: Iterable[str], suffixes=LENGTH_SUFFIXES, default_unit: str = "mm"
             ) -> tuple[Any, str] | None:
    """(value, UCUM unit) of the first field named ``<stem>_<unit>`` (or bare ``<stem>``) present in ``d``."""
    if not isinstance(d, dict):
        return None
    keys = _lower_keys(d)
    for stem in stems:
        s = stem.lower()
        for suffix, unit in suffixes:
            k = keys.get(f"{s}_{suffix}")
            if k is not None and _num(d[k]) is not None:
                return _num(d[k]), unit
        k = keys.get(s)
        if k is not None and _num(d[k]) is not None:
            return _num(d[k]), _unit_in_string(d[k]) or default_unit
    return None


def field(d: Facts | None, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in ``d`` (case-insensitive)."""
    if not isinstance(d, dict):
        return default
    keys = _lower_keys(d)
    for n in names:
        k = keys.get(n.lower())
        if k is not None:
            return d[k]
    return default


def timepoints(inputs: Facts) -> list[Facts]:
    """The dated assessments in order; top-level facts (e.g. ``new_lesions``) apply to the follow-ups."""
    if isinstance(inputs.get("timepoints"), list):
        tps = [dict(t) for t in inputs["timepoints"]]
    else:
        tps = []
        base = field(inputs, "baseline")
        if isinstance(base, dict):
            tps.append(dict(base, label=base.get("label", "baseline")))
        follow = field(inputs, "followup", "follow_up", "followups", "follow_ups", default=[])
        for f in follow if isinstance(follow, list) else [follow]:
            if isinstance(f, dict):
                tps.append(dict(f))
    for i, t in enumerate(tps):
        if not isinstance(t.get("date"), str):
            t["date"] = _date_from_offset(t, i)
    tps.sort(key=lambda t: t["date"])
    shared = {k: v for k, v in inputs.items() if k.lower() in TOP_LEVEL_FOLLOWUP_FACTS}
    for t in tps[1:]:
        for k, v in shared.items():
            t.setdefault(k, v)
    if tps and "non_target" in inputs:
        tps[0].setdefault("non_target", inputs["non_target"])
    return tps


BASE_DATE = date(2024, 1, 8)


def _date_from_offset(t: Facts, index: int) -> str:
    """A time point given as "week 8" / ``{"week": 8}`` / ``{"day": 56}`` (no calendar date): dated from a fixed
    baseline so that the intervals (confirmation windows) are the vignette's."""
    days = None
    for key, factor in (("day", 1), ("days", 1), ("week", 7), ("weeks", 7), ("month", 30), ("months", 30)):
        v = _num(field(t, key))
        if v is not None:
            days = v * factor
            break
    if days is None:
        m = re.search(r"(day|week|month)s?\s*(\d+)", str(field(t, "label", "timepoint", default="")).lower())
        if m:
            days = int(m.group(2)) * {"day": 1, "week": 7, "month": 30}[m.group(1)]
    if days is None:
        days = 0 if index == 0 or "baseline" in str(t.get("label", "")).lower() else 56 * index
    return (BASE_DATE + timedelta(days=int(days))).isoformat()


TOP_LEVEL_FOLLOWUP_FACTS = {
    "new_lesions", "new_lesion", "new_intratumoral_nodules", "new_intratumoural_nodules", "intratumoral_nodules",
    "intratumoural_nodules", "non_target", "effusion", "effusion_new_or_increased", "ascites",
    "effusion_cytology", "cytology", "cytology_malignant", "non_measurable_progression",
    "symptomatic_deterioration",
}


def truthy(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v > 0
    if isinstance(v, (list, tuple)):
        return len(v) > 0
    if isinstance(v, str):
        t = v.strip().lower()
        return bool(t) and not (t in ("no", "none", "false", "absent", "negative", "0", "n")
                                or t.startswith("no ") or t.startswith("none"))
    return False


def new_lesion_items(v: Any) -> tuple[list[Facts], str | None]:
    """(lesion dicts, status word) of a ``new_lesions`` fact: a list of lesions, a count, a yes/no or a phrase.

    status word: "yes", "no", "equivocal", "another" (a further new lesion besides those seen before) or None
    when the lesions are listed.
    """
    if isinstance(v, list):
        items = [x if isinstance(x, dict) else {"description": str(x)} for x in v]
        return items, (None if items else "no")
    if isinstance(v, dict):
        return [v], None
    if isinstance(v, str) and "equivocal" in v.lower() and "unequivocal" not in v.lower():
        return [], "equivocal"
    if v is None:
        return [], None
    if isinstance(v, int) and not isinstance(v, bool):
        # a count: that many lesions, the same ones from one time point to the next (NL1 ... NLn)
        return [{"id": f"NL{i + 1}"} for i in range(v)], (None if v > 0 else "no")
    if isinstance(v, str) and re.search(r"\b(another|additional|further|more|second|other)\b", v.lower()):
        return [], "another"
    return [], "yes" if truthy(v) else "no"


def is_nodal(d: Facts) -> bool:
    t = str(field(d, "type", "kind", default="")).lower()
    site = str(field(d, "site", "location", default="")).lower()
    return t in ("nodal", "node", "lymph node") or "lymph node" in site or "node" in site.split() \
        or quantity(d, ("short_axis", "sa")) is not None and quantity(d, ("ld", "longest_diameter")) is None


def cytology_word(v: Any) -> str | None:
    """malignant / negative / None from a cytology fact."""
    if isinstance(v, bool):
        return "malignant" if v else "negative"
    if isinstance(v, str):
        t = v.lower()
        if "not done" in t or "pending" in t or "not performed" in t:
            return None
        if "negative" in t or "benign" in t or "no malignan" in t or "non-malignant" in t:
            return "negative"
        if "malignan" in t or "positive" in t:
            return "malignant"
    return None
