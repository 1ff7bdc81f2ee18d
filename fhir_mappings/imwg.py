"""IMWG 2016 (myeloma) and IMWG 2016 MRD inputs from a FHIR R4 record.

Codes, units and one example resource per input are documented in docs/fhir-inputs-imwg.md.  Nothing here raises on
bad clinical data: an unusable resource becomes ``record.issue(...)`` and the mapping says what is missing.

Time points
-----------
Every lab, marrow and imaging result is grouped by its date into one ``MyelomaAssessment`` (one sample set).  The
line of therapy in progress decides the baseline and the "new therapy" date (criteria.md §6.2: confirmation must
precede new therapy):

* the line starts at the earliest anti-myeloma medication (MedicationRequest / MedicationStatement /
  MedicationAdministration; supportive drugs such as bisphosphonates are not a line of therapy);
* a *new therapy* is the first medication, started after the first response assessment of the line, that was not
  part of the line (re-orders of the same drug each cycle are not new therapy).  It is passed to the engine as
  ``new_therapy_start``: assessments on/after it are not used, so the card shows the response the line reached
  before it.  Only when that line ended in PD and results exist after the new therapy is the new line assessed on
  its own (baseline: the results on or before its start);
* the baseline is, per parameter, the latest result in the ``BASELINE_WINDOW_DAYS`` on or before the line start; with no
  medication in the record the earliest result date is the baseline (noted), unless a recorded IMWG assessment
  (category or confirmed nadir) precedes every result (then the results are follow-up and there is no baseline).

Recorded assessments (the project's code system, ``LOCAL``): a previously confirmed IMWG category
(``imwg-response``, or an mCODE CancerDiseaseStatus whose value is an IMWG category), a confirmed nadir
(``imwg-confirmed-nadir`` with one component per parameter), the measurable-disease parameter
(``imwg-measurable-disease``) and the involved light chain (``involved-light-chain``).  Only recorded assessments made
during the current line of therapy are used (a PD recorded before a new line does not carry over).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from fhir_mappings import codes as shared_codes
from fhir_mappings.labs import coded_series, lab_series, local_codes, report_text
from fhir_mappings.record import (
    LOCAL,
    LOINC,
    SNOMED,
    PatientRecord,
    Resource,
    codings,
    concept_keys,
    concept_text,
    effective_date,
    parse_date,
    quantity,
    ref_of,
    to_decimal,
)
from fhir_mappings.routing import RoutedCancer, classify
from fhir_mappings.units import (
    AREA_MM2,
    FLC_MG_DL,
    LENGTH_MM,
    PERCENT,
    SERUM_M_G_DL,
    UnitError,
    UnitSpec,
    normalise,
)
from rules import imwg2016 as engine
from rules import imwg_mrd as mrd_engine
from rules.base import Assessment

# ---------------------------------------------------------------------------
# Codes (codes.md §3.3, §3.7; loinc_map.csv).  Grades there: 33358-3 B, most others C - see the docs page.
# ---------------------------------------------------------------------------
SERUM_M = f"{LOINC}|33358-3"             # Protein.monoclonal [Mass/volume] in Serum or Plasma by Electrophoresis
SERUM_M_BAND1 = f"{LOINC}|51435-6"       # ... band 1 (used when 33358-3 is absent on that date)
URINE_M_24H = f"{LOINC}|42482-0"         # Protein.monoclonal [Mass/time] in 24 hour Urine by Electrophoresis
URINE_M_INVALID = f"{LOINC}|32730-5"     # not a valid LOINC code (fails the check digit): rejected with an issue
URINE_M_SPOT = (f"{LOINC}|35561-0",)     # band concentration in (spot) urine: not a 24-h excretion
SERUM_IFE = f"{LOINC}|25700-6"
URINE_IFE = f"{LOINC}|13440-3"
KAPPA = (f"{LOINC}|36916-5", f"{LOINC}|80515-0", f"{LOINC}|104544-2")
LAMBDA = (f"{LOINC}|33944-0", f"{LOINC}|80516-8", f"{LOINC}|104545-9")
FLC_RATIO = (f"{LOINC}|48378-4", f"{LOINC}|80517-6", f"{LOINC}|104546-7", f"{LOINC}|40844-3")
TOTAL_LC_RATIO = f"{LOINC}|6788-4"       # TOTAL (not free) light-chain ratio: rejected with an issue
BMPC = (f"{LOINC}|11118-7", f"{LOINC}|26468-9")
MRD_FLOW = f"{LOINC}|93021-4"            # Plasma cells with abnormal marker pattern/Cells counted in BM by flow
CELLS_COUNTED = f"{LOINC}|38257-2"       # Cells Counted Total [#] in Bone marrow (component)
DISEASE_STATUS = (f"{LOINC}|97509-4", f"{LOINC}|88040-1")  # mCODE CancerDiseaseStatus (STU2+ / STU1)

# The project's code system where no standard code exists
IHC_RATIO = f"{LOCAL}|marrow-ihc-kappa-lambda-ratio"
PCS_COUNTED = f"{LOCAL}|plasma-cells-counted"
CPC = f"{LOCAL}|circulating-plasma-cells"
PLASMACYTOMA_STATUS = f"{LOCAL}|plasmacytoma-status"
NEW_LESION = f"{LOCAL}|myeloma-new-lesion"
BONE_PROGRESSION = f"{LOCAL}|bone-lesion-progression"
IMWG_RESPONSE = f"{LOCAL}|imwg-response"
CONFIRMED = f"{LOCAL}|confirmed"
NADIR = f"{LOCAL}|imwg-confirmed-nadir"
DFLC = f"{LOCAL}|dflc"
SPD = f"{LOCAL}|plasmacytoma-spd"
MEASURABLE = f"{LOCAL}|imwg-measurable-disease"
INVOLVED = f"{LOCAL}|involved-light-chain"
# MRD: the project's MRD representation (shared with fhir_mappings/mrd.py, docs/fhir-inputs-mrd.md)
MRD = f"{LOCAL}|mrd-result"
MRD_SENSITIVITY = f"{LOCAL}|mrd-sensitivity"
MRD_LEVEL = f"{LOCAL}|mrd-level"
MRD_METHODS = {f"{LOCAL}|mrd-ngf": "NGF", f"{LOCAL}|mrd-ngs": "NGS", f"{LOCAL}|mrd-flow": "flow cytometry",
               f"{LOCAL}|mrd-pcr": "ASO-qPCR"}
MRD_POS_NEG = {f"{LOCAL}|mrd-positive": "positive", f"{LOCAL}|mrd-negative": "negative"}
MRD_IMAGING = f"{LOCAL}|pet-ct-myeloma"

IMWG_OBSERVATION_CODES = (
    SERUM_M, SERUM_M_BAND1, URINE_M_24H, URINE_M_INVALID, *URINE_M_SPOT, SERUM_IFE, URINE_IFE, *KAPPA, *LAMBDA,
    *FLC_RATIO, TOTAL_LC_RATIO, *BMPC, IHC_RATIO, CPC, shared_codes.TUMOR_SIZE, PLASMACYTOMA_STATUS, NEW_LESION,
    shared_codes.NEW_LESION, BONE_PROGRESSION, IMWG_RESPONSE, *DISEASE_STATUS, NADIR, MEASURABLE, INVOLVED,
)
MRD_OBSERVATION_CODES = (MRD_FLOW, MRD, MRD_IMAGING, IMWG_RESPONSE, *DISEASE_STATUS)

# ---------------------------------------------------------------------------
# Units not in fhir_mappings.units
# ---------------------------------------------------------------------------
_SPOT = ("a concentration (spot urine) is not a 24-h collection; IMWG urine criteria need mg/24 h "
         "(send the 24-h excretion, UCUM mg/(24.h))")
URINE_24H = UnitSpec("24-h urine M-protein", "mg/(24.h)", ("mg/d", "g/(24.h)", "g/d", "mg/24h", "mg/24.h"),
                     {u: f"unit '{u}' is {_SPOT}" for u in ("mg/dL", "mg/L", "g/L", "g/dL", "mg/mL", "ug/mL", "mg/dl",
                                                            "mg/l", "g/l")})
CPC_PER_UL = UnitSpec("circulating plasma cells", "/uL", ("10*9/L", "10*3/uL", "/mm3", "10*6/L"),
                      {"10*3/L": "unit '10*3/L' is a million times too small for a blood count (criteria.md §1); "
                                 "did you mean 10*3/uL?",
                       "%": "a percentage of leukocytes is not a count per uL (IMWG PD uses cells/uL)"})
RATIO_UNITS = {"", "1", "{ratio}", "{Ratio}", "ratio", "{ratio}/1"}

BASELINE_WINDOW_DAYS = 90
# Supportive drugs that are not a line of anti-myeloma therapy (words in the medication name)
SUPPORTIVE = ("zoledron", "pamidron", "denosumab", "acyclovir", "aciclovir", "valacyclovir", "cotrimoxazole",
              "trimethoprim", "sulfamethoxazole", "aspirin", "enoxaparin", "heparin", "apixaban", "rivaroxaban",
              "allopurinol", "ondansetron", "filgrastim", "pegfilgrastim", "epoetin", "darbepoetin", "omeprazole",
              "pantoprazole", "calcium", "vitamin d", "cholecalciferol", "immunoglobulin", "ivig", "fluconazole",
              "posaconazole", "levofloxacin", "paracetamol", "acetaminophen", "morphine", "oxycodone", "metoclopramide")

_NEG = re.compile(r"\b(negative|neg|not detected|none detected|undetectable|absent|no monoclonal|no m[- ]?(spike|"
                  r"protein|band|component)|no paraprotein|no clonal|no evidence)\b")
_POS = re.compile(r"\b(positive|pos|detected|present|monoclonal|m[- ]?spike|paraprotein|band|ig[gamde]|"
                  r"free (kappa|lambda)|kappa|lambda|bence)\b")
_CAT = {"scr": "sCR", "stringent complete response": "sCR", "cr": "CR", "complete response": "CR",
        "vgpr": "VGPR", "very good partial response": "VGPR", "pr": "PR", "partial response": "PR",
        "mr": "MR", "minimal response": "MR", "minor response": "MR", "sd": "SD", "stable disease": "SD",
        "pd": "PD", "progressive disease": "PD", "progression": "PD",
        "relapse from cr": "relapse from CR", "relapse from complete response": "relapse from CR"}
_MEAS = {"serum": "serum", "urine": "urine", "serum and urine": "serum and urine", "serum+urine": "serum and urine",
         "flc": "FLC only", "flc only": "FLC only", "free light chain": "FLC only", "free light chains": "FLC only",
         "bmpc": "BMPC only", "bmpc only": "BMPC only", "bone marrow": "BMPC only", "marrow": "BMPC only",
         "circulating plasma cells": "circulating plasma cells only", "none": "none"}
SNOMED_NEG = {f"{SNOMED}|260385009", f"{SNOMED}|260415000", f"{SNOMED}|281900007"}   # Negative; Not detected; NAD
SNOMED_POS = {f"{SNOMED}|10828004", f"{SNOMED}|260373001", f"{SNOMED}|52101004"}     # Positive; Detected; Present
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
INTERP_NEG = {f"{INTERP}|NEG", f"{INTERP}|ND", f"{INTERP}|N"}
INTERP_POS = {f"{INTERP}|POS", f"{INTERP}|DET", f"{INTERP}|A", f"{INTERP}|H", f"{INTERP}|HH"}


# ---------------------------------------------------------------------------
# Small readers
# ---------------------------------------------------------------------------


def _seq(v: Any) -> list:
    """A JSON array field, or nothing (hostile input may put anything anywhere)."""
    return v if isinstance(v, list) else []


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _int(v: Any) -> int | None:
    d = to_decimal(v)
    if d is None or not d.is_finite() or d != d.to_integral_value() or d < 0:
        return None
    return int(d)



def _keys(codes_: tuple[str, ...] | list[str], input_name: str, options: Mapping[str, Any] | None) -> list[str]:
    return list(codes_) + [k for k, _ in local_codes(options, input_name)]


def _coded_word(obs: Resource) -> tuple[set[str], str]:
    """(value codes, lower-case text) of a coded/string/boolean value plus its interpretation."""
    vc = obs.get("valueCodeableConcept")
    keys = concept_keys(vc) | set().union(*[concept_keys(c) for c in _seq(obs.get("interpretation"))] or [set()])
    text = concept_text(vc) or (obs.get("valueString") if isinstance(obs.get("valueString"), str) else "")
    for _s, c in codings(vc):
        text += " " + c
    return keys, text.strip().lower()


def pos_neg(keys: set[str], text: str) -> str | None:
    """'negative' / 'positive' / None from coded and text values (negation checked first)."""
    if keys & (SNOMED_NEG | INTERP_NEG) or f"{LOCAL}|negative" in keys:
        return "negative"
    if keys & (SNOMED_POS | INTERP_POS) or f"{LOCAL}|positive" in keys:
        return "positive"
    t = text.strip().lower()
    if not t:
        return None
    if _NEG.search(t) or t in ("-", "nd", "none") or t.startswith("no "):
        return "negative"
    if _POS.search(t) or t == "+":
        return "positive"
    return None


def _dec_text(s: str) -> Decimal | None:
    """'1e-5', '10^-5', '1x10^-5', '1 in 100000', '0.001%' -> fraction; None when not a number."""
    t = s.strip().lower().replace("×", "x").replace("−", "-").replace(" ", "")
    pct = t.endswith("%")
    t = t.rstrip("%")
    try:
        m = re.fullmatch(r"1in([0-9,]+)", t)
        if m:
            return Decimal(1) / Decimal(m.group(1).replace(",", ""))
        m = re.fullmatch(r"(?:([0-9.]+)x)?10\^?\(?(-?[0-9]+)\)?", t)
        if m:
            v = Decimal(m.group(1) or 1).scaleb(int(m.group(2)))
        else:
            v = Decimal(t)
    except (InvalidOperation, ValueError, ArithmeticError):
        return None
    if not v.is_finite() or v < 0:
        return None
    return v / 100 if pct else v


def _fraction(q: Any, record: PatientRecord, res: Resource, what: str) -> Decimal | None:
    """A Quantity as a fraction (MRD level or sensitivity): '%' /100, '1' '{fraction}' as is, '/10*6' per million."""
    v, unit, _ = quantity(q)
    if v is None:
        return None
    u = (unit or "").strip()
    if u == "%":
        return v / 100
    if u in ("", "1", "{fraction}", "{ratio}", "{cells}/{cells}"):
        return v
    if u in ("/10*6", "{cells}/10*6{cells}", "/10*6{cells}", "ppm", "[ppm]"):
        return v / Decimal(10) ** 6
    record.issue(res, f"{what} skipped", f"unit '{u}' is not a fraction ('%', '1' or '/10*6')")
    return None


def _ratio_value(obs: Resource, record: PatientRecord, what: str) -> Decimal | None:
    if isinstance(obs.get("valueRatio"), dict):
        n, _, _ = quantity(obs["valueRatio"].get("numerator"))
        d, _, _ = quantity(obs["valueRatio"].get("denominator"))
        if n is not None and d is not None and d > 0 and n >= 0:
            return n / d
        record.issue(obs, f"{what} skipped", "ratio without a usable numerator/denominator")
        return None
    v, unit, _ = quantity(obs.get("valueQuantity"))
    if v is None:
        if isinstance(obs.get("valueString"), str):
            m = re.fullmatch(r"\s*([0-9.]+)\s*[:/]\s*([0-9.]+)\s*", obs["valueString"])
            try:
                if m and Decimal(m.group(2)) > 0:
                    return Decimal(m.group(1)) / Decimal(m.group(2))
            except (InvalidOperation, ArithmeticError):
                pass
            v = to_decimal(obs["valueString"])
        if v is None:
            record.issue(obs, f"{what} skipped", "no numeric value")
            return None
    if (unit or "").strip() not in RATIO_UNITS:
        record.issue(obs, f"{what} skipped", f"unit '{unit}' is not a ratio (expected none, '1' or '{{ratio}}')")
        return None
    if v < 0:
        record.issue(obs, f"{what} skipped", "negative value")
        return None
    return v


def _obs(record: PatientRecord, keys: list[str]) -> list[Resource]:
    return record.with_codes(keys, "Observation")


def _specimen_text(record: PatientRecord, obs: Resource) -> str | None:
    sp = obs.get("specimen")
    if not isinstance(sp, dict):
        return None
    res = record.get(sp)
    if res is not None:
        t = concept_text(res.get("type")) or concept_text(_dict(res.get("collection")).get("bodySite"))
        if t:
            return t
    return sp.get("display") if isinstance(sp.get("display"), str) else None


def _specimen_ref(obs: Resource) -> str | None:
    sp = obs.get("specimen")
    if isinstance(sp, dict):
        ident = sp.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return ident["value"]
        if isinstance(sp.get("reference"), str):
            return sp["reference"]
    return None


def _components(obs: Resource, key: str) -> list[dict]:
    return [c for c in _seq(obs.get("component")) if isinstance(c, dict) and key in concept_keys(c.get("code"))]


def _category(text: str) -> str | None:
    t = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")
    t = re.sub(r"\(.*?\)", "", t).strip()
    if t in _CAT:
        return _CAT[t]
    head = re.split(r"[\s,;]", t)[0] if t else ""
    if head in _CAT and head not in ("progression",):
        return _CAT[head]
    if t.startswith("relapse"):
        return "relapse from CR"
    for k in ("stringent complete response", "very good partial response", "complete response",
              "partial response", "minimal response", "stable disease", "progressive disease"):
        if t.startswith(k):
            return _CAT[k]
    return None


def _first_word_of(obs: Resource) -> str:
    vc = obs.get("valueCodeableConcept")
    for s, c in codings(vc):
        if s == LOCAL:
            return c
    return concept_text(vc) or (obs.get("valueString") if isinstance(obs.get("valueString"), str) else "") or \
        next((c for _, c in codings(vc)), "")


# ---------------------------------------------------------------------------
# Result containers
# ---------------------------------------------------------------------------


@dataclass
class _Tp:
    fields: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    samples: set[str] = field(default_factory=set)

    def put(self, name: str, value: Any, ref: str | None, sample: str | None = None) -> None:
        self.fields[name] = value
        if ref:
            self.refs[name] = ref
        if sample:
            self.samples.add(sample)


@dataclass
class ImwgMapping:
    inputs: engine.IMWGInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    line_start: date | None = None
    recorded: tuple[tuple[date, str, bool], ...] = ()   # recorded IMWG categories (date, category, confirmed)


@dataclass
class MrdMapping:
    inputs: mrd_engine.IMWGMRDInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# Labs, marrow and imaging per date
# ---------------------------------------------------------------------------


def _serum(record: PatientRecord, options, tps: dict[date, _Tp], notes: list[str]) -> None:
    have: set[date] = set()
    for keys, band in (([SERUM_M], False), ([SERUM_M_BAND1], True)):
        name = None if band else "serum_m_protein"
        for lv in lab_series(record, keys, SERUM_M_G_DL, input_name=name, options=options, what="serum M-protein"):
            if band and lv.date in have:
                continue
            value = lv.value
            if lv.below_detection:
                value = Decimal(0)
                notes.append(f"{lv.date.isoformat()}: serum M-protein reported below the quantification limit "
                             f"-> read as not detectable on electrophoresis.")
            have.add(lv.date)
            tps[lv.date].put("serum_M_g_dL", value, lv.ref, _specimen_ref(lv.resource or {}))
        for cv in coded_series(record, keys, input_name=name, options=options):
            if cv.date in have:
                continue
            if pos_neg({cv.code} if cv.code else set(), cv.text) == "negative":
                have.add(cv.date)
                tps[cv.date].put("serum_M_g_dL", Decimal(0), cv.ref, _specimen_ref(cv.resource))
            else:
                record.issue(cv.resource, "serum M-protein skipped", "coded result is neither a quantity nor "
                             "'not detected'")


def _urine(record: PatientRecord, options, tps: dict[date, _Tp], notes: list[str]) -> None:
    for obs in _obs(record, [URINE_M_INVALID]):
        record.issue(obs, "urine M-protein skipped", "LOINC 32730-5 is not a valid LOINC code (fails the check "
                     "digit); use 42482-0")
    for obs in _obs(record, list(URINE_M_SPOT)):
        record.issue(obs, "urine M-protein skipped", "a urine M-protein concentration (spot urine) is not a 24-h "
                     "collection; IMWG needs mg/24 h (LOINC 42482-0)")
    for lv in lab_series(record, [URINE_M_24H], URINE_24H, input_name="urine_m_protein_24h", options=options,
                         what="24-h urine M-protein"):
        spec = (_specimen_text(record, lv.resource or {}) or "").lower()
        if "spot" in spec or "random" in spec:
            record.issue(lv.resource, "24-h urine M-protein skipped", f"specimen is '{spec}': a spot urine is not a "
                         f"24-h collection")
            continue
        value = Decimal(0) if lv.below_detection else lv.value
        if lv.below_detection:
            notes.append(f"{lv.date.isoformat()}: urine M-protein below the quantification limit -> read as not "
                         f"detectable.")
        tps[lv.date].put("urine_M_mg_24h", value, lv.ref, _specimen_ref(lv.resource or {}))
    for cv in coded_series(record, [URINE_M_24H], input_name="urine_m_protein_24h", options=options):
        if "urine_M_mg_24h" in tps.get(cv.date, _Tp()).fields:
            continue
        if pos_neg({cv.code} if cv.code else set(), cv.text) == "negative":
            tps[cv.date].put("urine_M_mg_24h", Decimal(0), cv.ref)
        else:
            record.issue(cv.resource, "24-h urine M-protein skipped", "coded result is neither a quantity nor "
                         "'not detected'")


def _ife(record: PatientRecord, options, tps: dict[date, _Tp], involved: list[str]) -> None:
    for name, key, input_name in (("serum_IFE", SERUM_IFE, "serum_ife"), ("urine_IFE", URINE_IFE, "urine_ife")):
        for obs in _obs(record, _keys([key], input_name, options)):
            d = effective_date(obs)
            if d is None:
                record.issue(obs, "immunofixation skipped", "no date")
                continue
            keys, text = _coded_word(obs)
            if obs.get("valueBoolean") is not None and not keys and not text:
                text = "positive" if obs["valueBoolean"] else "negative"
            res = pos_neg(keys, text)
            if res is None:
                record.issue(obs, "immunofixation skipped", "result is not recognisable as positive or negative")
                continue
            tps[d].put(name, res, ref_of(obs), _specimen_ref(obs))
            if res == "positive":
                chains = {c for c in ("kappa", "lambda") if c in text}
                if len(chains) == 1:
                    involved.append(chains.pop())


def _flc(record: PatientRecord, options, tps: dict[date, _Tp]) -> None:
    for name, codes_, input_name in (("kappa_FLC_mg_dL", KAPPA, "flc_kappa"), ("lambda_FLC_mg_dL", LAMBDA,
                                                                               "flc_lambda")):
        for lv in lab_series(record, list(codes_), FLC_MG_DL, input_name=input_name, options=options,
                             what=f"{name.split('_')[0]} free light chain"):
            tps[lv.date].put(name, lv.value, lv.ref, _specimen_ref(lv.resource or {}))
    for obs in _obs(record, [TOTAL_LC_RATIO]):
        record.issue(obs, "light-chain ratio skipped", "LOINC 6788-4 is the TOTAL kappa/lambda ratio, not the FREE "
                     "light-chain ratio IMWG uses (48378-4)")
    for obs in _obs(record, _keys(list(FLC_RATIO), "flc_ratio", options)):
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "FLC ratio skipped", "no date")
            continue
        v = _ratio_value(obs, record, "FLC ratio")
        if v is not None:
            tps[d].put("FLC_ratio", v, ref_of(obs), _specimen_ref(obs))


def _marrow(record: PatientRecord, options, tps: dict[date, _Tp]) -> None:
    for lv in lab_series(record, list(BMPC), PERCENT, input_name="plasma_cells_bm_pct", options=options,
                         what="bone-marrow plasma cells"):
        if lv.value > 100:
            record.issue(lv.resource, "bone-marrow plasma cells skipped", "a percentage above 100")
            continue
        tps[lv.date].put("BMPC_pct", lv.value, lv.ref)
    for obs in _obs(record, _keys([IHC_RATIO], "marrow_ihc_kappa_lambda_ratio", options)):
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "marrow IHC ratio skipped", "no date")
            continue
        v = _ratio_value(obs, record, "marrow IHC kappa/lambda ratio")
        if v is None:
            continue
        tps[d].put("BM_IHC_kappa_lambda_ratio", v, ref_of(obs))
        for c in _components(obs, PCS_COUNTED) + _components(obs, CELLS_COUNTED):
            n = _int(c.get("valueInteger") if c.get("valueInteger") is not None else quantity(
                c.get("valueQuantity"))[0])
            if n is not None:
                tps[d].put("BM_IHC_PCs_counted", n, None)
    for lv in lab_series(record, [CPC], CPC_PER_UL, input_name="circulating_plasma_cells", options=options,
                         what="circulating plasma cells"):
        tps[lv.date].put("circulating_PC_per_uL", lv.value, lv.ref)


def _other_cancers(record: PatientRecord, routed: RoutedCancer | None) -> bool:
    for cond in record.of_type("Condition"):
        hit = classify(cond)
        if hit is not None and (routed is None or hit[0].key != routed.cancer.key):
            return True
    return False


def _is_plasmacytoma(obs: Resource, body: Resource | None, routed: RoutedCancer | None, others: bool) -> bool:
    texts = []
    for res, keys in ((body, ("morphology", "location")), (obs, ("bodySite", "code"))):
        if res:
            texts.extend(concept_text(res.get(k)).lower() for k in keys)
            if isinstance(res.get("description"), str):
                texts.append(res["description"].lower())
    texts.extend(str(n.get("text", "")).lower() for n in _seq(obs.get("note")) if isinstance(n, dict))
    if any("plasmacytoma" in t for t in texts):
        return True
    for res in (body, obs):
        for ext in _seq(_dict(res).get("extension")):
            if isinstance(ext, dict) and "relatedCondition" in str(ext.get("url", "")):
                ref = _dict(ext.get("valueReference")).get("reference")
                return routed is not None and ref == routed.condition_ref
    return not others


def _plasmacytomas(record: PatientRecord, routed: RoutedCancer | None, tps: dict[date, _Tp]) -> None:
    others = _other_cancers(record, routed)
    per_date: dict[date, list[engine.Plasmacytoma]] = defaultdict(list)
    for obs in _obs(record, [shared_codes.TUMOR_SIZE]):
        d = effective_date(obs)
        body = None
        lesion_id = None
        for f in _seq(obs.get("focus")):
            if isinstance(f, dict):
                body = record.get(f)
                for ident in _seq(_dict(body).get("identifier")):
                    if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                        lesion_id = ident["value"]
                        break
                lesion_id = lesion_id or (ref_of(body) if body else f.get("reference"))
        if not _is_plasmacytoma(obs, body, routed, others):
            continue
        if d is None:
            record.issue(obs, "plasmacytoma size skipped", "no date")
            continue
        dims: list[Decimal] = []
        bad = False
        for key in (shared_codes.LONGEST_DIMENSION, shared_codes.OTHER_DIMENSION):
            for comp in _components(obs, key):
                v, unit, _ = quantity(comp.get("valueQuantity"))
                if v is None:
                    continue
                try:
                    mm = normalise(v, unit, LENGTH_MM)
                except UnitError as exc:
                    record.issue(obs, "plasmacytoma size skipped", str(exc))
                    bad = True
                    break
                if mm < 0:
                    bad = True
                    record.issue(obs, "plasmacytoma size skipped", "negative diameter")
                    break
                dims.append(mm)
        if bad:
            continue
        if len(dims) < 2:
            if len(dims) == 1 and dims[0] == 0:
                dims.append(Decimal(0))
            else:
                record.issue(obs, "plasmacytoma size skipped", "IMWG needs two perpendicular diameters (33728-7 and "
                             "33729-5 components)")
                continue
        per_date[d].append(engine.Plasmacytoma(dims[0], dims[1], lesion_id, ref_of(obs)))
    for d, items in per_date.items():
        live = tuple(p for p in items if p.product_mm2 > 0)  # 0 x 0 = the lesion has gone
        tps[d].put("plasmacytomas", live, None)
        for p in items:
            if p.ref:
                tps[d].refs.setdefault("plasmacytomas", p.ref)
    for obs in _obs(record, [PLASMACYTOMA_STATUS]):
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "plasmacytoma status skipped", "no date")
            continue
        keys, text = _coded_word(obs)
        present = obs.get("valueBoolean") if isinstance(obs.get("valueBoolean"), bool) else None
        if present is None:
            pn = pos_neg(keys, text)
            present = None if pn is None else pn == "positive"
        if present is None:
            record.issue(obs, "plasmacytoma status skipped", "value is not present/absent")
            continue
        if not present and d not in per_date:
            tps[d].put("plasmacytomas", (), ref_of(obs))
        elif present and d not in per_date:
            record.issue(obs, "plasmacytoma status not used", "plasmacytoma present but not measured (TumorSize)")


def _flags(record: PatientRecord, tps: dict[date, _Tp]) -> None:
    for name, keys in (("new_lesions", [NEW_LESION, shared_codes.NEW_LESION]), ("bone_lesion_progression",
                                                                                [BONE_PROGRESSION])):
        for obs in _obs(record, keys):
            d = effective_date(obs)
            if d is None:
                record.issue(obs, "imaging finding skipped", "no date")
                continue
            if isinstance(obs.get("valueBoolean"), bool):
                val = obs["valueBoolean"]
            else:
                k, text = _coded_word(obs)
                t = text.strip()
                if t in ("yes", "true", "y") or t.startswith("yes"):
                    val = True
                elif t in ("no", "false", "n", "none") or t.startswith("no"):
                    val = False
                else:
                    pn = pos_neg(k, text)
                    if pn is None or "equivocal" in t:
                        record.issue(obs, "imaging finding skipped", "value is not yes/no (equivocal findings are "
                                     "not PD)")
                        continue
                    val = pn == "positive"
            tps[d].put(name, val, ref_of(obs))


# ---------------------------------------------------------------------------
# Therapy lines, recorded assessments
# ---------------------------------------------------------------------------


def _med_name(res: Resource) -> str:
    cc = res.get("medicationCodeableConcept")
    name = concept_text(cc)
    parts = [name] + [c.get("display", "") for c in _seq(_dict(cc).get("coding")) if isinstance(c, dict)]
    return " ".join(p for p in parts if isinstance(p, str)).strip().lower()


def _med_identity(res: Resource) -> str:
    cc = res.get("medicationCodeableConcept")
    for s, c in codings(cc):
        return f"{s}|{c}"
    if isinstance(_dict(res.get("medicationReference")).get("reference"), str):
        return res["medicationReference"]["reference"]
    return _med_name(res)


def therapy_starts(record: PatientRecord) -> list[tuple[date, str, str | None]]:
    """(start, medication identity, ref) of anti-myeloma medications, in date order."""
    out = []
    for rtype in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        for res in record.of_type(rtype):
            if res.get("status") in ("draft", "not-taken", "not-done") or res.get("intent") in ("proposal", "plan"):
                continue
            name = _med_name(res)
            if name and any(w in name for w in SUPPORTIVE):
                continue
            d = effective_date(res)
            if d is None:
                for di in _seq(res.get("dosageInstruction")):
                    bp = _dict(_dict(_dict(_dict(di).get("timing")).get("repeat")).get("boundsPeriod"))
                    d = parse_date(bp.get("start"))
                    if d:
                        break
            if d is None:
                record.issue(res, "medication skipped", "no start date")
                continue
            out.append((d, _med_identity(res), ref_of(res)))
    return sorted(out)


def _lines(meds: list[tuple[date, str, str | None]], lab_dates: list[date]) -> list[date]:
    """Start dates of the successive lines of therapy: the first anti-myeloma medication, then each new therapy
    (a medication started after the line's first response assessment that was not part of the line)."""
    if not meds:
        return []
    starts = [meds[0][0]]
    for _ in range(len(meds)):
        start = starts[-1]
        after = [d for d in lab_dates if d > start]
        first = after[0] if after else start
        line = {m for d, m, _ in meds if start <= d <= first}
        new = next((d for d, m, _ in meds if d > first and m not in line), None)
        if new is None:
            break
        starts.append(new)
    return starts


def _recorded_categories(record: PatientRecord, routed: RoutedCancer | None) -> list[tuple[date, str, bool, str | None]]:
    out = []
    for obs in _obs(record, [IMWG_RESPONSE, *DISEASE_STATUS]):
        is_local = IMWG_RESPONSE in concept_keys(obs.get("code"))
        focus = [f.get("reference") for f in _seq(obs.get("focus")) if isinstance(f, dict)]
        if routed is not None and focus and routed.condition_ref and routed.condition_ref not in focus:
            continue
        d = effective_date(obs)
        word = _first_word_of(obs)
        cat = _category(word) if word else None
        if cat is None:
            if is_local:
                record.issue(obs, "recorded IMWG response skipped", "value is not an IMWG category")
            continue  # a generic CancerDiseaseStatus (improved/stable/...) is not an IMWG category
        if not is_local:
            method = (concept_text(obs.get("method")) + " " + " ".join(c for _, c in codings(obs.get("method")))).lower()
            if "imwg" not in method and "myeloma" not in method:
                continue
        if d is None:
            record.issue(obs, "recorded IMWG response skipped", "no date")
            continue
        confirmed = obs.get("status") not in ("preliminary", "registered")
        for c in _components(obs, CONFIRMED):
            if isinstance(c.get("valueBoolean"), bool):
                confirmed = c["valueBoolean"]
        out.append((d, cat, confirmed, ref_of(obs)))
    return sorted(out, key=lambda x: x[0])


def _nadir(record: PatientRecord, since: date | None, as_of: date) -> engine.ConfirmedNadir | None:
    best = None
    for obs in _obs(record, [NADIR]):
        d = effective_date(obs)
        if d is None or d > as_of or (since is not None and d < since):
            if d is None:
                record.issue(obs, "recorded nadir skipped", "no date")
            continue
        vals: dict[str, Decimal] = {}
        specs = ((SERUM_M, "serum_M_g_dL", SERUM_M_G_DL), (URINE_M_24H, "urine_M_mg_24h", URINE_24H),
                 (DFLC, "dFLC_mg_dL", FLC_MG_DL), (BMPC[0], "BMPC_pct", PERCENT), (SPD, "plasmacytoma_SPD_mm2",
                                                                                    AREA_MM2),
                 (CPC, "circulating_PC_per_uL", CPC_PER_UL))
        for key, name, spec in specs:
            for c in _components(obs, key):
                v, unit, _ = quantity(c.get("valueQuantity"))
                if v is None:
                    continue
                try:
                    vals[name] = normalise(v, unit, spec)
                except UnitError as exc:
                    record.issue(obs, f"recorded nadir {name} skipped", str(exc))
        if not vals:
            record.issue(obs, "recorded nadir skipped", "no component with a usable value")
            continue
        best = engine.ConfirmedNadir(date=d, ref=ref_of(obs), **vals)
    return best


def _latest_word(record: PatientRecord, key: str, as_of: date) -> tuple[str, Resource] | None:
    out = None
    for obs in _obs(record, [key]):
        d = effective_date(obs)
        if d is not None and d <= as_of:
            w = _first_word_of(obs)
            if w:
                out = (w.strip().lower(), obs)
    return out


# ---------------------------------------------------------------------------
# IMWG 2016
# ---------------------------------------------------------------------------


def _assessment(d: date, tp: _Tp) -> engine.MyelomaAssessment:
    f = dict(tp.fields)
    sample = next(iter(tp.samples)) if len(tp.samples) == 1 else None
    return engine.MyelomaAssessment(date=d, sample_id=sample, refs=tuple(sorted(tp.refs.items())), **f)


@dataclass
class _Read:
    tps: dict[date, _Tp]
    lab_dates: list[date]
    starts: list[date]
    recorded: list[tuple[date, str, bool, str | None]]
    measurable: str | None
    involved: str | None
    involved_ife: list[str]
    notes: list[str]


def _read(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
          options: Mapping[str, Any] | None) -> _Read:
    """Every IMWG input in the record, read once (issues are recorded here)."""
    notes: list[str] = []
    tps: dict[date, _Tp] = defaultdict(_Tp)
    involved_ife: list[str] = []
    _serum(record, options, tps, notes)
    _urine(record, options, tps, notes)
    _ife(record, options, tps, involved_ife)
    _flc(record, options, tps)
    _marrow(record, options, tps)
    _plasmacytomas(record, routed, tps)
    _flags(record, tps)
    tps = {d: tp for d, tp in tps.items() if tp.fields}
    lab_dates = sorted(d for d in tps if d <= as_of)
    meds = [x for x in therapy_starts(record) if x[0] <= as_of]
    recorded = [r for r in _recorded_categories(record, routed) if r[0] <= as_of]
    measurable = None
    mw = _latest_word(record, MEASURABLE, as_of)
    if mw is not None:
        key = mw[0].replace("-", " ").replace("_", " ")
        measurable = _MEAS.get(key) or _MEAS.get(key.replace(" only", "")) or (
            mw[0] if any(w in key for w in ("serum", "urine", "flc", "marrow", "bmpc", "circulating")) else None)
        if measurable is None:
            record.issue(mw[1], "measurable disease skipped", "value is not serum/urine/FLC only/BMPC only")
    involved = None
    iw = _latest_word(record, INVOLVED, as_of)
    if iw is not None:
        involved = "kappa" if "kappa" in iw[0] else "lambda" if "lambda" in iw[0] else None
        if involved is None:
            record.issue(iw[1], "involved light chain skipped", "value is not kappa or lambda")
    return _Read(tps, lab_dates, _lines(meds, lab_dates), recorded, measurable, involved, involved_ife, notes)


def _build(record: PatientRecord, r: _Read, line: int, as_of: date) -> ImwgMapping:
    """The engine inputs for one line of therapy (index into ``r.starts``; -1/no starts = no therapy known)."""
    notes = list(r.notes)
    tps, lab_dates = r.tps, r.lab_dates
    start = r.starts[line] if r.starts else None
    new_start = r.starts[line + 1] if r.starts and line + 1 < len(r.starts) else None
    recorded = [x for x in r.recorded if start is None or x[0] >= start]
    nadir = _nadir(record, start, as_of)
    baseline: engine.MyelomaAssessment | None = None
    series_dates: list[date]
    if start is not None:
        window = [d for d in lab_dates if start - timedelta(days=BASELINE_WINDOW_DAYS) <= d <= start]
        if window:
            merged = _Tp()
            for d in window:  # the latest value of each parameter wins
                merged.fields.update(tps[d].fields)
                merged.refs.update(tps[d].refs)
            baseline = engine.MyelomaAssessment(date=window[-1], refs=tuple(sorted(merged.refs.items())),
                                                **merged.fields)
        series_dates = [d for d in lab_dates if d > start]
        if line > 0:
            notes.append(f"PD on the previous line of therapy; the response is assessed for the line started "
                         f"{start.isoformat()} (baseline: the results on or before that date).")
    else:
        first_recorded = min([x[0] for x in recorded] + ([nadir.date] if nadir and nadir.date else []),
                             default=None)
        if lab_dates and (first_recorded is None or first_recorded > lab_dates[0]):
            baseline = _assessment(lab_dates[0], tps[lab_dates[0]])
            notes.append(f"No anti-myeloma therapy in the record: the earliest results ({lab_dates[0].isoformat()}) "
                         f"are taken as the baseline.")
            series_dates = lab_dates[1:]
        else:
            series_dates = lab_dates
    series = tuple(_assessment(d, tps[d]) for d in series_dates)

    prev = next(((d, c) for d, c, conf, _ in reversed(recorded) if conf), None)
    if any(not x[2] for x in recorded):
        notes.append("A recorded IMWG category marked unconfirmed/preliminary was not used as the confirmed state.")
    involved = r.involved
    if involved is None and len(set(r.involved_ife)) == 1 and (baseline is None or baseline.FLC_ratio is None and (
            baseline.kappa_FLC_mg_dL is None or baseline.lambda_FLC_mg_dL is None)):
        involved = r.involved_ife[0]
        notes.append(f"Involved light chain taken as {involved} from the immunofixation (no baseline FLC ratio).")
    rec3 = tuple((d, c, f) for d, c, f, _ in recorded)
    if not series and baseline is None and prev is None:
        missing = ["serum/urine M-protein, immunofixation, free light chains or marrow results (IMWG response "
                   "parameters)"]
        return ImwgMapping(None, tuple(missing), tuple(notes), start, rec3)
    inputs = engine.IMWGInputs(
        assessments=series, baseline=baseline, confirmed_nadir=nadir,
        previous_confirmed_category=prev[1] if prev else None, previous_confirmed_date=prev[0] if prev else None,
        new_therapy_start=new_start, measurable_by=r.measurable, involved_FLC=involved,
    )
    return ImwgMapping(inputs, (), tuple(notes), start, rec3)


def map_imwg(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
             options: Mapping[str, Any] | None = None, line: int = 0) -> ImwgMapping:
    """Engine inputs for one line of therapy (0 = the first line in the record)."""
    return _build(record, _read(record, routed, as_of, options), line, as_of)


def assess_imwg(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
                options: Mapping[str, Any] | None = None) -> tuple[Assessment | None, ImwgMapping]:
    """Map and assess; never raises on clinical data (an engine ValueError becomes an issue)."""
    r = _read(record, routed, as_of, options)
    line = 0
    try:
        while True:
            mapping = _build(record, r, line, as_of)
            if mapping.inputs is None:
                return None, mapping
            a = engine.assess(mapping.inputs, as_of)
            nts = mapping.inputs.new_therapy_start
            # a new line is assessed on its own only when the line before it ended in PD (confirmation must precede
            # new therapy; consolidation after a response keeps the response of the line, criteria.md §6.2)
            if nts is not None and a.category == "PD" and any(d > nts for d in r.lab_dates):
                line += 1
                continue
            return a, mapping
    except (ValueError, ArithmeticError) as exc:
        record.issue(None, "IMWG assessment not possible", type(exc).__name__ + ": " + str(exc)[:120])
        return None, ImwgMapping(None, ("IMWG inputs consistent enough to assess",), tuple(r.notes))


# ---------------------------------------------------------------------------
# IMWG 2016 MRD
# ---------------------------------------------------------------------------


_SENS_TEXT = re.compile(r"(?:sensitivity|lod|limit of detection|detection limit|at|<|below)\s*(?:of\s*)?"
                        r"((?:[0-9.]+\s*[x×]\s*)?10\^?\(?[-−]\s*[0-9]+\)?|[0-9.]+e-[0-9]+|1 in [0-9,]+|[0-9.]+\s*%)",
                        re.I)


def _sens_from_text(text: str) -> Decimal | None:
    m = _SENS_TEXT.search(text)
    return _dec_text(m.group(1)) if m else None


def _belongs_elsewhere(record: PatientRecord, obs: Resource, routed: RoutedCancer | None) -> bool:
    if routed is None or not routed.condition_ref:
        return False
    for f in _seq(obs.get("focus")):
        target = record.get(f)
        if target is not None and target.get("resourceType") == "Condition" and ref_of(target) != routed.condition_ref:
            return True
    return False


def _mrd_tests(record: PatientRecord, options, routed: RoutedCancer | None = None) -> list[mrd_engine.MRDTest]:
    out = []
    keys = _keys([MRD_FLOW, MRD], "mrd", options)
    for obs in _obs(record, keys):
        if _belongs_elsewhere(record, obs, routed):
            continue
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "MRD result skipped", "no date")
            continue
        flow_code = MRD_FLOW in concept_keys(obs.get("code"))
        method = next((m for k, m in MRD_METHODS.items() if k in concept_keys(obs.get("method"))), None)
        method = method or concept_text(obs.get("method")) or " ".join(c for _, c in codings(obs.get("method")))
        if not method:
            device = obs.get("device")
            method = device.get("display", "") if isinstance(device, dict) else ""
        if not method and flow_code:
            method = "flow cytometry"
        if not method:
            record.issue(obs, "MRD result skipped", "no method (NGF or NGS) stated in Observation.method")
            continue
        sens = None
        for c in _components(obs, MRD_SENSITIVITY):
            if isinstance(c.get("valueString"), str):
                sens = _dec_text(c["valueString"]) or _sens_from_text("at " + c["valueString"])
            else:
                sens = _fraction(c.get("valueQuantity"), record, obs, "MRD sensitivity")
        cells = None
        for c in _components(obs, CELLS_COUNTED):
            n = _int(c.get("valueInteger") if c.get("valueInteger") is not None else quantity(
                c.get("valueQuantity"))[0])
            if n is not None:
                cells = n
        result: str | None = None
        level = None
        q = obs.get("valueQuantity")
        if not isinstance(q, dict):
            q = next((c.get("valueQuantity") for c in _components(obs, MRD_LEVEL)
                      if isinstance(c.get("valueQuantity"), dict)), None)
        k, text = _coded_word(obs)
        coded = next((v for key, v in MRD_POS_NEG.items() if key in k), None) or (
            pos_neg(k, "") if k else None)
        if isinstance(q, dict):
            _, _, comp = quantity(q)
            frac = _fraction(q, record, obs, "MRD level")
            if frac is None:
                continue
            if comp in ("<", "<=") and coded != "positive":
                result = "negative"
                sens = sens if sens is not None else frac
            elif frac == 0:
                result = "negative"
            else:
                result, level = "positive", frac
        else:
            result = coded or pos_neg(set(), text) or (text or None)
            if sens is None and text:
                sens = _sens_from_text(text)
            if result is None and isinstance(obs.get("valueBoolean"), bool):
                result = "positive" if obs["valueBoolean"] else "negative"
            if result is None:
                record.issue(obs, "MRD result skipped", "result is not recognisable as negative or positive")
                continue
        sample = _specimen_text(record, obs) or concept_text(obs.get("bodySite")) or (
            "bone marrow" if flow_code else None)
        out.append(mrd_engine.MRDTest(d, method, result, sens, level, cells, sample, ref_of(obs)))
    return out


_PET_NEG = re.compile(r"\b(no (abnormal |pathologic(al)? |increased |residual )?(fdg[- ]avid|uptake|hypermetabolic|"
                      r"metabolically active|active)|no evidence of (active |metabolically active |fdg[- ]avid )?"
                      r"(disease|myeloma|lesions?)|complete metabolic response|negative|resolved|resolution of|"
                      r"below (the )?(mediastinal )?blood[- ]pool|(less|lower) than (the )?(mediastinal )?blood[- ]"
                      r"pool|no focal)\b")
_PET_POS = re.compile(r"\b(fdg[- ]avid|hypermetabolic|increased (tracer |fdg )?uptake|positive|new lesions?|"
                      r"active disease|suv ?max)\b")


# uptake described as past ("resolution of all previously FDG-avid lesions", "the baseline hypermetabolic foci have
# resolved") is not positive: Kumar 2016 imaging-plus MRD is the disappearance of every area of increased uptake
# seen at baseline or a preceding PET/CT (criteria.md §6.4)
_PET_HISTORIC = re.compile(r"\b(?:previously|prior|formerly|initially|originally|at baseline|baseline|pre-?treatment)"
                           r"\s+(?:seen\s+)?(?:fdg[- ]avid|hypermetabolic|avid|increased (?:tracer |fdg )?uptake)")


def pet_reading(text: str) -> bool | None:
    """True when a PET/CT read is negative for myeloma (IMWG imaging-plus), False when positive, None if unclear."""
    t = " ".join(text.lower().split())
    if not t:
        return None
    neg = bool(_PET_NEG.search(t))
    stripped = _PET_HISTORIC.sub(" ", _PET_NEG.sub(" ", t))
    pos = bool(_PET_POS.search(stripped))
    if neg and not pos:
        return True
    if pos and not neg:
        return False
    return None


def _pets(record: PatientRecord, options) -> list[mrd_engine.PETScan]:
    out = []
    for obs in _obs(record, _keys([MRD_IMAGING], "pet_ct", options)):
        d = effective_date(obs)
        if d is None:
            record.issue(obs, "PET/CT result skipped", "no date")
            continue
        k, text = _coded_word(obs)
        pn = pos_neg(k, text)
        neg = pet_reading(text) if pn is None else pn == "negative"
        if neg is None:
            record.issue(obs, "PET/CT result skipped", "not recognisable as negative or positive")
            continue
        out.append(mrd_engine.PETScan(d, neg, ref_of(obs)))
    for rep in record.of_type("DiagnosticReport"):
        head = (concept_text(rep.get("code")) + " " + " ".join(str(c.get("display", "")) for c in
                                                         _seq(_dict(rep.get("code")).get("coding")) if isinstance(c, dict))
                ).lower()
        text = report_text(rep)
        if not re.search(r"\bpet\b|fdg|positron", head + " " + text[:200].lower()):
            continue
        d = effective_date(rep)
        if d is None:
            record.issue(rep, "PET/CT report skipped", "no date")
            continue
        neg = pet_reading(text)
        if neg is None:
            record.issue(rep, "PET/CT report not used", "the conclusion does not say clearly whether tracer uptake "
                         "persists")
            continue
        out.append(mrd_engine.PETScan(d, neg, ref_of(rep)))
    return out


def has_mrd_data(record: PatientRecord, options: Mapping[str, Any] | None = None,
                 routed: RoutedCancer | None = None) -> bool:
    return any(not _belongs_elsewhere(record, o, routed) for o in _obs(record, _keys([MRD_FLOW, MRD], "mrd", options)))


def _cr_maintained(statuses: list[tuple[date, str]], tests: list[mrd_engine.MRDTest]) -> bool | None:
    if len(tests) < 2:
        return None
    first, last = min(t.date for t in tests), max(t.date for t in tests)
    window = [c for d, c in statuses if first <= d <= last]
    if any(c not in ("CR", "sCR") for c in window):
        return False
    before = [c for d, c in statuses if d <= first]
    at_end = [c for d, c in statuses if d <= last]
    if before and before[-1] in ("CR", "sCR") and at_end and at_end[-1] in ("CR", "sCR") and window:
        return True
    return None


def map_imwg_mrd(record: PatientRecord, routed: RoutedCancer | None, as_of: date,
                 options: Mapping[str, Any] | None, response: Assessment | None,
                 imwg_mapping: ImwgMapping | None) -> MrdMapping:
    tests = _mrd_tests(record, options, routed)
    if not tests:
        return MrdMapping(None, ("MRD test (NGF or NGS on bone marrow) with a readable result",))
    pets = _pets(record, options)
    statuses: list[tuple[date, str]] = []
    if imwg_mapping is not None:
        statuses.extend((d, c) for d, c, conf in imwg_mapping.recorded if conf)
    if response is not None:
        statuses.extend((h.date, h.category) for h in response.history if h.values.get("confirmed", True))
    statuses.sort(key=lambda x: x[0])
    cat = None
    confirmed = None
    notes: list[str] = []
    if response is not None and response.category != "NE":
        cat, confirmed = response.category, response.confirmed
    elif imwg_mapping is not None and imwg_mapping.recorded:
        # only an unconfirmed recorded category (e.g. "CR, awaiting confirmation"): the MRD engine is told so
        _, cat, confirmed = imwg_mapping.recorded[-1]
        notes.append(f"IMWG response taken from the record: {cat} ({'confirmed' if confirmed else 'not confirmed'}).")
    inputs = mrd_engine.IMWGMRDInputs(
        mrd_tests=tuple(tests), pet_scans=tuple(pets), response_category=cat, response_confirmed=confirmed,
        cr_maintained=_cr_maintained(statuses, tests),
    )
    if cat is None:
        notes.append("No IMWG response category could be established from the record (MRD categories require CR).")
    return MrdMapping(inputs, (), tuple(notes))
