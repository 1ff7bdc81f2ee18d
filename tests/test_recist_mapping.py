"""RECIST 1.1 mapping fixtures: units, lesion tracking, roles, nodes, too-small, unusable data."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from cds_service.sandbox.builders import PatientBuilder, concept
from fhir_mappings import codes
from fhir_mappings.recist import map_recist
from fhir_mappings.record import PatientRecord
from rules import recist

AS_OF = date(2026, 1, 1)


def assess(p: PatientBuilder):
    record = PatientRecord(p.resources, p.patient_id)
    m = map_recist(record)
    return recist.assess(m.inputs, AS_OF), m, record


def two_visits(unit="mm", scale=1, **kw) -> PatientBuilder:
    p = PatientBuilder("map")
    p.condition(icd10="C34.90", text="Lung cancer")
    t1, t2 = p.lesion("T1", "lung"), p.lesion("T2", "liver")
    p.report("2024-01-01", results=[p.tumor_size(t1, "2024-01-01", longest_mm=Decimal(40) / scale, unit=unit),
                                    p.tumor_size(t2, "2024-01-01", longest_mm=Decimal(30) / scale, unit=unit)])
    p.report("2024-03-01", results=[p.tumor_size(t1, "2024-03-01", longest_mm=Decimal(26) / scale, unit=unit),
                                    p.tumor_size(t2, "2024-03-01", longest_mm=Decimal(20) / scale, unit=unit)])
    return p


def last_size(p: PatientBuilder, lesion_index: int = 0) -> dict:
    """The follow-up TumorSize of lesion T1 (index 0) or T2 (index 1)."""
    sizes = [r for r in p.resources if r["resourceType"] == "Observation" and r.get("effectiveDateTime") == "2024-03-01"]
    return sizes[lesion_index]


def test_cm_and_mm_give_the_same_result():
    a_mm, _, _ = assess(two_visits())
    a_cm, _, _ = assess(two_visits(unit="cm", scale=10))
    assert a_mm.category == a_cm.category == "PR"
    assert a_mm.values["target_sum_mm"] == a_cm.values["target_sum_mm"] == 46


def test_unknown_unit_is_skipped_with_an_issue():
    p = two_visits()
    last_size(p)["component"][0]["valueQuantity"]["code"] = "[in_i]x"
    last_size(p)["component"][0]["valueQuantity"]["unit"] = "[in_i]x"
    a, _, record = assess(p)
    assert a.category == "NE"
    assert any("tumour size skipped" in i.what for i in record.issues)


def test_entered_in_error_is_ignored():
    p = two_visits()
    last_size(p, 1)["status"] = "entered-in-error"
    a, _, record = assess(p)
    assert a.category == "NE" and any("entered-in-error" in i.why for i in record.issues)


def test_auto_selection_two_per_organ_and_new_lesion():
    p = PatientBuilder("auto")
    p.condition(icd10="C34.90", text="Lung cancer")
    l1, l2, l3 = p.lesion("A", "liver"), p.lesion("B", "liver"), p.lesion("C", "liver")
    p.report("2024-01-01", results=[p.tumor_size(l1, "2024-01-01", longest_mm=30),
                                    p.tumor_size(l2, "2024-01-01", longest_mm=25),
                                    p.tumor_size(l3, "2024-01-01", longest_mm=20)])
    new = p.lesion("D", "bone")
    p.report("2024-03-01", results=[p.tumor_size(l1, "2024-03-01", longest_mm=30),
                                    p.tumor_size(l2, "2024-03-01", longest_mm=25),
                                    p.tumor_size(l3, "2024-03-01", longest_mm=20),
                                    p.tumor_size(new, "2024-03-01", longest_mm=12)])
    a, m, _ = assess(p)
    assert m.selection.targets == ("A", "B") and "C" in m.selection.non_targets
    assert m.inputs.targets_auto_selected
    assert a.category == "PD" and a.values["new_lesion"] == "yes"


def test_node_short_axis_from_other_dimension():
    p = PatientBuilder("node")
    p.condition(icd10="C34.90", text="Lung cancer")
    n = p.lesion("N1", "subcarinal lymph node", nodal=True)
    o1 = p.tumor_size(n, "2024-01-01", longest_mm=30)
    o1["component"].append({"code": concept(codes.OTHER_DIMENSION), "valueQuantity": {"value": 20, "unit": "mm",
                                                                                     "code": "mm"}})
    o2 = p.tumor_size(n, "2024-03-01", longest_mm=14)
    o2["component"].append({"code": concept(codes.OTHER_DIMENSION), "valueQuantity": {"value": 9, "unit": "mm",
                                                                                     "code": "mm"}})
    p.report("2024-01-01", results=[o1])
    p.report("2024-03-01", results=[o2])
    a, _, _ = assess(p)
    assert a.values["baseline_sum_mm"] == 20 and a.category == "CR"  # short axis 9 mm < 10 mm


def test_too_small_as_interpretation_list_counts_five_mm():
    p = two_visits()
    last = last_size(p)  # T1 at 2024-03-01
    last["component"] = []
    last["interpretation"] = [concept(codes.TOO_SMALL)]
    a, _, _ = assess(p)
    assert a.values["target_sum_mm"] == 25


def test_no_measurements_says_what_is_missing():
    p = PatientBuilder("none")
    p.condition(icd10="C34.90", text="Lung cancer")
    m = map_recist(PatientRecord(p.resources))
    assert m.inputs is None and "21889-1" in m.reasons_missing[0]


def test_a_report_whose_result_is_not_a_list_loses_only_its_grouping():
    """A malformed ``result`` (a number, a string, a lone object) used to raise inside the mapper and turn the whole
    RECIST assessment into "could not be read"; now that report groups nothing and the measurements keep their
    own dates (the same reading as the Lugano mapper's)."""
    from cds_service.app import evaluate_request
    from cds_service.config import load_settings

    for bad in (3, "Observation/x", {"reference": "Observation/x"}):
        p = two_visits()
        extra = {"resourceType": "DiagnosticReport", "id": "odd", "status": "final", "subject": p.subject,
                 "code": concept("http://loinc.org", "24627-2", "Chest CT"), "effectiveDateTime": "2024-03-01",
                 "result": bad}
        p.add(extra)
        a, m, record = assess(p)
        assert m.inputs is not None and a.category == "PR", bad
        status, out = evaluate_request(p.hook_request(), load_settings({"feedback_database_url": "sqlite:///:memory:"}),
                                       AS_OF)
        summaries = " ".join(c["summary"] for c in out["cards"])
        assert status == 200 and "partial response" in summaries.lower() and "could not be read" not in summaries, bad
