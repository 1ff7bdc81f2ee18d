"""RANO 2.0 vignettes -> FHIR: MRI reports with the SPD (or per-lesion TumorSize), steroid orders, clinical status,
radiotherapy and the glioma Condition.

What a record would carry (docs/fhir-inputs-rano.md): each MRI a DiagnosticReport whose ``result`` holds the SPD
stated by the radiologist (``rano-spd``, in the vignette's unit), volumes, new-lesion and non-measurable findings;
per-lesion diameters become mCODE TumorSize Observations.  A labelled baseline is a report titled "Baseline MRI".
The steroid doses the vignette states become dexamethasone orders whose dose changes between the scans (an
order per dose, each ending when the next starts; "off steroids" a MedicationStatement not-taken).  The clinical
status becomes a ``rano-clinical-status`` Observation on the scan it describes.  A nadir given as a number is an
earlier MRI with that SPD.  Radiotherapy is a Procedure with performedPeriod.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import Vignette, VignetteInputError, _pid, check_keys, converter
from cds_service.sandbox.vignettes_pcwg3 import (
    REPORT_SYSTEM,
    add_therapy,
    d,
    drug_from,
    is_baseline,
    is_number,
    start_date,
    value_with_unit,
)
from fhir_mappings import codes
from fhir_mappings import rano as m
from fhir_mappings.record import LOCAL, SNOMED

STEROID_NAMES = ("dexamethasone", "methylprednisolone", "prednisolone", "prednisone", "hydrocortisone")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _dec(x: Any) -> Decimal:
    return Decimal(str(x))


def steroid_text(text: Any) -> tuple[Decimal | None, Decimal | None]:
    """(baseline dose, current dose) in mg/day stated in free text: 'dexamethasone increased 2 -> 8 mg/day',
    'stable dexamethasone 2 mg/day', '4 mg twice daily', 'off steroids', 4."""
    if text is None or isinstance(text, bool):
        return None, None
    if is_number(text):
        return None, _dec(text)
    if isinstance(text, dict):  # {"baseline": 2, "current": 8} (mg/day, or a text each)
        base = next((text[k] for k in ("baseline", "at_baseline", "baseline_scan", "before") if k in text), None)
        cur = next((text[k] for k in ("current", "now", "scan", "at_scan", "latest", "after") if k in text), None)
        if base is None and cur is None:
            raise VignetteInputError("?", "steroids", f"cannot read {text!r} (use baseline / current doses)")
        return (steroid_text(base)[1] if base is not None else None,
                steroid_text(cur)[1] if cur is not None else None)
    base, cur = _steroid_doses(str(text).lower())
    per_day = m.per_day_from_text(str(text)) or Decimal(1)  # "4 mg twice daily" = 8 mg/day
    return (None if base is None else base * per_day), (None if cur is None else cur * per_day)


def _steroid_doses(t: str) -> tuple[Decimal | None, Decimal | None]:
    mm = re.search(r"(\d+(?:\.\d+)?)\s*(?:mg(?:/d(?:ay)?)?\s*)?(?:->|→|to)\s*(\d+(?:\.\d+)?)", t)
    if mm:
        return _dec(mm.group(1)), _dec(mm.group(2))
    # "4 mg/day, reduced from 8 mg/day", "8 mg at baseline, now 4 mg", "baseline dose 2 mg; currently 6 mg"
    base_m = re.search(r"(?:\bfrom|\bbaseline(?: dose)?(?: of| was|:|=)?)\s*(\d+(?:\.\d+)?)", t) or \
        re.search(r"(\d+(?:\.\d+)?)\s*mg(?:/d(?:ay)?)?\s*(?:at|before|pre-?)\s*baseline", t)
    off = re.search(r"\bno (?:cortico)?steroids?\b|\boff (?:cortico)?steroids?|\bnone\b|^no$|tapered off|"
                    r"discontinued|stopped", t)
    if base_m:
        base = _dec(base_m.group(1))
        if off:
            return base, Decimal(0)
        cur_m = re.search(r"(?:\bnow|\bcurrently|\bcurrent(?: dose)?(?: of|:|=)?)\s*(\d+(?:\.\d+)?)", t)
        if cur_m:
            return base, _dec(cur_m.group(1))
        others = [x for x in re.finditer(r"(\d+(?:\.\d+)?)\s*mg", t) if x.start(1) != base_m.start(1)]
        return base, (_dec(others[0].group(1)) if others else base)
    if off:
        return None, Decimal(0)
    mm = re.search(r"(\d+(?:\.\d+)?)\s*mg", t)
    if mm and re.search(r"stable|unchanged|same|constant|continued", t):
        return _dec(mm.group(1)), _dec(mm.group(1))
    if mm:
        return None, _dec(mm.group(1))
    return None, None


def _steroid_field(row: dict, *, baseline: bool) -> Any:
    """'steroids', 'steroid_dose_mg_day', 'dexamethasone_mg_day' ...; baseline=True: 'baseline_steroid_dose' ..."""
    for key, raw in row.items():
        k = key.lower()
        if ("steroid" in k or "dexa" in k) and k.startswith("baseline") == baseline and raw is not None:
            return raw
    return None


def _clinical_field(row: dict) -> Any:
    for key, raw in row.items():
        if key.lower().startswith("clinical") and raw is not None:
            return raw
    return None


def _steroid_drug(*texts: Any) -> str:
    for t in texts:
        if isinstance(t, str):
            for name in STEROID_NAMES:
                if name in t.lower():
                    return name
    return "dexamethasone"


def _reason(*texts: Any) -> str | None:
    for t in texts:
        if isinstance(t, str):
            mm = re.search(r"\bfor (.+)$", t)
            if mm:
                return mm.group(1).strip()
    return None


def _deteriorated(text: Any) -> bool | None:
    if text is None:
        return None
    if isinstance(text, bool):
        return text
    t = m.AFFIRMED_CAUSE.sub(" ", str(text).lower())  # "not due to other causes" affirms (RANO's own wording)
    if "deteriorat" in t or "worse" in t or "declin" in t:
        return not (t.startswith("no ") or "no tumour-related" in t or "no tumor-related" in t
                    or "not tumour" in t or "not tumor" in t or "other cause" in t or "unrelated" in t)
    return False


def _clinical_value(text: Any) -> tuple[dict, str | None]:
    det = _deteriorated(text)
    note = text if isinstance(text, str) else None
    t = str(text).lower() if text is not None else ""
    if det:
        return concept(SNOMED, "271299001", "Patient's condition worsened"), note or "tumour-related deterioration"
    if "improv" in t:
        return concept(SNOMED, "268910001", "Patient's condition improved"), note
    if "deteriorat" in t or "worse" in t or "declin" in t:
        return concept(LOCAL, "no-tumour-related-deterioration", "No tumour-related deterioration"), note
    return concept(SNOMED, "359746009", "Patient's condition stable"), note


def _rt_dates(inp: dict, last_scan: date | None) -> tuple[date | None, date | None]:
    end = start = None
    for key, raw in inp.items():
        k = key.lower()
        if not re.search(r"(^|_)(rt|radiotherapy|radiation|chemoradiation|chemoradiotherapy|crt)(_|$)", k):
            continue
        if isinstance(raw, str) and DATE_RE.match(raw):
            if "start" in k or "begin" in k:
                start = d(raw)
            else:
                end = d(raw)
        elif is_number(raw) and "week" in k and last_scan is not None and end is None:
            end = last_scan - timedelta(days=int(round(raw * 7)))
        elif is_number(raw) and "day" in k and last_scan is not None and end is None:
            end = last_scan - timedelta(days=int(raw))
    if end is not None and start is None:
        start = end - timedelta(days=42)
    return start, end


def _steroid_order(p: PatientBuilder, cond: dict, drug: str, start: date, end: date | None, dose: Decimal,
                   reason: str | None) -> None:
    if dose == 0:
        p.add({"resourceType": "MedicationStatement", "id": p._id("steroid"), "status": "not-taken",
               "subject": p.subject, "medicationCodeableConcept": {"text": drug},
               "effectivePeriod": {"start": start.isoformat(), **({"end": end.isoformat()} if end else {})}})
        return
    bounds = {"start": start.isoformat(), **({"end": end.isoformat()} if end else {})}
    med = p.medication(start.isoformat(), drug, status="active" if end is None else "completed")
    med["dosageInstruction"] = [{
        "text": f"{drug} {dose.normalize():f} mg once daily",
        "timing": {"repeat": {"boundsPeriod": bounds, "frequency": 1, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": qty(dose, "mg")}],
    }]
    if reason:
        med["reasonCode"] = [{"text": reason}]


def _lesion_diameters(les: dict) -> tuple[Any, Any, str]:
    unit = "cm" if any(k.endswith("_cm") for k in les) else "mm"
    vals = [les[k] for k in les if is_number(les[k]) and k.endswith("_" + unit) and "product" not in k]
    return (vals[0] if len(vals) > 0 else None), (vals[1] if len(vals) > 1 else None), unit


_SCAN_LISTS = ("scans", "timepoints", "mri", "mris", "mri_scans", "assessments", "followup", "follow_up",
               "followups")
_KNOWN = {"as_of", "tumor", "tumour", "histology", "non_enhancing", "newly_diagnosed", "baseline", "baseline_date",
          "scan", "nadir_date", "treatment", "drug", "setting", "volumetric", "confirm_progression", "immunotherapy",
          "new_lesions", "new_measurable_lesion", "new_lesion", "non_measurable_progression", "treatment_start",
          "non_measurable_disease",
          "note", "notes", "diagnosis", *_SCAN_LISTS}
_RELEVANT = re.compile(r"spd|volume|lesion|steroid|dexa|clinical|scan|mri|nadir|radio|(?:^|_)rt(?:_|$)|measurable|"
                       r"enhanc|flair|t2|idh")


def _known(key: str) -> bool:
    k = key.lower()
    return (k in _KNOWN or "baseline" in k or "nadir" in k or k.startswith(("idh", "clinical", "non_enhancing", "t2",
                                                                            "flair"))
            or "steroid" in k or "dexa" in k or any(w in k for w in STEROID_NAMES)
            or bool(re.search(r"(^|_)(rt|radiotherapy|radiation|chemoradiation|chemoradiotherapy|crt)(_|$)", k))
            or "start" in k)


def _non_measurable_word(raw: Any) -> str:
    """Non-measurable (non-target) enhancing disease in words -> the mapper's absent / present / progression."""
    if isinstance(raw, bool):
        return "present" if raw else "absent"
    t = str(raw).strip().lower()
    if re.match(r"(none|no|absent|resolved|disappeared|not seen|cr)\b", t):
        return "absent"
    if re.search(r"unequivocal|progress|increas|worse", t):
        return "progression"
    if re.search(r"stable|present|persist|unchanged|residual|yes", t):
        return "present"
    raise VignetteInputError("?", "non_measurable_disease", f"cannot read {raw!r} (none / stable / progression)")


def _lesion_pairs(row: dict) -> dict:
    """Lesions given as diameter pairs (``lesions_mm: [[30, 20], [12, 10]]``) -> the lesion objects the converter
    reads (``lesions: [{"d1_mm": 30, "d2_mm": 20}, ...]``)."""
    for key in list(row):
        mm = re.fullmatch(r"(?:lesions?|target_lesions|targets|diameters)_(mm|cm)", key, re.I)
        if mm and isinstance(row[key], list):
            unit = mm.group(1).lower()
            lesions = []
            for i, pair in enumerate(row[key]):
                if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(is_number(x) for x in pair)):
                    raise VignetteInputError("?", key, f"lesion {i + 1}: expected two perpendicular diameters")
                lesions.append({"id": f"L{i + 1}", f"d1_{unit}": pair[0], f"d2_{unit}": pair[1]})
            row = {k: x for k, x in row.items() if k != key}
            row["lesions"] = lesions
    return row


@converter("RANO", "RANO 2.0")
def rano(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    check_keys(v, inp, "", _known, _RELEVANT, "RANO 2.0")
    as_of = d(inp["as_of"]) if inp.get("as_of") else None
    p = PatientBuilder(_pid(v), gender="male", birth_date="1966-07-01")
    tumour = str(inp.get("tumor") or inp.get("tumour") or inp.get("histology") or "Glioblastoma")
    if inp.get("non_enhancing") and "non-enhancing" not in tumour.lower():
        tumour += ", non-enhancing"
    if inp.get("newly_diagnosed") and "newly diagnosed" not in tumour.lower():
        tumour += ", newly diagnosed"

    # scans: (row, label)
    rows: list[tuple[dict, str | None]] = []
    if isinstance(inp.get("baseline"), dict):
        rows.append((_lesion_pairs(inp["baseline"]), "baseline"))
    elif isinstance(inp.get("baseline_date") or inp.get("baseline"), str):  # baseline given as top-level fields
        row: dict[str, Any] = {"date": inp.get("baseline_date") or inp["baseline"]}
        for k, x in inp.items():
            kl = k.lower()
            if is_number(x) and "baseline" in kl and not any(w in kl for w in ("steroid", "dexa")):
                row[kl.replace("baseline_", "").replace("_baseline", "")] = x
        rows.append((row, "baseline"))
    for key in _SCAN_LISTS:
        for r in inp.get(key) or []:
            if isinstance(r, dict):
                rows.append((_lesion_pairs(r), "baseline" if is_baseline(r.get("label")) else None))
    rows = [(_lesion_pairs(r), lab) for r, lab in rows]
    if isinstance(inp.get("scan"), dict):
        rows.append((_lesion_pairs(inp["scan"]), None))
    rows = [(r, lab) for r, lab in rows if r.get("date") and (as_of is None or d(r["date"]) <= as_of)]
    rows.sort(key=lambda x: d(x[0]["date"]))
    follow = [r for r, lab in rows if not lab]
    last_row = follow[-1] if follow else None
    first = d(rows[0][0]["date"]) if rows else date(2024, 1, 1)

    # nadir shortcut: an earlier MRI with that SPD / volume
    nadir_row: dict[str, Any] = {k: x for k, x in inp.items() if k.lower().startswith("nadir") and is_number(x)}
    if nadir_row:
        spd_vals = {value_with_unit(r, ("mm2", "cm2"), exclude=("non",))[0] for r, _ in rows}
        nv, _ = value_with_unit(nadir_row, ("mm2", "cm2"), exclude=("nadir_non",))
        if nv is None or nv not in spd_vals:
            base_rows = [d(r["date"]) for r, lab in rows if lab]
            if inp.get("nadir_date"):
                when = d(inp["nadir_date"])
            elif base_rows and follow:
                when = base_rows[-1] + (d(follow[0]["date"]) - base_rows[-1]) / 2
            else:
                when = first - timedelta(days=56)
            row = {"date": when.isoformat()}
            for k, x in nadir_row.items():
                row[k[len("nadir_"):]] = x
            rows.append((row, "nadir"))
            rows.sort(key=lambda x: d(x[0]["date"]))
    scan_dates = [d(r["date"]) for r, _ in rows]
    rt_start, rt_end = _rt_dates(inp, d(last_row["date"]) if last_row else (scan_dates[-1] if scan_dates else None))
    onset = (rt_start - timedelta(days=30)) if rt_start else first - timedelta(days=120)
    cond = p.condition(icd10="C71.9", text=tumour, onset=onset.isoformat())
    if rt_end is not None:
        proc = p.procedure(rt_end.isoformat(), f"{SNOMED}|1217123003", "Radiotherapy course of treatment")
        del proc["performedDateTime"]
        proc["performedPeriod"] = {"start": rt_start.isoformat(), "end": rt_end.isoformat()}
    if start_date(inp) is not None:
        add_therapy(p, cond, start_date(inp),
                    drug_from(inp.get("treatment") or inp.get("drug") or inp.get("setting"),
                              "systemic anticancer therapy (protocol)"))

    # patient-level flags
    for key, raw in inp.items():
        k = key.lower()
        if k.startswith("idh") and raw not in (None, ""):
            word = "mutant" if (raw is True or "mut" in str(raw).lower()) else "wildtype"
            p.observation(m.IDH_STATUS, first.isoformat(), value_code=word, category="laboratory")
    if inp.get("volumetric"):
        p.observation(m.VOLUMETRIC, first.isoformat(), value_bool=True, category="survey")
    if inp.get("confirm_progression") or inp.get("immunotherapy"):
        p.observation(m.CONFIRM_PROGRESSION, first.isoformat(), value_bool=True, category="survey")

    # steroid doses at each scan
    top_text = _steroid_field(inp, baseline=False)
    top_base, top_cur = steroid_text(top_text)
    bsd = _steroid_field(inp, baseline=True)
    if bsd is not None:
        b2, c2 = steroid_text(bsd)
        top_base = c2 if c2 is not None else b2
    doses: list[tuple[date, Decimal]] = []
    for r, lab in rows:
        rb, rc = steroid_text(_steroid_field(r, baseline=False))
        dose = rc if rc is not None else (top_base if lab else top_cur)
        if dose is not None:
            doses.append((d(r["date"]), dose))
    if not doses and top_cur is not None and rows:
        doses.append((d(rows[-1][0]["date"]), top_cur))
    drug = _steroid_drug(top_text, bsd, *(_steroid_field(r, baseline=False) for r, _ in rows))
    reason = _reason(top_text)
    segments: list[tuple[date, Decimal]] = []
    prev_scan: date | None = None
    for when, dose in doses:
        if not segments:
            segments.append((when - timedelta(days=14), dose))
        elif dose != segments[-1][1]:
            change = max((prev_scan or when) + timedelta(days=1), when - timedelta(days=7))
            segments.append((change, dose))
        prev_scan = when
    for i, (start, dose) in enumerate(segments):
        end = segments[i + 1][0] - timedelta(days=1) if i + 1 < len(segments) else None
        _steroid_order(p, cond, drug, start, end, dose,
                       reason if i == len(segments) - 1 and len(segments) > 1 else None)

    # MRI reports
    top_new = inp.get("new_lesions", inp.get("new_measurable_lesion", inp.get("new_lesion")))
    for r, lab in rows:
        when = r["date"]
        results, sentences = [], []
        if lab == "baseline":
            sentences.append(f"Baseline MRI{' (' + r['label'] + ')' if isinstance(r.get('label'), str) else ''}.")
        if r.get("evaluable") is False:
            results.append(p.observation(m.SCAN_EVALUABLE, when, value_bool=False, category="imaging"))
            sentences.append("Non-diagnostic study (motion artefact): not evaluable.")
        lesions = r.get("lesions") if isinstance(r.get("lesions"), list) else []
        spd, unit = value_with_unit(r, ("mm2", "cm2"), exclude=("non", "t2", "flair"))
        if lesions:
            extra_products = Decimal(0)
            for i, les in enumerate(lesions):
                if not isinstance(les, dict):
                    continue
                d1, d2, lunit = _lesion_diameters(les)
                lid = str(les.get("id") or les.get("lesion") or f"L{i + 1}")
                if d1 is not None and d2 is not None:
                    body = p.lesion(lid, str(les.get("site") or "brain")) if lid not in _bodies(p) else _bodies(p)[lid]
                    obs = p.tumor_size(body, when, longest_mm=max(d1, d2), unit=lunit)
                    obs["component"].append({"code": concept(codes.OTHER_DIMENSION), "valueQuantity": qty(min(d1, d2),
                                                                                                         lunit)})
                    results.append(obs)
                else:
                    pv, pu = value_with_unit(les, ("mm2", "cm2"))
                    if pv is not None:
                        extra_products += _dec(pv) * (100 if pu == "cm2" else 1)
            if extra_products and spd is None:
                spd, unit = extra_products, "mm2"
        if spd is not None:
            results.append(p.observation(m.SPD, when, display="Sum of products of perpendicular diameters "
                                         "(enhancing)", value=spd, unit=unit, category="imaging"))
            sentences.append(f"SPD of measurable enhancing disease {spd} {unit}.")
        vol, vunit = value_with_unit(r, ("mm3", "cm3", "mL"), exclude=("non", "t2", "flair"))
        if vol is not None:
            results.append(p.observation(m.VOLUME, when, value=vol, unit=vunit, category="imaging"))
        ne_row = {k: x for k, x in r.items() if k.lower().startswith(("non_enhancing", "t2", "flair"))}
        nev, neu = value_with_unit(ne_row, ("mm2", "cm2"))
        if nev is not None:
            results.append(p.observation(m.NON_ENHANCING_SPD, when, value=nev, unit=neu, category="imaging"))
        if lab is None:
            new = r.get("new_lesions", r.get("new_measurable_lesion", r.get("new_lesion")))
            if new is None and top_new is not None and (top_new is False or r is last_row):
                new = top_new
            if new is not None:
                is_new = bool(new) and not (isinstance(new, str) and new.strip().lower() in ("no", "none", "false"))
                outside = bool(r.get("new_lesion_outside_rt_field")) or (isinstance(new, str) and "outside" in new)
                results.append(p.observation(m.NEW_LESION, when, value_bool=is_new, category="imaging",
                                             note="new lesion outside the radiation field" if is_new and outside
                                             else None))
            nmp = r.get("non_measurable_progression")
            if nmp is None and r is last_row:
                nmp = inp.get("non_measurable_progression")
            if nmp:
                results.append(p.observation(m.NON_MEASURABLE, when, value_code="progression", category="imaging"))
            nmd = r.get("non_measurable_disease")
            if nmd is None and r is last_row:
                nmd = inp.get("non_measurable_disease")
            if nmd is not None and not nmp:
                results.append(p.observation(m.NON_MEASURABLE, when, value_code=_non_measurable_word(nmd),
                                             category="imaging", note=nmd if isinstance(nmd, str) else None))
            clinical = _clinical_field(r)
            if clinical is None and r is last_row:
                clinical = _clinical_field(inp)
            if clinical is not None:
                value, note = _clinical_value(clinical)
                results.append(p.observation(m.CLINICAL_STATUS, when, category="exam", note=note,
                                             extra={"valueCodeableConcept": value}))
        rep = p.report(when, results=results, conclusion=" ".join(sentences) or None)
        rep["code"] = concept(REPORT_SYSTEM, "MRBRAINWWO", "MRI brain with and without contrast",
                              text="MRI brain with and without contrast" + (" - baseline" if lab == "baseline" else ""))
    return p


def _bodies(p: PatientBuilder) -> dict[str, dict]:
    out = {}
    for r in p.resources:
        if r["resourceType"] == "BodyStructure":
            out[r["identifier"][0]["value"]] = r
    return out
