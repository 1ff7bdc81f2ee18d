"""ELN 2022 AML inputs from a FHIR record (rules.eln2022 dataclasses), with issues for what cannot be used.

Representations (codes, units and one example resource each are in docs/fhir-inputs-eln.md):

* Bone-marrow examination: one per date of a marrow blast percentage (LOINC 11150-0; variants 77147-7, 26445-7;
  a configured local code ``blasts_bm_pct``), or of a bone-marrow report (48807-2 aspirate, 33721-2 biopsy, 74233-8
  narrative; Observation ``valueString`` or DiagnosticReport conclusion/presentedForm) whose text gives the blasts.
  Adequacy of the same examination (within ``MARROW_LINK_DAYS``): nucleated cells counted (LOINC 38257-2),
  spicules (project code ``bm-spicules``), biopsy cellularity % (project code ``bm-biopsy-cellularity``), sample
  adequacy (project code ``bm-sample-adequacy``: adequate | inadequate | suboptimal ...), else the report text
  ("spicules present; 300 nucleated cells counted; biopsy cellularity 20%", "dry tap", "haemodilute").
* Pretreatment marrow blasts: the earliest marrow examination dated on or before the first anti-leukaemic therapy
  (before the condition's onset when no therapy is recorded), or a project-coded ``aml-pretreatment-bm-blasts``
  value. Marrows before therapy are pretreatment, not response assessments.
* Peripheral-blood blasts: % (26446-5, 709-6; myeloblasts 30445-1, 747-6), absolute (30376-8, 708-8; 30444-4,
  746-8) or a coded/text result on those codes (present/absent, detected/not detected, "none seen").
* Extramedullary disease: project code ``extramedullary-disease`` (valueCodeableConcept SNOMED 52101004 Present /
  2667000 Absent, valueBoolean or text; site in ``bodySite``), or a Condition for myeloid sarcoma (ICD-10-CM C92.3x;
  words: myeloid/granulocytic sarcoma, chloroma, leukaemia cutis, extramedullary) present from its onset, absent from
  its abatement.
* ANC (10^9/L): 751-8, 753-4, 26499-4 (local ``anc``); else segmented + band neutrophils (30451-9 + 26507-4/30229-9),
  else WBC x neutrophil % (6690-2/26464-8/804-5 x 770-8/23761-0/26511-6). 752-6 (deprecated) is not used.
  Platelets (10^9/L): 777-3, 26515-7, 778-1 (local ``platelets``); 49497-1 (estimate) is not used for thresholds.
  Count units: 10*9/L, 10*3/uL, /uL (and their spellings); 10*3/L is rejected with an issue, never converted.
* MRD: project code ``aml-mrd`` (or a local code ``aml_mrd``; or an immunophenotyping result 101119-6 as text):
  method in ``Observation.method`` (MFC/flow, qPCR/PCR, NGS), result as valueQuantity level (% or fraction),
  valueCodeableConcept (SNOMED 260373001 Detected / 260415000 Not detected, 10828004 Positive / 260385009 Negative)
  or valueString; components ``mrd-lod`` (LOD/sensitivity), ``mrd-detected``, ``mrd-replicates-positive``,
  ``mrd-replicates-tested``, ``mrd-low-level``, ``mrd-marker``; tissue from specimen/bodySite/``mrd-tissue``.
  A level reported as "< x" is not detected with LOD x.
* Prior categories: mCODE CancerDiseaseStatus (97509-4; STU1 88040-1) or project code ``eln-response`` whose value
  is an ELN 2022 category (CR, CR_MRD-, CRh, CRi, MLFS, PR, ...), with ``method`` naming ELN when present.
* Therapy context: intensive induction courses from MedicationRequest/MedicationAdministration/MedicationStatement
  and Procedure (anthracycline, CPX-351, 7+3, FLAG-Ida, high-dose cytarabine, "intensive induction"; records within
  ``COURSE_GROUP_DAYS`` are one course); less-intensive therapy start (azacitidine, decitabine, venetoclax,
  low-dose cytarabine, ...); recorded context (project codes ``aml-intensive-induction-courses`` = count,
  ``aml-less-intensive-start`` = date, ``aml-response-landmark`` = protocol landmark date).
* Not evaluable: project code ``eln-not-evaluable-reason`` (e.g. early death, withdrawal), or the patient's death
  after the start of therapy with no response marrow.
* ICD-10-CM C92.x1 / C92.x2 (in remission / in relapse, from routing): shown as a note beside the computed category.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings.labs import LabValue, coded_series, lab_series, local_codes, report_text
from fhir_mappings.record import (
    ICD10,
    ICD10CM,
    LOCAL,
    LOINC,
    SNOMED,
    PatientRecord,
    Resource,
    codings,
    concept_keys,
    effective_date,
    parse_date,
    quantity,
    ref_of,
)
from fhir_mappings.routing import RoutedCancer, classify, route
from fhir_mappings.units import COUNT_10E9_L, UnitError, UnitSpec, normalise
from rules import eln2022 as engine

# ---------------------------------------------------------------------------
# Codes (grades from shared/reference/codes.md §3.2, §3.7; loinc_map.csv)
# ---------------------------------------------------------------------------

BM_BLASTS = f"{LOINC}|11150-0"                     # A: Blasts/100 cells in Bone marrow
BM_BLASTS_VARIANTS = (f"{LOINC}|77147-7",          # C: Blasts/100 leukocytes in Bone marrow by Manual count
                      f"{LOINC}|26445-7")          # C: Myeloblasts/100 leukocytes in Bone marrow by Manual count
BM_NARRATIVE = f"{LOINC}|74233-8"                  # B: Blasts assessment in Bone marrow Narrative
BM_REPORTS = (f"{LOINC}|48807-2", f"{LOINC}|33721-2")  # A: BM aspiration report; BM pathology biopsy report
CELLS_COUNTED = f"{LOINC}|38257-2"                 # B: Cells Counted Total [#] in Bone marrow
PB_BLASTS_PCT = (f"{LOINC}|26446-5", f"{LOINC}|709-6",       # A: Blasts/100 leukocytes in Blood (+ manual)
                 f"{LOINC}|30445-1", f"{LOINC}|747-6")       # A: Myeloblasts/100 leukocytes in Blood (+ manual)
PB_BLASTS_ABS = (f"{LOINC}|30376-8", f"{LOINC}|708-8",       # A: Blasts [#/volume] in Blood (+ manual)
                 f"{LOINC}|30444-4", f"{LOINC}|746-8")       # A: Myeloblasts [#/volume] in Blood (+ manual)
PB_BLASTS_INVALID = f"{LOINC}|26446-3"             # X: not a LOINC code (codes.md §0: 26446-5 was meant)
ANC = (f"{LOINC}|751-8", f"{LOINC}|753-4", f"{LOINC}|26499-4")   # A: auto, manual, method-less
ANC_SEGS = (f"{LOINC}|30451-9",)                                  # A: Segmented neutrophils [#/volume]
ANC_BANDS = (f"{LOINC}|26507-4", f"{LOINC}|30229-9")              # A: Band form neutrophils [#/volume]
WBC = (f"{LOINC}|6690-2", f"{LOINC}|26464-8", f"{LOINC}|804-5")  # A: leukocytes (to derive ANC)
NEUT_PCT = (f"{LOINC}|770-8", f"{LOINC}|23761-0", f"{LOINC}|26511-6")  # A: neutrophils/100 leukocytes
ANC_DEPRECATED = f"{LOINC}|752-6"                  # B: deprecated "Neutrophils # Bld Auto"
PLATELETS = (f"{LOINC}|777-3", f"{LOINC}|26515-7", f"{LOINC}|778-1")  # A: auto, method-less, manual
PLATELETS_ESTIMATE = f"{LOINC}|49497-1"            # A: by Estimate - not for thresholds
DISEASE_STATUS = (f"{LOINC}|97509-4", f"{LOINC}|88040-1")  # A: mCODE CancerDiseaseStatus (STU4; STU1)
IMMUNOPHENOTYPING = f"{LOINC}|101119-6"            # A: leukaemia/lymphoma immunophenotyping (may carry MRD text)

# The project's code system (fhir_mappings.record.LOCAL) where no standard code exists
SPICULES = f"{LOCAL}|bm-spicules"
CELLULARITY = f"{LOCAL}|bm-biopsy-cellularity"
SAMPLE_ADEQUACY = f"{LOCAL}|bm-sample-adequacy"
PRETREATMENT_BLASTS = f"{LOCAL}|aml-pretreatment-bm-blasts"
EMD = f"{LOCAL}|extramedullary-disease"
MRD = f"{LOCAL}|aml-mrd"
MRD_SHARED = f"{LOCAL}|mrd-result"           # the project's MRD result code (fhir_mappings/mrd.py), read as well
MRD_LEVEL = f"{LOCAL}|mrd-level"              # component: level (when the value is coded)
MRD_LOD = f"{LOCAL}|mrd-lod"
MRD_SENSITIVITY = f"{LOCAL}|mrd-sensitivity"  # component: sensitivity / LOD (name used by the MRD mapper)
MRD_METHOD_CODES = {f"{LOCAL}|mrd-flow": "MFC", f"{LOCAL}|mrd-ngf": "MFC", f"{LOCAL}|mrd-pcr": "qPCR",
                    f"{LOCAL}|mrd-ngs": "NGS"}
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
MRD_DETECTED = f"{LOCAL}|mrd-detected"
MRD_REPLICATES_POSITIVE = f"{LOCAL}|mrd-replicates-positive"
MRD_REPLICATES_TESTED = f"{LOCAL}|mrd-replicates-tested"
MRD_LOW_LEVEL = f"{LOCAL}|mrd-low-level"
MRD_MARKER = f"{LOCAL}|mrd-marker"
MRD_TISSUE = f"{LOCAL}|mrd-tissue"
ELN_RESPONSE = f"{LOCAL}|eln-response"
INTENSIVE_COURSES = f"{LOCAL}|aml-intensive-induction-courses"
LESS_INTENSIVE_START = f"{LOCAL}|aml-less-intensive-start"
LANDMARK = f"{LOCAL}|aml-response-landmark"
NOT_EVALUABLE_REASON = f"{LOCAL}|eln-not-evaluable-reason"
CRI_INCLUSIVE = f"{LOCAL}|eln-cri-both-lineages-low"  # protocol setting (valueBoolean)

PRESENT_CODES = {f"{SNOMED}|52101004", f"{SNOMED}|260373001", f"{SNOMED}|10828004", f"{LOCAL}|present",
                 f"{LOCAL}|detected", f"{LOCAL}|positive", f"{LOCAL}|mrd-positive", f"{INTERPRETATION}|POS",
                 f"{INTERPRETATION}|DET"}
ABSENT_CODES = {f"{SNOMED}|2667000", f"{SNOMED}|260415000", f"{SNOMED}|260385009", f"{SNOMED}|281900007",
                f"{LOCAL}|absent", f"{LOCAL}|not-detected", f"{LOCAL}|negative", f"{LOCAL}|mrd-negative",
                f"{INTERPRETATION}|NEG", f"{INTERPRETATION}|ND"}

OBSERVATION_CODES: tuple[str, ...] = (
    BM_BLASTS, *BM_BLASTS_VARIANTS, BM_NARRATIVE, *BM_REPORTS, CELLS_COUNTED, *PB_BLASTS_PCT, *PB_BLASTS_ABS,
    PB_BLASTS_INVALID, *ANC, *ANC_SEGS, *ANC_BANDS, *WBC, *NEUT_PCT, ANC_DEPRECATED, *PLATELETS, PLATELETS_ESTIMATE,
    *DISEASE_STATUS, IMMUNOPHENOTYPING, SPICULES, CELLULARITY, SAMPLE_ADEQUACY, PRETREATMENT_BLASTS, EMD, MRD,
    MRD_SHARED,
    ELN_RESPONSE, INTENSIVE_COURSES, LESS_INTENSIVE_START, LANDMARK, NOT_EVALUABLE_REASON, CRI_INCLUSIVE,
)

# ---------------------------------------------------------------------------
# Units
# ---------------------------------------------------------------------------

# Blood counts: UCUM plus the non-UCUM spellings labs send (codes.md §4), each read as the UCUM unit it means;
# 10*3/L stays rejected with its fix message (criteria.md §1); any other unit is rejected with an issue.
_COUNT_SPELLINGS = {"10^9/L": "10*9/L", "x10E9/L": "10*9/L", "10^3/uL": "10*3/uL", "x10E3/uL": "10*3/uL",
                    "thou/uL": "10*3/uL", "cells/uL": "/uL", "{cells}/uL": "/uL"}
COUNT = UnitSpec(COUNT_10E9_L.name, COUNT_10E9_L.canonical, COUNT_10E9_L.accepted + tuple(_COUNT_SPELLINGS),
                 COUNT_10E9_L.rejected, COUNT_10E9_L.unitless_ok, same_as={**COUNT_10E9_L.same_as, **_COUNT_SPELLINGS})
# Percentages: % or a decimal fraction with unit 1 / {fraction} (codes.md §4: x100); no unit = %
PCT = UnitSpec("a percentage", "%", ("1", "{fraction}"), unitless_ok=True, same_as={"{fraction}": "1"})

MARROW_LINK_DAYS = 3   # adequacy findings and reports within 3 days belong to the same marrow examination [I]
COURSE_GROUP_DAYS = 10  # therapy records within 10 days of a course's first record are that course [I]
GCSF_DAYS = 7           # counts within 7 days after G-CSF / 3 days after a platelet transfusion are annotated [I]
TRANSFUSION_DAYS = 3


@dataclass
class ELNMapping:
    inputs: engine.ELNInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    cri_allows_both_lineages_low: bool | None = None   # from a protocol-setting Observation, if recorded


@dataclass
class _Marrow:
    date: date
    blasts: Decimal | None = None
    blasts_ref: str | None = None
    blasts_code_rank: int = 99
    spicules: bool | None = None
    cells: int | None = None
    cellularity: Decimal | None = None
    suboptimal: bool = False
    refs: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Small readers
# ---------------------------------------------------------------------------


def _list(x: Any) -> list:
    """A repeating element as a list of dicts (malformed entries dropped)."""
    return [i for i in x if isinstance(i, dict)] if isinstance(x, list) else []


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _displays(concept: Any) -> list[str]:
    return [c["display"] for c in _list(_dict(concept).get("coding")) if isinstance(c.get("display"), str)]


def _safe_codings(concept: Any) -> list[tuple[str, str]]:
    if not isinstance(_dict(concept).get("coding", []), list):
        return []
    return list(codings(concept))


def _safe_keys(concept: Any) -> set[str]:
    return {f"{s}|{c}" for s, c in _safe_codings(concept)}


def _ctext(concept: Any) -> str:
    """concept_text that tolerates a malformed ``coding`` (never raises)."""
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str):
        return concept["text"]
    return next(iter(_displays(concept)), "")


def _text_of(obs: Resource) -> str:
    parts = []
    if isinstance(obs.get("valueString"), str):
        parts.append(obs["valueString"])
    vc = obs.get("valueCodeableConcept")
    if isinstance(vc, dict):
        parts.append(_ctext(vc))
    for n in _list(obs.get("note")):
        if isinstance(n.get("text"), str):
            parts.append(n["text"])
    return " ".join(p for p in parts if p)


def _presence(value: Any, text: str = "", boolean: Any = None) -> bool | None:
    """present / absent from a CodeableConcept, a boolean or words; None when it says neither."""
    if isinstance(boolean, bool):
        return boolean
    keys = _safe_keys(value)
    if keys & PRESENT_CODES:
        return True
    if keys & ABSENT_CODES:
        return False
    t = " ".join([(_ctext(value) if isinstance(value, dict) else ""), text or ""]).lower()
    if not t.strip():
        return None
    if re.search(r"\b(absent|none( seen)?|not (seen|detected|present|identified)|negative|undetect\w*|no\b|nil)\b",
                 t):
        return False
    if re.search(r"\b(present|seen|detected|positive|yes|identified)\b", t):
        return True
    return None


def _obs_bool(obs: Resource) -> bool | None:
    return _presence(obs.get("valueCodeableConcept"), obs.get("valueString") or "", obs.get("valueBoolean"))


def _component(obs: Resource, key: str) -> dict | None:
    for c in _list(obs.get("component")):
        if key in _safe_keys(c.get("code")):
            return c
    return None


def _codes_with_local(codes: Iterable[str], options: Mapping[str, Any] | None, input_name: str) -> list[str]:
    return list(codes) + [k for k, _ in local_codes(options, input_name)]


def _observations(record: PatientRecord, codes: Iterable[str]) -> list[Resource]:
    return record.with_codes(list(codes), "Observation")


def _dated(record: PatientRecord, res: Resource, what: str) -> date | None:
    d = effective_date(res)
    if d is None:
        record.issue(res, f"{what} skipped", "no date")
    return d


def _pct_value(record: PatientRecord, res: Resource, q: Any, what: str) -> Decimal | None:
    v, unit, comp = quantity(q)
    if v is None:
        return None
    try:
        value = normalise(v, unit, PCT)
    except UnitError as exc:
        record.issue(res, f"{what} skipped", str(exc))
        return None
    if value < 0 or value > 100:
        record.issue(res, f"{what} skipped", "a percentage outside 0-100")
        return None
    return value


# ---------------------------------------------------------------------------
# Bone marrow
# ---------------------------------------------------------------------------

_BLAST_TEXT = (
    re.compile(r"\bblasts?\b[^.;\n%\d<>≤≥]{0,40}?(\d+(?:\.\d+)?)\s*%", re.I),
    re.compile(r"(\d+(?:\.\d+)?)\s*%\s*(?:myelo)?blasts?\b", re.I),
)
_SUBOPTIMAL_WORDS = re.compile(
    r"\b(dry tap|inadequate|suboptimal|sub-optimal|haemodilute\w*|hemodilute\w*|aparticulate|clotted|"
    r"non-diagnostic|nondiagnostic)\b", re.I)


def parse_marrow_text(text: str) -> dict:
    """Blasts %, spicules, nucleated cells counted, biopsy cellularity and sample problems from report text."""
    t = " ".join(text.split())
    out: dict = {}
    low = t.lower()
    for rx in _BLAST_TEXT:
        for m in rx.finditer(t):
            window = low[max(0, m.start() - 25):m.end() + 5]
            if "peripheral" in window or "blood" in window or "circulating" in window or "cellularity" in window:
                continue
            out["blasts"] = Decimal(m.group(1))
            break
        if "blasts" in out:
            break
    if re.search(r"\b(no|absent|without)\s+spicules\b|\bspicules\s*(?:were\s+|are\s+)?(absent|not seen|none)\b|"
                 r"\baparticulate\b", low):
        out["spicules"] = False
    elif re.search(r"\bspicules?\s*(?:were\s+|are\s+)?(present|seen|adequate|identified)\b|\bspicular\b|"
                   r"\bparticulate\b", low):
        out["spicules"] = True
    m = re.search(r"(\d{2,5})\s*(?:nucleated\s+)?cells?\s*(?:were\s+)?(?:counted|differential)", low) or \
        re.search(r"(\d{2,5})[- ]cell\s+(?:differential|count)", low)
    if m:
        out["cells"] = int(m.group(1))
    m = re.search(r"cellularity[^\d<>≤≥]{0,20}?(\d+(?:\.\d+)?)\s*%", low) or \
        re.search(r"(\d+(?:\.\d+)?)\s*%\s*cellular(?:ity)?", low)
    if m:
        out["cellularity"] = Decimal(m.group(1))
    if _SUBOPTIMAL_WORDS.search(low) and not re.search(r"\bnot\s+(haemodilute|hemodilute|suboptimal|inadequate)",
                                                       low):
        out["suboptimal"] = True
    return out


def _marrow_texts(record: PatientRecord) -> list[tuple[date, str, str | None]]:
    out = []
    report_keys = set(BM_REPORTS) | {BM_NARRATIVE}
    for obs in _observations(record, report_keys):
        d = effective_date(obs)
        text = _text_of(obs)
        if d and text:
            out.append((d, text, ref_of(obs)))
    for rep in record.of_type("DiagnosticReport"):
        code_text = _ctext(rep.get("code")).lower()
        if not (concept_keys(rep.get("code")) & report_keys or "marrow" in code_text):
            continue
        d = effective_date(rep)
        if d is None:
            record.issue(rep, "bone marrow report skipped", "no date")
            continue
        if not isinstance(rep.get("presentedForm", []), list) or not isinstance(rep.get("conclusion", ""), str):
            record.issue(rep, "bone marrow report skipped", "malformed conclusion or presentedForm")
            continue
        rep = {**rep, "presentedForm": _list(rep.get("presentedForm"))}
        text = report_text(rep)
        if text:
            out.append((d, text, ref_of(rep)))
    return out


def _marrows(record: PatientRecord, options: Mapping[str, Any]) -> tuple[dict[date, _Marrow], list[str]]:
    notes: list[str] = []
    exams: dict[date, _Marrow] = {}
    ranked = [BM_BLASTS, *BM_BLASTS_VARIANTS] + [k for k, _ in local_codes(options, "blasts_bm_pct")]
    for lv in lab_series(record, [BM_BLASTS, *BM_BLASTS_VARIANTS], PCT, input_name="blasts_bm_pct", options=options,
                         what="marrow blast percentage"):
        obs = lv.resource or {}
        if lv.comparator:
            record.issue(obs, "marrow blast percentage skipped",
                         f"reported as a bound ({lv.comparator}{lv.value} %), not a count")
            continue
        if lv.value > 100:
            record.issue(obs, "marrow blast percentage skipped", "a percentage above 100")
            continue
        keys = concept_keys(obs.get("code"))
        rank = next((i for i, k in enumerate(ranked) if k in keys), len(ranked))
        m = exams.setdefault(lv.date, _Marrow(lv.date))
        if m.blasts is None or rank < m.blasts_code_rank:
            m.blasts, m.blasts_ref, m.blasts_code_rank = lv.value, lv.ref, rank

    def nearest(d: date) -> _Marrow | None:
        best = None
        for md, m in exams.items():
            delta = abs((md - d).days)
            if delta <= MARROW_LINK_DAYS and (best is None or delta < abs((best.date - d).days)):
                best = m
        return best

    # report text: a marrow examination whose blasts are only in the report
    texts = [(d, parse_marrow_text(text), ref) for d, text, ref in _marrow_texts(record)]
    for d, parsed, ref in texts:
        if "blasts" in parsed and parsed["blasts"] <= 100 and nearest(d) is None:
            exams[d] = _Marrow(d, parsed["blasts"], ref)
            notes.append(f"Marrow blasts of {d.isoformat()} read from the bone marrow report text")
        elif parsed.get("suboptimal") and nearest(d) is None:
            exams[d] = _Marrow(d, None, None, suboptimal=True, refs=[ref] if ref else [])

    # structured adequacy findings of the same examination
    for obs in _observations(record, _codes_with_local([CELLS_COUNTED], options, "bm_cells_counted")):
        d = _dated(record, obs, "nucleated cell count")
        m = nearest(d) if d else None
        if m is None:
            continue
        v = obs.get("valueInteger")
        if not isinstance(v, int) or isinstance(v, bool):
            q, unit, _ = quantity(obs.get("valueQuantity"))
            if q is not None and unit not in (None, "", "{#}", "{cells}", "1", "cells", "{count}"):
                record.issue(obs, "nucleated cell count skipped", f"unit '{unit}' is not a count")
                continue
            v = int(q) if q is not None and q == q.to_integral_value() and q >= 0 else None
        if v is None or v < 0:
            record.issue(obs, "nucleated cell count skipped", "no whole-number count")
            continue
        m.cells = v
        m.refs.append(ref_of(obs) or "")
    for obs in _observations(record, _codes_with_local([CELLULARITY], options, "bm_cellularity")):
        d = _dated(record, obs, "marrow cellularity")
        m = nearest(d) if d else None
        if m is None:
            continue
        v = _pct_value(record, obs, obs.get("valueQuantity"), "marrow cellularity")
        if v is not None:
            m.cellularity = v
            m.refs.append(ref_of(obs) or "")
    for obs in _observations(record, _codes_with_local([SPICULES], options, "bm_spicules")):
        d = _dated(record, obs, "marrow spicules")
        m = nearest(d) if d else None
        if m is None:
            continue
        present = _obs_bool(obs)
        if present is None:
            record.issue(obs, "marrow spicules skipped", "value is neither present nor absent")
            continue
        m.spicules = present
        m.refs.append(ref_of(obs) or "")
    for obs in _observations(record, _codes_with_local([SAMPLE_ADEQUACY], options, "bm_sample_adequacy")):
        d = _dated(record, obs, "marrow sample adequacy")
        if d is None:
            continue
        words = " ".join([" ".join(k.split("|", 1)[1] for k in _safe_keys(obs.get("valueCodeableConcept"))),
                          _text_of(obs)]).lower()
        if not (_SUBOPTIMAL_WORDS.search(words) or obs.get("valueBoolean") is False):
            continue
        m = nearest(d) or exams.setdefault(d, _Marrow(d))  # a marrow reported only as inadequate is an examination
        m.suboptimal = True
        m.refs.append(ref_of(obs) or "")

    # report text fills what the structured data did not give
    for d, parsed, ref in texts:
        m = nearest(d)
        if m is None or not parsed:
            continue
        if m.spicules is None and "spicules" in parsed:
            m.spicules = parsed["spicules"]
        if m.cells is None and "cells" in parsed:
            m.cells = parsed["cells"]
        if m.cellularity is None and "cellularity" in parsed and parsed["cellularity"] <= 100:
            m.cellularity = parsed["cellularity"]
        if parsed.get("suboptimal"):
            m.suboptimal = True
        if ref:
            m.refs.append(ref)
    for m in exams.values():
        m.refs = [r for r in m.refs if r]
    return exams, notes


# ---------------------------------------------------------------------------
# Blood counts
# ---------------------------------------------------------------------------


def _by_date(values: list[LabValue]) -> dict[date, LabValue]:
    out: dict[date, LabValue] = {}
    for lv in values:
        if lv.comparator:
            continue  # a bound is not a count
        out[lv.date] = lv  # the last one of a day wins (series are in date order)
    return out


def _ranked(values: list[LabValue], ranked: list[str]) -> dict[date, LabValue]:
    """One value per date, preferring the earlier codes of ``ranked``."""
    out: dict[date, tuple[int, LabValue]] = {}
    for lv in values:
        if lv.comparator:
            continue  # reported by _bounded
        keys = concept_keys((lv.resource or {}).get("code"))
        rank = next((i for i, k in enumerate(ranked) if k in keys), len(ranked))
        if lv.date not in out or rank <= out[lv.date][0]:
            out[lv.date] = (rank, lv)
    return {d: lv for d, (_, lv) in out.items()}


def _skip_codes(record: PatientRecord, key: str, what: str, why: str) -> None:
    for obs in _observations(record, [key]):
        record.issue(obs, f"{what} not used", why)


def _bounded(record: PatientRecord, values: list[LabValue], what: str) -> None:
    for lv in values:
        if lv.comparator and lv.resource is not None:
            record.issue(lv.resource, f"{what} not used", f"reported as a bound ({lv.comparator}{lv.value})")


def _supportive_dates(record: PatientRecord) -> tuple[list[date], list[date]]:
    gcsf, transfusion = [], []
    for rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement"):
        for res in record.of_type(rtype):
            t = _medication_text(res)
            d = effective_date(res)
            if d and re.search(r"filgrastim|lenograstim|g-csf|gcsf|sargramostim", t):
                gcsf.append(d)
    for res in record.of_type("Procedure"):
        t = _ctext(res.get("code")).lower()
        d = effective_date(res)
        if d and "transfusion" in t and "platelet" in t:
            transfusion.append(d)
    return gcsf, transfusion


def _counts(record: PatientRecord, options: Mapping[str, Any]) -> tuple[list[engine.BloodCount], list[str]]:
    notes: list[str] = []
    _skip_codes(record, ANC_DEPRECATED, "ANC", "LOINC 752-6 is deprecated; the lab should send 751-8")
    _skip_codes(record, PLATELETS_ESTIMATE, "platelet count",
                "LOINC 49497-1 is a platelet estimate, not usable for response thresholds")
    anc_codes = _codes_with_local(ANC, options, "anc")
    anc_series = lab_series(record, ANC, COUNT, input_name="anc", options=options, what="ANC")
    _bounded(record, anc_series, "ANC")
    anc = _ranked(anc_series, anc_codes)
    segs = _by_date(lab_series(record, ANC_SEGS, COUNT, what="segmented neutrophils"))
    bands = _by_date(lab_series(record, ANC_BANDS, COUNT, what="band neutrophils"))
    wbc = _by_date(lab_series(record, WBC, COUNT, what="leukocyte count"))
    neut = _by_date(lab_series(record, NEUT_PCT, PCT, what="neutrophil percentage"))
    derived: dict[date, tuple[Decimal, str | None]] = {}
    for d, s in segs.items():
        if d in anc:
            continue
        b = bands.get(d)
        derived[d] = (s.value + (b.value if b else Decimal(0)), s.ref)
        notes.append(f"ANC of {d.isoformat()} = segmented" + (" + band" if b else "") + " neutrophils"
                     + ("" if b else " (bands not reported; may underestimate)"))
    for d, w in wbc.items():
        if d in anc or d in derived or d not in neut:
            continue
        derived[d] = (w.value * neut[d].value / 100, w.ref)
        notes.append(f"ANC of {d.isoformat()} derived from WBC x neutrophil %")
    plt_codes = _codes_with_local(PLATELETS, options, "platelets")
    plt_series = lab_series(record, PLATELETS, COUNT, input_name="platelets", options=options, what="platelet count")
    _bounded(record, plt_series, "platelet count")
    plt = _ranked(plt_series, plt_codes)
    gcsf, transfusion = _supportive_dates(record)
    out = []
    for d in sorted(set(anc) | set(derived) | set(plt)):
        a_val, a_ref = (anc[d].value, anc[d].ref) if d in anc else derived.get(d, (None, None))
        p = plt.get(d)
        flagged = any(0 <= (d - g).days <= GCSF_DAYS for g in gcsf) or \
            any(0 <= (d - t).days <= TRANSFUSION_DAYS for t in transfusion)
        out.append(engine.BloodCount(d, anc_10e9_per_L=a_val, platelets_10e9_per_L=p.value if p else None,
                                     after_transfusion_or_gcsf=flagged, anc_ref=a_ref, platelets_ref=p.ref if p else None))
    return out, notes


# ---------------------------------------------------------------------------
# Peripheral-blood blasts
# ---------------------------------------------------------------------------


def _pb_blasts(record: PatientRecord, options: Mapping[str, Any]) -> list[engine.PeripheralBlasts]:
    _skip_codes(record, PB_BLASTS_INVALID, "peripheral blood blasts",
                "26446-3 is not a valid LOINC code (Blasts/100 leukocytes in Blood is 26446-5)")
    pct_codes = _codes_with_local(PB_BLASTS_PCT, options, "blasts_blood_pct")
    abs_codes = _codes_with_local(PB_BLASTS_ABS, options, "blasts_blood_abs")
    by_date: dict[date, engine.PeripheralBlasts] = {}
    rank: dict[date, int] = {}

    def put(d: date, pb: engine.PeripheralBlasts, r: int) -> None:
        if d not in by_date or r < rank[d]:
            by_date[d], rank[d] = pb, r

    for lv in lab_series(record, PB_BLASTS_PCT, PCT, input_name="blasts_blood_pct", options=options,
                         what="peripheral blood blast percentage"):
        if lv.comparator:
            record.issue(lv.resource, "peripheral blood blasts not used",
                         f"reported as a bound ({lv.comparator}{lv.value} %): presence of blasts cannot be decided")
            continue
        if lv.value > 100:
            record.issue(lv.resource, "peripheral blood blasts skipped", "a percentage above 100")
            continue
        put(lv.date, engine.PeripheralBlasts(lv.date, pct=lv.value, ref=lv.ref), 0)
    for lv in lab_series(record, PB_BLASTS_ABS, COUNT, input_name="blasts_blood_abs", options=options,
                         what="peripheral blood blast count"):
        if lv.comparator:
            record.issue(lv.resource, "peripheral blood blasts not used",
                         f"reported as a bound ({lv.comparator}{lv.value}): presence of blasts cannot be decided")
            continue
        put(lv.date, engine.PeripheralBlasts(lv.date, present=lv.value > 0, ref=lv.ref), 1)
    for cv in coded_series(record, pct_codes + abs_codes):
        present = _presence(cv.resource.get("valueCodeableConcept"), cv.text, cv.boolean)
        if present is None:
            record.issue(cv.resource, "peripheral blood blasts not used", "coded result is neither present nor absent")
            continue
        put(cv.date, engine.PeripheralBlasts(cv.date, present=present, ref=cv.ref), 2)
    return [by_date[d] for d in sorted(by_date)]


# ---------------------------------------------------------------------------
# Extramedullary disease
# ---------------------------------------------------------------------------

_EMD_WORDS = re.compile(r"myeloid sarcoma|granulocytic sarcoma|chloroma|leuka?emia cutis|extramedullary|"
                        r"cns (leuka?emia|involvement)", re.I)


def _site(res: Resource) -> str | None:
    site = res.get("bodySite")
    if isinstance(site, list):
        site = site[0] if site else None
    t = _ctext(site) if isinstance(site, dict) else ""
    return t if isinstance(t, str) and t else None


def _emd(record: PatientRecord, routed: RoutedCancer | None,
         options: Mapping[str, Any]) -> list[engine.ExtramedullaryFinding]:
    out = []
    for obs in _observations(record, _codes_with_local([EMD], options, "extramedullary_disease")):
        d = _dated(record, obs, "extramedullary disease finding")
        if d is None:
            continue
        present = _obs_bool(obs)
        if present is None:
            record.issue(obs, "extramedullary disease finding skipped", "value is neither present nor absent")
            continue
        out.append(engine.ExtramedullaryFinding(d, present, _site(obs), ref_of(obs)))
    for cond in record.of_type("Condition"):
        icd = any(s in (ICD10CM, ICD10) and c.upper().startswith("C92.3") for s, c in _safe_codings(cond.get("code")))
        text = " ".join([_ctext(cond.get("code"))] + _displays(cond.get("code")))
        if not (icd or _EMD_WORDS.search(text)):
            continue
        onset = parse_date(cond.get("onsetDateTime")) or parse_date(cond.get("recordedDate"))
        if onset is None:
            record.issue(cond, "extramedullary disease (Condition) skipped", "no onset or recorded date")
            continue
        site = _site(cond) or (text.strip() or None)
        out.append(engine.ExtramedullaryFinding(onset, True, site, ref_of(cond)))
        abate = parse_date(cond.get("abatementDateTime"))
        if abate is not None and abate > onset:
            out.append(engine.ExtramedullaryFinding(abate, False, site, ref_of(cond)))
    return sorted(out, key=lambda e: e.date)


# ---------------------------------------------------------------------------
# MRD
# ---------------------------------------------------------------------------

_MRD_TEXT_NEG = re.compile(r"\b(mrd[- ]?neg\w*|negative|not detected|undetect\w*|no (residual|mrd|aberrant)\w*)\b",
                           re.I)
_MRD_TEXT_POS = re.compile(r"\b(mrd[- ]?pos\w*|positive|detected)\b", re.I)


def _method_of(obs: Resource) -> str | None:
    for k in _safe_keys(obs.get("method")):
        if k in MRD_METHOD_CODES:
            return MRD_METHOD_CODES[k]
    texts = [_ctext(obs.get("method")), _ctext(obs.get("code"))]
    t = " ".join(x for x in texts if x).lower()
    if re.search(r"flow|cytometr|\bmfc\b|immunophenotyp|\blaip\b|\blait\b|different[- ]from[- ]normal", t):
        return "MFC"
    if re.search(r"\bngs\b|sequencing|next[- ]generation", t):
        return "NGS"
    if re.search(r"pcr", t):
        return "qPCR"
    if IMMUNOPHENOTYPING in concept_keys(obs.get("code")):
        return "MFC"
    return None


def _fraction_of(record: PatientRecord, obs: Resource, q: Any, what: str) -> tuple[Decimal | None, str | None]:
    v, unit, comp = quantity(q)
    if v is None:
        return None, comp
    try:
        pct = normalise(v, unit, PCT)
    except UnitError as exc:
        record.issue(obs, f"{what} skipped", str(exc))
        return None, comp
    if pct < 0 or pct > 100:
        record.issue(obs, f"{what} skipped", "a level outside 0-100 %")
        return None, comp
    return pct / 100, comp


_SCI = re.compile(r"(\d+(?:\.\d+)?)\s*(?:x|×|\*)\s*10\s*(?:\^|\*\*)?\s*([-−–]\s*\d{1,2})(?!\d)|"
                  r"(\d(?:\.\d+)?)e([-−]\d{1,2})(?!\d)", re.I)


def _text_fraction(text: str) -> Decimal | None:
    """'0.01 %', '1 x 10^-4', '1e-4', '10^-5' in text -> fraction (the first one found)."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*%", text)
    if m:
        return Decimal(m.group(1)) / 100
    m = _SCI.search(text)
    if m:
        mant, exp = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return Decimal(mant) * Decimal(10) ** int(exp.replace("−", "-").replace("–", "-").replace(" ", ""))
    m = re.search(r"10\s*\^\s*([-−]\s*\d{1,2})(?!\d)", text)
    if m:
        return Decimal(10) ** int(m.group(1).replace("−", "-").replace(" ", ""))
    return None


def _tissue(record: PatientRecord, obs: Resource) -> str | None:
    texts = []
    comp = _component(obs, MRD_TISSUE)
    if comp:
        texts.append(_ctext(comp.get("valueCodeableConcept")) or
                     (comp["valueString"] if isinstance(comp.get("valueString"), str) else ""))
    spec = obs.get("specimen")
    if isinstance(spec, dict):
        texts.append(spec["display"] if isinstance(spec.get("display"), str) else "")
        target = record.get(spec)
        if target is not None:
            texts.append(_ctext(target.get("type")))
    texts.append(_site(obs) or "")
    t = " ".join(texts).lower()
    if "marrow" in t or re.search(r"\bbm\b", t):
        return "BM"
    if "blood" in t or re.search(r"\bpb\b", t):
        return "PB"
    return None


def _mrd(record: PatientRecord, options: Mapping[str, Any]) -> list[engine.MRDResult]:
    out = []
    codes = _codes_with_local([MRD, MRD_SHARED, IMMUNOPHENOTYPING], options, "aml_mrd") + \
        [k for k, _ in local_codes(options, "mrd")]
    for obs in _observations(record, codes):
        d = _dated(record, obs, "MRD result")
        if d is None:
            continue
        is_immuno = IMMUNOPHENOTYPING in concept_keys(obs.get("code")) and \
            not concept_keys(obs.get("code")) & {MRD, MRD_SHARED}
        text = _text_of(obs)
        if is_immuno and "mrd" not in text.lower() and "residual" not in text.lower():
            continue  # an immunophenotyping result that is not an MRD statement
        method = _method_of(obs)
        if method is None:
            record.issue(obs, "MRD result not used", "method (MFC, qPCR or NGS) not stated")
            continue
        value, comp = _fraction_of(record, obs, obs.get("valueQuantity"), "MRD level")
        c = _component(obs, MRD_LEVEL)
        if value is None and comp is None and c is not None:
            value, comp = _fraction_of(record, obs, c.get("valueQuantity"), "MRD level")
        detected: bool | None = None
        lod: Decimal | None = None
        if value is not None and comp in ("<", "<="):
            detected, lod, value = False, value, None
        elif value is not None and comp in (">", ">="):
            detected = True
        c = _component(obs, MRD_DETECTED)
        if c is not None:
            p = _presence(c.get("valueCodeableConcept"), str(c.get("valueString") or ""), c.get("valueBoolean"))
            detected = p if p is not None else detected
        if detected is None and value is None:
            detected = _obs_bool(obs)
            if detected is None:
                interp = set()
                for i in _list(obs.get("interpretation")):
                    interp |= _safe_keys(i)
                detected = True if interp & PRESENT_CODES else (False if interp & ABSENT_CODES else None)
            if detected is None and text:
                if _MRD_TEXT_NEG.search(text):
                    detected = False
                elif _MRD_TEXT_POS.search(text):
                    detected = True
        c = _component(obs, MRD_LOD) or _component(obs, MRD_SENSITIVITY)
        if c is not None:
            lod_v, _ = _fraction_of(record, obs, c.get("valueQuantity"), "MRD LOD")
            lod = lod_v if lod_v is not None else lod
        if lod is None and text:
            m = re.search(r"(?:sensitivity|lod|limit of detection|detection limit)\D{0,20}(.{0,30})", text, re.I)
            if m:
                lod = _text_fraction(m.group(1))
        if detected is None and value is None:
            record.issue(obs, "MRD result not used", "no level and no detected / not detected result")
            continue
        reps_pos = reps_tested = None
        for key, slot in ((MRD_REPLICATES_POSITIVE, "pos"), (MRD_REPLICATES_TESTED, "tested")):
            cc = _component(obs, key)
            if cc is None:
                continue
            n = cc.get("valueInteger")
            if not isinstance(n, int) or isinstance(n, bool):
                q, _, _ = quantity(cc.get("valueQuantity"))
                n = int(q) if q is not None and q == q.to_integral_value() else None
            if slot == "pos":
                reps_pos = n
            else:
                reps_tested = n
        low_level = None
        cc = _component(obs, MRD_LOW_LEVEL)
        if cc is not None and isinstance(cc.get("valueBoolean"), bool):
            low_level = cc["valueBoolean"]
        marker = None
        cc = _component(obs, MRD_MARKER)
        if cc is not None:
            marker = _ctext(cc.get("valueCodeableConcept")) or (cc.get("valueString") if isinstance(
                cc.get("valueString"), str) else None)
        out.append(engine.MRDResult(d, method, detected=detected, value_fraction=value, lod_fraction=lod,
                                    replicates_positive=reps_pos, replicates_tested=reps_tested, low_level=low_level,
                                    tissue=_tissue(record, obs), marker=marker, ref=ref_of(obs)))
    return out


# ---------------------------------------------------------------------------
# Prior categories
# ---------------------------------------------------------------------------


_MRD_NEG_WORDS = re.compile(r"mrd[- ]?neg\w*|mrd\s*-(?!\w)|without (?:measurable residual disease|mrd)|"
                            r"mrd[- ]?negativity|mrd not detected", re.I)


_WORDED = (  # longest first: the categories in words (the engine's labels and common phrasing)
    ("complete remission with partial hematologic recovery", engine.CRH),
    ("complete remission with incomplete hematologic recovery", engine.CRI),
    ("complete remission with incomplete blood count recovery", engine.CRI),
    ("complete remission with incomplete count recovery", engine.CRI),
    ("morphologic leukemia-free state", engine.MLFS),
    ("morphological leukemia-free state", engine.MLFS),
    ("complete remission", engine.CR),
    ("partial remission", engine.PR),
)


def category_of(text: str) -> str | None:
    """An ELN 2022 category from recorded text: exact, or decorated ("CR (MRD unknown)", "CRh, MRD-negative",
    "CR with MRD negativity"); None when the text names no ELN category."""
    t = " ".join(str(text).split())
    if not t:
        return None
    try:
        return engine.normalise_category(t)
    except ValueError:
        pass
    low = t.lower().replace("haemato", "hemato").replace("leukaemia", "leukemia")
    for phrase, cat in _WORDED:
        if low.startswith(phrase):
            return category_of(cat + low[len(phrase):]) or cat
    bare = re.sub(r"\([^)]*\)", " ", t)
    mrd_neg = bool(_MRD_NEG_WORDS.search(t)) and not re.search(r"mrd[- ]?pos|mrd\+|mrd unknown|mrd not (tested|"
                                                               r"assessed)", t, re.I)
    candidates = [bare] + re.split(r"[,;:]| with | without | by ", bare)
    for cand in candidates:
        cand = cand.strip(" .-")
        if not cand:
            continue
        try:
            cat = engine.normalise_category(cand)
        except ValueError:
            continue
        if mrd_neg and cat in (engine.CR, engine.CRH, engine.CRI):
            return cat + "_MRD-"
        return cat
    return None


def _prior(record: PatientRecord, routed: RoutedCancer | None, n_cancers: int) -> tuple[list[engine.PriorCategory],
                                                                                       list[str]]:
    out, notes = [], []
    for obs in _observations(record, [*DISEASE_STATUS, ELN_RESPONSE]):
        keys = concept_keys(obs.get("code"))
        method = (_ctext(obs.get("method")) or "").lower()
        focus = _list(obs.get("focus"))
        targets = [record.get(f) for f in focus]
        about_this = any(t is not None and t.get("resourceType") == "Condition" and (classify(t) or (None,))[0]
                         is not None and classify(t)[0].key == "aml" for t in targets)
        about_other = bool(focus) and not about_this
        eln_stated = "eln" in method or ELN_RESPONSE in keys
        if about_other or (method and not eln_stated):
            continue  # another cancer, or another criteria set
        vc = _dict(obs.get("valueCodeableConcept"))
        candidates = [_ctext(vc)] + [c for _, c in _safe_codings(vc)] + _displays(vc) + \
            [obs["valueString"] if isinstance(obs.get("valueString"), str) else ""]
        cat = next((c for c in (category_of(x) for x in candidates if x) if c), None)
        d = effective_date(obs)
        if cat is None:
            if eln_stated or about_this:
                record.issue(obs, "recorded response not used", "value is not an ELN 2022 category")
            continue
        if not (eln_stated or about_this) and (n_cancers > 1 and cat in (engine.CR, engine.PR, engine.NO_RESPONSE)):
            continue  # a bare CR/PR in a patient with several cancers: not known to be an ELN category
        if d is None:
            record.issue(obs, "recorded response skipped", "no date")
            continue
        out.append(engine.PriorCategory(d, cat, ref_of(obs)))
        notes.append(f"Recorded ELN category {cat} of {d.isoformat()} used as history")
    return out, notes


# ---------------------------------------------------------------------------
# Therapy context
# ---------------------------------------------------------------------------

_LESS_INTENSIVE = re.compile(
    r"azacitidine|azacytidine|vidaza|decitabine|dacogen|venetoclax|venclexta|low[- ]dose cytarabine|\bldac\b|"
    r"glasdegib|hypomethylating|\bhma\b|less[- ]intensive|non[- ]intensive|low[- ]intensity|\baza\b|\bven\b", re.I)
_INTENSIVE = re.compile(
    r"daunorubicin|idarubicin|mitoxantrone|cpx-?351|vyxeos|\b7\s*\+\s*3\b|flag-?ida|\bflag\b|high[- ]dose cytarabine|"
    r"\bhidac\b|\bhdac\b|intensive induction|intensive chemotherapy|induction chemotherapy|re-?induction", re.I)
_ANTILEUKAEMIC = re.compile(
    r"cytarabine|ara-?c|gemtuzumab|midostaurin|gilteritinib|quizartinib|ivosidenib|enasidenib|olutasidenib|"
    r"chemotherapy|induction|antileuk|anti-leuk|consolidation", re.I)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# RxNorm ingredients (grade C: not checked against an RxNorm release; the display text is read as well)
_RX_INTENSIVE = {"3109", "5650", "7005"}            # daunorubicin, idarubicin, mitoxantrone
_RX_LESS = {"1251", "15657", "1747556"}             # azacitidine, decitabine, venetoclax
_RX_OTHER = {"3041"}                                # cytarabine (intensity from the text / companions)


def _medication_text(res: Resource) -> str:
    mc = res.get("medicationCodeableConcept")
    parts = [_ctext(mc)] + _displays(mc)
    ref = res.get("medicationReference")
    if isinstance(ref, dict) and isinstance(ref.get("display"), str):
        parts.append(ref["display"])
    for n in _list(res.get("note")) + _list(res.get("dosageInstruction")):
        if isinstance(n.get("text"), str):
            parts.append(n["text"])
    return " ".join(p for p in parts if isinstance(p, str) and p).lower()


def _therapy_kind(text: str, rx: set[str]) -> str | None:
    """'less' | 'intensive' | 'other' (anti-leukaemic, intensity unknown) | None (not anti-leukaemic)."""
    if _LESS_INTENSIVE.search(text) or rx & _RX_LESS:
        return "less"
    if _INTENSIVE.search(text) or rx & _RX_INTENSIVE:
        return "intensive"
    if _ANTILEUKAEMIC.search(text) or rx & _RX_OTHER:
        return "other"
    return None


@dataclass
class _Therapy:
    context: engine.TherapyContext | None
    first_start: date | None
    notes: list[str]


def _therapy(record: PatientRecord) -> _Therapy:
    intensive: list[tuple[date, str | None]] = []
    less: list[date] = []
    other: list[date] = []
    notes: list[str] = []
    for rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement"):
        for res in record.of_type(rtype):
            if res.get("intent") in ("proposal", "plan") or res.get("status") in ("draft", "not-taken", "unknown"):
                continue
            text = _medication_text(res)
            rx = {c for s, c in _safe_codings(res.get("medicationCodeableConcept")) if s == RXNORM}
            kind = _therapy_kind(text, rx)
            if kind is None:
                continue
            d = effective_date(res)
            if d is None:
                record.issue(res, "therapy record skipped", "no date")
                continue
            if kind == "intensive":
                intensive.append((d, ref_of(res)))
            elif kind == "less":
                less.append(d)
            else:
                other.append(d)
    for res in record.of_type("Procedure"):
        text = _ctext(res.get("code")).lower()
        kind = _therapy_kind(text, set())
        if kind is None or "transfusion" in text:
            continue
        d = effective_date(res)
        if d is None:
            record.issue(res, "therapy record skipped", "no date")
            continue
        if kind == "intensive":
            intensive.append((d, ref_of(res)))
        elif kind == "less":
            less.append(d)
        else:
            other.append(d)
    starts: list[date] = []
    for d, _ in sorted(intensive):
        if not starts or (d - starts[-1]).days > COURSE_GROUP_DAYS:
            starts.append(d)
    courses_recorded = None
    for obs in _observations(record, [INTENSIVE_COURSES]):
        n = obs.get("valueInteger")
        if not isinstance(n, int) or isinstance(n, bool):
            q, _, _ = quantity(obs.get("valueQuantity"))
            n = int(q) if q is not None and q == q.to_integral_value() else None
        if n is None or n < 0:
            record.issue(obs, "recorded induction courses skipped", "no whole-number count")
            continue
        courses_recorded = n
    less_start = min(less) if less else None
    for obs in _observations(record, [LESS_INTENSIVE_START]):
        d = parse_date(obs.get("valueDateTime")) or effective_date(obs)
        if d is None:
            record.issue(obs, "recorded less-intensive start skipped", "no date")
            continue
        less_start = min(less_start, d) if less_start else d
    landmark = None
    for obs in _observations(record, [LANDMARK]):
        d = parse_date(obs.get("valueDateTime")) or effective_date(obs)
        if d is None:
            record.issue(obs, "recorded response landmark skipped", "no date")
            continue
        landmark = d if landmark is None else min(landmark, d)
    all_starts = starts + ([less_start] if less_start else []) + other
    first = min(all_starts) if all_starts else None
    if not (starts or courses_recorded is not None or less_start or landmark):
        return _Therapy(None, first, notes)
    if starts:
        notes.append(f"{len(starts)} intensive induction course(s) recorded, starting "
                     + ", ".join(s.isoformat() for s in starts))
    if less_start:
        notes.append(f"Less-intensive therapy started {less_start.isoformat()}")
    ctx = engine.TherapyContext(intensive_course_starts=tuple(starts),
                                intensive_courses_completed=courses_recorded if not starts else None,
                                less_intensive_start=less_start, landmark_date=landmark)
    return _Therapy(ctx, first, notes)


# ---------------------------------------------------------------------------
# Not evaluable
# ---------------------------------------------------------------------------


def _death_date(record: PatientRecord) -> date | None:
    for p in record.of_type("Patient"):
        d = parse_date(p.get("deceasedDateTime"))
        if d:
            return d
    return None


# ---------------------------------------------------------------------------
# The mapper
# ---------------------------------------------------------------------------


def map_eln(record: PatientRecord, routed: RoutedCancer | None = None,
            options: Mapping[str, Any] | None = None) -> ELNMapping:
    """Record -> ELNInputs. ``inputs`` is None when the record holds nothing ELN can use (``missing`` says what)."""
    options = options or {}
    notes: list[str] = []

    def guarded(what: str, fn, empty):
        # last resort: a resource shape no reader anticipated must cost that input, not the whole card
        try:
            return fn()
        except (TypeError, AttributeError, ValueError, ArithmeticError, KeyError) as exc:
            record.issue(None, f"{what} not read", f"a malformed resource in the record ({type(exc).__name__})")
            return empty

    exams, n = guarded("bone marrow examinations", lambda: _marrows(record, options), ({}, []))
    notes += n
    counts, n = guarded("blood counts", lambda: _counts(record, options), ([], []))
    notes += n
    pb = guarded("peripheral blood blasts", lambda: _pb_blasts(record, options), [])
    emd = guarded("extramedullary disease", lambda: _emd(record, routed, options), [])
    mrd = guarded("MRD results", lambda: _mrd(record, options), [])
    n_cancers = len(route(record))
    prior, n = guarded("recorded ELN categories", lambda: _prior(record, routed, n_cancers), ([], []))
    notes += n
    therapy = guarded("therapy records", lambda: _therapy(record), _Therapy(None, None, []))
    notes += therapy.notes

    # pretreatment marrow: the earliest marrow before the first therapy (before the diagnosis if no therapy is known)
    cutoff = therapy.first_start or (routed.onset if routed else None)
    with_blasts = sorted((m for m in exams.values() if m.blasts is not None), key=lambda m: m.date)
    pre_marrows = [m for m in with_blasts if cutoff is not None and m.date <= cutoff]
    pretreatment, pretreatment_ref = None, None
    if pre_marrows:
        pretreatment, pretreatment_ref = pre_marrows[0].blasts, pre_marrows[0].blasts_ref
        notes.append(f"Pretreatment marrow blasts from the examination of {pre_marrows[0].date.isoformat()} "
                     f"(before {'therapy' if therapy.first_start else 'the diagnosis date'} "
                     f"{cutoff.isoformat() if cutoff else ''})")
    else:
        for lv in lab_series(record, [PRETREATMENT_BLASTS], PCT, input_name="aml_pretreatment_bm_blasts",
                             options=options, what="pretreatment marrow blasts"):
            if lv.comparator or lv.value > 100:
                record.issue(lv.resource, "pretreatment marrow blasts skipped", "not a single percentage")
                continue
            pretreatment, pretreatment_ref = lv.value, lv.ref
    pre_dates = {m.date for m in exams.values() if cutoff is not None and m.date <= cutoff}
    marrow = tuple(
        engine.MarrowExam(m.date, m.blasts, spicules_present=m.spicules, nucleated_cells_counted=m.cells,
                          biopsy_cellularity_pct=m.cellularity, technically_suboptimal=m.suboptimal,
                          ref=m.blasts_ref or (m.refs[0] if m.refs else None))
        for m in sorted(exams.values(), key=lambda m: m.date) if m.date not in pre_dates)

    reason = None
    for obs in _observations(record, [NOT_EVALUABLE_REASON]):
        t = _text_of(obs) or " ".join(c for _, c in _safe_codings(obs.get("valueCodeableConcept")))
        if t:
            reason = t.strip()
    death = _death_date(record)
    if reason is None and death is not None and therapy.first_start is not None and death >= therapy.first_start \
            and not any(therapy.first_start < m.date <= death for m in marrow):
        reason = "early death (died before a response marrow)"

    cri_inclusive = None
    for obs in _observations(record, [CRI_INCLUSIVE]):
        if isinstance(obs.get("valueBoolean"), bool):
            cri_inclusive = obs["valueBoolean"]

    if not (marrow or pb or prior or mrd or reason or any(e.present for e in emd)):
        missing = ["bone marrow examination with blast percentage (LOINC 11150-0) after the start of therapy"]
        if not counts:
            missing.append("ANC (LOINC 751-8) and platelet count (LOINC 777-3) around the marrow examination")
        if not pb:
            missing.append("peripheral blood blasts (LOINC 26446-5 or a present/absent result)")
        return ELNMapping(None, tuple(missing), tuple(dict.fromkeys(notes)), cri_inclusive)
    inputs = engine.ELNInputs(
        marrow=marrow, counts=tuple(counts), pb_blasts=tuple(pb), emd=tuple(emd), mrd=tuple(mrd),
        pretreatment_marrow_blasts_pct=pretreatment, pretreatment_ref=pretreatment_ref, prior=tuple(prior),
        therapy=therapy.context, not_evaluable_reason=reason,
    )
    return ELNMapping(inputs, (), tuple(dict.fromkeys(notes)), cri_inclusive)
