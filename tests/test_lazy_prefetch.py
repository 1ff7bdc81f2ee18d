"""Prefetch Bundles read lazily (fhir_mappings/rawjson.py, cds_service/hook_body.py ``loads_hook_request``) must give
exactly what decoding everything gives: the same record look-ups, the same cards, the same errors."""
from __future__ import annotations

from datetime import date

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.generate import build_body
from cds_service.app import evaluate_request
from cds_service.config import load_settings
from cds_service.hook_body import loads_hook_request
from cds_service.prefetch import resolve
from cds_service.sandbox.patients import LIBRARY_CONFIG, library
from fhir_mappings.rawjson import LazyBundle, RawResource, lazy_value
from fhir_mappings.record import PatientRecord, effective_date, ref_of

AS_OF = date(2026, 11, 22)
SETTINGS = load_settings({**LIBRARY_CONFIG, "feedback_database_url": "sqlite:///:memory:"})


def _masked(out: dict) -> dict:
    def walk(x):
        if isinstance(x, dict):
            return {k: ("<uuid>" if k == "uuid" else walk(v)) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x
    return walk(out)


def _both(raw: bytes) -> tuple[dict, dict]:
    lazy = loads_hook_request(raw)
    assert any(isinstance(v, LazyBundle) for v in (lazy.get("prefetch") or {}).values())
    return (_masked(evaluate_request(lazy, SETTINGS, AS_OF)[1]),
            _masked(evaluate_request(orjson.loads(raw), SETTINGS, AS_OF)[1]))


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_benchmark_request_gives_the_same_cards(n):
    lazy, plain = _both(build_body(n))
    assert lazy == plain and lazy["cards"]


@pytest.mark.parametrize("patient", library(), ids=lambda p: p.id)
def test_every_sandbox_patient_gives_the_same_cards(patient):
    lazy, plain = _both(orjson.dumps(patient.hook_request()))
    assert lazy == plain


def test_only_what_a_criterion_reads_is_decoded():
    body = loads_hook_request(build_body(1000))
    items = [r for v in body["prefetch"].values() if isinstance(v, LazyBundle) for r in v.resources]
    evaluate_request(body, SETTINGS, AS_OF)
    decoded = sum(1 for r in items if r._res is not None)
    assert len(items) > 1000 and decoded < len(items) / 4  # vital signs and chemistry stay undecoded


# --- record look-ups over random Bundles: lazy items answer as decoded dicts do -------------------------------

_CODINGS = st.lists(st.one_of(
    st.fixed_dictionaries({"system": st.sampled_from(["http://loinc.org", "urn:oid:2.16.840.1.113883.6.1",
                                                      "http://snomed.info/sct", "", 3]),
                           "code": st.sampled_from(["21889-1", "1", " 2 ", 3, "LP1"])}),
    st.just("not a coding"), st.just({})), max_size=3)
_RESOURCE = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Observation", "DiagnosticReport", "Condition", "OperationOutcome",
                                      "BodyStructure", "", 3])},
    optional={"id": st.sampled_from(["a", "b", "c", "", 0, None]),
              "status": st.sampled_from(["final", "entered-in-error", "cancelled", None, ["x"]]),
              "code": st.one_of(st.fixed_dictionaries({"coding": _CODINGS}), st.just("text"), st.none()),
              "verificationStatus": st.sampled_from([
                  {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                               "code": "refuted"}]}, {"coding": "x"}, None]),
              "effectiveDateTime": st.sampled_from(["2024-01-02", "2023", "bad", None]),
              "valueQuantity": st.fixed_dictionaries({"value": st.integers(0, 50), "unit": st.just("mm")})})
_ENTRY = st.one_of(st.fixed_dictionaries({"resource": _RESOURCE}), st.fixed_dictionaries({"resource": _RESOURCE}),
                   st.just({}), st.just({"resource": None}), st.just({"resource": [1]}), st.just({"fullUrl": "x"}))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ENTRY, max_size=10), st.lists(st.sampled_from(
    ["http://loinc.org|21889-1", "http://loinc.org|1", "http://snomed.info/sct|2", "|3", "x"]), max_size=3),
    st.sampled_from(["Observation", "Condition", "DiagnosticReport", "OperationOutcome", "Nope"]))
def test_record_over_lazy_items_answers_as_over_dicts(entries, keys, rtype):
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    raw = orjson.dumps(bundle)
    lazy = lazy_value(msgspec.Raw(raw))
    plain_items = [e["resource"] for e in orjson.loads(raw)["entry"] if isinstance(e.get("resource"), dict)]
    if isinstance(lazy, LazyBundle):
        items = lazy.resources
        assert all(isinstance(i, RawResource) for i in items)
    else:
        items = plain_items
    a, b = PatientRecord(items, "p"), PatientRecord(plain_items, "p")
    assert a.of_type(rtype) == b.of_type(rtype)
    assert a.with_codes(keys) == b.with_codes(keys)
    assert a.with_codes(keys, rtype) == b.with_codes(keys, rtype)
    assert a.with_system("http://loinc.org", rtype) == b.with_system("http://loinc.org", rtype)
    for ref in ("Observation/a", "Condition/b", "DiagnosticReport/c", {"reference": "Observation/a"}):
        assert a.get(ref) == b.get(ref) and a.ref_key(ref) == b.ref_key(ref)
    assert a.issues == b.issues and len(a) == len(b)
    for r in a.of_type(rtype):  # the same dict every time a resource is handed out
        assert a.get(f"{rtype}/{r.get('id')}") in (r, None) or r.get("id") in (None, "", 0)


# --- what is not the usual shape takes the plain path -------------------------------------------------------------

@pytest.mark.parametrize("value", [
    {"resourceType": "Patient", "id": "p"}, {"resourceType": "OperationOutcome", "issue": []}, None, [1, 2], "x",
    {"resourceType": "Bundle", "entry": None}, {"resourceType": "Bundle", "entry": ["not an object"]},
    {"resourceType": "Bundle", "entry": {"resource": {}}}, {"resourceType": "Bundle"}])
def test_unusual_prefetch_values_are_decoded_plainly(value):
    assert lazy_value(msgspec.Raw(orjson.dumps(value))) == value


@pytest.mark.parametrize("raw", [
    b"[]", b'"x"', b"{not json", b'{"prefetch": [1]}', b'{"prefetch": null, "hook": "patient-view"}',
    b'{"hook": 1, "prefetch": {"a": ' + b"[" * 3000 + b"]" * 3000 + b"}}", b'{"context": {"a": 1}, "extension": {}}'])
def test_bodies_of_other_shapes_decode_as_before(raw):
    try:
        plain = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        with pytest.raises(orjson.JSONDecodeError) as lazy_exc:
            loads_hook_request(raw)
        assert str(lazy_exc.value) == str(exc)
        return
    lazy = loads_hook_request(raw)
    if isinstance(plain, dict):
        plain.pop("extension", None)  # not read by the service, not kept
    assert lazy == plain


def test_paging_links_of_a_lazy_bundle_are_followed():
    body = orjson.loads(build_body(10))
    body["prefetch"]["observations"]["link"] = [{"relation": "next",
                                                 "url": "https://elsewhere.example.org/fhir/Observation?page=2"}]
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 60, "scope": "x",
                                 "subject": "s"}
    lazy = loads_hook_request(orjson.dumps(body))
    assert isinstance(lazy["prefetch"]["observations"], LazyBundle)
    cfg = load_settings({"feedback_database_url": "sqlite:///:memory:",
                         "fhir": {"allowed_hosts": ["ehr.example.org"]}})
    a, b = resolve(lazy, cfg, AS_OF), resolve(body, cfg, AS_OF)
    assert a.unavailable == b.unavailable and "later pages" in a.unavailable.get("observations", "")


def _variants():
    base = orjson.loads(build_body(20))
    pre = base["prefetch"]
    cond = pre["conditions"]["entry"][0]["resource"]
    yield "outcome-for-reports", {**pre, "reports": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "timeout"}]}}
    yield "single-resource-for-conditions", {**pre, "conditions": cond}
    yield "undeclared-key", {**pre, "somethingElse": [1, {"a": 2}]}
    yield "patient-null", {**pre, "patient": None}
    yield "patient-absent", {k: v for k, v in pre.items() if k != "patient"}
    yield "reports-null", {**pre, "reports": None}
    yield "bundle-without-entries", {**pre, "reports": {"resourceType": "Bundle", "type": "searchset", "total": 0}}
    yield "bundle-with-odd-entry", {**pre, "reports": {"resourceType": "Bundle", "entry": [
        "text", {"resource": None}, *pre["reports"]["entry"]]}}
    yield "coding-not-a-list", {**pre, "observations": {"resourceType": "Bundle", "entry": [
        {"resource": {**e["resource"], "code": {"coding": {"code": "x"}}}} if i % 3 == 0 else e
        for i, e in enumerate(pre["observations"]["entry"])]}}


@pytest.mark.parametrize("name,prefetch", list(_variants()), ids=[n for n, _ in _variants()])
def test_prefetch_values_of_other_shapes_give_the_same_cards(name, prefetch):
    body = {**orjson.loads(build_body(20)), "prefetch": prefetch}
    raw = orjson.dumps(body)
    lazy = loads_hook_request(raw)
    plain = orjson.loads(raw)
    for b in (lazy, plain):  # missing required data is a 412 for both
        try:
            out = evaluate_request(b, SETTINGS, AS_OF)
        except Exception as exc:  # noqa: BLE001
            out = (type(exc).__name__, getattr(exc, "status", None), str(exc))
        b["_out"] = _masked(out[1]) if isinstance(out[1], dict) else out
    assert lazy["_out"] == plain["_out"]


# --- DiagnosticReports read from their heads (PatientRecord.dated_reports, record.ReportHead) ---------------------

_B64 = "UkVDSVNUIDEuMTogUFIuIHlwVDAgeXBOMA=="  # "RECIST 1.1: PR. ypT0 ypN0"
_DATE = st.sampled_from(["2024-01-02", "2023", "2024-02", "2024-03-04T10:00:00Z", "2024-03-04T23:30:00-05:00",
                         "bad", "24", "2024-13-01", "", 3, None, ["2024-01-02"], {"start": "2024-01-02"}])
_PERIOD = st.one_of(st.fixed_dictionaries({}, optional={"start": _DATE, "end": _DATE}), _DATE)
_REF = st.sampled_from(["Observation/s1", "Observation/s2", "Observation/lab", "Observation/missing",
                        "http://ehr.example.org/fhir/Observation/s2", "Observation/s1/_history/3", "Observation/s2 ",
                        "s1", "", None, 7, {"reference": "Observation/s1"}])
_RESULT = st.one_of(
    st.lists(st.one_of(st.fixed_dictionaries({}, optional={"reference": _REF, "display": st.just("Observation/s1")}),
                       _REF), max_size=4),
    st.just({"reference": "Observation/s1"}), st.just("Observation/s1"), st.just(3), st.none())
_REPORT = st.fixed_dictionaries(
    {"resourceType": st.just("DiagnosticReport")},
    optional={
        "id": st.sampled_from(["r1", "r2", "r3", "r4", "", None]),
        "status": st.sampled_from(["final", "cancelled", "entered-in-error", None]),
        "code": st.one_of(st.just({"coding": [{"system": "http://loinc.org", "code": "24627-2"}]}), st.just("CT")),
        "effectiveDateTime": _DATE, "issued": _DATE, "performedDateTime": _DATE, "recordedDate": _DATE,
        "authoredOn": _DATE, "onsetDateTime": _DATE, "effectivePeriod": _PERIOD, "performedPeriod": _PERIOD,
        "conclusion": st.sampled_from(["RECIST 1.1: PR", "Complete metabolic response (Deauville 2).",
                                       "No evidence of disease.", "", None, 3, ["RECIST 1.1: CR"]]),
        "conclusionCode": st.sampled_from([[{"text": "Partial response"}],
                                           [{"coding": [{"display": "RCB-II"}]}], [], "RCB-0", None]),
        "presentedForm": st.sampled_from([[{"contentType": "text/plain", "data": _B64}],
                                          [{"contentType": "text/html", "data": _B64}], [{"data": 3}], [], {}, None]),
        "result": _RESULT,
        "category": st.just([{"coding": [{"system": "http://loinc.org", "code": "LP29684-5"}]}])})
_SIZE_OBS = [{"resourceType": "Observation", "id": i, "status": "final", "effectiveDateTime": "2020-05-05",
              "code": {"coding": [{"system": "http://loinc.org", "code": "21889-1"}]}} for i in ("s1", "s2")]
_LAB_OBS = {"resourceType": "Observation", "id": "lab", "status": "final", "effectiveDateTime": "2020-05-05",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]}}


def _report_records(reports: list, decoded_first: str | None = None) -> tuple[PatientRecord, PatientRecord, list]:
    """A record over lazily read entries and one over the decoded dicts (the plain path), same Bundle."""
    entries = [{"resource": r} for r in [*_SIZE_OBS, _LAB_OBS, *reports]]
    raw = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})
    lazy = lazy_value(msgspec.Raw(raw))
    assert isinstance(lazy, LazyBundle)
    plain = [e["resource"] for e in orjson.loads(raw)["entry"]]
    a, b = PatientRecord(lazy.resources, "p"), PatientRecord(plain, "p")
    if decoded_first:  # a report some reader decoded before the report readers ran
        assert a.get(decoded_first) == b.get(decoded_first)
    return a, b, lazy.resources


def _report_answers(record: PatientRecord) -> dict:
    from fhir_mappings.recist import _report_dates
    from fhir_mappings.report_text import dated_reports, report_texts, stated_in_record
    from tests.plain_forms import _timepoint_dates

    def answer(fn):  # an error (e.g. a ``result`` that is a number) must be the same error on both paths
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__, str(exc)

    return {
        "dated": answer(lambda: [(ref_of(rep), d, report_texts(rep), rep.get("result"), rep.get("issued", "-"),
                                  rep.get("effectivePeriod", "-")) for rep, d in dated_reports(record)]),
        "stated": answer(lambda: stated_in_record(record)),
        "stated_breast": answer(lambda: stated_in_record(record, ("ypT", "ypN", "rcb_class", "rcb_index"))),
        "report_dates": answer(lambda: _report_dates(record, {"Observation/s1", "Observation/s2", "Observation/lab"})),
        # the plain form, over every report decoded: what the time points read before the heads
        "timepoint_dates": answer(lambda: _timepoint_dates(record, [])),
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(_REPORT, max_size=6), st.sampled_from([None, "DiagnosticReport/r1", "DiagnosticReport/r2"]))
def test_reports_read_from_heads_answer_as_decoded_reports(reports, decoded_first):
    a, b, items = _report_records(reports, decoded_first)
    before = _report_answers(b)
    lazy = _report_answers(a)
    assert lazy == before
    # and as the reports' own dicts do, report by report (dates by effective_date's rules, text, results)
    plain_dated = [(rep, d) for rep in b.of_type("DiagnosticReport") if (d := effective_date(rep)) is not None]
    assert [(ref_of(r), d) for r, d in a.dated_reports()] == [(ref_of(r), d) for r, d in plain_dated]
    # the plain path hands out the dicts themselves, as of_type does
    assert all(rep is res for (rep, _), (res, _) in zip(b.dated_reports(), plain_dated))


def test_report_readers_leave_reports_undecoded():
    reports = [
        {"resourceType": "DiagnosticReport", "id": "ct", "status": "final", "effectiveDateTime": "2020-06-01",
         "result": [{"reference": "Observation/s1"}], "conclusion": "RECIST 1.1: PR. No new lesions."},
        # no text: still the date of the time point whose measurement it groups
        {"resourceType": "DiagnosticReport", "id": "ct2", "status": "final", "issued": "2020-07-01T09:00:00Z",
         "result": [{"reference": "Observation/s2"}]},
        {"resourceType": "DiagnosticReport", "id": "pet", "status": "final",
         "effectivePeriod": {"end": "2020-08-01"}, "presentedForm": [{"contentType": "text/plain", "data": _B64}]},
        {"resourceType": "DiagnosticReport", "id": "cmp", "status": "final", "effectiveDateTime": "2020-06-02",
         "result": [{"reference": "Observation/lab"}]},
        {"resourceType": "DiagnosticReport", "id": "nodate", "status": "final", "conclusion": "RECIST 1.1: PD"},
    ]
    a, b, items = _report_records(reports)
    lazy = _report_answers(a)
    assert lazy == _report_answers(b)
    assert [ref for ref, *_ in lazy["dated"]] == ["DiagnosticReport/ct", "DiagnosticReport/ct2",
                                                  "DiagnosticReport/pet", "DiagnosticReport/cmp"]
    assert lazy["report_dates"] == {"Observation/s1": date(2020, 6, 1), "Observation/s2": date(2020, 7, 1),
                                    "Observation/lab": date(2020, 6, 2)}
    assert {(d, ref, s.kind, s.value) for d, ref, s in lazy["stated"]} >= {
        (date(2020, 6, 1), "DiagnosticReport/ct", "recist", "PR"), (date(2020, 8, 1), "DiagnosticReport/pet", "recist", "PR"),
        (date(2020, 8, 1), "DiagnosticReport/pet", "ypT", "ypT0")}
    # the readers of dates, text and results answer from the heads: no report is decoded
    from fhir_mappings.recist import _report_dates
    from fhir_mappings.report_text import stated_in_record

    a, _, items = _report_records(reports)
    assert stated_in_record(a) == lazy["stated"]
    assert _report_dates(a, {"Observation/s1", "Observation/s2", "Observation/lab"}) == lazy["report_dates"]
    assert not any(r._res is not None for r in items if r.head.resourceType == "DiagnosticReport")
    rep = a.dated_reports()[0][0]
    with pytest.raises(KeyError):
        rep.get("subject")  # a member the head does not hold is an error, never a silent None


def test_report_heads_hold_every_member_effective_date_reads():
    from fhir_mappings.record import DATE_KEYS, PERIOD_KEYS, ReportHead

    assert set(DATE_KEYS + PERIOD_KEYS) <= set(ReportHead.__struct_fields__)
    assert ReportHead.__struct_config__.gc is False


def test_benchmark_reports_are_answered_from_heads():
    body = loads_hook_request(build_body(1000))
    items = [r for v in body["prefetch"].values() if isinstance(v, LazyBundle) for r in v.resources]
    out = evaluate_request(body, SETTINGS, AS_OF)[1]
    assert out["cards"]
    reports = [r for r in items if r.head.resourceType == "DiagnosticReport"]
    assert len(reports) == 99 and not any(r._res is not None for r in reports)


# --- resource heads from one decode of the whole request: the heads of each entry -------------------------------

@settings(max_examples=300, deadline=None)
@given(st.lists(_ENTRY, max_size=8), st.lists(_ENTRY, max_size=4))
def test_heads_from_one_decode_of_the_request_are_each_entrys_heads(obs_entries, cond_entries):
    prefetch = {"observations": {"resourceType": "Bundle", "type": "searchset", "entry": obs_entries},
                "conditions": {"resourceType": "Bundle", "entry": cond_entries}}
    body = loads_hook_request(orjson.dumps({"hook": "patient-view", "context": {"patientId": "p"},
                                            "prefetch": prefetch}))
    for key, bundle in prefetch.items():
        each = lazy_value(msgspec.Raw(orjson.dumps(bundle)))  # every entry's head decoded on its own
        got = body["prefetch"][key]
        assert isinstance(got, LazyBundle) and isinstance(each, LazyBundle)
        assert [(r.head, bytes(r.raw)) for r in got.resources] == [(r.head, bytes(r.raw)) for r in each.resources]


def test_usual_requests_read_every_head_in_one_decode(monkeypatch):
    import fhir_mappings.rawjson as rawjson

    class NoPerEntryDecode:
        def decode(self, raw):
            raise AssertionError("a head was decoded on its own")

    monkeypatch.setattr(rawjson, "_HEAD", NoPerEntryDecode())
    body = loads_hook_request(build_body(100))
    assert sum(len(v.resources) for v in body["prefetch"].values() if isinstance(v, LazyBundle)) > 100
    with pytest.raises(AssertionError):  # a code of another shape: each entry on its own
        loads_hook_request(orjson.dumps({"prefetch": {"observations": {"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Observation", "code": "text"}}]}}}))
