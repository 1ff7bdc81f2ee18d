"""Assessments -> CDS Hooks cards: summary first, evidence on demand, never a null or an empty field."""
from __future__ import annotations

import os
import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fhir_mappings.pipeline import CriteriaResult
from rules.base import Assessment, Outcome, fmt, fmt_pct

EXTENSION_KEY = "org.remission-cds.assessment"
SOURCE_TOPIC_SYSTEM = "http://remission-cds.org/fhir/CodeSystem/criteria"
SUMMARY_MAX = 139  # CDS Hooks: "<140-character summary"


# the variant's hex digit for each random one: (d & 0x3) | 0x8 (RFC 4122: the two high bits of byte 8 are 10)
_VARIANT_DIGIT = {f"{d:x}": f"{d & 0x3 | 0x8:x}" for d in range(16)}


_UUID_BATCH = 64
# uuids made ahead from one os.urandom call (one syscall per 64 cards, not per card).  list.pop() hands each out
# once, also across threads; the pool is emptied in a forked child (below), so a child never repeats the uuids its
# parent has yet to hand out: it draws its own from the OS.
_UUID_POOL: list[str] = []


def _fill_uuid_pool() -> None:
    """Add _UUID_BATCH uuids to the pool: str(uuid.uuid4()) without building a UUID object, 122 random bits each
    from the OS CSPRNG, version 4, RFC 4122 variant.

    Each is the hex of 16 random bytes with the version nibble (the high one of byte 6, hex digit 12) set to 4 and
    the high nibble of byte 8 (hex digit 16) mapped to its variant digit: what setting those bits in the bytes
    gives."""
    hx = os.urandom(16 * _UUID_BATCH).hex()
    vd = _VARIANT_DIGIT
    _UUID_POOL.extend(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{vd[h[16]]}{h[17:20]}-{h[20:]}"
                      for h in (hx[i:i + 32] for i in range(0, 32 * _UUID_BATCH, 32)))


if hasattr(os, "register_at_fork"):  # POSIX: drop the parent's pooled uuids in a forked child
    os.register_at_fork(after_in_child=_UUID_POOL.clear)


def new_uuid() -> str:
    """A random version 4 uuid string, as str(uuid.uuid4()) (from a pool filled by one os.urandom call per 64)."""
    while True:
        try:
            return _UUID_POOL.pop()
        except IndexError:  # empty (or emptied by another thread meanwhile): draw another batch
            _fill_uuid_pool()


_TOPIC_SEP = re.compile(r"[^a-z0-9]+")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>~])")


def _backslashed(m: re.Match) -> str:
    return "\\" + m.group(1)  # what the template r"\\\1" gives, without parsing the template on every call


_MD_REST = "`*_[]|<>~"  # the special characters but the backslash, which is escaped first


def md_escape(text: str) -> str:
    """Escape text that came from the record (site names, report text) before it goes into markdown."""
    if type(text) is str:  # every evidence line: the regex only finds whether there is anything to escape
        if _MD_SPECIAL.search(text) is None:
            return text
        if "\\" in text:
            text = text.replace("\\", "\\\\")
        for ch in _MD_REST:  # a backslash put in by one replace is never replaced again: it was done first
            if ch in text:
                text = text.replace(ch, "\\" + ch)
        return text
    return _MD_SPECIAL.sub(_backslashed, text)


def _clip(text: str, limit: int = SUMMARY_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,;") + "…"


_PLACES_PCT = Decimal("0.01")
_PLACES_VALUE = Decimal("0.0001")
_ZERO = Decimal(0)


def _json_value(key: str, v: Any) -> Any:
    if type(v) is Decimal and v.is_finite() and not key.endswith("fraction"):  # the usual: a measurement
        q = v.quantize(_PLACES_PCT if key.startswith("pct") or "pct_change" in key else _PLACES_VALUE,
                       rounding=ROUND_HALF_UP)
        # the general path below normalises q first (0 for a zero): the same value, so the same int or float
        return int(q) if q == q.to_integral_value() else float(q)
    if isinstance(v, Decimal):
        if key.endswith("fraction") and v != 0:
            # MRD levels / sensitivities (1E-5, 1E-6) would round to 0 at 4 places: keep 12 significant digits
            q = Decimal(format(v, ".12g")).normalize()
            return int(q) if q == q.to_integral_value() else float(q)
        places = _PLACES_PCT if key.startswith("pct") or "pct_change" in key else _PLACES_VALUE
        q = v.quantize(places, rounding=ROUND_HALF_UP)
        q = q.normalize() if q != 0 else _ZERO
        return int(q) if q == q.to_integral_value() else float(q)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_json_value(key, x) for x in v]
    return v


def _clean(obj: Any) -> Any:
    """Drop None and empty containers recursively (CDS Hooks: no nulls, no empties)."""
    t = type(obj)
    if t is dict:
        return _clean_dict(obj)
    if t is list:
        return _clean_list(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            v = _clean(v)
            if _kept(v):
                out[k] = v
        return out
    if isinstance(obj, list):
        return [x for x in map(_clean, obj) if _kept(x)]
    return obj


# _clean for exactly a dict / a list: each value's type is tested here, so the usual leaves (str, numbers, bool,
# None) cost no call; anything else goes through _clean/_kept as before (tests/test_hot_path.py compares _clean with
# the plain recursive form on random trees).
def _clean_dict(obj: dict) -> dict:
    out = {}
    for k, v in obj.items():
        t = type(v)
        if t is str:
            if v:
                out[k] = v
        elif t is dict:
            v = _clean_dict(v)
            if v:
                out[k] = v
        elif t is list:
            v = _clean_list(v)
            if v:
                out[k] = v
        elif v is None:
            continue
        elif t is bool or t is int or t is float:
            out[k] = v
        else:
            v = _clean(v)
            if _kept(v):
                out[k] = v
    return out


def _clean_list(obj: list) -> list:
    out = []
    for v in obj:
        t = type(v)
        if t is str:
            if v:
                out.append(v)
        elif t is dict:
            v = _clean_dict(v)
            if v:
                out.append(v)
        elif t is list:
            v = _clean_list(v)
            if v:
                out.append(v)
        elif v is None:
            continue
        elif t is bool or t is int or t is float:
            out.append(v)
        else:
            v = _clean(v)
            if _kept(v):
                out.append(v)
    return out


def _kept(v: Any) -> bool:
    """Not None and not equal to [], {} or "" (for exactly a str, list or dict: not empty)."""
    t = type(v)
    if t is str or t is list or t is dict:
        return bool(v)
    return v is not None and v != [] and v != {} and v != ""


def _marrow_and_counts(v: Any) -> str:
    """'ANC 0.7, platelets 62 × 10⁹/L; marrow blasts 2 %' for a marrow response (ELN); '' when not one."""
    if not (isinstance(v.get("anc_10e9_per_L"), Decimal) or isinstance(v.get("bone_marrow_blasts_pct"), Decimal)):
        return ""
    counts = []
    if isinstance(v.get("anc_10e9_per_L"), Decimal):
        s = fmt(v["anc_10e9_per_L"], 2)
        counts.append(f"ANC {s if '.' in s else s + '.0'}")
    if isinstance(v.get("platelets_10e9_per_L"), Decimal):
        counts.append(f"platelets {fmt(v['platelets_10e9_per_L'])}")
    out = [", ".join(counts) + " × 10⁹/L"] if counts else []
    if isinstance(v.get("bone_marrow_blasts_pct"), Decimal):
        out.append(f"marrow blasts {fmt(v['bone_marrow_blasts_pct'])} %")
    return "; ".join(out)


def _summary(a: Assessment) -> str:
    parts = [f"{a.criteria}: {a.label}" + (f" ({a.category})" if a.category.lower() != a.label.lower() else "")]
    v = a.values
    marrow = _marrow_and_counts(v)
    if marrow:  # the category and its numbers read better than the long label: "ELN 2022 AML: CRh (ANC 0.7, ...)"
        parts = [f"{a.criteria}: {a.category} ({marrow})"]
    pct = v.get("pct_change_from_baseline")
    if isinstance(pct, Decimal) and a.outcome is not Outcome.PROGRESSION:
        parts.append(f"{fmt_pct(pct)} from baseline")
    elif a.outcome is Outcome.PROGRESSION:
        reasons = []
        if v.get("target_response") == "PD" and isinstance(v.get("pct_change_from_nadir"), Decimal):
            reasons.append(f"{fmt_pct(v['pct_change_from_nadir'])} from nadir")
        if v.get("non_target_response") == "PD":
            reasons.append("non-target progression")
        if v.get("new_lesion") == "yes":
            reasons.append("new lesion")
        parts.extend(reasons)
    if a.outcome in (Outcome.COMPLETE, Outcome.PARTIAL):
        parts.append("confirmed" if a.confirmed else "unconfirmed")
    if a.assessment_date:
        parts.append(a.assessment_date.isoformat())
    return _clip(", ".join(parts))


def _indicator(a: Assessment) -> str:
    if a.outcome in (Outcome.PROGRESSION, Outcome.RELAPSE):
        prior = [h.outcome for h in a.history[:-1]]
        if a.outcome is Outcome.RELAPSE or Outcome.COMPLETE in prior:
            return "critical"
        return "warning"
    if a.outcome is Outcome.UNCONFIRMED_PROGRESSION:
        return "warning"
    return "info"


def _extension(result: CriteriaResult) -> dict:
    a = result.assessment
    assert a is not None
    return {
        "criteria": a.criteria,
        "category": a.category,
        "label": a.label,
        "outcome": a.outcome.value,
        "assessmentDate": a.assessment_date.isoformat() if a.assessment_date else None,
        "confirmed": a.confirmed,
        "values": {k: _json_value(k, v) for k, v in a.values.items() if v is not None},
        "history": [_history_entry(h) for h in a.history],
        "cancer": {"type": result.cancer.cancer.key, "label": result.cancer.cancer.label,
                   "condition": result.cancer.condition_ref},
        "missing": list(a.missing),
        "notes": list(a.notes) + list(result.notes),
        "source": {"label": a.source.label, "url": a.source.url},
    }


_OUTCOME_VALUES = {o: o.value for o in Outcome}  # Outcome.value is a property lookup: one per history entry


def _history_entry(h: Any) -> dict:
    outcome = h.outcome
    entry = {"date": h.date.isoformat(), "category": h.category,
             "outcome": _OUTCOME_VALUES[outcome] if type(outcome) is Outcome else outcome.value}
    if h.values:
        entry["values"] = {k: _json_value(k, v) for k, v in h.values.items() if v is not None}
    return entry


def _detail(result: CriteriaResult) -> str:
    a = result.assessment
    assert a is not None
    lines = [f"**{md_escape(a.label[:1].upper() + a.label[1:])} ({md_escape(a.category)})** — {md_escape(a.criteria)}"
             + (f", {a.assessment_date.isoformat()}" if a.assessment_date else "")
             + f" · {md_escape(result.cancer.condition_text)}"]
    if a.outcome in (Outcome.COMPLETE, Outcome.PARTIAL):
        if a.confirmed:
            lines.append("Confirmed: the response has been sustained by the criterion's own rule.")
        else:
            due = a.values.get("confirm_on_or_after")
            lines.append("Not yet confirmed" + (f": confirm on or after {due.isoformat()}." if isinstance(due, date)
                                               else "."))
    lines.append("")
    lines.append("**Evidence**")
    for e in a.evidence:
        cite = f" _({md_escape(e.citation)})_" if e.citation else ""
        lines.append(f"- {md_escape(e.text)}{cite}")
    notes = list(a.notes) + list(result.notes)
    if notes:
        lines.append("")
        lines.append("**Notes**")
        lines.extend(f"- {md_escape(n)}" for n in notes)
    missing = list(a.missing)
    skipped = [i.text() for i in result.issues]
    if missing or skipped:
        lines.append("")
        lines.append("**Not used or missing**")
        lines.extend(f"- {md_escape(m)}" for m in missing)
        lines.extend(f"- {md_escape(s)}" for s in skipped[:10])
        if len(skipped) > 10:
            lines.append(f"- … and {len(skipped) - 10} more")
    lines.append("")
    lines.append(f"Source: [{md_escape(a.source.label)}]({a.source.url}). Decision support for clinicians; "
                 "it does not replace clinical judgement.")
    return "\n".join(lines)


def assessment_card(result: CriteriaResult) -> dict:
    a = result.assessment
    assert a is not None
    topic_code = _TOPIC_SEP.sub("-", a.criteria.lower()).strip("-")
    card = {
        "uuid": new_uuid(),
        "summary": _summary(a),
        "indicator": _indicator(a),
        "detail": _detail(result),
        "source": {"label": a.source.label, "url": a.source.url,
                   "topic": {"system": SOURCE_TOPIC_SYSTEM, "code": topic_code, "display": a.criteria}},
        "extension": {EXTENSION_KEY: _extension(result)},
    }
    return _clean(card)


def insufficient_card(result: CriteriaResult, source_label: str, source_url: str | None) -> dict:
    missing = list(result.missing) or ["the data this criterion needs"]
    summary = _clip(f"{result.criteria}: insufficient data for {result.cancer.cancer.label} — {missing[0]}")
    lines = [f"No {md_escape(result.criteria)} category is given for {md_escape(result.cancer.condition_text)}: "
             "the record lacks what the criterion needs. Nothing was guessed.", "", "**Missing or unusable**"]
    lines.extend(f"- {md_escape(m)}" for m in missing)
    lines.extend(f"- {md_escape(i.text())}" for i in result.issues[:10])
    card = {
        "uuid": new_uuid(),
        "summary": summary,
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": {"label": source_label, **({"url": source_url} if source_url else {})},
        "extension": {EXTENSION_KEY: {"criteria": result.criteria, "category": "insufficient data",
                                      "outcome": "not_evaluable", "confirmed": False, "missing": missing,
                                      "cancer": {"type": result.cancer.cancer.key,
                                                 "condition": result.cancer.condition_ref}}},
    }
    return _clean(card)


def unavailable_data_card(unavailable: dict[str, str]) -> dict:
    keys = ", ".join(sorted(unavailable))
    lines = ["Some of the patient's data could not be read, so the assessment below may be incomplete.", ""]
    lines.extend(f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in sorted(unavailable.items()))
    return _clean({
        "uuid": new_uuid(),
        "summary": _clip(f"Remission assessment may be incomplete: data unavailable ({keys})"),
        "indicator": "warning",
        "detail": "\n".join(lines),
        "source": {"label": "remission-cds"},
    })


def has_assessment(r: CriteriaResult) -> bool:
    """An assessment worth a category card: evaluable, or NE at a dated time point (RECIST NE is a category), or
    a not-evaluable verdict of the criterion itself (the mapper says so: GCIG after mouse antibodies)."""
    a = r.assessment
    return a is not None and (a.outcome is not Outcome.NOT_EVALUABLE or a.assessment_date is not None
                              or getattr(r, "show_not_evaluable", False))


def card_for(r: CriteriaResult, *, show_insufficient: bool) -> dict | None:
    if has_assessment(r):
        return assessment_card(r)
    if show_insufficient:
        src = r.assessment.source if r.assessment is not None else None
        return insufficient_card(r, src.label if src else r.criteria, src.url if src else None)
    return None

