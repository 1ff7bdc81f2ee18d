"""ATA 2015 mapping: FHIR record -> rules.ata2015 inputs (fhir_mappings/ata.py), and the card through HTTP."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from conftest import assessment_cards
from fhir_mappings import ata as m
from fhir_mappings.record import LOCAL, LOINC, SNOMED, PatientRecord
from rules import ata2015 as engine
from rules.ata2015 import ImagingModality, ImagingResult, Surgery, TgCondition

AS_OF = date(2025, 1, 1)
D = "2024-10-01"
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
HOOK = "/cds-services/remission-status"


def patient(*, surgery: str | None = "total", rai: bool = True) -> PatientBuilder:
    p = PatientBuilder("ata-test")
    p.condition(icd10="C73", text="Papillary thyroid carcinoma")
    if surgery == "total":
        p.procedure("2023-09-01", f"{m.CPT}|60240", "Total thyroidectomy")
    elif surgery == "lobectomy":
        p.procedure("2023-09-01", f"{m.CPT}|60220", "Right thyroid lobectomy")
    if rai and surgery != "lobectomy":
        p.procedure("2023-11-01", f"{LOCAL}|rai-remnant-ablation", "I-131 remnant ablation 100 mCi")
    return p


def tg(p: PatientBuilder, value, unit="ng/mL", when=D, comparator=None, context=None, code=m.TG, note=None):
    comps = [{"code": concept(m.TG_CONTEXT), "valueCodeableConcept": concept(LOCAL, context)}] if context else []
    obs = p.observation(code, when, value=value, unit=unit, components=comps, note=note)
    if comparator:
        obs["valueQuantity"]["comparator"] = comparator
    return obs


def tgab_neg(p: PatientBuilder, when=D, unit="[IU]/mL"):
    obs = p.observation(m.TGAB, when, value=Decimal("1.8"), unit=unit)
    obs["valueQuantity"]["comparator"] = "<"
    return obs


def neck_us(p: PatientBuilder, text="Negative.", when=D, title="US Neck"):
    rep = p.report(when, conclusion=text)
    rep["code"]["text"] = title
    return rep


def run(p: PatientBuilder, options=None, as_of=AS_OF):
    record = PatientRecord(p.resources)
    a, mapping = m.assess(record, as_of, options or {})
    return a, mapping, record


def standard(value="0.1", unit="ng/mL", **kw) -> PatientBuilder:
    p = patient()
    tg(p, value, unit, context="suppressed", **kw)
    tgab_neg(p)
    neck_us(p)
    return p


# --- units ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,unit,expected", [
    ("0.1", "ng/mL", engine.EXCELLENT), ("0.1", "ug/L", engine.EXCELLENT), ("0.1", "ng/ml", engine.EXCELLENT),
    ("0.1", "µg/L", engine.EXCELLENT), ("1.5", "ug/L", engine.BIOCHEMICAL_INCOMPLETE),
    ("1.5", "ng/mL", engine.BIOCHEMICAL_INCOMPLETE), ("0.5", "ug/L", engine.INDETERMINATE),
], ids=lambda x: str(x))
def test_tg_unit_variants_give_the_same_category(value, unit, expected):
    a, _, record = run(standard(value, unit))
    assert a is not None and a.category == expected
    assert a.values["Tg_ng_mL"] == Decimal(value)
    assert not [i for i in record.issues if "thyroglobulin" in i.what]


@pytest.mark.parametrize("unit", ["[IU]/mL", "ng/L", "mg/L", "pmol/L", "mmol/L"])
def test_tg_unit_that_cannot_be_right_is_rejected_not_converted(unit):
    a, _, record = run(standard("0.1", unit))
    assert "Tg_ng_mL" not in a.values
    assert a.category == engine.NOT_EVALUABLE
    assert any(i.what == "thyroglobulin skipped" and ("ng/mL" in i.why or "antibod" in i.why) for i in record.issues)
    assert any("thyroglobulin" in x for x in a.missing)


@pytest.mark.parametrize("unit", ["[IU]/mL", "k[IU]/L", "IU/mL", "kIU/L"])
def test_tgab_unit_variants(unit):
    p = patient()
    tg(p, "0.1", context="suppressed")
    tgab_neg(p, unit=unit)
    neck_us(p)
    a, _, record = run(p)
    assert a.category == engine.EXCELLENT
    assert a.values["TgAb_positive"] is False
    assert not record.issues


@pytest.mark.parametrize("unit", ["ng/mL", "U/mL", "%"])
def test_tgab_wrong_unit_is_an_issue(unit):
    p = patient()
    tg(p, "0.1", context="suppressed")
    tgab_neg(p, unit=unit)
    neck_us(p)
    a, _, record = run(p)
    assert a.category == engine.NOT_EVALUABLE
    assert any(i.what == "TgAb value skipped" for i in record.issues)


def test_molar_tg_needs_a_configured_molar_mass():
    p = patient()
    tg(p, "0.1", "pmol/L", code=m.TG_MOLAR, context="suppressed")
    tgab_neg(p)
    neck_us(p)
    a, _, record = run(p)
    assert "Tg_ng_mL" not in a.values
    assert any("molar" in i.why for i in record.issues)
    a, mapping, _ = run(p, {"ata_tg_molar_mass_g_per_mol": 660000})
    assert a.values["Tg_ng_mL"] == Decimal("0.066")
    assert a.category == engine.EXCELLENT
    assert any("molar mass" in n for n in mapping.notes)


def test_fna_washout_tg_is_not_serum_tg():
    p = standard()
    p.observation(f"{LOINC}|53920-5", D, value=250, unit="ng/mL")
    a, _, record = run(p)
    assert a.category == engine.EXCELLENT
    assert any("washout" in i.why for i in record.issues)


def test_entered_in_error_tg_is_skipped():
    p = patient()
    bad = tg(p, "5", context="suppressed")
    bad["status"] = "entered-in-error"
    tg(p, "0.1", context="suppressed")
    tgab_neg(p)
    neck_us(p)
    a, _, record = run(p)
    assert a.category == engine.EXCELLENT
    assert any("entered-in-error" in i.why for i in record.issues)


def test_configured_local_tg_code_is_read():
    p = patient()
    p.observation("http://hospital.example/lab|TG1", D, value=Decimal("1.4"), unit="ng/mL",
                  components=[{"code": concept(m.TG_CONTEXT), "valueCodeableConcept": concept(LOCAL, "suppressed")}])
    tgab_neg(p)
    neck_us(p)
    a, _, _ = run(p)
    assert a.category == engine.NOT_EVALUABLE  # not read without configuration
    a, _, _ = run(p, {"local_codes": {"thyroglobulin": ["http://hospital.example/lab|TG1"]}})
    assert a.category == engine.BIOCHEMICAL_INCOMPLETE
    assert a.values["Tg_ng_mL"] == Decimal("1.4")


def test_local_code_with_default_unit():
    p = patient()
    obs = p.observation("http://hospital.example/lab|TG1", D, value=Decimal("0.1"))
    obs["valueQuantity"]["comparator"] = "<"
    tgab_neg(p)
    neck_us(p)
    a, _, _ = run(p, {"local_codes": {"thyroglobulin": [("http://hospital.example/lab|TG1", "ng/mL")]}})
    assert a.category == engine.EXCELLENT and a.values["Tg_below_detection_limit"] is True


def test_tg_value_string_with_comparator():
    p = patient()
    p.observation(m.TG, D, value_string="<0.2 ng/mL")
    tgab_neg(p)
    neck_us(p)
    a, _, _ = run(p)
    assert a.values["Tg_below_detection_limit"] is True
    assert a.category == engine.EXCELLENT  # undetectable below a limit <= 0.2


def test_undetectable_without_a_limit_is_an_issue():
    p = patient()
    p.observation(m.TG, D, value_string="undetectable")
    tgab_neg(p)
    neck_us(p)
    a, _, record = run(p)
    assert a.category == engine.NOT_EVALUABLE
    assert any("detection limit" in i.why for i in record.issues)


# --- Tg context --------------------------------------------------------------------------------------------------

def _condition(p, options=None) -> TgCondition:
    _, mapping, _ = run(p, options)
    return mapping.inputs.tg[-1].condition


@pytest.mark.parametrize("context,expected", [
    ("suppressed", TgCondition.SUPPRESSED), ("rhtsh-stimulated", TgCondition.STIMULATED_RHTSH),
    ("withdrawal-stimulated", TgCondition.STIMULATED_WITHDRAWAL),
])
def test_coded_tg_context(context, expected):
    p = patient()
    tg(p, "0.5", context=context)
    assert _condition(p) is expected


def test_rhtsh_administration_marks_the_tg_stimulated():
    p = patient()
    for when in ("2024-09-27", "2024-09-28"):
        p.add({"resourceType": "MedicationAdministration", "id": f"rh-{when}", "status": "completed",
               "subject": p.subject, "medicationCodeableConcept": {"text": "Thyrogen (thyrotropin alfa) 0.9 mg IM"},
               "effectiveDateTime": when})
    tg(p, "0.8")
    tgab_neg(p)
    neck_us(p)
    a, _, _ = run(p)
    assert a.values["Tg_condition"] == "rhTSH-stimulated"
    assert a.category == engine.EXCELLENT  # stimulated Tg < 1


def test_rhtsh_long_before_does_not_count():
    p = patient()
    p.medication("2024-06-01", "Thyrotropin alfa 0.9 mg IM")
    tg(p, "0.8")
    assert _condition(p) is TgCondition.SUPPRESSED


def test_high_tsh_after_total_thyroidectomy_is_withdrawal_but_not_after_lobectomy():
    for surgery, expected in (("total", TgCondition.STIMULATED_WITHDRAWAL), ("lobectomy", TgCondition.SUPPRESSED)):
        p = patient(surgery=surgery)
        tg(p, "3")
        p.observation(m.TSH, D, value=65, unit="m[IU]/L")
        assert _condition(p) is expected, surgery


def test_tg_context_from_words_on_the_result():
    p = patient()
    tg(p, "3", note="Stimulated Tg after levothyroxine withdrawal")
    assert _condition(p) is TgCondition.STIMULATED_WITHDRAWAL
    p = patient()
    tg(p, "3", note="Non-stimulated, on LT4")
    assert _condition(p) is TgCondition.SUPPRESSED


def test_default_context_is_noted():
    p = standard()
    p.resources[-3]["component"] = []  # drop the coded context
    a, mapping, _ = run(p)
    assert any("non-stimulated" in n for n in mapping.notes)


def test_tsh_series_units():
    p = standard()
    p.observation(m.TSH, D, value=Decimal("0.05"), unit="uIU/mL")
    p.observation(m.TSH, "2024-09-01", value=Decimal("0.04"), unit="mIU/L")
    _, mapping, record = run(p)
    assert [t.value_mIU_L for t in mapping.inputs.tsh] == [Decimal("0.04"), Decimal("0.05")]
    assert not record.issues


# --- TgAb --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,positive", [
    ({"valueCodeableConcept": concept(SNOMED, "260385009", "Negative")}, False),
    ({"valueCodeableConcept": concept(SNOMED, "10828004", "Positive")}, True),
    ({"valueString": "Not detected"}, False),
    ({"valueQuantity": qty(40, "[IU]/mL"), "interpretation": [concept(INTERP, "H")]}, True),
    ({"valueQuantity": qty(40, "[IU]/mL"), "referenceRange": [{"high": qty(115, "[IU]/mL")}]}, False),
    ({"valueQuantity": qty(140, "[IU]/mL"), "referenceRange": [{"high": qty(115, "[IU]/mL")}]}, True),
])
def test_tgab_positivity_shapes(shape, positive):
    p = patient()
    tg(p, "0.1", context="suppressed")
    obs = p.observation(m.TGAB, D)
    obs.update(shape)
    neck_us(p)
    a, _, _ = run(p)
    assert a.values["TgAb_positive"] is positive
    assert a.category == (engine.INDETERMINATE if positive else engine.EXCELLENT)


def test_tgab_without_result_is_an_issue():
    p = patient()
    tg(p, "0.1", context="suppressed")
    p.observation(m.TGAB, D)
    neck_us(p)
    a, _, record = run(p)
    assert any(i.what == "TgAb skipped" for i in record.issues)
    assert any("TgAb" in x for x in a.missing)


# --- imaging -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("Negative.", ImagingResult.NEGATIVE),
    ("Unremarkable neck ultrasound.", ImagingResult.NEGATIVE),
    ("No suspicious cervical lymph nodes. No thyroid bed mass.", ImagingResult.NEGATIVE),
    ("No evidence of recurrent or metastatic disease.", ImagingResult.NEGATIVE),
    ("4 mm hypoechoic thyroid-bed focus, non-specific", ImagingResult.NONSPECIFIC),
    ("Indeterminate 5 mm pulmonary nodule.", ImagingResult.NONSPECIFIC),
    ("Faint uptake in the thyroid bed.", ImagingResult.FAINT_THYROID_BED_UPTAKE),
    ("12 mm level IV node with microcalcifications, suspicious for metastasis.", ImagingResult.DISEASE),
    ("Multiple pulmonary nodules consistent with metastases.", ImagingResult.DISEASE),
    ("Focal iodine-avid uptake in the right lung.", ImagingResult.DISEASE),
    ("No change in the suspicious 8 mm level VI node.", ImagingResult.DISEASE),
    ("Impression: recurrent papillary thyroid carcinoma in the left neck.", ImagingResult.DISEASE),
    ("The patient was seen.", None),
])
def test_imaging_text_classification(text, expected):
    assert m.classify_imaging(m.impression_of(text)) is expected


def test_history_lines_do_not_make_disease():
    text = "Clinical history: papillary thyroid carcinoma with nodal metastases, s/p thyroidectomy.\nImpression: Negative."
    assert m.classify_imaging(m.impression_of(text)) is ImagingResult.NEGATIVE


@pytest.mark.parametrize("title,modality", [
    ("US Neck", ImagingModality.NECK_US), ("Ultrasound thyroid bed and cervical nodes", ImagingModality.NECK_US),
    ("NM Whole body I-131 scan", ImagingModality.WBS), ("Diagnostic WBS", ImagingModality.WBS),
    ("CT Chest without contrast", ImagingModality.CROSS_SECTIONAL), ("FDG PET/CT", ImagingModality.CROSS_SECTIONAL),
    ("MRI neck", ImagingModality.CROSS_SECTIONAL), ("US Abdomen", None), ("XR Chest", None),
])
def test_modality_from_title(title, modality):
    assert m.modality_of(title) is modality


def test_latest_per_modality_and_unrelated_studies():
    p = standard()
    rep = p.report("2024-09-01", conclusion="Multiple pulmonary nodules consistent with metastases.")
    rep["code"]["text"] = "CT Chest"
    neg = p.report("2024-09-15", conclusion="No acute intracranial abnormality. Negative study.")
    neg["code"]["text"] = "CT Head"
    a, _, _ = run(p)
    assert a.category == engine.STRUCTURAL_INCOMPLETE  # a negative head CT does not clear the chest


def test_coded_imaging_observation():
    p = patient()
    tg(p, "0.1", context="suppressed")
    tgab_neg(p)
    p.observation(m.IMG_WBS, D, value_code=(LOCAL, "faint-thyroid-bed-uptake"), category="imaging")
    a, _, _ = run(p)
    assert a.category == engine.INDETERMINATE
    assert a.values["imaging_WBS"] == ImagingResult.FAINT_THYROID_BED_UPTAKE.value


def test_unreadable_imaging_conclusion_is_an_issue():
    p = patient()
    tg(p, "0.1", context="suppressed")
    tgab_neg(p)
    neck_us(p, "See attached images.")
    a, _, record = run(p)
    assert a.category == engine.NOT_EVALUABLE
    assert any(i.what == "imaging report not used" for i in record.issues)
    assert any("imaging" in x for x in a.missing)


# --- surgery -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("procs,meds,expected", [
    ([("CPT", "60240", "Total thyroidectomy"), ("LOCAL", "rai-remnant-ablation", "RAI")], [], Surgery.TOTAL_THYROIDECTOMY_RAI),
    ([("TXT", None, "Total thyroidectomy with central neck dissection")], [], Surgery.TOTAL_THYROIDECTOMY_NO_RAI),
    ([("TXT", None, "Total thyroidectomy")], ["Sodium iodide I-131 100 mCi oral"], Surgery.TOTAL_THYROIDECTOMY_RAI),
    ([("TXT", None, "Total thyroidectomy")], ["I-123 diagnostic scan dose"], Surgery.TOTAL_THYROIDECTOMY_NO_RAI),
    ([("TXT", None, "Right hemithyroidectomy")], [], Surgery.LOBECTOMY),
    ([("TXT", None, "Right thyroid lobectomy"), ("TXT", None, "Completion thyroidectomy")], [], Surgery.TOTAL_THYROIDECTOMY_NO_RAI),
    ([("TXT", None, "Lung lobectomy")], [], None),
    ([("ICD", "0GTK0ZZ", "Resection of thyroid gland, open")], [], Surgery.TOTAL_THYROIDECTOMY_NO_RAI),
    ([], ["Radioactive iodine ablation (I-131)"], Surgery.TOTAL_THYROIDECTOMY_RAI),
    ([], [], None),
])
def test_surgery_framework(procs, meds, expected):
    p = patient(surgery=None, rai=False)
    systems = {"CPT": m.CPT, "LOCAL": LOCAL, "ICD": m.ICD10PCS}
    for system, code, text in procs:
        res = {"resourceType": "Procedure", "id": f"p{len(p.resources)}", "status": "completed", "subject": p.subject,
               "code": {"text": text} if system == "TXT" else concept(systems[system], code, text)}
        p.add(res)
    for text in meds:
        p.medication("2023-11-01", text, status="completed")
    _, mapping, _ = run(p)
    got = mapping.inputs.surgery if mapping.inputs else None
    assert got is expected
    if expected is None:
        assert any("thyroid surgery" in x for x in mapping.missing)


def test_subtotal_thyroidectomy_is_an_issue():
    p = patient(surgery=None, rai=False)
    p.add({"resourceType": "Procedure", "id": "sub", "status": "completed", "subject": p.subject,
           "code": {"text": "Subtotal thyroidectomy"}})
    _, mapping, record = run(p)
    assert mapping.inputs is None
    assert any("subtotal" in i.why for i in record.issues)


def test_initial_risk_and_prior_excellent_response():
    p = standard()
    p.observation(m.ATA_RISK, "2023-09-15", value_code=(LOCAL, "high"), category="survey")
    p.observation(m.ATA_REPORTED, "2024-01-15", value_code=(LOCAL, "excellent"), category="survey")
    neck_us(p, "New 11 mm level III node, suspicious for recurrence.", when="2024-12-01")
    a, mapping, _ = run(p)
    assert a.values["ATA_initial_risk"] == "high"
    assert a.category == engine.STRUCTURAL_INCOMPLETE
    assert a.values["structural_recurrence"] is True


# --- HTTP ----------------------------------------------------------------------------------------------------------

def test_missing_surgery_gives_an_insufficient_data_card(client):
    p = patient(surgery=None, rai=False)
    tg(p, "0.1", context="suppressed")
    body = client.post(HOOK, json=p.hook_request()).get_json()
    cards = [c for c in assessment_cards(body) if c["criteria"] == "ATA 2015"]
    assert cards and cards[0]["category"] == "insufficient data"
    assert any("thyroid surgery" in x for x in cards[0]["missing"])


def test_missing_tgab_is_said_on_the_card(client):
    p = patient()
    tg(p, "0.1", context="suppressed")
    neck_us(p)
    body = client.post(HOOK, json=p.hook_request()).get_json()
    cards = [c for c in assessment_cards(body) if c["criteria"].startswith("ATA 2015")]
    assert cards[0]["category"] == engine.NOT_EVALUABLE
    assert any("TgAb" in x for x in cards[0]["missing"])


def test_full_card_through_http(client):
    body = client.post(HOOK, json=standard("0.15").hook_request()).get_json()
    card = next(c for c in assessment_cards(body) if c["criteria"] == engine.CRITERIA)
    assert card["category"] == engine.EXCELLENT
    assert card["values"]["Tg_ng_mL"] == 0.15


# --- properties ----------------------------------------------------------------------------------------------------

_RANK = {engine.EXCELLENT: 0, engine.INDETERMINATE: 1, engine.BIOCHEMICAL_INCOMPLETE: 2}


@settings(max_examples=60, deadline=None)
@given(a=st.decimals(min_value="0.01", max_value="50", places=2), b=st.decimals(min_value="0.01", max_value="50", places=2))
def test_higher_tg_never_gives_a_better_category(a, b):
    lo, hi = sorted((a, b))
    cats = [run(standard(str(v)))[0].category for v in (lo, hi)]
    assert _RANK[cats[0]] <= _RANK[cats[1]]


@settings(max_examples=40, deadline=None)
@given(v=st.decimals(min_value="0.01", max_value="50", places=2))
def test_ng_ml_and_ug_l_are_the_same(v):
    assert run(standard(str(v), "ng/mL"))[0].category == run(standard(str(v), "ug/L"))[0].category


def test_disease_on_another_radiology_study_counts_but_clinic_notes_do_not():
    p = standard()
    xr = p.report(D, conclusion="Multiple bilateral pulmonary nodules, consistent with metastases.")
    xr["code"]["text"] = "XR Chest 2 views"
    a, _, _ = run(p)
    assert a.category == engine.STRUCTURAL_INCOMPLETE
    p = standard()
    note = p.report(D, category="laboratory", conclusion="History of papillary carcinoma with nodal metastases.")
    note["code"]["text"] = "Clinic letter"
    a, _, _ = run(p)
    assert a.category == engine.EXCELLENT


# --- hostile input ---------------------------------------------------------------------------------------------

_JUNK = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.just("2024-10-01"),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(
                         ["coding", "text", "value", "unit", "code", "system", "reference", "data", "high"]), c, max_size=3),
                     max_leaves=8)
_FIELDS = ["code", "valueQuantity", "valueString", "valueCodeableConcept", "component", "method", "note", "interpretation",
           "referenceRange", "effectiveDateTime", "status", "conclusion", "presentedForm", "conclusionCode", "category",
           "medicationCodeableConcept", "dosage", "performedDateTime", "result", "device", "statusReason"]


@settings(max_examples=150, deadline=None)
@given(index=st.integers(0, 30), field=st.sampled_from(_FIELDS), junk=_JUNK)
def test_malformed_fields_never_raise(index, field, junk):
    p = standard()
    p.medication("2024-09-28", "Thyrogen 0.9 mg")
    p.observation(m.TSH, D, value=1, unit="m[IU]/L")
    p.observation(m.ATA_RISK, D, value_code=(LOCAL, "low"))
    res = p.resources[index % len(p.resources)]
    res[field] = junk
    run(p)  # must not raise


@pytest.mark.parametrize("coding,expected", [
    ((LOCAL, "disease"), engine.STRUCTURAL_INCOMPLETE),
    ((LOCAL, "non-specific"), engine.INDETERMINATE),
    ((SNOMED, "281900007"), engine.EXCELLENT),
])
def test_coded_conclusion_on_the_imaging_report(coding, expected):
    p = patient()
    tg(p, "0.1", context="suppressed")
    tgab_neg(p)
    rep = neck_us(p, "See images.")
    rep["conclusionCode"] = [concept(*coding)]
    a, _, _ = run(p)
    assert a.category == expected


def test_tgab_with_a_wrong_unit_still_gives_the_labs_interpretation():
    p = patient()
    tg(p, "0.1", context="suppressed")
    obs = p.observation(m.TGAB, D, value=Decimal("0.9"), unit="ng/mL")
    obs["interpretation"] = [concept(INTERP, "N")]
    neck_us(p)
    a, _, record = run(p)
    assert a.category == engine.EXCELLENT
    assert "TgAb_IU_mL" not in a.values  # the value itself is never converted
    assert any(i.what == "TgAb value skipped" for i in record.issues)
