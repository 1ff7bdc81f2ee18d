"""Lugano 2014 vignettes (prefix LUGANO) -> FHIR, as a record would carry them (docs/fhir-inputs-lugano.md).

A lymphoma Condition (ICD-10-CM from the histology words). PET-CT vignettes (an ``inputs.pet`` object): a PET-CT
DiagnosticReport per scan (baseline when the vignette gives baseline values) grouping a coded Deauville score
(SNOMED 708895006, valueInteger + NCIt interpretation; per-site findings with bodySite; score X as the NCIt X
interpretation), SUVmax, the marrow FDG finding in words, new FDG-avid lesions, the reader's uptake comparison and
a residual mass (TumorSize), with the same facts in the report conclusion. When the vignette says the score was
only reported in words (``deauville_as_reported``) or gives report text, the score is in the text only.

CT vignettes: a CT report per time point (baseline, nadir when given, current) grouping TumorSize per node (LDi
33728-7, SDi 33729-5, in the vignette's unit), spleen length (with the normal length as referenceRange.high), new
lesions and non-measured lesions; marrow biopsies as pathology reports in words; nodes only described ("stable
(SPD -10% vs baseline)") as the report text plus the stated SPD % change.

The expected answer is never written; ``builder.card_criteria`` is the vignette's own ``criteria``.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.sandbox.builders import CATEGORY_SYSTEM, PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import Vignette, VignetteInputError, _pid, check_keys, converter
from fhir_mappings import codes
from fhir_mappings import lugano as lm
from fhir_mappings.record import LOCAL, LOINC, SNOMED

PET_TITLE = "FDG PET-CT whole body"
CT_TITLE = "CT neck, chest, abdomen and pelvis with contrast"
MARROW_REPORT = (LOINC, "33721-2", "Bone marrow Pathology biopsy report")
NCIT_OF_SCORE = {v: k for k, v in lm.NCIT_DEAUVILLE.items()}
NCIT_DISPLAY = {1: "Deauville Score 1", 2: "Deauville Score 2", 3: "Deauville Score 3", 4: "Deauville Score 4",
                5: "Deauville Score 5", "X": "Deauville Score X"}

# histology words -> (ICD-10-CM, display); first match wins
HISTOLOGY_ICD = (
    ("nodular lymphocyte", "C81.00", "Nodular lymphocyte predominant Hodgkin lymphoma"),
    ("non-hodgkin", "C85.90", "Non-Hodgkin lymphoma"),
    ("hodgkin", "C81.90", "Hodgkin lymphoma"),
    ("diffuse large", "C83.30", "Diffuse large B-cell lymphoma"),
    ("dlbcl", "C83.30", "Diffuse large B-cell lymphoma"),
    ("primary mediastinal", "C85.20", "Primary mediastinal (thymic) large B-cell lymphoma"),
    ("follicular", "C82.90", "Follicular lymphoma"),
    ("mantle", "C83.10", "Mantle cell lymphoma"),
    ("burkitt", "C83.70", "Burkitt lymphoma"),
    ("splenic marginal", "C83.07", "Splenic marginal zone lymphoma"),
    ("malt", "C88.4", "Extranodal marginal zone B-cell lymphoma of mucosa-associated lymphoid tissue"),
    ("marginal zone", "C83.00", "Marginal zone lymphoma"),
    ("small lymphocytic", "C83.00", "Small lymphocytic lymphoma"),
    ("lymphoplasmacytic", "C88.0", "Lymphoplasmacytic lymphoma"),
    ("anaplastic", "C84.70", "Anaplastic large cell lymphoma"),
    ("t-cell", "C84.40", "Peripheral T-cell lymphoma"),
)


# --- small readers of the vignette shape ---------------------------------------------------------------------

def _get(d: dict | None, *names: str, default: Any = None) -> Any:
    if not isinstance(d, dict):
        return default
    lower = {k.lower(): k for k in d}
    for n in names:
        if n.lower() in lower and d[lower[n.lower()]] is not None:
            return d[lower[n.lower()]]
    return default


LENGTH_SUFFIXES = (("_mm", "mm"), ("_cm", "cm"))
AREA_SUFFIXES = (("_mm2", "mm2"), ("_cm2", "cm2"))


def _with_unit(d: dict | None, stem: str, default_unit: str = "mm",
               suffixes: tuple[tuple[str, str], ...] = LENGTH_SUFFIXES) -> tuple[Any, str] | None:
    """The field ``<stem>_mm`` / ``<stem>_cm`` / ``<stem>`` of ``d`` with its unit."""
    if not isinstance(d, dict):
        return None
    for suffix, unit in suffixes + (("", default_unit),):
        v = _get(d, stem + suffix)
        if v is not None:
            return v, unit
    return None


def _day(s: Any) -> date:
    return date.fromisoformat(str(s)[:10])


def _histology(text: str) -> tuple[str, str]:
    t = (text or "").lower()
    for words, icd, display in HISTOLOGY_ICD:
        if words in t:
            return icd, display
    return "C85.90", "Non-Hodgkin lymphoma" if "lymphoma" in t or not t else text


def _clean_histology(text: str) -> str:
    parts = [s.strip() for s in re.split(r"\s+[-–]\s+|;", text or "") if s.strip()]
    parts = [s for s in parts if "criteria" not in s.lower()]
    return ", ".join(parts) or "Lymphoma"


def _num(v: Any) -> Any:
    if isinstance(v, str):
        m = re.search(r"-?\d+(?:\.\d+)?", v)
        return Decimal(m.group(0)) if m else None
    return v


def _fmt(v: Any) -> str:
    d = Decimal(str(v))
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


# --- PET-CT --------------------------------------------------------------------------------------------------

def _deauville(p: PatientBuilder, when: str, score: Any, *, site: str | None = None, new: bool = False,
               physiological: bool = False, note: str | None = None) -> dict:
    s: int | str = str(score).strip().upper() if str(score).strip().upper() == "X" else int(score)
    extra: dict[str, Any] = {"interpretation": [concept(lm.NCIT, NCIT_OF_SCORE[s], NCIT_DISPLAY[s])]}
    if s != "X":
        extra["valueInteger"] = s
    if site:
        extra["bodySite"] = {"text": site}
    comps = []
    if new:
        comps.append({"code": concept(lm.SITE_NEW), "valueBoolean": True})
    if physiological:
        comps.append({"code": concept(lm.SITE_PHYSIOLOGICAL), "valueBoolean": True})
    return p.observation(lm.DEAUVILLE, when, display="Deauville five point scale (assessment scale)",
                         category="imaging", components=comps, note=note, extra=extra)


def _suv(p: PatientBuilder, when: str, value: Any) -> dict:
    return p.observation(lm.SUV_MAX, when, display="SUVmax of lymphoma sites", value=Decimal(str(value)),
                         unit="{SUVbw}", category="imaging")


def _pet_report(p: PatientBuilder, when: str, title: str, results: list[dict], text: str) -> dict:
    rep = p.report(when, results=results, conclusion=text or None, text=text or None)
    rep["code"]["text"] = title
    return rep


def _finding_items(pet: dict) -> list[dict]:
    out = []
    for key in ("other_findings", "findings", "sites", "site_findings", "lesions"):
        items = _get(pet, key)
        if isinstance(items, list):
            out.extend(i for i in items if isinstance(i, dict))
    return out


def _uptake_word(raw: Any) -> str:
    """The reader's comparison with baseline in words -> reduced / unchanged / increased (criteria.md §4.2 rows PMR,
    NMR, PMD); anything else is an error naming the field."""
    t = str(raw).strip().lower()
    if re.search(r"no (?:significant )?change|unchanged|stable|similar|same", t):
        return "unchanged"
    if re.search(r"reduc|decreas|lower|less|improv|diminish", t):
        return "reduced"
    if re.search(r"increas|higher|more intense|greater", t):
        return "increased"
    raise VignetteInputError("?", "pet.uptake_vs_baseline", f"cannot read {raw!r} (reduced / unchanged / increased)")


def _emit_pet_scan(p: PatientBuilder, when: str, pet: dict, label: str, *, baseline_prefix: str = "") -> None:
    """One PET-CT: coded findings and the report text. ``baseline_prefix`` reads ``baseline_*`` fields."""
    pre = baseline_prefix
    results: list[dict] = []
    words: list[str] = []
    as_reported = bool(_get(pet, "deauville_as_reported", "as_reported", default=False)) and not pre
    given_text = None if pre else _get(pet, "report_text", "report", "conclusion", "reader_text", "text")
    score = _get(pet, *(pre + k for k in ("highest_deauville_score", "lymphoma_sites_highest_deauville_score",
                                           "deauville_score", "deauville", "highest_score", "score", "ds")))
    if isinstance(score, str) and not re.fullmatch(r"\s*[1-5xX]\s*", score):
        given_text = given_text or score
        score = None
    if score is not None:
        if as_reported or given_text:
            words.append(f"Deauville score of {score}" if not given_text else "")
        else:
            results.append(_deauville(p, when, score))
            words.append(f"Highest Deauville score at lymphoma sites {str(score).upper()}")
    if not pre:
        for f in _finding_items(pet):
            fs = _get(f, "score", "deauville", "deauville_score")
            site = str(_get(f, "site", "location", default="unspecified site"))
            comment = _get(f, "reader_comment", "comment", "note")
            new = bool(_get(f, "new", default=False))
            phys = bool(_get(f, "le_surrounding_normal_tissue", "physiological", "not_above_surrounding",
                             default=False))
            if fs is None:
                continue
            if as_reported or given_text:
                words.append(f"{site}: {comment + ', ' if comment else ''}Deauville {str(fs).upper()}")
            else:
                results.append(_deauville(p, when, fs, site=site, new=new, physiological=phys, note=comment))
                words.append(f"{site}: {comment + ', ' if comment else ''}Deauville {str(fs).upper()}")
    suv = _get(pet, pre + "SUVmax", pre + "suv_max", pre + "suvmax")
    if suv is not None:
        results.append(_suv(p, when, suv))
        words.append(f"SUVmax {_fmt(suv)}")
    if not pre:
        mass = _with_unit(pet, "residual_mass")
        if mass is not None and isinstance(mass[0], (list, tuple)) and len(mass[0]) == 2:
            body = p.lesion(f"{p.patient_id}-residual-mass", "residual mass (largest lymphoma site)", nodal=False)
            results.append(_tumor_size(p, body, when, mass[0][0], mass[0][1], mass[1]))
            words.append(f"Residual mass {_fmt(mass[0][0])} x {_fmt(mass[0][1])} {mass[1]}")
        marrow = _get(pet, "bone_marrow_fdg", "bone_marrow", "marrow", "marrow_fdg")
        if isinstance(marrow, str):
            results.append(p.observation(lm.PET_MARROW, when, display="Bone marrow FDG uptake pattern",
                                         value_string=marrow, category="imaging"))
            words.append(f"Bone marrow: {marrow}")
        new = _get(pet, "new_fdg_avid_lesions", "new_lesions", "new_fdg_avid_foci")
        if isinstance(new, bool):
            results.append(p.observation(lm.NEW_LESION, when, display="New FDG-avid lesion consistent with lymphoma",
                                         value_bool=new, category="imaging"))
            words.append("New FDG-avid lesions consistent with lymphoma" if new else "No new FDG-avid lesions")
        elif isinstance(new, list):
            for item in new:
                site = str(_get(item, "site", default="new site")) if isinstance(item, dict) else str(item)
                fs = _get(item, "score", "deauville") if isinstance(item, dict) else None
                if fs is not None:
                    results.append(_deauville(p, when, fs, site=site, new=True))
                else:
                    results.append(p.observation(lm.NEW_LESION, when, value_bool=True, category="imaging",
                                                 extra={"bodySite": {"text": site}}))
                words.append(f"New FDG-avid lesion: {site}")
            if not new:
                results.append(p.observation(lm.NEW_LESION, when, value_bool=False, category="imaging"))
                words.append("No new FDG-avid lesions")
        elif isinstance(new, str):
            words.append(new)
        uptake = _get(pet, "uptake_vs_baseline", "uptake_change", "fdg_uptake_vs_baseline",
                      "uptake_compared_with_baseline", "change_in_uptake", "uptake_change_vs_baseline")
        if uptake is not None:
            word = _uptake_word(uptake)
            results.append(p.observation(lm.UPTAKE_VS_BASELINE, when, value_code=word, category="imaging",
                                         display="FDG uptake compared with baseline"))
            words.append(f"Uptake at lymphoma sites {word} compared with baseline")
    text = ". ".join(w for w in words if w) + ("." if words else "")
    if given_text:
        text = str(given_text) + ("\n" + text if text else "")
    title = f"{PET_TITLE} ({label})" if label else PET_TITLE
    _pet_report(p, when, title, results, text)


CURRENT_KEYS = ("current", "follow_up", "followup", "end_of_treatment", "eot", "interim", "restaging", "latest")


def _flatten_pet(inp: dict) -> tuple[dict, list[dict]]:
    """The current scan's fields (``baseline_*`` for the baseline) and earlier follow-up scans, from the shapes
    ``pet: {...}``, ``pet: {"baseline": {...}, "current": {...}}`` and ``pet: [{...date, timepoint...}, ...]``."""
    pet = inp.get("pet")
    priors = [x for x in (_get(inp, "prior_scans", "previous_scans", "scans", default=[]) or []) if isinstance(x, dict)]
    if isinstance(pet, list):
        scans = sorted((x for x in pet if isinstance(x, dict)), key=lambda x: str(x.get("date", "")))
        base = next((x for x in scans if re.search(r"baseline|(?<!re)staging|pre-?treatment",
                                                   str(x.get("timepoint", "")), re.I)), None)
        rest = [x for x in scans if x is not base]
        cur = dict(rest[-1]) if rest else {}
        priors += rest[:-1]
        if base is not None:
            cur.update({f"baseline_{k}": val for k, val in base.items() if k != "timepoint"})
        return cur, priors
    pet = dict(pet or {})
    for k in list(pet):  # "SUVmax_baseline" -> "baseline_SUVmax"
        if k.lower().endswith("_baseline") and k.lower() != "baseline" and not re.search(r"_vs_|compar|_than_",
                                                                                         k.lower()):
            pet.setdefault("baseline_" + k[: -len("_baseline")], pet.pop(k))
    base = pet.pop("baseline", None)
    for key in CURRENT_KEYS:
        if isinstance(pet.get(key), dict):
            inner = pet.pop(key)
            pet = {**pet, **inner}
            pet.setdefault("timepoint", key.replace("_", " "))
            break
    if isinstance(base, dict):
        pet.update({f"baseline_{k}": val for k, val in base.items() if k != "timepoint"})
    return pet, priors


def _pet(p: PatientBuilder, inp: dict) -> None:
    pet, priors = _flatten_pet(inp)
    cur = str(_get(inp, "date", default=_get(pet, "date", default="2024-06-10")))
    label = str(_get(inp, "timepoint", default=_get(pet, "timepoint", default="")) or "")
    has_base = any(k.lower().startswith("baseline") and k.lower() != "baseline_date" for k in pet)
    base_day = _get(inp, "baseline_date", default=_get(pet, "baseline_date"))
    weeks_before = timedelta(days=84 if "interim" in label.lower() else 180)
    base = str(base_day) if base_day else (_day(cur) - weeks_before).isoformat()
    if has_base:
        _emit_pet_scan(p, base, pet, "baseline staging", baseline_prefix="baseline_")
    histology = (inp.get("histology") or "").lower()
    regimen = "ABVD chemotherapy" if "hodgkin" in histology and "non" not in histology else "R-CHOP chemotherapy"
    p.medication((_day(base) + timedelta(days=7)).isoformat(), regimen)
    for prior in priors:
        if prior.get("date"):
            _emit_pet_scan(p, str(prior["date"]), prior, str(prior.get("timepoint") or ""))
    _emit_pet_scan(p, cur, pet, label)


# --- CT ------------------------------------------------------------------------------------------------------

def _tumor_size(p: PatientBuilder, body: dict, when: str, ldi: Any, sdi: Any, unit: str, *,
                role: str | None = None, too_small: bool = False, attributable: bool | None = None) -> dict:
    comps: list[dict] = []
    if too_small:
        comps.append({"code": concept(codes.LONGEST_DIMENSION), "valueCodeableConcept": concept(codes.TOO_SMALL)})
    elif ldi is None:
        comps.append({"code": concept(codes.LONGEST_DIMENSION),
                      "dataAbsentReason": concept("http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                  "not-performed")})
    else:
        comps.append({"code": concept(codes.LONGEST_DIMENSION), "valueQuantity": qty(Decimal(str(ldi)), unit)})
        if sdi is not None:
            comps.append({"code": concept(codes.OTHER_DIMENSION), "valueQuantity": qty(Decimal(str(sdi)), unit)})
    if role:
        comps.append({"code": concept(codes.LESION_ROLE), "valueCodeableConcept": concept(LOCAL, role)})
    if attributable is not None:
        comps.append({"code": concept(lm.ATTRIBUTABLE), "valueBoolean": attributable})
    return p.add({
        "resourceType": "Observation", "id": p._id("size"), "status": "final", "subject": p.subject,
        "category": [concept(CATEGORY_SYSTEM, "imaging")],
        "code": concept(codes.TUMOR_SIZE, display="Size Tumor"), "effectiveDateTime": when,
        "focus": [{"reference": f"BodyStructure/{body['id']}"}], "component": comps,
    })


NODE_KEYS = ("target_nodes", "target_lesions", "nodes", "target_nodes_and_lesions", "lesions", "targets")
EXTRANODAL_KEYS = ("extranodal_lesions", "target_extranodal_lesions", "extranodal_targets")


def _node_lists(inp: dict) -> list[tuple[dict, str, bool]]:
    """(lesion dict, unit, extranodal) for every target lesion in the vignette."""
    out: list[tuple[dict, str, bool]] = []
    for keys, extranodal in ((NODE_KEYS, False), (EXTRANODAL_KEYS, True)):
        for stem in keys:
            got = _with_unit(inp, stem)
            if got is None or not isinstance(got[0], list):
                continue
            for item in got[0]:
                if isinstance(item, dict):
                    unit = _get(item, "unit", default=got[1])
                    kind = str(_get(item, "kind", "type", default="extranodal" if extranodal else "nodal")).lower()
                    out.append((item, unit, "extra" in kind or kind in ("organ", "visceral")))
    return out


def _dims(value: Any) -> tuple[Any, Any, bool, bool] | None:
    """(ldi, sdi, too_small, gone) of one vignette measurement; None when not measured."""
    if value is None:
        return None
    if isinstance(value, dict):
        ldi = _get(value, "ldi", "ldi_mm", "ldi_cm", "long", "longest")
        sdi = _get(value, "sdi", "sdi_mm", "sdi_cm", "short", "perpendicular")
        return (ldi, sdi, False, False) if ldi is not None else None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0], value[1], False, False
    if isinstance(value, str):
        t = value.lower()
        if "small" in t:
            return None, None, True, False
        if any(w in t for w in ("disappear", "resolved", "not visible", "no longer", "gone", "absent")):
            return 0, 0, False, True
        m = re.findall(r"\d+(?:\.\d+)?", t)
        if len(m) >= 2:
            return m[0], m[1], False, False
    return None


def _timepoint_dates(inp: dict) -> dict[str, str]:
    cur = _day(_get(inp, "date", "current_date", default="2024-07-15"))
    base = _day(_get(inp, "baseline_date", default=(cur - timedelta(days=180)).isoformat()))
    nadir = _get(inp, "nadir_date")
    nadir_d = _day(nadir) if nadir else base + (cur - base) / 2
    return {"baseline": base.isoformat(), "nadir": nadir_d.isoformat(), "current": cur.isoformat()}


def _marrow_texts(inp: dict) -> dict[str, str]:
    m = _get(inp, "bone_marrow", "marrow", "bone_marrow_biopsy")
    if isinstance(m, str):
        return {"current": m}
    if isinstance(m, dict):
        return {k.lower(): str(val) for k, val in m.items() if val is not None}
    return {}


def _spleen(inp: dict) -> tuple[dict[str, Any], str]:
    got = _with_unit(inp, "spleen_length", default_unit="cm") or _with_unit(inp, "spleen", default_unit="cm")
    if got is None:
        return {}, "cm"
    val, unit = got
    if isinstance(val, dict):
        return {k.lower(): x for k, x in val.items() if x is not None}, unit
    return {"current": val}, unit


def _new_lesions(p: PatientBuilder, when: str, new: Any, results: list[dict], words: list[str]) -> None:
    if isinstance(new, bool):
        results.append(p.observation(lm.NEW_LESION, when, display="New lesion consistent with lymphoma",
                                     value_bool=new, category="imaging"))
        words.append("New lesion(s) consistent with lymphoma" if new else "No new lesions")
    elif isinstance(new, (int,)) and not isinstance(new, bool):
        results.append(p.observation(lm.NEW_LESION, when, value_bool=new > 0, category="imaging"))
        words.append(f"{new} new lesion(s)" if new else "No new lesions")
    elif isinstance(new, dict):
        _new_lesions(p, when, [new], results, words)
    elif isinstance(new, list):
        if not new:
            results.append(p.observation(lm.NEW_LESION, when, value_bool=False, category="imaging"))
            words.append("No new lesions")
        for i, item in enumerate(new):
            if isinstance(item, dict) and _get(item, "present", "new", "value") is False:
                results.append(p.observation(lm.NEW_LESION, when, value_bool=False, category="imaging"))
                words.append("No new lesions")
                continue
            if not isinstance(item, dict):
                item = {"site": str(item)}
                size = re.search(r"(\d+(?:\.\d+)?)\s*(?:(?:x|×|by)\s*(\d+(?:\.\d+)?)\s*)?(cm|mm)\b", item["site"])
                if size:
                    item[f"ldi_{size.group(3)}"] = size.group(1)
                    item[f"sdi_{size.group(3)}"] = size.group(2) or size.group(1)
            site = str(_get(item, "site", "location", default="new site"))
            kind = str(_get(item, "kind", "type", default="")).lower()
            nodal = ("nod" in kind and "extra" not in kind) or (not kind and bool(re.search(r"node|nodal|lymph", site,
                                                                                             re.I)))
            attributable = _get(item, "attributable_to_lymphoma", "attributable", "lymphoma")
            dims = [_with_unit(item, s) for s in ("ldi", "sdi")]
            size = _with_unit(item, "size") or _with_unit(item, "dims") or _with_unit(item, "diameters")
            if dims[0] is not None or size is not None:
                body = p.lesion(f"NEW{i + 1}", site, nodal=nodal)
                if size is not None and isinstance(size[0], (list, tuple)):
                    ldi, sdi, unit = size[0][0], size[0][1] if len(size[0]) > 1 else size[0][0], size[1]
                elif size is not None:
                    ldi, sdi, unit = size[0], size[0], size[1]
                else:
                    ldi, unit = dims[0]
                    sdi = dims[1][0] if dims[1] is not None else ldi
                results.append(_tumor_size(p, body, when, ldi, sdi, unit, role="new",
                                           attributable=attributable if isinstance(attributable, bool) else None))
                words.append(f"New {'node' if nodal else 'lesion'} ({site}) {_fmt(ldi)} x {_fmt(sdi)} {unit}")
            else:
                comps = [{"code": concept(codes.NODAL), "valueBoolean": nodal}]
                equivocal = (str(attributable).lower() == "equivocal" or _get(item, "equivocal") is True
                             or "equivocal" in site.lower())
                if isinstance(attributable, bool):
                    comps.append({"code": concept(lm.ATTRIBUTABLE), "valueBoolean": attributable})
                kw: dict[str, Any] = {"value_code": "equivocal"} if equivocal else {"value_bool": True}
                results.append(p.observation(lm.NEW_LESION, when, category="imaging", components=comps,
                                             extra={"bodySite": {"text": site}}, **kw))
                words.append(f"New {'node' if nodal else 'lesion'}: {site}")
    elif isinstance(new, str):
        t = new.strip().lower()
        if t in ("none", "no", "absent", "false", "nil") or lm.new_lesions_in_text(new) is False:
            results.append(p.observation(lm.NEW_LESION, when, value_bool=False, category="imaging"))
            words.append("No new lesions")
        else:
            _new_lesions(p, when, [new], results, words)


def _ct(p: PatientBuilder, inp: dict) -> None:
    dates = _timepoint_dates(inp)
    histology = (inp.get("histology") or "").lower()
    p.medication((_day(dates["baseline"]) + timedelta(days=7)).isoformat(),
                 "Rituximab-bendamustine" if "hodgkin" not in histology else "ABVD chemotherapy")
    per_date: dict[str, tuple[list[dict], list[str]]] = {}

    def slot(label: str) -> tuple[list[dict], list[str]]:
        return per_date.setdefault(dates[label], ([], []))

    for i, (item, unit, extranodal) in enumerate(_node_lists(inp)):
        lid = str(_get(item, "id", "lesion_id", "name", default=f"L{i + 1}"))
        site = str(_get(item, "site", "location", default=("extranodal lesion " if extranodal else "lymph node ")
                        + lid))
        body = p.lesion(lid, site, nodal=not extranodal)
        for label in ("baseline", "nadir", "current"):
            raw = _get(item, label)
            if raw is None:
                got = _with_unit(item, label)
                raw, unit_here = (got if got is not None else (None, unit))
            else:
                unit_here = unit
            if raw is None:
                continue
            d = _dims(raw)
            results, words = slot(label)
            if d is None:
                results.append(_tumor_size(p, body, dates[label], None, None, unit_here))
                continue
            ldi, sdi, small, gone = d
            results.append(_tumor_size(p, body, dates[label], ldi, sdi, unit_here, too_small=small))
            words.append(f"{site}: " + ("too small to measure" if small else "no longer visible" if gone
                                       else f"{_fmt(ldi)} x {_fmt(sdi)} {unit_here}"))
    spleen, sunit = _spleen(inp)
    normal = _with_unit(inp, "normal_spleen_length", default_unit="cm")
    for label, val in spleen.items():
        if label not in dates or _num(val) is None:
            continue
        results, words = slot(label)
        extra = {"bodySite": concept(SNOMED, "78961009", "Splenic structure")}
        if normal is not None:
            extra["referenceRange"] = [{"high": qty(Decimal(str(normal[0])), normal[1])}]
        results.append(p.observation(lm.SPLEEN_LENGTH, dates[label], display="Spleen length (craniocaudal)",
                                     value=Decimal(str(_num(val))), unit=sunit, category="imaging", extra=extra))
        words.append(f"Spleen {_fmt(_num(val))} {sunit} craniocaudal")
    desc = _get(inp, "nodes", "nodes_description", "node_description", "lymph_nodes")
    if isinstance(desc, str):
        results, words = slot("current")
        words.append(f"Nodes: {desc}")
        pct, _ = lm.spd_pct_in_text(desc)
        if pct is not None:
            results.append(p.observation(lm.SPD_PCT, dates["current"], display="SPD change from baseline (stated)",
                                         value=pct, unit="%", category="imaging"))
    if isinstance(desc, dict):
        pct = _get(desc, "spd_pct_change", "pct_change_spd", "spd_change_pct", "spd_change_percent", "pct_change")
        if _num(pct) is not None:
            results, words = slot("current")
            results.append(p.observation(lm.SPD_PCT, dates["current"], display="SPD change from baseline (stated)",
                                         value=Decimal(str(_num(pct))), unit="%", category="imaging"))
            words.append(f"SPD change from baseline {_fmt(_num(pct))}%")
    for label in ("baseline", "current"):
        spd = next((got for d, stem in ((inp, f"{label}_spd"), (inp, f"spd_{label}"), (_get(inp, "spd"), label))
                    if (got := _with_unit(d, stem, "mm2", AREA_SUFFIXES)) is not None), None)
        if spd is not None and _num(spd[0]) is not None:
            unit = spd[1]
            results, words = slot(label)
            results.append(p.observation(lm.SPD, dates[label], display="Sum of products of diameters (stated)",
                                         value=Decimal(str(_num(spd[0]))), unit=unit, category="imaging"))
    new = _get(inp, "new_lesions", "new_lesion", "new_lesions_list")
    for key, kind in (("new_nodes", "nodal"), ("new_extranodal_lesions", "extranodal")):
        extra = _get(inp, key)  # new lesions listed by kind: the same lesions, their kind given by the list
        if isinstance(extra, list):
            items = [dict(x, kind=x.get("kind", kind)) if isinstance(x, dict) else {"site": str(x), "kind": kind}
                     for x in extra]
            if items:
                new = (list(new) if isinstance(new, list) else []) + items
            elif new is None:
                new = []
    if new is not None:
        results, words = slot("current")
        _new_lesions(p, dates["current"], new, results, words)
    nm = _get(inp, "non_measured_lesions", "non_measured", "non_target", "nonmeasured_lesions")
    if isinstance(nm, dict):
        for label, val in nm.items():
            if label.lower() in dates and val is not None:
                results, words = slot(label.lower())
                results.append(p.observation(lm.NON_MEASURED, dates[label.lower()], value_string=str(val),
                                             category="imaging", display="Non-measured lesions"))
                words.append(f"Non-measured lesions: {val}")
    elif isinstance(nm, str):
        results, words = slot("current")
        results.append(p.observation(lm.NON_MEASURED, dates["current"], value_string=nm, category="imaging",
                                     display="Non-measured lesions"))
        words.append(f"Non-measured lesions: {nm}")
    if _get(inp, "new_or_recurrent_splenomegaly", "new_splenomegaly") is True:
        results, words = slot("current")
        results.append(p.observation(lm.NEW_SPLENOMEGALY, dates["current"], value_bool=True, category="imaging"))
        words.append("New splenomegaly")
    for when in sorted(per_date):
        results, words = per_date[when]
        text = ". ".join(words) + "." if words else ""
        rep = p.report(when, results=results, conclusion=text or None)
        rep["code"]["text"] = CT_TITLE
    for label, text in _marrow_texts(inp).items():
        if label in dates and not re.search(r"not\s+(re-?)?(biopsied|assessed|done|performed|repeated)", text, re.I):
            p.report(dates[label], category="pathology", code=MARROW_REPORT,
                     conclusion=f"Bone marrow trephine biopsy: {text}.")


def _is_pet(v: Vignette) -> bool:
    inp = v.get("inputs") or {}
    if isinstance(inp.get("pet"), (dict, list)):
        return True
    return "pet" in str(v.get("criteria", "")).lower() and not any(
        _with_unit(inp, k) for k in NODE_KEYS)


_KNOWN_CT = {"histology", "timepoint", "date", "current_date", "baseline_date", "nadir_date", "pet", "prior_scans",
             "previous_scans", "scans", "bone_marrow", "marrow", "bone_marrow_biopsy", "new_lesions", "new_lesion",
             "new_lesions_list", "new_or_recurrent_splenomegaly", "new_splenomegaly", "nodes", "nodes_description",
             "node_description", "lymph_nodes", "non_measured_lesions", "non_measured", "non_target",
             "nonmeasured_lesions", "note", "notes", "treatment", "regimen", "new_nodes", "new_extranodal_lesions",
             *NODE_KEYS, *EXTRANODAL_KEYS}
_RELEVANT_CT = re.compile(r"node|lesion|spleen|splen|marrow|spd|mass|new|extranodal|target|measured|organ|liver")


def _known_ct(key: str) -> bool:
    k = re.sub(r"_(?:mm2?|cm2?)$", "", key.lower())
    return k in _KNOWN_CT or "spleen" in k or "spd" in k or k.startswith("baseline")


@converter("LUGANO", "Lugano 2014 (PET-CT)")
def lugano(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    if not _is_pet(v):
        check_keys(v, inp, "", _known_ct, _RELEVANT_CT, "Lugano 2014 CT")
    p = PatientBuilder(_pid(v))
    pet = _is_pet(v)
    p.card_criteria = v.get("criteria") or ("Lugano 2014 (PET-CT)" if pet else "Lugano 2014 (CT-based)")
    icd, display = _histology(inp.get("histology", ""))
    text = _clean_histology(inp.get("histology", "")) if inp.get("histology") else display
    p.condition(icd10=icd, text=text[:1].upper() + text[1:], onset="2023-11-01")
    if pet:
        if inp.get("pet") is None:  # PET facts at the top level of inputs
            inp = {**inp, "pet": {k: val for k, val in inp.items() if k not in ("histology", "date", "timepoint")}}
        _pet(p, inp)
    else:
        _ct(p, inp)
    return p
