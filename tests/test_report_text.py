"""Stated categories and findings in report text (fhir_mappings/report_text.py): one table row per phrase."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder
from fhir_mappings.record import PatientRecord
from fhir_mappings.report_text import KINDS, extract, stated_in_record


def triples(text: str) -> list[tuple[str, str, bool]]:
    return [(s.kind, s.value, s.negated) for s in extract(text)]


# (text, expected (kind, value, negated) statements in text order)
ROWS = [
    # criteria-named categories
    ("RECIST: PR", [("recist", "PR", False)]),
    ("RECIST 1.1 response: partial response", [("recist", "PR", False)]),
    ("Overall RECIST v1.1 assessment = SD", [("recist", "SD", False)]),
    ("mRECIST: CR", [("mrecist", "CR", False)]),
    ("iRECIST iUPD", [("irecist", "iUPD", False)]),
    ("Lugano 2014: complete metabolic response", [("lugano", "CMR", False)]),
    ("IMWG: VGPR", [("imwg", "VGPR", False)]),
    ("ELN 2022: CRi", [("eln", "CRi", False)]),
    ("iwCLL: PR", [("iwcll", "PR", False)]),
    ("RANO 2.0: stable disease", [("rano", "SD", False)]),
    ("Choi: PR", [("choi", "PR", False)]),
    ("ATA: excellent", [("ata", "excellent", False)]),
    ("Overall response: CR", [("response", "CR", False)]),
    # words without a criteria name
    ("partial response", [("response", "PR", False)]),
    ("Findings consistent with progressive disease.", [("response", "PD", False)]),
    ("complete metabolic response", [("lugano", "CMR", False)]),
    ("very good partial response", [("imwg", "VGPR", False)]),
    ("stringent complete response", [("imwg", "sCR", False)]),
    ("morphologic leukemia-free state", [("eln", "MLFS", False)]),
    ("complete remission with incomplete hematologic recovery", [("eln", "CRi", False)]),
    ("excellent response to therapy", [("ata", "excellent", False)]),
    ("biochemical incomplete response", [("ata", "biochemical incomplete", False)]),
    # Deauville
    ("Deauville 3", [("deauville", "3", False)]),
    ("Deauville score of 4", [("deauville", "4", False)]),
    ("Deauville 5-point scale: 2", [("deauville", "2", False)]),
    ("DS 5", [("deauville", "5", False)]),
    ("5-PS: X", [("deauville", "X", False)]),
    # pathology
    ("ypT0 ypN0", [("ypT", "ypT0", False), ("ypN", "ypN0", False)]),
    ("ypT1a ypN0(i+)", [("ypT", "ypT1a", False), ("ypN", "ypN0(i+)", False)]),
    ("ypTis ypN1mi", [("ypT", "ypTis", False), ("ypN", "ypN1mi", False)]),
    ("Pathologic stage: ypT2 ypN1a (sn)", [("ypT", "ypT2", False), ("ypN", "ypN1a(sn)", False)]),
    ("RCB-II", [("rcb_class", "RCB-II", False)]),
    ("Residual cancer burden class III", [("rcb_class", "RCB-III", False)]),
    ("RCB index 1.537 (RCB-II)", [("rcb_index", "1.537", False), ("rcb_class", "RCB-II", False)]),
    ("pathologic complete response", [("pcr", "pCR", False)]),
    ("No pCR.", [("pcr", "pCR", True)]),
    # MRD
    ("MRD negative", [("mrd", "MRD", True)]),
    ("MRD-negative CR", [("mrd", "MRD", True)]),
    ("negative for minimal residual disease", [("mrd", "MRD", True)]),
    ("MRD not detected", [("mrd", "MRD", True)]),
    ("MRD positive at 0.01%", [("mrd", "MRD", False)]),
    # findings and their negation
    ("no evidence of disease", [("disease", "evidence of disease", True)]),
    ("Evidence of disease in the liver.", [("disease", "evidence of disease", False)]),
    ("NED", [("disease", "evidence of disease", True)]),
    ("disease-free", [("disease", "evidence of disease", True)]),
    ("No evidence of disease progression.", [("response", "PD", True)]),
    ("No new lesions.", [("new_lesion", "new lesion", True)]),
    ("New lesion in segment 7.", [("new_lesion", "new lesion", False)]),
    ("without new lesions", [("new_lesion", "new lesion", True)]),
    ("negative for malignancy", [("malignancy", "malignancy", True)]),
    ("Lymphovascular invasion: not identified", [("lvi", "lymphovascular invasion", True)]),
    ("LVI present", [("lvi", "lymphovascular invasion", False)]),
    ("No residual invasive carcinoma, DCIS or LVI.",
     [("residual_invasive", "residual invasive carcinoma", True), ("dcis", "DCIS", True),
      ("lvi", "lymphovascular invasion", True)]),
    ("Residual DCIS, 4 mm.", [("dcis", "DCIS", False)]),
    ("No suspicious lymph nodes.", [("suspicious", "suspicious finding", True)]),
    ("No change in the suspicious 8 mm node.", [("suspicious", "suspicious finding", False)]),
    ("No lymphadenopathy, suspicious nodule in the right lobe.", [("suspicious", "suspicious finding", False)]),
    ("not a partial response", [("response", "PR", True)]),
    ("non-metastatic", [("metastasis", "metastasis", True)]),
    ("Faint uptake in the thyroid bed.", [("faint_thyroid_bed_uptake", "faint thyroid-bed uptake", False)]),
    ("No abnormal uptake.", [("uptake", "abnormal uptake", True)]),
    ("no uptake", [("study_negative", "negative study", False)]),
    ("Negative.", [("study_negative", "negative study", False)]),
    ("4 mm thyroid-bed focus, non-specific", [("nonspecific", "non-specific finding", False)]),
    # sentence boundaries stop negation
    ("No new lesions. RECIST: PD", [("new_lesion", "new lesion", True), ("recist", "PD", False)]),
    ("No new lesions, RECIST PR and stable non-target disease",
     [("new_lesion", "new lesion", True), ("recist", "PR", False)]),
    ("No residual tumour in the breast; metastatic carcinoma in 2 of 5 nodes.",
     [("residual_disease", "residual disease", True), ("metastasis", "metastasis", False)]),
    # things that are not statements
    ("ER positive, PR negative, HER2 1+", []),
    ("recist 1.1: pr", []),
    ("", []),
]


@pytest.mark.parametrize("text,expected", ROWS, ids=[r[0][:40] or "empty" for r in ROWS])
def test_extract_table(text, expected):
    assert triples(text) == expected


def test_span_text_includes_the_negation_cue():
    (s,) = extract("Impression: no evidence of disease.")
    assert s.span_text == "no evidence of disease" and s.negated
    (s,) = extract("LVI: not identified")
    assert s.span_text == "LVI: not identified"


def test_offsets_point_into_the_text():
    text = "Deauville 3, complete metabolic response."
    for s in extract(text):
        assert text[s.start:s.end] == s.span_text


def test_every_kind_is_listed():
    kinds = {s.kind for text, _ in ROWS for s in extract(text)}
    assert kinds <= set(KINDS)


def test_stated_in_record_dates_and_refs():
    p = PatientBuilder("rt")
    p.report("2024-03-01", conclusion="Deauville 4. Partial metabolic response.")
    p.report("2024-01-01", text="PET/CT: Deauville score of 5, new lesions in the liver.")
    p.report("2024-05-01", category="pathology", conclusion="ypT0 ypN0, RCB-0")
    undated = p.report("2024-06-01", conclusion="Deauville 2")
    del undated["effectiveDateTime"], undated["issued"]
    got = stated_in_record(PatientRecord(p.resources), {"deauville"})
    assert [(d, s.value) for d, _, s in got] == [(date(2024, 1, 1), "5"), (date(2024, 3, 1), "4")]
    assert all(ref and ref.startswith("DiagnosticReport/") for _, ref, _ in got)
    every = stated_in_record(PatientRecord(p.resources))
    assert {s.kind for _, _, s in every} >= {"deauville", "lugano", "new_lesion", "ypT", "ypN", "rcb_class"}


def test_malformed_reports_do_not_crash():
    p = PatientBuilder("rt2")
    rep = p.report("2024-03-01", conclusion="Deauville 3")
    rep["presentedForm"] = 5
    rep["conclusionCode"] = {"text": "x"}
    assert [s.value for _, _, s in stated_in_record(PatientRecord(p.resources))] == ["3"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_safe(text):
    for s in extract(text):
        assert 0 <= s.start <= s.end <= len(text)
        assert s.kind in KINDS


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["new lesions", "evidence of disease", "suspicious nodes", "lymphovascular invasion",
                        "metastatic carcinoma", "residual invasive carcinoma"]),
       st.sampled_from(["no ", "No ", "without ", "negative for ", "no evidence of ", "free of "]))
def test_a_negation_cue_negates_a_finding(finding, cue):
    plain = extract(finding)
    negated = extract(cue + finding)
    assert plain and not plain[0].negated
    assert negated and negated[-1].negated and negated[-1].kind == plain[0].kind


# --- the literal pre-screen (Rule.needs) must never change a result --------------------------------------------

from fhir_mappings import report_text as _rt  # noqa: E402

_PHRASES = [t for t, _ in ROWS if t] + [
    "Impression: no evidence of disease.", "LVI: not identified", "Deauville 3, complete metabolic response.",
    "RECIST 1.1: PR", "recist 1.1: pr", "Best overall response = VGPR", "5 PS 4", "five-point scale 3",
    "IMWG 2016 response: stringent complete response", "PCWG3: PD", "GCIG: CR", "Cheson: PR", "ATA 2015: excellent",
    "ductal carcinoma in situ", "in-situ carcinoma", "angiolymphatic invasion", "LVSI present", "malignant cells",
    "metastases", "worrisome", "concerning for recurrence", "relapse", "of uncertain significance", "equivocal",
    "low-grade uptake within the remnant", "minimal thyroid bed uptake", "FDG-avid nodes", "intense activity",
    "RAI avid disease", "normal study", "unremarkable CT", "no acute abnormalities", "no suspicious findings",
    "uMRD4", "undetectable MRD", "measurable residual disease", "disease free", "free of disease",
    "residual invasive ductal carcinoma", "residual tumour burden", "new FDG-avid lesions", "yp T 1 mi", "y p N 2a",
    "RCB: 1.2", "residual cancer burden index 3.1", "Response: CR", "structurally incomplete", "indeterminate response",
    "ELN CRh", "CRi", "MLFS", "CMR", "PMD", "NED", "pCR", "DS: X", "Deauville X", "no", "not", ",", ".", "\n", ";",
    "\u0130MWG: CR", "reci\u017ft: PR", "\u212aelvin", "RECIST\u2013PR", "µ", "ı",
]


def test_case_lookalikes_are_complete():
    """Every non-ASCII character re.IGNORECASE matches to an ASCII letter is in _ASCII_CASE_LOOKALIKES."""
    import re

    every = "".join(chr(i) for i in range(128, 0x110000))
    found = set()
    for letter in "abcdefghijklmnopqrstuvwxyz":
        found.update(re.findall(letter, every, re.IGNORECASE))
    assert found <= _rt._ASCII_CASE_LOOKALIKES


@pytest.mark.parametrize("text", _PHRASES)
def test_every_match_holds_the_rows_literals(text):
    import re

    for rule, rx in _rt._COMPILED:
        for m in rx.finditer(text):
            hay = m.group(0).lower() if rule.flags & re.IGNORECASE else m.group(0)
            if m.end() > m.start() and (text.isascii() or _rt._ASCII_CASE_LOOKALIKES.isdisjoint(text)):
                assert all(any(lit in hay for lit in group) for group in rule.needs), (rule.kind, m.group(0))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PHRASES + [" ", "  ", "-", ": ", " no ", " but ", " or "]), max_size=12),
       st.sampled_from([str, str.upper, str.lower, str.swapcase]))
def test_pre_screen_gives_the_same_statements(parts, case):
    text = case(" ".join(parts))
    assert _rt._extract(text) == _rt._extract(text, screen=False)
    assert extract(text) == _rt._extract(text, screen=False)
