"""RANO 2.0 inputs from FHIR: MRI time points (SPD / volume / new lesions / non-measurable disease), the
corticosteroid dose at each scan, clinical status, radiotherapy end, disease setting and IDH status.

Representations and codes are documented with examples in docs/fhir-inputs-rano.md.  In short:

* Time points are the MRI DiagnosticReports that group the findings (``result``); findings outside a report
  are grouped by their own date.
* SPD: an Observation with the project's code ``rano-spd`` (the sum stated on the report, mm² or cm²), else
  the sum of products of the two diameters of each mCODE TumorSize (LOINC 21889-1: 33728-7 x 33729-5) of the
  scan, else an SPD stated in the report text ("SPD 600 mm2", "sum of products 6.0 cm2").  A lesion first
  measured after the first measured scan is a new lesion (measurable when both diameters are >= 10 mm) and is
  not added to the SPD.  Volumes: ``rano-enhancing-volume`` (mm³, cm³, mL).  Non-enhancing (T2/FLAIR) SPD:
  ``rano-non-enhancing-spd``.
* New lesion: ``rano-new-lesion`` (or the RECIST ``recist-new-lesion``), valueBoolean or yes/no; "outside the
  radiation field" in a note or ``rano-new-lesion-outside-rt-field`` = true.  Non-measurable disease:
  ``rano-non-measurable-disease`` = progression | present | absent (or the RECIST non-target codes PD /
  non-CR/non-PD / CR).
* Corticosteroids: MedicationRequest / MedicationStatement / MedicationAdministration of dexamethasone,
  prednisone, prednisolone, methylprednisolone or hydrocortisone, dose per day from ``dosageInstruction``
  (doseQuantity x timing) or its text ("4 mg twice daily"), converted to dexamethasone equivalents; the dose at
  a scan is that of the newest order of each steroid started on or before the scan and not ended before it.
* Clinical status: ``rano-clinical-status`` with SNOMED CT 271299001 (worsened) / 359746009 (stable) /
  268910001 (improved) or the project's values (tumour-related-deterioration, stable, improved,
  deterioration-not-tumour-related); ``rano-clinical-deterioration`` valueBoolean.  Attached to the nearest scan
  within 28 days.
* Radiotherapy end: Procedure SNOMED CT 1217123003 / 108290001 or text naming radiotherapy; performedPeriod.end.
* Setting: ``glioma-disease-setting`` = newly-diagnosed | recurrent, else the Condition text ("recurrent",
  "newly diagnosed"), else newly diagnosed when a radiotherapy course began within 6 months of the onset.
* MR eligibility: IDH-mutant (``idh-status`` = mutant, or an IDH Observation reporting a mutation, or the
  Condition text), oligodendroglioma, low-grade or non-enhancing tumour.
* Baseline: a scan marked ``rano-baseline-scan`` = true or whose report calls itself baseline; else the engine's
  rules (post-radiotherapy MRI when newly diagnosed, last MRI on or before the treatment start).  When none
  applies, the earliest MRI in the record is the reference and a note says so.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings import codes
from fhir_mappings.labs import lab_series, local_codes, report_text
from fhir_mappings.pcwg3 import (
    MedEntry,
    displays,
    dosages,
    items,
    medication_entries,
    says_baseline,
    therapy_start,
)
from fhir_mappings.record import (
    LOCAL,
    SNOMED,
    PatientRecord,
    Resource,
    concept_keys,
    concept_text,
    effective_date,
    parse_date,
    quantity,
    ref_of,
    to_decimal,
)
from fhir_mappings.routing import RoutedCancer
from fhir_mappings.units import AREA_MM2, LENGTH_MM, UnitError, UnitSpec, normalise
from rules import rano2 as engine

# --- codes (the project's code system; no standard codes exist for these RANO inputs) ---------------------
SPD = f"{LOCAL}|rano-spd"
NON_ENHANCING_SPD = f"{LOCAL}|rano-non-enhancing-spd"
VOLUME = f"{LOCAL}|rano-enhancing-volume"
NEW_LESION = f"{LOCAL}|rano-new-lesion"
NEW_OUTSIDE_FIELD = f"{LOCAL}|rano-new-lesion-outside-rt-field"
NON_MEASURABLE = f"{LOCAL}|rano-non-measurable-disease"
CLINICAL_STATUS = f"{LOCAL}|rano-clinical-status"
CLINICAL_DETERIORATION = f"{LOCAL}|rano-clinical-deterioration"
BASELINE_SCAN = f"{LOCAL}|rano-baseline-scan"
SETTING = f"{LOCAL}|glioma-disease-setting"
IDH_STATUS = f"{LOCAL}|idh-status"
VOLUMETRIC = f"{LOCAL}|rano-volumetric"
CONFIRM_PROGRESSION = f"{LOCAL}|rano-confirm-progression"
SCAN_EVALUABLE = f"{LOCAL}|rano-scan-evaluable"

WORSENED, STABLE, IMPROVED = f"{SNOMED}|271299001", f"{SNOMED}|359746009", f"{SNOMED}|268910001"  # codes.md §2.1, A
RT_SNOMED = {f"{SNOMED}|1217123003", f"{SNOMED}|108290001"}  # Radiotherapy course of treatment; Radiation oncology

STATUS_CODES = (NEW_LESION, codes.NEW_LESION, NEW_OUTSIDE_FIELD, NON_MEASURABLE, codes.NON_TARGET_RESPONSE,
                CLINICAL_STATUS, CLINICAL_DETERIORATION, BASELINE_SCAN, SETTING, IDH_STATUS, VOLUMETRIC,
                CONFIRM_PROGRESSION, SCAN_EVALUABLE)
OBSERVATION_CODES = (SPD, NON_ENHANCING_SPD, VOLUME, codes.TUMOR_SIZE) + STATUS_CODES

VOLUME_MM3 = UnitSpec("a tumour volume", "mm3", ("cm3", "mL"))
SPD_SPEC = AREA_MM2.with_extra(("cm.cm", "mm.mm"))

# --- corticosteroids: dexamethasone-equivalent factors (dexamethasone 0.75 mg = prednisone 5 mg =
# methylprednisolone 4 mg = hydrocortisone 20 mg; standard glucocorticoid equivalence tables) ----------------
STEROIDS: tuple[tuple[str, Decimal, tuple[str, ...]], ...] = (
    ("methylprednisolone", Decimal("0.1875"), ("6902",)),
    ("dexamethasone", Decimal(1), ("3264",)),
    ("prednisolone", Decimal("0.15"), ("8638",)),
    ("prednisone", Decimal("0.15"), ("8640",)),
    ("hydrocortisone", Decimal("0.0375"), ("5492",)),
)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PHYSIOLOGICAL_HYDROCORTISONE_MG = Decimal(30)  # replacement doses: hydrocortisone <= 30 mg/day

GLIOMA_DRUGS = ("temozolomide", "lomustine", "ccnu", "carmustine", "bcnu", "bevacizumab", "regorafenib",
                "vorasidenib", "ivosidenib", "procarbazine", "vincristine", "pcv", "irinotecan", "carboplatin",
                "etoposide", "dabrafenib", "trametinib", "everolimus", "tovorafenib", "onc201", "dordaviprone",
                "nivolumab", "pembrolizumab", "ipilimumab")
CHECKPOINT_INHIBITORS = ("nivolumab", "pembrolizumab", "ipilimumab", "atezolizumab", "durvalumab", "avelumab",
                         "cemiplimab", "dostarlimab", "tremelimumab")
RT_WORDS = re.compile(r"radiotherap|radiation therap|chemoradi|irradiation|\brt\b|imrt|vmat|proton|stereotactic|"
                      r"radiosurg|gamma knife|\bsrs\b|\bsbrt\b|teleradiotherapy", re.I)
MRI_WORDS = re.compile(r"\bmri?\b|magnetic resonance|\bmr\b", re.I)
NOT_EVALUABLE_WORDS = re.compile(r"non-?diagnostic|not evaluable|non-?evaluable|uninterpretable|"
                                 r"severe (?:motion|susceptibility) artefact|could not be (?:assessed|evaluated)", re.I)
SPD_TEXT = re.compile(r"(?:\bSPD\b|sum of (?:the )?products(?: of (?:the )?(?:perpendicular )?diameters)?)"
                      r"[^0-9]{0,25}?(\d+(?:\.\d+)?)\s*(mm2|mm²|mm\^2|cm2|cm²|cm\^2)", re.I)
OUTSIDE_FIELD = re.compile(r"outside (?:of )?the (?:radiation|radiotherapy|rt|treatment) (?:field|volume|port)|"
                           r"out-of-field|outside (?:the )?(?:high[- ]dose )?(?:radiation )?field", re.I)
NEGATED_DETERIORATION = re.compile(r"\bno\b[^.]{0,30}deteriorat|not tumou?r[- ]related|non-tumou?r|unrelated|"
                                   r"other cause|due to (?!tumou?r|progress|disease)|radiation necrosis|"
                                   r"not due to (?:the )?tumou?r",
                                   re.I)
DETERIORATION = re.compile(r"deteriorat|worse|declin|progressive (?:neurolog|symptom)", re.I)
# RANO's own wording "clinical deterioration not due to other causes" (and "attributed to tumour, not to other
# causes", "no other cause found") affirms tumour-related deterioration: these phrases are taken out before the
# negation test, whose "other cause" / "due to ..." patterns would otherwise read them as a denial (criteria.md §10.2
# row PD)
AFFIRMED_CAUSE = re.compile(r"\bnot\s+(?:(?:due|related|attributable|secondary)\s+)?to\s+(?:any\s+)?other\s+causes?|"
                            r"\bno\s+other\s+(?:\w+\s+)?causes?(?:\s+(?:found|identified))?", re.I)


def negated_deterioration(text: str) -> bool:
    """The text denies tumour-related deterioration ("no deterioration", "not tumour-related", "due to
    radiation necrosis"); RANO's "not due to other causes" is an affirmation, not a denial."""
    return bool(NEGATED_DETERIORATION.search(AFFIRMED_CAUSE.sub(" ", text)))


@dataclass
class _Scan:
    when: date
    refs: list[str] = field(default_factory=list)
    spd: Decimal | None = None
    spd_ref: str | None = None
    lesion_products: dict[str, Decimal | None] = field(default_factory=dict)
    text_spd: Decimal | None = None
    volume: Decimal | None = None
    non_enhancing: Decimal | None = None
    new_lesion: bool = False
    new_outside_field: bool = False
    non_measurable: str | None = None   # progression | present | absent
    evaluable: bool = True
    label: str | None = None
    clinical: tuple[int, bool] | None = None  # (distance in days, deterioration)


@dataclass
class RanoMapping:
    inputs: engine.RANOInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


# --- helpers ---------------------------------------------------------------------------------------------------
def _value_word(obs: Resource) -> str | None:
    """A status Observation's value as one lower-case word: boolean -> yes/no, coded -> code, else text."""
    if isinstance(obs.get("valueBoolean"), bool):
        return "yes" if obs["valueBoolean"] else "no"
    vc = obs.get("valueCodeableConcept")
    for k in sorted(concept_keys(vc)):
        return k.split("|", 1)[1].strip().lower()
    text = concept_text(vc) or (obs.get("valueString") if isinstance(obs.get("valueString"), str) else "")
    return text.strip().lower() or None


def _notes_text(res: Resource) -> str:
    parts = [n["text"] for n in items(res, "note") if isinstance(n, dict) and isinstance(n.get("text"), str)]
    parts.append(concept_text(res.get("valueCodeableConcept")))
    if isinstance(res.get("valueString"), str):
        parts.append(res["valueString"])
    for c in items(res, "component"):
        if isinstance(c, dict):
            parts.append(concept_text(c.get("code")) + " " + (_value_word(c) or ""))
    return " ".join(p for p in parts if p)


def _report_index(record: PatientRecord) -> dict[str, Resource]:
    out = {}
    for rep in record.of_type("DiagnosticReport"):
        for r in items(rep, "result"):
            target = record.get(r)
            if target is not None and ref_of(target):
                out[ref_of(target)] = rep
    return out


def _lesion_key(obs: Resource, record: PatientRecord) -> str:
    for f in items(obs, "focus"):
        if not isinstance(f, dict):
            continue
        body = record.get(f)
        if body is not None:
            for ident in items(body, "identifier"):
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    return ident["value"]
            return ref_of(body) or ""
        ident = f.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return ident["value"]
        if isinstance(f.get("reference"), str):
            return f["reference"]
    site = concept_text(obs.get("bodySite"))
    return f"site:{site}" if site else ""


def _diameters(obs: Resource, record: PatientRecord) -> tuple[Decimal | None, Decimal | None, bool]:
    """(longest mm, perpendicular mm, too small) of one TumorSize."""
    longest = other = None
    small = bool(concept_keys(obs.get("interpretation")) & {codes.TOO_SMALL})
    for c in items(obs, "component"):
        if not isinstance(c, dict):
            continue
        keys = concept_keys(c.get("code"))
        if codes.TOO_SMALL in concept_keys(c.get("valueCodeableConcept")):
            small = True
            continue
        v, unit, _ = quantity(c.get("valueQuantity"))
        if v is None:
            continue
        try:
            mm = normalise(v, unit, LENGTH_MM)
        except UnitError as exc:
            record.issue(obs, "tumour size skipped", str(exc))
            continue
        if codes.LONGEST_DIMENSION in keys and longest is None:
            longest = mm
        elif codes.OTHER_DIMENSION in keys and other is None:
            other = mm
    return longest, other, small


# --- corticosteroids -------------------------------------------------------------------------------------------
_FREQ = ((re.compile(r"\b(?:qid|q\.i\.d\.?|four times (?:a |per |each )?day|4 ?x ?(?:daily|/ ?day|a day))", re.I), 4),
         (re.compile(r"\b(?:tid|t\.i\.d\.?|three times (?:a |per |each )?day|3 ?x ?(?:daily|/ ?day|a day))", re.I), 3),
         (re.compile(r"\b(?:bid|b\.i\.d\.?|twice (?:a |per |each )?day|twice daily|2 ?x ?(?:daily|/ ?day|a day))",
                     re.I), 2),
         (re.compile(r"\bq ?6 ?h", re.I), 4), (re.compile(r"\bq ?8 ?h", re.I), 3), (re.compile(r"\bq ?12 ?h", re.I), 2),
         (re.compile(r"every other day|alternate days|\bqod\b", re.I), Decimal("0.5")),
         (re.compile(r"\b(?:qd|od|once (?:a |per |each )?day|once daily|daily|per day|a day|q ?24 ?h|nocte|mane)\b|"
                     r"/ ?(?:day|d)\b", re.I), 1))
_DOSE = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|milligrams?|micrograms?|mcg|ug|µg)\b", re.I)
_MASS = {"mg": Decimal(1), "g": Decimal(1000), "ug": Decimal("0.001"), "mcg": Decimal("0.001"),
         "µg": Decimal("0.001"), "microgram": Decimal("0.001"), "micrograms": Decimal("0.001"),
         "milligram": Decimal(1), "milligrams": Decimal(1)}


def per_day_from_text(text: str) -> Decimal | None:
    """Administrations per day named in dosage text (BID = 2, q8h = 3, daily = 1 ...), None when not stated."""
    for rx, n in _FREQ:
        if rx.search(text):
            return Decimal(n)
    return None


def _per_day(timing: Any) -> Decimal | None:
    if not isinstance(timing, dict):
        return None
    rep = timing.get("repeat") if isinstance(timing.get("repeat"), dict) else {}
    freq, period, unit = rep.get("frequency"), rep.get("period"), rep.get("periodUnit")
    if period is not None and unit in ("h", "d", "wk"):
        f = Decimal(freq if isinstance(freq, int) else 1)
        p = to_decimal(period)
        if p and p > 0:
            return {"h": f * 24 / p, "d": f / p, "wk": f / (7 * p)}[unit]
    if isinstance(freq, int) and freq > 0 and period is None:
        return Decimal(freq)
    code_text = concept_text(timing.get("code")) + " " + " ".join(
        k.split("|", 1)[1] for k in concept_keys(timing.get("code")))
    return per_day_from_text(code_text) if code_text.strip() else None


def _steroid_of(entry: MedEntry) -> tuple[str, Decimal] | None:
    for name, factor, rx in STEROIDS:
        if name in entry.text or any(f"{RXNORM}|{c}" in entry.codes for c in rx):
            return name, factor
    return None


def daily_dose_mg(res: Resource, fallback_text: str = "") -> Decimal | None:
    """Drug mg per day from dosage (structured, then text), or None when it cannot be read."""
    total = None
    for ds in dosages(res):
        dose = None
        for dr in items(ds, "doseAndRate"):
            if isinstance(dr, dict):
                v, unit, _ = quantity(dr.get("doseQuantity"))
                if v is not None and (unit or "mg") in _MASS:
                    dose = v * _MASS[unit or "mg"]
                    break
        text = ds.get("text") if isinstance(ds.get("text"), str) else ""
        per_day = _per_day(ds.get("timing"))
        if dose is None and text:
            mm = _DOSE.search(text)
            if mm:
                dose = Decimal(mm.group(1)) * _MASS.get(mm.group(2).lower(), Decimal(1))
        if per_day is None and text:
            per_day = per_day_from_text(text)
        if dose is None and isinstance(ds.get("dose"), dict):  # MedicationAdministration.dosage.dose
            v, unit, _ = quantity(ds["dose"])
            if v is not None and (unit or "mg") in _MASS:
                dose, per_day = v * _MASS[unit or "mg"], per_day or Decimal(1)
        if dose is None or per_day is None:
            continue
        total = (total or Decimal(0)) + dose * per_day
    if total is None and fallback_text:
        mm = _DOSE.search(fallback_text)
        per_day = per_day_from_text(fallback_text)
        if mm and per_day is not None:
            total = Decimal(mm.group(1)) * _MASS.get(mm.group(2).lower(), Decimal(1)) * per_day
    return total


@dataclass(frozen=True)
class SteroidOrder:
    drug: str
    start: date
    end: date | None
    dex_mg_day: Decimal | None      # None: dose not readable
    physiological: bool
    ref: str | None


def steroid_orders(record: PatientRecord) -> list[SteroidOrder]:
    out = []
    for m in medication_entries(record):
        hit = _steroid_of(m)
        if hit is None or m.start is None:
            continue
        name, factor = hit
        if m.status == "not-taken":
            out.append(SteroidOrder(name, m.start, m.end, Decimal(0), False, m.ref))
            continue
        mg = daily_dose_mg(m.resource, m.text)
        if mg is None:
            record.issue(m.resource, "corticosteroid dose not read", "no dose per day in dosage or its text")
        dex = mg * factor if mg is not None else None
        notes = " ".join(ds.get("text", "") for ds in dosages(m.resource) if isinstance(ds.get("text"), str)).lower()
        physiological = (name == "hydrocortisone" and mg is not None and mg <= PHYSIOLOGICAL_HYDROCORTISONE_MG) or \
            "replacement" in notes or "physiolog" in notes or "replacement" in m.text
        out.append(SteroidOrder(name, m.start, m.end, dex, physiological, m.ref))
    return sorted(out, key=lambda o: (o.start, o.ref or ""))


def steroid_at(orders: list[SteroidOrder], when: date) -> tuple[Decimal | None, bool, tuple[str, ...]]:
    """(dexamethasone-equivalent mg/day, physiological replacement only, refs) at a date; None when unknown."""
    started = [o for o in orders if o.start <= when]
    if not started:
        return None, False, ()
    latest: dict[str, SteroidOrder] = {}
    for o in started:
        latest[o.drug] = o
    total, physiological, refs = Decimal(0), True, []
    for o in latest.values():
        if o.end is not None and o.end < when:
            continue  # stopped before this scan
        if o.dex_mg_day is None:
            return None, False, ()
        if o.dex_mg_day > 0:
            total += o.dex_mg_day
            physiological = physiological and o.physiological
            if o.ref:
                refs.append(o.ref)
    return total, physiological and total > 0, tuple(refs)


# --- clinical status / flags -------------------------------------------------------------------------------------
def _deterioration(obs: Resource) -> bool | None:
    keys = concept_keys(obs.get("valueCodeableConcept"))
    text = _notes_text(obs).lower()
    word = _value_word(obs) or ""
    if isinstance(obs.get("valueBoolean"), bool):
        if not obs["valueBoolean"]:
            return False
        return not negated_deterioration(text)
    if keys & {STABLE, IMPROVED} or word in ("stable", "improved", "no-deterioration",
                                              "no-tumour-related-deterioration",
                                              "no-tumor-related-deterioration", "deterioration-not-tumour-related",
                                              "deterioration-not-tumor-related"):
        return False
    if keys & {WORSENED} or word in ("tumour-related-deterioration", "tumor-related-deterioration", "deteriorated",
                                     "worsened", "deterioration"):
        return not negated_deterioration(text.replace(word, ""))
    if DETERIORATION.search(text):
        return not negated_deterioration(text)
    if "stable" in text or "improv" in text:
        return False
    return None


def _condition_text(record: PatientRecord, routed: RoutedCancer | None) -> tuple[str, Resource | None]:
    cond = record.get(routed.condition_ref) if routed and routed.condition_ref else None
    if cond is None:
        return (routed.condition_text.lower() if routed else ""), None
    parts = [displays(cond.get("code"))]
    parts += [n["text"] for n in items(cond, "note") if isinstance(n, dict) and isinstance(n.get("text"), str)]
    for s in items(cond, "stage"):
        if isinstance(s, dict):
            parts.append(concept_text(s.get("summary")))
    return " ".join(p for p in parts if p).lower(), cond


def _radiotherapy_end(record: PatientRecord, as_of: date) -> tuple[date | None, date | None, str | None]:
    best: tuple[date, date | None, str | None] | None = None
    for proc in record.of_type("Procedure"):
        if proc.get("status") in ("not-done", "preparation"):
            continue
        if not (concept_keys(proc.get("code")) & RT_SNOMED or RT_WORDS.search(concept_text(proc.get("code")))):
            continue
        period = proc.get("performedPeriod") if isinstance(proc.get("performedPeriod"), dict) else {}
        end = parse_date(period.get("end")) or parse_date(proc.get("performedDateTime"))
        start = parse_date(period.get("start")) or end
        if end is None:
            if proc.get("status") == "in-progress":
                continue
            record.issue(proc, "radiotherapy skipped", "no end date (performedPeriod.end)")
            continue
        if end > as_of:
            continue
        if best is None or end > best[0]:
            best = (end, start, ref_of(proc))
    return (best[0], best[1], best[2]) if best else (None, None, None)


def _latest_word(record: PatientRecord, key: str, options: Mapping[str, Any] | None, *, input_name: str) -> str | None:
    out = None
    for obs in record.with_codes([key] + [k for k, _ in local_codes(options, input_name)], "Observation"):
        out = _value_word(obs) or out
    return out


def _flags(record: PatientRecord, options: Mapping[str, Any] | None) -> dict[str, str]:
    """Latest value of the patient-level flags (setting, IDH, volumetric, confirm progression)."""
    found = {SETTING: _latest_word(record, SETTING, options, input_name="glioma_disease_setting"),
             IDH_STATUS: _latest_word(record, IDH_STATUS, options, input_name="idh_status"),
             VOLUMETRIC: _latest_word(record, VOLUMETRIC, options, input_name="rano_volumetric"),
             CONFIRM_PROGRESSION: _latest_word(record, CONFIRM_PROGRESSION, options,
                                               input_name="rano_confirm_progression")}
    return {k: v for k, v in found.items() if v}


def _idh_mutant(record: PatientRecord, flags: dict[str, str], cond_text: str) -> bool | None:
    w = flags.get(IDH_STATUS)
    if w:
        return w.startswith("mut") or w in ("yes", "positive", "detected")
    for obs in record.of_type("Observation"):
        if "idh" not in concept_text(obs.get("code")).lower():
            continue
        val = (_value_word(obs) or "") + " " + _notes_text(obs).lower()
        if re.search(r"wild|not detected|negative|absent", val):
            return False
        if re.search(r"mutant|mutation|detected|positive|present|r132|r172", val):
            return True
    if re.search(r"idh[- ]?(?:1|2|1/2)?[- ]?wild", cond_text):
        return False
    if re.search(r"idh[- ]?(?:1|2|1/2)?[- ]?mut|oligodendroglioma", cond_text):
        return True
    return None


# --- the mapping -------------------------------------------------------------------------------------------------
def _is_mri_report(rep: Resource) -> bool:
    text = displays(rep.get("code"))
    return bool(MRI_WORDS.search(text)) and bool(re.search(r"brain|head|cranial|neuro|glioma", text, re.I))


def map_rano(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
             options: Mapping[str, Any] | None = None) -> RanoMapping:
    options = options or {}
    report_of = _report_index(record)
    scans: dict[date, _Scan] = {}
    notes: list[str] = []

    def when_of(obs: Resource) -> date | None:
        rep = report_of.get(ref_of(obs) or "")
        return (effective_date(rep) if rep is not None else None) or effective_date(obs)

    def slot(d: date, res: Resource | None = None) -> _Scan:
        s = scans.setdefault(d, _Scan(d))
        rep = report_of.get(ref_of(res) or "") if res is not None else None
        for r in (rep, res):
            if r is not None and ref_of(r) and ref_of(r) not in s.refs:
                s.refs.append(ref_of(r))
        return s

    # measurements ---------------------------------------------------------------------------------------------
    for name, keys, spec, attr in (("rano_spd", [SPD], SPD_SPEC, "spd"),
                                   ("rano_non_enhancing_spd", [NON_ENHANCING_SPD], SPD_SPEC, "non_enhancing"),
                                   ("rano_volume", [VOLUME], VOLUME_MM3, "volume")):
        for obs in record.with_codes(keys + [k for k, _ in local_codes(options, name)], "Observation"):
            if obs.get("dataAbsentReason") is not None:
                d = when_of(obs)
                if d is not None and attr == "spd":
                    slot(d, obs).evaluable = False
    for lv in lab_series(record, [SPD], SPD_SPEC, input_name="rano_spd", options=options, what="SPD"):
        s = slot(when_of(lv.resource) or lv.date, lv.resource)
        s.spd, s.spd_ref = lv.value, lv.ref
    for lv in lab_series(record, [NON_ENHANCING_SPD], SPD_SPEC, input_name="rano_non_enhancing_spd", options=options,
                         what="non-enhancing SPD"):
        slot(when_of(lv.resource) or lv.date, lv.resource).non_enhancing = lv.value
    for lv in lab_series(record, [VOLUME], VOLUME_MM3, input_name="rano_volume", options=options, what="tumour volume"):
        slot(when_of(lv.resource) or lv.date, lv.resource).volume = lv.value

    # bidimensional lesions (mCODE TumorSize) ---------------------------------------------------------------------
    sizes = record.with_codes([codes.TUMOR_SIZE], "Observation")
    first_seen: dict[str, date] = {}
    lesion_rows = []
    for obs in sizes:
        d = when_of(obs)
        if d is None:
            record.issue(obs, "tumour size skipped", "no date")
            continue
        key = _lesion_key(obs, record)
        if not key:
            record.issue(obs, "tumour size skipped", "no lesion identifier (focus) or body site to track it by")
            continue
        longest, other, small = _diameters(obs, record)
        role = None
        for c in items(obs, "component"):
            if isinstance(c, dict) and codes.LESION_ROLE in concept_keys(c.get("code")):
                role = _value_word(c)
        lesion_rows.append((d, key, longest, other, small, role, obs))
        first_seen[key] = min(first_seen.get(key, d), d)
    first_scan = min(first_seen.values()) if first_seen else None
    for d, key, longest, other, small, role, obs in lesion_rows:
        s = slot(d, obs)
        is_new = role == "new" or (role is None and first_scan is not None and first_seen[key] > first_scan)
        if is_new:
            if longest is not None and other is not None and longest >= engine.MEASURABLE_MIN_DIAMETER_MM \
                    and other >= engine.MEASURABLE_MIN_DIAMETER_MM and first_seen[key] == d:
                s.new_lesion = True
            continue
        if small:
            s.lesion_products[key] = Decimal(0)
            if s.non_measurable is None:
                s.non_measurable = "present"
            continue
        if longest is None or other is None:
            record.issue(obs, "tumour size not used", "RANO needs both perpendicular diameters (33728-7 and 33729-5)")
            s.lesion_products[key] = None
            continue
        s.lesion_products[key] = longest * other

    # status observations -----------------------------------------------------------------------------------------
    def statuses(keys: Iterable[str], *, input_name: str) -> list[tuple[date, Resource, str | None]]:
        out = []
        for obs in record.with_codes(list(keys) + [k for k, _ in local_codes(options, input_name)], "Observation"):
            d = when_of(obs)
            if d is None:
                record.issue(obs, "RANO finding skipped", "no date")
                continue
            out.append((d, obs, _value_word(obs)))
        return out

    for d, obs, w in statuses([NEW_LESION, codes.NEW_LESION], input_name="rano_new_lesion"):
        s = slot(d, obs)
        if w in ("yes", "true", "present", "new", "y"):
            s.new_lesion = True
            if OUTSIDE_FIELD.search(_notes_text(obs)) or concept_text(obs.get("bodySite")) and \
                    OUTSIDE_FIELD.search(concept_text(obs.get("bodySite"))):
                s.new_outside_field = True
    for d, obs, w in statuses([NEW_OUTSIDE_FIELD], input_name="rano_new_lesion_outside_rt_field"):
        if w in ("yes", "true", "y"):
            s = slot(d, obs)
            s.new_lesion = True
            s.new_outside_field = True
    for d, obs, w in statuses([NON_MEASURABLE, codes.NON_TARGET_RESPONSE], input_name="rano_non_measurable_disease"):
        s = slot(d, obs)
        if w in ("progression", "pd", "progressed", "unequivocal-progression", "yes"):
            s.non_measurable = "progression"
        elif w in ("absent", "cr", "none", "resolved", "no"):
            s.non_measurable = s.non_measurable if s.non_measurable == "present" else "absent"
        elif w:
            s.non_measurable = s.non_measurable or "present"
    for d, obs, w in statuses([SCAN_EVALUABLE], input_name="rano_scan_evaluable"):
        if w in ("no", "false", "not-evaluable", "ne"):
            slot(d, obs).evaluable = False
    for d, obs, w in statuses([BASELINE_SCAN], input_name="rano_baseline_scan"):
        if w in ("yes", "true", "baseline"):
            slot(d, obs).label = "baseline"

    # MRI reports: baseline wording, non-diagnostic, SPD stated in text ------------------------------------------
    for rep in record.of_type("DiagnosticReport"):
        d = effective_date(rep)
        if d is None:
            continue
        grouped = d in scans and ref_of(rep) in scans[d].refs
        if not grouped and not _is_mri_report(rep):
            continue
        text = report_text(rep)
        s = slot(d, rep)
        if says_baseline(concept_text(rep.get("code"))) or says_baseline(text[:200]):
            s.label = s.label or "baseline"
        if NOT_EVALUABLE_WORDS.search(text):
            s.evaluable = False
        mm = SPD_TEXT.search(text)
        if mm:
            unit = mm.group(2).replace("²", "2").replace("^2", "2").lower()
            try:
                s.text_spd = normalise(Decimal(mm.group(1)), unit, SPD_SPEC)
            except UnitError:
                pass

    scan_list = sorted((s for s in scans.values() if s.when <= as_of), key=lambda s: s.when)
    if not scan_list:
        return RanoMapping(None, ("MRI time points with an SPD (the project's rano-spd Observation or mCODE "
                                  "TumorSize with two diameters)",))

    # clinical status -> nearest scan within 28 days ------------------------------------------------------------
    for d, obs, _w in statuses([CLINICAL_STATUS, CLINICAL_DETERIORATION], input_name="rano_clinical_status"):
        det = _deterioration(obs)
        if det is None:
            continue
        near = min(scan_list, key=lambda s: (abs((s.when - d).days), -s.when.toordinal()))
        dist = abs((near.when - d).days)
        if dist > 28:
            record.issue(obs, "clinical status not used", "no MRI within 28 days")
            continue
        if near.clinical is None or dist < near.clinical[0] or (dist == near.clinical[0] and det):
            near.clinical = (dist, det)

    # settings -----------------------------------------------------------------------------------------------------
    flags = _flags(record, options)
    cond_text, cond = _condition_text(record, routed)
    rt_end, rt_start, rt_ref = _radiotherapy_end(record, as_of)
    setting = flags.get(SETTING, "")
    recurrent = setting.startswith("recur") or bool(re.search(r"recurren|relapse|progressive glio|second[- ]line",
                                                              cond_text))
    if cond is not None and {k.split("|", 1)[1] for k in concept_keys(cond.get("clinicalStatus"))} & {"recurrence",
                                                                                                      "relapse"}:
        recurrent = True
    newly = setting.startswith("new") or (not recurrent and bool(re.search(r"newly[- ]diagnosed|new diagnosis",
                                                                            cond_text)))
    onset = routed.onset if routed else None
    if not newly and not recurrent and rt_start is not None and onset is not None \
            and 0 <= (rt_start - onset).days <= 183:
        newly = True
    idh = _idh_mutant(record, flags, cond_text)
    mr_eligible = bool(idh) or bool(re.search(r"non-?enhancing|low[- ]grade|grade (?:2|ii)\b|oligodendroglioma",
                                              cond_text)) or any(s.non_enhancing is not None for s in scan_list)
    volumetric = options.get("rano_volumetric") is True or flags.get(VOLUMETRIC) in ("yes", "true") or (
        sum(1 for s in scan_list if s.volume is not None) >= 2 and all(s.spd is None and not s.lesion_products
                                                                        for s in scan_list))
    meds = medication_entries(record)
    checkpoint = CHECKPOINT_INHIBITORS + tuple(str(x).lower() for x in options.get("checkpoint_inhibitors") or ())
    on_checkpoint = any(any(w in m.text for w in checkpoint) and m.start is not None and m.start <= as_of
                        and m.status not in ("not-taken", "entered-in-error", "cancelled") for m in meds)
    confirm_pd = options.get("rano_confirm_progression") is True or flags.get(CONFIRM_PROGRESSION) in ("yes", "true") \
        or on_checkpoint
    if on_checkpoint and flags.get(CONFIRM_PROGRESSION) is None and options.get("rano_confirm_progression") is None:
        notes.append("On an immune checkpoint inhibitor: imaging progression needs a confirmation scan (RANO 2.0).")

    therapy = therapy_start(record, routed, [s.when for s in scan_list], GLIOMA_DRUGS)
    start = therapy.start if therapy.start is not None and therapy.start <= as_of else None

    # steroids -------------------------------------------------------------------------------------------------------
    orders = steroid_orders(record)

    # build engine scans -------------------------------------------------------------------------------------------
    eng_scans = []
    for s in scan_list:
        spd = s.spd
        if spd is None and s.lesion_products and all(v is not None for v in s.lesion_products.values()):
            spd = sum(s.lesion_products.values(), Decimal(0))
        if spd is None:
            spd = s.text_spd
        dose, physiological, steroid_refs = steroid_at(orders, s.when)
        nmp = s.non_measurable
        eng_scans.append(engine.RANOScan(
            s.when, spd_mm2=spd, volume_mm3=s.volume, non_enhancing_spd_mm2=s.non_enhancing,
            new_measurable_lesion=s.new_lesion, new_lesion_outside_rt_field=s.new_outside_field,
            non_measurable_progression=nmp == "progression",
            non_measurable_disease_present=None if nmp is None else nmp in ("present", "progression"),
            steroid_dose_mg_day=dose, physiological_steroids_only=physiological,
            clinical_deterioration=s.clinical[1] if s.clinical else None,
            evaluable=s.evaluable, ref=s.spd_ref or (s.refs[0] if s.refs else None), label=s.label))

    # baseline ------------------------------------------------------------------------------------------------
    labelled = any(s.label for s in eng_scans)
    by_start = start is not None and not newly and any(s.date <= start for s in eng_scans)
    by_rt = newly and rt_end is not None
    if not labelled and not by_start and not by_rt and not (newly and rt_end is None):
        first = eng_scans[0]
        eng_scans[0] = dataclasses.replace(first, label="baseline")
        notes.append(f"No baseline MRI identified (no treatment start, post-radiotherapy or labelled baseline scan): "
                     f"the earliest MRI in the record, {first.date}, is used as the reference.")
    elif by_start and not labelled:
        notes.append(f"Treatment start {start} ({therapy.label}) from the medication record: the baseline is the "
                     "last MRI on or before it.")
    notes.extend(therapy.notes if by_start else ())
    if not orders:
        notes.append("No corticosteroid medication in the record: the steroid requirement was not checked.")
    missing: tuple[str, ...] = ()
    if newly and rt_end is None and not labelled:
        missing = ("end date of radiotherapy (Procedure with performedPeriod.end): the baseline of a newly diagnosed "
                   "glioma is the first MRI after radiotherapy",)
    inputs = engine.RANOInputs(
        tuple(eng_scans), treatment_start=start, newly_diagnosed=newly, radiotherapy_end=rt_end,
        minor_response_eligible=mr_eligible, volumetric=volumetric, confirm_progression=confirm_pd)
    return RanoMapping(inputs, missing, tuple(notes))


__all__ = ["OBSERVATION_CODES", "map_rano", "steroid_orders", "steroid_at", "daily_dose_mg"]
