"""PCWG3 inputs from FHIR: PSA Observations, the start of the current systemic therapy, bone-scan reports.

Representations and codes are documented with examples in docs/fhir-inputs-pcwg3.md.

* PSA: LOINC 2857-1 (primary), 83112-3 (immunoassay), 35741-8 (ultrasensitive) in ng/mL or µg/L (equal);
  configured local codes under ``options["local_codes"]["psa"]``.  19197-3 (moles/volume) and 19195-7
  (units/volume) are recognised and reported as unusable: PCWG3 thresholds are in ng/mL.
* Treatment start: the start of the current line of systemic anticancer therapy (MedicationRequest,
  MedicationAdministration or MedicationStatement), see :func:`therapy_start`.  The baseline PSA and the
  baseline bone scan are the last ones on or before it (the engine's rule).
* Bone scans: DiagnosticReports of a bone scan whose ``result`` holds the project's count Observations
  (``bone-scan-new-lesions`` vs baseline, ``bone-scan-additional-new-lesions`` vs the first post-treatment
  scan, ``bone-scan-lesion-count``), or, without them, the counts stated in the conclusion / presentedForm
  text ("2 new lesions", "no new osseous lesions", "10 bone metastases", "non-diagnostic study").

The therapy helpers here (:func:`medication_entries`, :func:`therapy_start`) are shared by the GCIG and RANO
mappers: the same "start of the current line" rule serves all three.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping

from fhir_mappings.labs import lab_series, local_codes, report_text
from fhir_mappings.record import (
    LOCAL,
    LOINC,
    PatientRecord,
    Resource,
    concept_keys,
    concept_text,
    effective_date,
    parse_date,
    ref_of,
    to_decimal,
)
from fhir_mappings.routing import RoutedCancer, classify
from fhir_mappings.units import UnitSpec
from rules import pcwg3 as engine

# --- codes -------------------------------------------------------------------------------------------------
PSA_CODES = (f"{LOINC}|2857-1", f"{LOINC}|83112-3", f"{LOINC}|35741-8")   # codes.md §3.5, grade A
PSA_UNUSABLE = {f"{LOINC}|19197-3": "PSA in moles/volume (LOINC 19197-3)",      # codes.md §3.5, grade A
                f"{LOINC}|19195-7": "PSA in arbitrary units/volume (LOINC 19195-7)"}
PSA_SPEC = UnitSpec("PSA", "ng/mL", ("ug/L", "ng/ml", "ug/l", "pg/mL", "ng/dL"))

BONE_NEW = f"{LOCAL}|bone-scan-new-lesions"                 # new lesions compared with the baseline scan
BONE_ADDITIONAL = f"{LOCAL}|bone-scan-additional-new-lesions"  # new lesions compared with the first post-treatment scan
BONE_COUNT = f"{LOCAL}|bone-scan-lesion-count"              # total bone lesions seen
BONE_SCAN_REPORT = f"{LOINC}|41827-8"                       # NM Bone scan whole body (grade C: verify before relying)
BONE_CODES = (BONE_NEW, BONE_ADDITIONAL, BONE_COUNT)
OBSERVATION_CODES = PSA_CODES + tuple(PSA_UNUSABLE) + BONE_CODES

BONE_SCAN_WORDS = re.compile(r"bone scan|bone scintigra|skeletal scintigra|whole[- ]body bone|nm bone|"
                             r"bone imaging|tc-?99m? ?m?dp|99mtc|technetium", re.I)

# --- therapy (shared by the PCWG3, GCIG and RANO mappers) --------------------------------------------------
ATC = "http://www.whocc.no/atc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
GENERIC_ANTICANCER = ("chemotherapy", "antineoplastic", "anticancer", "anti-cancer", "systemic therapy",
                      "systemic anticancer", "study drug", "investigational", "protocol therapy", "cycle 1", "c1d1")
SUPPORTIVE = ("dexamethasone", "prednis", "methylpred", "hydrocortisone", "cortisone", "fludrocortisone",
              "ondansetron", "granisetron", "palonosetron", "aprepitant", "metoclopramide", "filgrastim",
              "pegfilgrastim", "lenograstim", "epoetin", "darbepoetin", "denosumab", "zoledron", "dronate",
              "calcium", "vitamin", "cholecalciferol", "paracetamol", "acetaminophen", "ibuprofen", "morphine",
              "oxycodone", "fentanyl", "tramadol", "codeine", "pantoprazole", "omeprazole", "esomeprazole",
              "levetiracetam", "keppra", "lacosamide", "valpro", "phenytoin", "lamotrigine", "carbamazepine",
              "enoxaparin", "heparin", "apixaban", "rivaroxaban", "warfarin", "loperamide", "senna", "lactulose",
              "allopurinol", "metformin", "insulin", "amlodipine", "atorvastatin", "co-trimoxazole",
              "trimethoprim", "sulfamethoxazole", "antiemetic")
PROSTATE_DRUGS = ("abiraterone", "enzalutamide", "apalutamide", "darolutamide", "docetaxel", "cabazitaxel",
                  "radium", "lutetium", "177lu", "psma", "olaparib", "rucaparib", "niraparib", "talazoparib",
                  "sipuleucel", "pembrolizumab", "carboplatin", "cisplatin", "mitoxantrone", "capivasertib")
ADT_DRUGS = ("leuprolide", "leuprorelin", "goserelin", "triptorelin", "degarelix", "relugolix", "histrelin",
             "bicalutamide", "flutamide", "nilutamide", "orchiectomy")

LINE_GAP_DAYS = 7  # drugs started within a week of each other are one line (e.g. carboplatin + paclitaxel)


def items(res: Any, key: str) -> list:
    """``res[key]`` when it is a list (FHIR arrays), else [] (malformed data never raises)."""
    v = res.get(key) if isinstance(res, dict) else None
    return v if isinstance(v, list) else []


def displays(concept: Any) -> str:
    """text plus every coding display of a CodeableConcept, lower case ('' for anything else)."""
    if not isinstance(concept, dict):
        return ""
    parts = [concept_text(concept)] + [c["display"] for c in items(concept, "coding")
                                       if isinstance(c, dict) and isinstance(c.get("display"), str)]
    return " ".join(p for p in parts if p).lower()


@dataclass(frozen=True)
class MedEntry:
    """One medication resource: its drug text (lower case), codes, start/end and status."""

    text: str
    codes: frozenset[str]
    start: date | None
    end: date | None
    status: str | None
    resource: Resource
    ref: str | None

    @property
    def kind(self) -> str:
        return self.resource.get("resourceType", "")


def _med_concept(res: Resource, record: PatientRecord) -> tuple[str, frozenset[str]]:
    concept = res.get("medicationCodeableConcept")
    if not isinstance(concept, dict) and isinstance(res.get("medicationReference"), dict):
        med = record.get(res["medicationReference"])
        concept = med.get("code") if isinstance(med, dict) else None
        if not isinstance(concept, dict) and isinstance(res["medicationReference"].get("display"), str):
            return res["medicationReference"]["display"].lower(), frozenset()
    return displays(concept), frozenset(concept_keys(concept))


def dosages(res: Resource) -> list[dict]:
    """dosageInstruction (MedicationRequest) / dosage (MedicationStatement, MedicationAdministration)."""
    raw = res.get("dosageInstruction") or res.get("dosage") or []
    if isinstance(raw, dict):  # MedicationAdministration.dosage is a single object
        raw = [raw]
    return [d for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []


def _start_end(res: Resource) -> tuple[date | None, date | None]:
    start = end = None
    for d in dosages(res):
        timing = d.get("timing") if isinstance(d.get("timing"), dict) else {}
        repeat = timing.get("repeat") if isinstance(timing.get("repeat"), dict) else {}
        bounds = repeat.get("boundsPeriod")
        if isinstance(bounds, dict):
            start = start or parse_date(bounds.get("start"))
            end = end or parse_date(bounds.get("end"))
    period = res.get("effectivePeriod")
    if isinstance(period, dict):
        start = start or parse_date(period.get("start"))
        end = end or parse_date(period.get("end"))
    start = start or parse_date(res.get("effectiveDateTime")) or parse_date(res.get("authoredOn")) \
        or parse_date(res.get("dateAsserted"))
    if res.get("resourceType") == "MedicationAdministration" and end is None \
            and isinstance(res.get("effectiveDateTime"), str):
        end = start
    return start, end


def medication_entries(record: PatientRecord) -> list[MedEntry]:
    out = []
    for rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement"):
        for res in record.of_type(rtype):
            text, codes = _med_concept(res, record)
            start, end = _start_end(res)
            status = res.get("status") if isinstance(res.get("status"), str) else None
            out.append(MedEntry(text, codes, start, end, status, res, ref_of(res)))
    return sorted(out, key=lambda m: (m.start or date.min, m.ref or ""))


def _words_match(text: str, words: Iterable[str]) -> bool:
    return any(w in text for w in words)


def cancer_related(entry: MedEntry, record: PatientRecord, routed: RoutedCancer | None) -> bool:
    """The medication names the routed cancer as its reason (reasonReference or reasonCode)."""
    if routed is None:
        return False
    res = entry.resource
    for r in items(res, "reasonReference"):
        if isinstance(r, dict) and isinstance(r.get("reference"), str) and routed.condition_ref:
            target = record.get(r)
            if target is not None and ref_of(target) == routed.condition_ref:
                return True
            if r["reference"].endswith(routed.condition_ref):
                return True
    for rc in items(res, "reasonCode"):
        if not isinstance(rc, dict):
            continue
        hit = classify({"code": rc})
        if hit is not None and hit[0].key == routed.cancer.key:
            return True
    return False


def is_anticancer(entry: MedEntry, record: PatientRecord, routed: RoutedCancer | None,
                  family_words: Iterable[str] = ()) -> bool:
    if entry.status in ("not-taken", "entered-in-error", "cancelled", "draft"):
        return False
    text = entry.text
    if _words_match(text, SUPPORTIVE):
        return False
    if _words_match(text, family_words) or _words_match(text, GENERIC_ANTICANCER):
        return True
    if any(k.startswith(f"{ATC}|L01") or k.startswith(f"{ATC}|L02") for k in entry.codes):
        return True
    return cancer_related(entry, record, routed)


@dataclass(frozen=True)
class TherapyStart:
    start: date | None
    entries: tuple[MedEntry, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(e.ref for e in self.entries if e.ref)

    @property
    def label(self) -> str:
        return ", ".join(sorted({e.text for e in self.entries if e.text})) or "systemic therapy"


def therapy_start(record: PatientRecord, routed: RoutedCancer | None, measurement_dates: Iterable[date],
                  family_words: Iterable[str] = (), *, fallback_words: Iterable[str] = ()) -> TherapyStart:
    """Start of the current line of systemic anticancer therapy.

    Lines are anticancer medications grouped by start date (starts within 7 days are one line).  The current
    line is the latest one with a measurement after its start (a line started after the last measurement cannot
    be assessed yet: a note says so).  ``fallback_words`` (e.g. androgen deprivation) are used only when no
    other anticancer medication is recorded.
    """
    meds = [m for m in medication_entries(record) if m.start is not None]
    chosen = [m for m in meds if is_anticancer(m, record, routed, family_words)]
    if not chosen and fallback_words:
        chosen = [m for m in meds if _words_match(m.text, fallback_words) and m.status not in ("not-taken",)]
    if not chosen:
        return TherapyStart(None)
    lines: list[list[MedEntry]] = []
    for m in sorted(chosen, key=lambda m: m.start):
        if lines and (m.start - lines[-1][0].start).days <= LINE_GAP_DAYS:
            lines[-1].append(m)
        else:
            lines.append([m])
    dates = sorted(set(measurement_dates))
    with_after = [ln for ln in lines if any(d > ln[0].start for d in dates)]
    line = with_after[-1] if with_after else lines[-1]
    notes = []
    later = [ln for ln in lines if ln[0].start > line[0].start]
    if later:
        notes.append(f"A newer therapy started on {later[-1][0].start} has no measurement after its start yet; "
                     f"the assessment refers to the therapy started on {line[0].start}.")
    return TherapyStart(line[0].start, tuple(line), tuple(notes))


# --- counts in reports -------------------------------------------------------------------------------------
_NUM_WORDS = {"no": 0, "zero": 0, "none": 0, "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "three": 3,
              "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
              "twelve": 12}
_NUM = r"(\d+|no|zero|a|an|one|single|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_LESION = r"(?:lesions?|metastas[ie]s|mets|foci|focus|deposits?|sites?)"
_NEW_RE = re.compile(_NUM + r"\s+(additional\s+|further\s+|more\s+)?(?:new\s+)(?:[a-z-]+\s+){0,2}?" + _LESION, re.I)
_ADDITIONAL_RE = re.compile(_NUM + r"\s+(?:additional|further)\s+(?:[a-z-]+\s+){0,2}?" + _LESION, re.I)
_COUNT_RE = re.compile(_NUM + r"\s+(?:(?:osseous|bone|bony|skeletal|sclerotic|blastic)\s+)(?:[a-z-]+\s+){0,1}?"
                       + _LESION, re.I)
_COUNT_STATED_RE = re.compile(r"(?:lesion count|number of (?:bone |osseous |skeletal )?lesions)\s*[:=]?\s*(\d+)", re.I)
_NO_DISEASE_RE = re.compile(r"\bno (?:scintigraphic |scintigraphical )?(?:evidence of )?(?:osseous|bone|bony|skeletal) "
                            r"(?:metasta|lesion|disease)", re.I)
_NOT_EVALUABLE_RE = re.compile(r"non-?diagnostic|not evaluable|non-?evaluable|unevaluable|uninterpretable|"
                               r"technically (?:inadequate|limited)|"
                               r"could not be (?:assessed|evaluated|interpreted)", re.I)
_BASELINE_RE = re.compile(r"\bbaseline\b", re.I)
_COMPARISON_BEFORE = re.compile(r"(compar\w*|from|since|vs\.?|versus|than|relative to|over|with|to)\s+(the\s+)?$", re.I)


def _num(token: str) -> int:
    t = token.lower()
    return int(t) if t.isdigit() else _NUM_WORDS.get(t, 0)


def stated_counts(text: str) -> dict[str, Any]:
    """New / additional / total lesion counts and evaluability stated in a bone-scan report text."""
    out: dict[str, Any] = {}
    if not text:
        return out
    if _NOT_EVALUABLE_RE.search(text):
        out["evaluable"] = False
    for m in _NEW_RE.finditer(text):
        if m.group(2):
            out.setdefault("additional", _num(m.group(1)))
        else:
            out.setdefault("new", _num(m.group(1)))
    for m in _ADDITIONAL_RE.finditer(text):
        out.setdefault("additional", _num(m.group(1)))
    m = _COUNT_STATED_RE.search(text)
    if m:
        out["count"] = int(m.group(1))
    else:
        for m in _COUNT_RE.finditer(text):
            before = text[max(0, m.start() - 12):m.start()].lower()
            if "new" in before:
                continue
            out.setdefault("count", _num(m.group(1)))
    if "count" not in out and _NO_DISEASE_RE.search(text):
        out["count"] = 0
    return out


def says_baseline(text: str) -> bool:
    """The report calls itself a baseline study ("Baseline bone scan", "post-radiotherapy baseline MRI"), as
    opposed to comparing with one ("compared with baseline")."""
    for m in _BASELINE_RE.finditer(text or ""):
        before = text[max(0, m.start() - 30):m.start()]
        if _COMPARISON_BEFORE.search(before):
            continue
        return True
    return False


def _int_value(obs: Resource) -> int | None:
    v = obs.get("valueInteger")
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    q = obs.get("valueQuantity")
    if isinstance(q, dict):
        d = to_decimal(q.get("value"))
        if d is not None and d == d.to_integral_value():
            return int(d)
    s = obs.get("valueString")
    if isinstance(s, str):
        m = re.match(r"\s*" + _NUM + r"\b", s, re.I)
        if m:
            return _num(m.group(1))
    return None


def _report_of(record: PatientRecord) -> dict[str, Resource]:
    out = {}
    for rep in record.of_type("DiagnosticReport"):
        for r in items(rep, "result"):
            target = record.get(r)
            if target is not None and ref_of(target):
                out[ref_of(target)] = rep
    return out


def _is_bone_scan_report(rep: Resource) -> bool:
    if BONE_SCAN_REPORT in concept_keys(rep.get("code")):
        return True
    return bool(BONE_SCAN_WORDS.search(displays(rep.get("code"))))


def bone_scans(record: PatientRecord, options: Mapping[str, Any] | None = None) -> list[engine.BoneScan]:
    keys = {"new": [BONE_NEW] + [k for k, _ in local_codes(options, input_name="bone_scan_new_lesions")],
            "additional": [BONE_ADDITIONAL] + [k for k, _ in local_codes(
                options, input_name="bone_scan_additional_new_lesions")],
            "count": [BONE_COUNT] + [k for k, _ in local_codes(options, input_name="bone_scan_lesion_count")]}
    report_of = _report_of(record)
    scans: dict[date, dict[str, Any]] = {}

    def slot(d: date) -> dict[str, Any]:
        return scans.setdefault(d, {"refs": [], "label": None})

    for what, codes in keys.items():
        for obs in record.with_codes(codes, "Observation"):
            rep = report_of.get(ref_of(obs) or "")
            d = effective_date(rep) if rep is not None else None
            d = d or effective_date(obs)
            if d is None:
                record.issue(obs, "bone scan count skipped", "no date")
                continue
            s = slot(d)
            if obs.get("dataAbsentReason") is not None:
                s["evaluable"] = False
                continue
            n = _int_value(obs)
            if n is None or n < 0:
                record.issue(obs, "bone scan count skipped", "no whole-number count")
                continue
            s[what] = n
            if obs.get("id"):
                s["refs"].append(ref_of(obs))
            if rep is not None and ref_of(rep):
                s["refs"].append(ref_of(rep))
    for rep in record.of_type("DiagnosticReport"):
        structured = any(concept_keys((record.get(r) or {}).get("code")) & set(sum(keys.values(), []))
                         for r in items(rep, "result"))
        if not structured and not _is_bone_scan_report(rep):
            continue
        d = effective_date(rep)
        if d is None:
            record.issue(rep, "bone scan report skipped", "no date")
            continue
        text = report_text(rep)
        s = slot(d)
        title = concept_text(rep.get("code"))
        if says_baseline(title) or says_baseline(text[:200]):
            s["label"] = "baseline"
        if not structured:
            for k, v in stated_counts(text).items():
                s.setdefault(k, v)
        if ref_of(rep):
            s["refs"].append(ref_of(rep))
    out = []
    for d in sorted(scans):
        s = scans[d]
        # a scan with no readable count is not evaluable (NE), like one the report calls non-diagnostic
        evaluable = s.get("evaluable") is not False and any(k in s for k in ("new", "additional", "count"))
        out.append(engine.BoneScan(
            d, new_lesions_vs_baseline=s.get("new"), additional_new_lesions_vs_first=s.get("additional"),
            lesion_count=s.get("count"), evaluable=evaluable,
            ref=s["refs"][0] if s["refs"] else None, label=s["label"]))
    return out


# --- PSA -------------------------------------------------------------------------------------------------------
def psa_values(record: PatientRecord, options: Mapping[str, Any] | None = None) -> list[engine.PSAValue]:
    for obs in record.with_codes(PSA_UNUSABLE, "Observation"):
        which = next(PSA_UNUSABLE[k] for k in concept_keys(obs.get("code")) if k in PSA_UNUSABLE)
        record.issue(obs, "PSA skipped", f"{which} cannot be compared with the PCWG3 thresholds in ng/mL")
    series = lab_series(record, PSA_CODES, PSA_SPEC, input_name="psa", options=options, what="PSA")
    by_date: dict[date, engine.PSAValue] = {}
    for v in series:
        by_date[v.date] = engine.PSAValue(v.date, v.value, v.ref)  # the later resource of a day wins
    return [by_date[d] for d in sorted(by_date)]


# --- mapping ---------------------------------------------------------------------------------------------------
@dataclass
class PCWG3Mapping:
    inputs: engine.PCWG3Inputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def map_pcwg3(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
              options: Mapping[str, Any] | None = None) -> PCWG3Mapping:
    psa = [v for v in psa_values(record, options) if v.date <= as_of]
    scans = [s for s in bone_scans(record, options) if s.date <= as_of]
    if not psa and not scans:
        return PCWG3Mapping(None, ("PSA results (LOINC 2857-1, 83112-3 or 35741-8) or bone scan reports",))
    dates = [v.date for v in psa] + [s.date for s in scans]
    therapy = therapy_start(record, routed, dates, PROSTATE_DRUGS, fallback_words=ADT_DRUGS)
    notes = list(therapy.notes)
    start = therapy.start
    if start is not None and start > as_of:
        start = None
    if start is not None:
        notes.append(f"Treatment start {start} ({therapy.label}) from the medication record: the baseline PSA and "
                     "bone scan are the last ones on or before it.")
    psa_in = engine.PSAInputs(tuple(psa), treatment_start=start) if psa else None
    bone_in = engine.BoneInputs(tuple(scans), treatment_start=start) if scans else None
    missing = ()
    if start is None and not any(s.label for s in scans):
        missing = ("start date of the current systemic therapy (MedicationRequest, MedicationAdministration or "
                   "MedicationStatement) to identify the baseline PSA and bone scan",)
    return PCWG3Mapping(engine.PCWG3Inputs(psa=psa_in, bone=bone_in), missing, tuple(notes))


__all__ = ["OBSERVATION_CODES", "PSA_CODES", "BONE_CODES", "map_pcwg3", "therapy_start", "medication_entries",
           "bone_scans", "psa_values", "stated_counts", "says_baseline"]
