"""PCWG3 vignettes -> FHIR: PSA Observations, the therapy start as a MedicationRequest, bone-scan reports.

The vignette's clinical facts become what a record would carry (docs/fhir-inputs-pcwg3.md): each PSA an
Observation in the unit the vignette states, the therapy named in ``setting`` a MedicationRequest on the
treatment start (or on the baseline sample's date when the vignette only labels the baseline), each bone scan
a DiagnosticReport with count Observations and a conclusion sentence.  A nadir given as a number becomes an
earlier PSA result.  Rows dated after ``as_of`` are left out (the record did not hold them yet).

The helpers at the top (values with unit suffixes, labels, therapy text) are shared with the GCIG and RANO
converters.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Iterable

from cds_service.sandbox.builders import PatientBuilder, concept
from cds_service.sandbox.vignettes import Vignette, VignetteInputError, _pid, check_keys, converter, parse_quantity
from fhir_mappings import pcwg3 as m

# vignette key suffix -> UCUM unit (longest first)
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("ng_per_mL", "ng/mL"), ("ng_mL", "ng/mL"), ("ng_ml", "ng/mL"), ("ug_L", "ug/L"), ("ug_l", "ug/L"),
    ("kU_L", "kU/L"), ("kIU_L", "k[IU]/L"), ("IU_mL", "[IU]/mL"), ("U_mL", "U/mL"), ("U_ml", "U/mL"),
    ("mm2", "mm2"), ("cm2", "cm2"), ("mm3", "mm3"), ("cm3", "cm3"), ("mL", "mL"), ("ml", "mL"),
)
BASELINE_WORDS = ("baseline", "pretreatment", "pre-treatment", "pre treatment", "post-rt", "post-radiotherapy",
                  "post radiotherapy")
REPORT_SYSTEM = "http://hospital.example/radiology-procedures"


def d(s: str) -> date:
    return date.fromisoformat(str(s)[:10])


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_UNIT_TEXT = {"ng/ml": "ng/mL", "ug/l": "ug/L", "µg/l": "ug/L", "ku/l": "kU/L", "kiu/l": "k[IU]/L", "iu/ml": "[IU]/mL",
              "u/ml": "U/mL", "mm2": "mm2", "mm²": "mm2", "cm2": "cm2", "cm²": "cm2", "mm3": "mm3", "cm3": "cm3",
              "ml": "mL"}


def number_and_unit(raw: Any, unit: str | None) -> tuple[Any, str | None] | None:
    """A number, or a string holding a number with no unit or with a unit (then returned): "20.0", "20.0 ng/mL"."""
    if is_number(raw):
        return raw, unit
    q = parse_quantity(raw) if isinstance(raw, str) else None
    if q is None or q[1] is not None:
        return None
    if not q[2]:
        return q[0], unit
    given = _UNIT_TEXT.get(re.sub(r"\s+", "", q[2]).lower())
    return (q[0], given) if given else None


def value_with_unit(row: dict, units: Iterable[str], *, exclude: Iterable[str] = ()) -> tuple[Any, str | None]:
    """The first numeric field whose name ends in a unit suffix for one of ``units``; ``value`` + ``unit`` too.
    Numbers may be written as strings, with the unit in the string ("20.0 ng/mL")."""
    wanted = set(units)
    skip = tuple(exclude)
    for key, raw in row.items():
        if any(key.lower().startswith(s) for s in skip):
            continue
        for suffix, unit in UNIT_SUFFIXES:
            if unit in wanted and (key == suffix or key.endswith("_" + suffix)):
                got = number_and_unit(raw, unit)
                if got is not None:
                    return got
    got = number_and_unit(row.get("value"), row.get("unit") if isinstance(row.get("unit"), str) else None)
    if got is not None and (got[1] is None or got[1] in wanted):
        return got[0], got[1] or next(iter(units))
    return None, None


def is_baseline(label: Any) -> bool:
    return isinstance(label, str) and label.strip().lower().startswith(BASELINE_WORDS)


def days_before(label: Any) -> int | None:
    """'pretreatment, 5 days before cycle 1' -> 5."""
    if not isinstance(label, str):
        return None
    mm = re.search(r"(\d+)\s*(day|week)s?\s*(?:before|prior)", label.lower())
    if not mm:
        return None
    return int(mm.group(1)) * (7 if mm.group(2) == "week" else 1)


def in_record(rows: list[dict], as_of: str | None) -> list[dict]:
    rows = [r for r in rows if isinstance(r, dict) and r.get("date")]
    if as_of:
        rows = [r for r in rows if d(r["date"]) <= d(as_of)]
    return sorted(rows, key=lambda r: d(r["date"]))


def start_date(inp: dict) -> date | None:
    """The treatment start the vignette states: ``treatment_start`` or any other date field naming a start / cycle 1
    (radiotherapy dates excluded)."""
    if isinstance(inp.get("treatment_start"), str):
        return d(inp["treatment_start"])
    for key, raw in inp.items():
        k = key.lower()
        if not isinstance(raw, str) or not re.match(r"\d{4}-\d{2}-\d{2}", raw):
            continue
        if re.search(r"(^|_)(rt|radiotherapy|radiation|chemoradiation|crt)(_|$)", k):
            continue
        if "start" in k or "cycle_1" in k or "cycle1" in k or "c1d1" in k:
            return d(raw)
    return None


def drug_from(text: Any, default: str) -> str:
    """'mCRPC on enzalutamide' -> 'enzalutamide'; 'on docetaxel + prednisone' -> 'docetaxel + prednisone'."""
    if isinstance(text, str):
        mm = re.search(r"\b(?:on|receiving|starting|started|treated with)\s+"
                       r"([A-Za-z0-9][\w\- ]*(?:\s*[+/]\s*[\w\-]+)*)", text)
        if mm:
            return mm.group(1).strip()
    return default


def add_therapy(p: PatientBuilder, cond: dict, when: date, text: str) -> dict:
    med = p.medication(when.isoformat(), text)
    med["reasonReference"] = [{"reference": f"Condition/{cond['id']}"}]
    med["dosageInstruction"] = [{"text": "as per protocol",
                                 "timing": {"repeat": {"boundsPeriod": {"start": when.isoformat()}}}}]
    return med


def count_obs(p: PatientBuilder, key: str, when: str, n: int, display: str) -> dict:
    return p.observation(key, when, display=display, value=n, unit="{lesions}", category="imaging")


# --- PCWG3 ------------------------------------------------------------------------------------------------------

_PSA_LISTS = ("psa", "PSA", "psa_values", "PSA_values", "psa_ng_mL", "PSA_ng_mL", "psa_series", "PSA_series",
              "psa_results", "PSA_results")


def _psa_rows(inp: dict) -> list[dict]:
    """PSA results: a list under ``psa`` (or ``PSA_ng_mL``, ``psa_series`` ...); a baseline given as its own fields
    (``baseline_psa_ng_mL`` + ``baseline_date``) is the first row."""
    key = next((k for k in _PSA_LISTS if isinstance(inp.get(k), list)), None)
    rows = [dict(r) for r in (inp.get(key) or [])] if key else []
    unit_suffix = next((suf for suf, _ in UNIT_SUFFIXES if key and key.endswith("_" + suf)), None)
    for r in rows:  # "PSA_ng_mL": [{"date", "value"}]: the list's name gives the unit
        if unit_suffix and "value" in r and "unit" not in r:
            r[unit_suffix] = r.pop("value")
    base = {k: x for k, x in inp.items() if re.fullmatch(r"(?:baseline|pretreatment)_psa(?:_.+)?", k, re.I)}
    if base:
        when = inp.get("baseline_date") or inp.get("baseline_psa_date")
        if not isinstance(when, str):
            raise VignetteInputError("?", next(iter(base)), "a baseline PSA needs baseline_date")
        row = {"date": when, "label": "baseline"}
        for k, x in base.items():
            rest = re.sub(r"^(?:baseline|pretreatment)_psa_?", "", k, flags=re.I)
            row[rest or "value"] = x
        rows.append(row)
    for i, r in enumerate(rows):
        if isinstance(r, dict) and r.get("date") and value_with_unit(r, ("ng/mL", "ug/L"))[0] is None:
            raise VignetteInputError("?", f"{key or 'psa'}[{i}]", "no PSA value (ng_mL / ug_L, or value + unit)")
    return in_record(rows, inp.get("as_of"))


def _bone_rows(inp: dict) -> list[dict]:
    rows = inp.get("bone_scans") or inp.get("bone_scan") or []
    if isinstance(rows, dict):
        rows = [rows]
    return in_record(list(rows), inp.get("as_of"))


def _baseline_date(rows: list[dict]) -> date | None:
    labelled = [d(r["date"]) for r in rows if is_baseline(r.get("label"))]
    if labelled:
        return max(labelled)
    return d(rows[0]["date"]) if rows else None


def _bone_fields(row: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in row.items():
        k = key.lower()
        if k in ("lesion_count", "lesions", "total_lesions", "bone_lesions") and is_number(raw):
            out["count"] = int(raw)
        elif "new_lesion" in k and is_number(raw):
            additional = "additional" in k or ("_vs_" in k and "baseline" not in k)
            out["additional" if additional else "new"] = int(raw)
        elif (k == "evaluable" and raw is False) or (k in ("not_evaluable", "non_diagnostic") and raw is True):
            out["evaluable"] = False
    return out


_RELEVANT = re.compile(r"psa|bone|scan|nadir|lesion|soft_tissue|recist")


def _known(key: str) -> bool:
    k = key.lower()
    return (key in _PSA_LISTS or k in ("bone_scans", "bone_scan", "as_of", "setting", "treatment", "drug",
                                       "treatment_start", "baseline_date", "baseline_psa_date", "note", "notes")
            or k.startswith("nadir") or bool(re.fullmatch(r"(?:baseline|pretreatment)_psa(?:_.+)?", k))
            or "start" in k)


@converter("PCWG3", "PCWG3")
def pcwg3(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    check_keys(v, inp, "", _known, _RELEVANT, "PCWG3")
    p = PatientBuilder(_pid(v), gender="male", birth_date="1952-03-01")
    psa_rows, bone_rows = _psa_rows(inp), _bone_rows(inp)
    first = min([d(r["date"]) for r in psa_rows + bone_rows] or [date(2024, 1, 1)])
    setting = str(inp.get("setting") or "")
    text = "Metastatic castration-resistant prostate cancer" if "crpc" in setting.lower() else \
        "Malignant neoplasm of prostate"
    cond = p.condition(icd10="C61", text=text, onset=(first - timedelta(days=730)).isoformat())

    start = start_date(inp)
    if start is None:
        bases = [b for b in (_baseline_date(psa_rows), _baseline_date(bone_rows)) if b is not None]
        start = max(bases) if bases else first
    add_therapy(p, cond, start, drug_from(setting or inp.get("treatment") or inp.get("drug"),
                                          "systemic anticancer therapy (protocol)"))

    for r in psa_rows:
        value, unit = value_with_unit(r, ("ng/mL", "ug/L"))
        if value is None:
            continue
        p.observation(m.PSA_CODES[0], r["date"], display="Prostate specific Ag [Mass/volume] in Serum or Plasma",
                      value=value, unit=unit)
    nadir, unit = value_with_unit({k: x for k, x in inp.items() if k.lower().startswith("nadir")}, ("ng/mL", "ug/L"))
    if nadir is not None and psa_rows and not any(value_with_unit(r, ("ng/mL", "ug/L"))[0] == nadir for r in psa_rows):
        # the nadir was measured on study: an earlier PSA result (on its date if given, else between the
        # baseline and the next value)
        base = _baseline_date(psa_rows)
        if inp.get("nadir_date"):
            when = d(inp["nadir_date"])
        else:
            later = [d(r["date"]) for r in psa_rows if d(r["date"]) > base]
            when = base + (later[0] - base) / 2 if later else base + timedelta(days=28)
        p.observation(m.PSA_CODES[0], when.isoformat(), display="Prostate specific Ag [Mass/volume] in Serum or Plasma",
                      value=nadir, unit=unit)

    for r in bone_rows:
        f = _bone_fields(r)
        results, sentences = [], []
        if is_baseline(r.get("label")):
            sentences.append("Baseline bone scan.")
        if f.get("evaluable") is False:
            sentences.append("Non-diagnostic study: not evaluable.")
        else:
            if "count" in f:
                results.append(count_obs(p, m.BONE_COUNT, r["date"], f["count"], "Bone lesions seen"))
                sentences.append(f"{f['count']} osseous lesions." if f["count"] else "No osseous metastases.")
            if "new" in f:
                results.append(count_obs(p, m.BONE_NEW, r["date"], f["new"], "New bone lesions vs baseline scan"))
                sentences.append(f"{f['new'] or 'No'} new lesions compared with the baseline scan.")
            if "additional" in f:
                results.append(count_obs(p, m.BONE_ADDITIONAL, r["date"], f["additional"],
                                         "New bone lesions vs first post-treatment scan"))
                sentences.append(f"{f['additional'] or 'No'} additional new lesions compared with the first "
                                 "post-treatment scan.")
        rep = p.report(r["date"], results=results, conclusion=" ".join(sentences) or None)
        rep["code"] = concept(REPORT_SYSTEM, "NMBONEWB", "NM Bone scan whole body", text="NM Bone scan whole body")
    return p
