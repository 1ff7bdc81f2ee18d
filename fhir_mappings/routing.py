"""Cancer Conditions -> cancer type -> the criteria sets that apply.

A Condition is recognised by ICD-10(-CM) code prefix, by SNOMED CT code, or, when neither is known, by words in
its text or display (EHR problem lists often carry local codes with a readable display). ICD-10-CM
haematological codes also carry the remission state (e.g. C92.01 AML in remission, C92.02 in relapse), which is
kept as context.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from fhir_mappings.record import ICD10, ICD10CM, SNOMED, PatientRecord, Resource, codings, concept_text, parse_date, ref_of
from rules.base import frozen_builder


@dataclass(frozen=True)
class CancerType:
    key: str
    label: str
    criteria: tuple[str, ...]
    icd10_prefixes: tuple[str, ...] = ()
    snomed: tuple[str, ...] = ()
    words: tuple[str, ...] = ()


# Order matters: the first match wins, so specific types come before the generic solid tumour.
# SNOMED CT codes are the disorder concepts of the listed cancers (International Edition).
CANCER_TYPES: tuple[CancerType, ...] = (
    CancerType("aml", "acute myeloid leukaemia", ("ELN 2022",), ("C92.0", "C92.3", "C92.4", "C92.5", "C92.6", "C92.A",
               "C93.0", "C94.0", "C94.2"), ("91861009", "17788007", "110004001"),
               ("acute myeloid leuk", "acute myelogenous leuk", "aml", "acute promyelocytic")),
    CancerType("all", "acute lymphoblastic leukaemia", ("ALL MRD",), ("C91.0",), ("91857003", "277567002", "277621003"),
               ("acute lymphoblastic leuk", "acute lymphocytic leuk", "acute lymphoid leuk", "b-all", "t-all")),
    CancerType("cll", "chronic lymphocytic leukaemia", ("iwCLL 2018",), ("C91.1",), ("92814006", "277473004"),
               ("chronic lymphocytic leuk", "chronic lymphoid leuk", "cll", "small lymphocytic lymphoma")),
    CancerType("myeloma", "multiple myeloma", ("IMWG 2016", "IMWG 2016 MRD"), ("C90.0", "C90.2", "C90.3"),
               ("109989006", "94703007"), ("multiple myeloma", "plasma cell myeloma", "myeloma")),
    CancerType("hodgkin", "Hodgkin lymphoma", ("Lugano 2014",), ("C81",), ("118599009",),
               ("hodgkin lymphoma", "hodgkin's lymphoma", "hodgkin disease")),
    CancerType("lymphoma", "non-Hodgkin lymphoma", ("Lugano 2014",), ("C82", "C83", "C84", "C85", "C86", "C88"),
               ("118601006", "763719001", "308121000", "447656001", "109962001", "109969005"),
               ("lymphoma", "dlbcl")),
    CancerType("thyroid", "differentiated thyroid cancer", ("ATA 2015",), ("C73",), ("363478007", "255029007", "255032005"),
               ("thyroid carcinoma", "thyroid cancer", "papillary thyroid", "follicular thyroid")),
    CancerType("breast", "breast cancer", ("Breast pCR/RCB", "RECIST 1.1"), ("C50",), ("254837009", "372064008"),
               ("breast cancer", "breast carcinoma", "carcinoma of breast", "malignant neoplasm of breast")),
    CancerType("prostate", "prostate cancer", ("PCWG3", "RECIST 1.1"), ("C61",), ("399068003", "254900004"),
               ("prostate cancer", "prostate adenocarcinoma", "carcinoma of prostate", "crpc")),
    CancerType("ovarian", "ovarian cancer", ("GCIG CA-125", "RECIST 1.1"), ("C56", "C57.0", "C48.1", "C48.2"),
               ("363443007", "254849007"), ("ovarian cancer", "ovarian carcinoma", "fallopian tube carcinoma",
                                            "primary peritoneal carcinoma")),
    CancerType("hcc", "hepatocellular carcinoma", ("mRECIST",), ("C22.0",), ("25370001", "109841003"),
               ("hepatocellular carcinoma", "hcc", "liver cell carcinoma")),
    CancerType("gist", "gastrointestinal stromal tumour", ("Choi",), ("C49.A",), ("420120006",),
               ("gastrointestinal stromal", "gist")),
    CancerType("glioma", "glioma", ("RANO 2.0",), ("C71",), ("393563007", "393564001", "443333004"),
               ("glioblastoma", "glioma", "astrocytoma", "oligodendroglioma")),
    CancerType("colorectal", "colorectal cancer", ("RECIST 1.1",), ("C18", "C19", "C20", "C21"),
               ("363406005", "363351006", "363414004"), ("colorectal cancer", "colon cancer", "rectal cancer",
                                                         "carcinoma of colon", "carcinoma of rectum")),
    CancerType("lung", "lung cancer", ("RECIST 1.1",), ("C34",), ("93880001", "254637007"),
               ("lung cancer", "carcinoma of lung", "nsclc", "non-small cell lung", "small cell lung")),
    CancerType("testicular", "testicular cancer", ("RECIST 1.1",), ("C62",), ("363449006",),
               ("testicular cancer", "seminoma", "germ cell tumour of testis", "germ cell tumor of testis")),
    CancerType("solid", "solid tumour", ("RECIST 1.1",),
               tuple(f"C{n:02d}" for n in range(0, 81) if n not in (42, 43, 44, 46, 47, 48, 49)) + ("C48", "C49"),
               ("363346000", "93880001", "363406005", "363418001", "363358000", "372087000", "363349007"),
               ("carcinoma", "cancer", "malignant neoplasm", "sarcoma", "melanoma", "adenocarcinoma", "tumour", "tumor")),
)
BY_KEY = {c.key: c for c in CANCER_TYPES}

REMISSION_WORDS = re.compile(r"\bin (complete |partial )?remission\b", re.I)
RELAPSE_WORDS = re.compile(r"\bin relapse\b|\brelapsed\b", re.I)
_ICD_LIKE = re.compile(r"[CD]\d{2}(\.[0-9A-Z]{1,4})?")
_ICD_HAEM = re.compile(r"C9[0-5]\.[0-9A-Z]{2}")  # haematological ICD-10-CM codes with a remission character
_ORDER = {c.key: i for i, c in enumerate(CANCER_TYPES)}


@dataclass(frozen=True)
class RoutedCancer:
    cancer: CancerType
    condition_ref: str | None
    condition_text: str
    onset: date | None
    remission_state: str | None   # "remission" / "relapse" / None, from ICD-10-CM 5th character or clinicalStatus
    matched_by: str               # "ICD-10", "SNOMED CT" or "text"
    icd_codes: tuple[str, ...] = ()  # the Condition's ICD-10(-CM) codes (site detail, e.g. C20 rectum)


def _icd_match(code: str) -> CancerType | None:
    c = code.upper()
    for ct in CANCER_TYPES:
        for p in ct.icd10_prefixes:
            if c.startswith(p):
                return ct
    return None


def classify(condition: Resource) -> tuple[CancerType, str] | None:
    """The cancer type of one Condition, and what it was matched by; None for a non-cancer Condition."""
    code = condition.get("code") if isinstance(condition.get("code"), dict) else {}
    coding = code.get("coding") if isinstance(code.get("coding"), list) else []
    key = (tuple((c.get("system"), c.get("code"), c.get("display")) if isinstance(c, dict) else None
                 for c in coding), code.get("text") if isinstance(code.get("text"), str) else None)
    try:
        return _classify_cached(key, condition)
    except TypeError:  # an unhashable value in the coding: classify without the cache
        return _classify(condition)


_CLASSIFY_CACHE: dict = {}


def _classify_cached(key, condition: Resource) -> tuple[CancerType, str] | None:
    hash(key)
    if key not in _CLASSIFY_CACHE:
        if len(_CLASSIFY_CACHE) > 4096:
            _CLASSIFY_CACHE.clear()
        _CLASSIFY_CACHE[key] = _classify(condition)
    return _CLASSIFY_CACHE[key]


def _classify(condition: Resource) -> tuple[CancerType, str] | None:
    pairs = list(codings(condition.get("code")))
    for system, code in pairs:
        if system in (ICD10CM, ICD10) or _ICD_LIKE.fullmatch(code.upper()):
            ct = _icd_match(code)
            if ct:
                return ct, "ICD-10"
    for system, code in pairs:
        if system == SNOMED:
            for ct in CANCER_TYPES:
                if code in ct.snomed:
                    return ct, "SNOMED CT"
    text = " " + concept_text(condition.get("code")).lower() + " "
    code = condition.get("code") if isinstance(condition.get("code"), dict) else {}
    for c in code.get("coding") if isinstance(code.get("coding"), list) else ():
        if isinstance(c, dict) and isinstance(c.get("display"), str):
            text += " " + c["display"].lower() + " "
    if text.strip():
        for ct in CANCER_TYPES:
            for w in ct.words:
                if re.search(r"(?<![a-z])" + re.escape(w) + r"(?![a-z])", text):
                    if "benign" in text:
                        continue
                    return ct, "text"
    return None


def _remission_state(condition: Resource) -> str | None:
    for system, code in codings(condition.get("code")):
        if system in (ICD10CM, ICD10) and _ICD_HAEM.fullmatch(code.upper()):
            last = code[-1]
            if last == "1":
                return "remission"
            if last == "2":
                return "relapse"
    for _, code in codings(condition.get("clinicalStatus")):
        if code in ("remission", "relapse"):
            return code
    text = concept_text(condition.get("code"))
    if RELAPSE_WORDS.search(text):
        return "relapse"
    if REMISSION_WORDS.search(text):
        return "remission"
    return None


def route(record: PatientRecord) -> list[RoutedCancer]:
    """One entry per distinct cancer type in the record (the most specific Condition wins)."""
    found: dict[str, tuple[CancerType, str, Resource]] = {}  # the first Condition of each cancer type
    for cond in record.of_type("Condition"):
        try:
            hit = classify(cond)
        except Exception as exc:  # noqa: BLE001 - a malformed Condition is skipped, not fatal
            record.issue(cond, "Condition skipped", f"unreadable code ({type(exc).__name__})")
            continue
        if hit is None:
            continue
        ct, how = hit
        if ct.key not in found:
            found[ct.key] = (ct, how, cond)
    # a specific solid type (breast, prostate...) already carries RECIST: drop a generic duplicate
    if "solid" in found and any(k in found for k in _SPECIFIC_SOLID):
        found.pop("solid")
    return [_routed(ct, how, cond) for ct, how, cond in sorted(found.values(), key=lambda f: _ORDER[f[0].key])]


_new_routed = frozen_builder(RoutedCancer)
_SPECIFIC_SOLID = ("breast", "prostate", "ovarian", "hcc", "gist", "glioma", "colorectal", "lung", "testicular")


def _routed(ct: CancerType, how: str, cond: Resource) -> RoutedCancer:
    """The RoutedCancer of a Condition route() keeps (built only for those: a dropped one costs nothing)."""
    return _new_routed(  # RoutedCancer(...) with every field given (rules.base.frozen_builder)
        cancer=ct, condition_ref=ref_of(cond), condition_text=concept_text(cond.get("code")) or ct.label,
        onset=parse_date(cond.get("onsetDateTime")) or parse_date(cond.get("recordedDate")),
        remission_state=_remission_state(cond), matched_by=how,
        icd_codes=tuple(c for sys_, c in codings(cond.get("code")) if sys_ in (ICD10CM, ICD10)),
    )
