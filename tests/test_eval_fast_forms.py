"""The hook's per-call fast paths give what their plain forms (tests/plain_forms.py) give, on random inputs."""
from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

import plain_forms as plain
from rules import base
from rules import recist

def _outcome(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - both forms must fail alike
        return type(exc)


# --- rules/base.py number formatting -------------------------------------------------------------------------

decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=None, min_value=-10**6, max_value=10**6),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000),
    st.integers(-10**6, 10**6).map(Decimal),
    st.sampled_from([Decimal("-0"), Decimal("-0.04"), Decimal("0.05"), Decimal("-0.05"), Decimal("12.25"),
                     Decimal("1E+3"), Decimal("1.5E-7"), Decimal("-33.35"), Decimal("99.95")]),
)
numbers = st.one_of(decimals, st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False))


@settings(max_examples=1500, deadline=None)
@given(value=numbers, places=st.integers(0, 6))
def test_fmt_and_fmt_pct_are_the_plain_forms(value, places):
    assert base.fmt(value, places) == plain.fmt(value, places)
    assert base.fmt_pct(value, places) == plain.fmt_pct(value, places)
    assert base.fmt(value) == plain.fmt(value)
    assert base.fmt_pct(value) == plain.fmt_pct(value)


@settings(max_examples=1500, deadline=None)
@given(cur=numbers, ref=numbers)
def test_pct_change_is_the_plain_form(cur, ref):
    got, want = _outcome(base.pct_change, cur, ref), _outcome(plain.pct_change, cur, ref)
    assert got == want and str(got) == str(want)  # a Decimal equal to the digit, or the same exception type


# --- RECIST 1.1 engine ---------------------------------------------------------------------------------------

D0 = date(2024, 1, 8)
sizes = st.one_of(st.none(), st.integers(0, 120).map(Decimal),
                  st.decimals(min_value=0, max_value=120, places=1, allow_nan=False, allow_infinity=False))


@st.composite
def recist_inputs(draw):
    n_lesions = draw(st.integers(0, 4))
    nodal = [draw(st.booleans()) for _ in range(n_lesions)]
    n_tps = draw(st.integers(1, 9))
    days = sorted(draw(st.lists(st.integers(0, 900), min_size=n_tps, max_size=n_tps, unique=True)))
    tps = []
    for i, d in enumerate(days):
        present = [k for k in range(n_lesions) if draw(st.integers(0, 9)) > 0]
        targets = tuple(recist.TargetMeasurement(f"T{k}", nodal[k], draw(sizes), draw(st.integers(0, 6)) == 0,
                                                 None, draw(st.sampled_from([None, f"Observation/o{i}-{k}"])))
                        for k in present)
        if draw(st.integers(0, 5)) == 0:
            targets = ()
        tps.append(recist.Timepoint(
            D0 + timedelta(days=d), targets,
            draw(st.sampled_from([None, None, "CR", "non-CR/non-PD", "PD", "NE"])),
            draw(st.sampled_from(["no", "no", "no", "yes", "equivocal"])),
            draw(st.sampled_from([None, None, None, "PR", "CR", "SD", "PD"])),
            draw(st.sampled_from([(), ("DiagnosticReport/r",), ("Observation/s", "DiagnosticReport/r")]))))
    start = draw(st.sampled_from([None, D0 - timedelta(days=20), D0 + timedelta(days=30)]))
    return recist.RecistInputs(tuple(tps), confirmation_required=draw(st.booleans()), treatment_start=start,
                               min_sd_days=draw(st.sampled_from([42, 56])),
                               targets_auto_selected=draw(st.booleans()))


@settings(max_examples=1500, deadline=None)
@given(inputs=recist_inputs(), as_of_days=st.integers(-10, 1000), continuing=st.booleans())
def test_recist_engine_is_the_plain_form(inputs, as_of_days, continuing):
    as_of = D0 + timedelta(days=as_of_days)
    got = _outcome(recist.assess, inputs, as_of, continuing_pr=continuing)
    want = _outcome(plain.recist_assess, inputs, as_of, continuing_pr=continuing)
    assert got == want
    if isinstance(want, base.Assessment):
        assert list(got.values) == list(want.values)  # the card's JSON keeps the key order


# --- RECIST 1.1 mapper ---------------------------------------------------------------------------------------

from fhir_mappings import codes  # noqa: E402
from fhir_mappings.recist import map_recist  # noqa: E402
from fhir_mappings.record import LOINC, SNOMED, UCUM, PatientRecord  # noqa: E402

_DATES = ["2024-01-08", "2024-03-04T10:00:00+01:00", "2024-05-06", "2024-07-01", "2024", None, "garbage"]


def _coding(system, code, display=None):
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return {"coding": [c]}


_ALIAS = {LOINC: "urn:oid:2.16.840.1.113883.6.1", SNOMED: "http://snomed.info/id"}
# body sites the lymph-node test reads in other spellings: aliased systems, padded codes, two codings, words at the
# start / end of the text, a system holding "|", a coding of another shape
_ODD_SITES = [
    _coding("http://snomed.info/id", " 181756000 "), _coding("urn:oid:2.16.840.1.113883.6.96", "59441001"),
    {"coding": [{"system": SNOMED, "code": "10200004"}, {"system": SNOMED, "code": "181756000"}]},
    _coding(f"{SNOMED}|59441001", ""), _coding(SNOMED, "59441001|x"), {"coding": [{"code": "59441001"}, "x"]},
    {"coding": [{"system": 3, "code": "59441001"}], "text": "LN station 7"}, {"text": "Hilar node"},
    {"text": "lnode"}, {"coding": [{"system": SNOMED, "code": "x", "display": "Nodal mass"}]},
]


@st.composite
def recist_records(draw):
    bodies = []
    for i in range(draw(st.integers(0, 3))):
        b = {"resourceType": "BodyStructure", "id": f"b{i}"}
        b["identifier"] = draw(st.sampled_from([[{"value": f"L{i}"}], [{"system": "x"}], [], None, [{"value": 3}]]))
        b["location"] = draw(st.sampled_from([
            _coding(SNOMED, "59441001", "Left axillary lymph node"), _coding(SNOMED, "10200004", "Liver"),
            {"text": "mediastinal nodal mass"}, {"text": "lung"}, "liver", None, *_ODD_SITES]))
        bodies.append({k: v for k, v in b.items() if v is not None})
    focus_refs = [f"BodyStructure/b{i}" for i in range(len(bodies))] + [
        "BodyStructure/missing", "http://x.org/fhir/BodyStructure/b0", "BodyStructure/b0/_history/2"]
    obs = []
    for i in range(draw(st.integers(0, 12))):
        o = {"resourceType": "Observation", "id": draw(st.sampled_from([f"s{i}", f"s{i}", None, f"a/s{i}"])),
             "status": "final", "code": _coding(LOINC, "21889-1"),
             "effectiveDateTime": draw(st.sampled_from(_DATES))}
        o["focus"] = draw(st.sampled_from([
            None, [{"reference": draw(st.sampled_from(focus_refs))}], [{"identifier": {"value": f"id{i % 3}"}}],
            [{"display": "x"}], ["BodyStructure/b0"], [{"reference": 5}], {"reference": "BodyStructure/b0"}]))
        o["bodySite"] = draw(st.sampled_from([None, _coding(SNOMED, "59441001", "Axillary lymph node"),
                                              {"text": "liver"}, {"text": "para-aortic ln"}, 7, *_ODD_SITES]))
        comps = []
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from([codes.LONGEST_DIMENSION, codes.SHORT_AXIS, codes.OTHER_DIMENSION,
                                        codes.NODAL, codes.LESION_ROLE, f"{LOINC}|8480-6"]))
            system, code = key.split("|", 1)
            system = draw(st.sampled_from([system, system, _ALIAS.get(system, system), f"{system}|{code}"]))
            c = {"code": draw(st.sampled_from([_coding(system, draw(st.sampled_from([code, code, f" {code} "]))),
                                               {"coding": [{"system": system, "code": code}, {"code": "x"}]}]))}
            if key == codes.NODAL:
                c["valueBoolean"] = draw(st.sampled_from([True, False, "yes"]))
            elif key == codes.LESION_ROLE:
                c["valueCodeableConcept"] = _coding("http://x", draw(st.sampled_from(["target", "Non-target", "new",
                                                                                      "other"])))
            else:
                if draw(st.integers(0, 6)) == 0:
                    c["valueCodeableConcept"] = _coding(*codes.TOO_SMALL.split("|", 1))
                q = {"value": draw(st.one_of(st.floats(-5, 150, allow_nan=False), st.integers(-5, 150),
                                             st.sampled_from(["12.5", "NaN", None, True, float("inf")])))}
                unit = draw(st.sampled_from(["mm", "cm", "kg", None, " mm "]))
                if unit is not None:
                    q[draw(st.sampled_from(["code", "unit"]))] = unit
                system_ = draw(st.sampled_from([UCUM, None, "http://other"]))
                if system_:
                    q["system"] = system_
                c["valueQuantity"] = draw(st.sampled_from([q, q, q, "12 mm"]))
            comps.append(c)
        o["component"] = draw(st.sampled_from([comps, comps, None, "x"])) if comps else None
        o["note"] = draw(st.sampled_from([None, [{"text": "Too small to measure"}], [{"text": "ok"}, "x"], "x"]))
        o["interpretation"] = draw(st.sampled_from([
            None, [_coding(*codes.TOO_SMALL.split("|", 1))], _coding("http://x", "H"), []]))
        obs.append({k: v for k, v in o.items() if v is not None})
    status = []
    for i in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from([codes.NON_TARGET_RESPONSE, codes.NEW_LESION, codes.TIMEPOINT_RESPONSE,
                                    codes.TRIAL_CONFIRMATION]))
        o = {"resourceType": "Observation", "id": draw(st.sampled_from([f"t{i}", None])), "status": "final",
             "code": _coding(*key.split("|", 1)), "effectiveDateTime": draw(st.sampled_from(_DATES))}
        o.update(draw(st.sampled_from([{"valueBoolean": True}, {"valueBoolean": False},
                                       {"valueCodeableConcept": _coding("http://x", "PR")},
                                       {"valueString": "non-CR/non-PD"}, {"valueString": "yes"}, {}])))
        status.append({k: v for k, v in o.items() if v is not None})
    reports = []
    refs = [f"Observation/{o.get('id')}" for o in obs + status] + ["Observation/nope"]
    for i in range(draw(st.integers(0, 4))):
        results = []
        for _ in range(draw(st.integers(0, 5))):
            ref = draw(st.sampled_from(refs))
            results.append(draw(st.sampled_from([
                {"reference": ref}, {"reference": "http://x.org/fhir/" + ref}, {"reference": ref + "/_history/1"},
                ref, {"display": "x"}, 3])))
        reports.append({"resourceType": "DiagnosticReport", "id": f"r{i}", "status": "final",
                        "effectiveDateTime": draw(st.sampled_from(_DATES)), "result": results})
    meds = [{"resourceType": "MedicationStatement", "id": "m", "status": "active",
             "effectiveDateTime": draw(st.sampled_from(_DATES))}] if draw(st.booleans()) else []
    return bodies + obs + status + reports + meds


@settings(max_examples=1500, deadline=None)
@given(resources=recist_records(), confirm=st.sampled_from([None, True, False]))
def test_recist_mapper_is_the_plain_form(resources, confirm):
    fast, slow = PatientRecord(resources), PatientRecord(resources)
    got = _outcome(map_recist, fast, confirmation_required=confirm)
    want = _outcome(plain.map_recist, slow, confirmation_required=confirm)
    assert got == want
    assert fast.issues == slow.issues


@settings(max_examples=1000, deadline=None)
@given(value=st.floats(allow_nan=False), unit=st.sampled_from(["mm", "mm", " mm ", "cm"]),
       system=st.sampled_from([UCUM, None]))
def test_a_diameter_in_mm_is_read_as_normalise_reads_it(value, unit, system):
    """_size_value takes a float in "mm" as it is: the very Decimal (digits and exponent) normalise gives."""
    from fhir_mappings.recist import _size_value
    from fhir_mappings.units import LENGTH_MM, UnitError, normalise

    q = {"value": value, "code": unit, **({"system": system} if system else {})}
    record = PatientRecord([])
    got, _ = _size_value({"resourceType": "Observation", "id": "o"}, {"valueQuantity": q}, record)
    v = Decimal(repr(value))
    try:
        want = normalise(v, unit, LENGTH_MM) if v.is_finite() else None
    except UnitError:
        want = None
    if want is not None and want < 0:
        want = None
    assert (got.as_tuple() if got is not None else None) == (want.as_tuple() if want is not None else None)


# --- cards ----------------------------------------------------------------------------------------------------

from cds_service import cards  # noqa: E402


class _Str(str):
    pass


@settings(max_examples=1000, deadline=None)
@given(key=st.sampled_from(["target_sum_mm", "pct_change_from_nadir", "pct_x", "mrd_fraction", "x_pct_change_y",
                            "nadir_sum_mm"]),
       value=st.one_of(decimals, st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-0.00004"),
                                                  Decimal("0.00005"), Decimal("-0.005"), Decimal("1E-6"),
                                                  # 28 digits at the quantum, beyond them, large integers
                                                  Decimal("12345678901234567890123.45678"), Decimal("1E+23"),
                                                  Decimal("-99999999999999999999999.99995"), Decimal("1E+30")]),
                       st.integers(-5, 5), st.lists(decimals, max_size=3), st.just(date(2024, 1, 2))))
def test_json_value_is_the_plain_form(key, value):
    got, want = _outcome(cards._json_value, key, value), _outcome(plain._json_value, key, value)
    assert repr(got) == repr(want) and type(got) is type(want)  # the same JSON value, or the same exception


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>=\\`*_[]|~\n%\u2212")), max_size=60))
def test_md_escape_is_the_plain_form(text):
    assert cards.md_escape(text) == plain.md_escape(text)
    assert cards.md_escape(_Str(text)) == plain.md_escape(text)


_LEAVES = st.one_of(st.none(), st.just(""), st.just(_Str("")), st.just(_Str("x")), st.text(max_size=3),
                    st.integers(-1, 1), st.just(0.0), st.floats(allow_nan=True), st.booleans(), st.just(Decimal(0)),
                    st.just(()), st.just((1,)), st.just(Decimal("NaN")), st.just(date(2024, 1, 2)))
_TREES = st.recursive(_LEAVES, lambda kids: st.one_of(st.lists(kids, max_size=5),
                                                      st.dictionaries(st.text(max_size=2), kids, max_size=5)),
                      max_leaves=60)


@settings(max_examples=1000, deadline=None)
@given(_TREES)
def test_clean_is_the_plain_form(tree):
    assert repr(cards._clean(tree)) == repr(plain.clean(tree))


# --- report statements and iRECIST's checkpoint-inhibitor list ------------------------------------------------

import base64  # noqa: E402

from fhir_mappings import irecist, report_text  # noqa: E402

_TEXTS = ["RECIST 1.1: PR. No new lesions.", "Partial response", "", "ypT0 ypN0, RCB-0", "no evidence of disease",
          "Stable disease; new lesion in liver?", "complete metabolic response"]


@st.composite
def reports(draw):
    out = []
    for i in range(draw(st.integers(0, 6))):
        rep = {"resourceType": "DiagnosticReport", "id": draw(st.sampled_from([f"r{i}", None])), "status": "final",
               "effectiveDateTime": draw(st.sampled_from(["2024-01-02", "2024-01-02", "2023-05-06", None, "x"]))}
        rep["conclusion"] = draw(st.sampled_from(_TEXTS + [None, 5]))
        rep["presentedForm"] = draw(st.sampled_from([
            None, [], "x", [{"contentType": "text/plain", "data": base64.b64encode(b"Partial response").decode()}],
            [{"contentType": "text/html", "data": base64.b64encode(b"<p>ypT1a</p>").decode()}, 3]]))
        rep["conclusionCode"] = draw(st.sampled_from([
            None, [], {"text": "x"}, [{"text": "Complete response"}], [{"coding": [{"display": "Partial response"}]}, 7],
            [{"text": ""}]]))
        out.append({k: v for k, v in rep.items() if v is not None})
    return out


@settings(max_examples=800, deadline=None)
@given(resources=reports())
def test_report_statements_are_the_plain_form(resources):
    for rep in resources:
        assert report_text.report_texts(rep) == plain.report_texts(rep)
    record = PatientRecord(resources)
    want = plain.stated(record.of_type("DiagnosticReport"))
    assert report_text.stated_in_record(record) == want
    assert report_text._stated(record.of_type("DiagnosticReport")) == want
    assert report_text.stated_in_record(record, ("recist", "response")) == [x for x in want
                                                                            if x[2].kind in ("recist", "response")]


def test_default_checkpoint_list_is_the_built_one():
    words, keys = irecist._build_words_and_codes(None)
    for options in (None, {}, {"checkpoint_inhibitors": None}, {"checkpoint_inhibitors": []}):
        got_words, got_keys = irecist._words_and_codes(options)
        assert got_words == words and got_keys == keys


# --- frozen dataclasses built without their __init__ ------------------------------------------------------------

import dataclasses  # noqa: E402

import pytest  # noqa: E402

from fhir_mappings import pipeline, routing  # noqa: E402
from rules import timeline  # noqa: E402


@pytest.mark.parametrize("cls,values", [
    (base.Evidence, ("r", "text", "cite", ("Observation/1",))),
    (base.TimepointResult, (date(2024, 1, 2), "PR", base.Outcome.PARTIAL, {"target_sum_mm": Decimal("4.5")})),
    (recist.TargetMeasurement, ("T1", True, Decimal("12.5"), False, "liver", None)),
    (recist.Timepoint, (date(2024, 1, 2), (), "CR", "no", None, ("DiagnosticReport/r",))),
    (base.Assessment, ("RECIST 1.1", "PR", "partial response", base.Outcome.PARTIAL, date(2024, 1, 2), True,
                       recist.SOURCE, {"target_sum_mm": Decimal("4.5")}, (), (), ("m",), ("n",))),
    (recist.RecistInputs, ((), True, date(2024, 1, 2), 42, False)),
    (recist.BaselineLesion, ("T1", False, Decimal("12.5"), "liver")),
    (recist.TargetSelection, (("T1",), ("T2",), (), ("r",))),
    (timeline.RemissionEpisode, (date(2024, 1, 2), base.Outcome.PARTIAL, "PR", base.Outcome.COMPLETE, "CR", None,
                                 date(2024, 2, 2), None, date(2024, 3, 2), None, None, None)),
    (pipeline.MapperOutput, (None, ("x",), (), False)),
    (routing.RoutedCancer, (routing.BY_KEY["breast"], "Condition/c", "breast cancer", None, None, "ICD-10", ("C50",))),
])
def test_frozen_builder_builds_what_the_class_builds(cls, values):
    built, plain_ = base.frozen_builder(cls)(*values), cls(*values)
    assert type(built) is cls and built == plain_ and repr(built) == repr(plain_)
    assert _outcome(hash, built) == _outcome(hash, plain_)  # a number, or TypeError for a dict field
    assert vars(built) == vars(plain_) and list(vars(built)) == list(vars(plain_))
    assert dataclasses.replace(built) == plain_ and dataclasses.asdict(built) == dataclasses.asdict(plain_)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.__setattr__(dataclasses.fields(cls)[0].name, None)
    with pytest.raises(TypeError):
        base.frozen_builder(cls)(*values[:-1])


def test_frozen_builder_refuses_what_it_cannot_build():
    @dataclasses.dataclass
    class Plain:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Checked:
        a: int

        def __post_init__(self):
            pass

    @dataclasses.dataclass(frozen=True)
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    for cls in (Plain, Checked, Derived):
        with pytest.raises(TypeError):
            base.frozen_builder(cls)


# --- remission timeline -------------------------------------------------------------------------------------

import plain_timeline  # noqa: E402
from rules import timeline  # noqa: E402


@st.composite
def assessments(draw):
    n = draw(st.integers(0, 12))
    days = sorted(draw(st.lists(st.integers(0, 1500), min_size=n, max_size=n)))
    outcomes = list(base.Outcome)
    history = tuple(base.TimepointResult(D0 + timedelta(days=d), draw(st.sampled_from(["CR", "PR", "SD", "PD", "NE"])),
                                         draw(st.sampled_from(outcomes))) for d in days)
    current = draw(st.sampled_from(outcomes))
    when = draw(st.sampled_from([None, D0 + timedelta(days=days[-1]) if days else None,
                                 D0 + timedelta(days=draw(st.integers(0, 1600)))]))
    return base.Assessment("RECIST 1.1", "PR", "partial response", current, when, draw(st.booleans()),
                           recist.SOURCE, history=history)


@settings(max_examples=1500, deadline=None)
@given(a=assessments(), as_of_days=st.integers(0, 2000),
       cancer=st.sampled_from([None, "", "breast", "hodgkin", "DLBCL", "all", "acute lymphoblastic leukaemia"]))
def test_timeline_is_the_plain_form(a, as_of_days, cancer):
    as_of = D0 + timedelta(days=as_of_days)
    got = _outcome(timeline.build_timeline, a, as_of, cancer_type=cancer)
    want = _outcome(plain_timeline.build_timeline, a, as_of, cancer_type=cancer)
    assert repr(got) == repr(want)


def test_card_uuids_are_random_version_4_uuids():
    import uuid

    seen = {cards.new_uuid() for _ in range(2000)}
    assert len(seen) == 2000
    for s in list(seen)[:200]:
        u = uuid.UUID(s)
        assert str(u) == s and u.version == 4 and u.variant == uuid.RFC_4122
    # every other bit varies
    bits = [int(s.replace("-", ""), 16) for s in seen]
    fixed = ~0
    for b in bits:
        fixed &= ~(b ^ bits[0])
    assert fixed & ((1 << 128) - 1) == (0xF << 76) | (0x3 << 62)  # the version nibble and the variant bits only


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_card_uuids_of_a_forked_child_are_not_its_parents():
    """The uuid pool is dropped in a forked child: the child draws its own from the OS, never the uuids the parent
    pooled and has yet to hand out."""
    cards.new_uuid()  # the pool now holds uuids made ahead
    assert cards._UUID_POOL
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next uuids, to the parent
        try:
            os.close(r)
            os.write(w, ("|" + str(len(cards._UUID_POOL)) + "|"
                         + ",".join(cards.new_uuid() for _ in range(200))).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    _, pooled_in_child, child = data.decode().split("|")
    assert pooled_in_child == "0"
    child_uuids = child.split(",")
    parent_uuids = [cards.new_uuid() for _ in range(200)]
    assert len(set(child_uuids)) == 200 and not set(child_uuids) & set(parent_uuids)
    import uuid
    for s in child_uuids:
        u = uuid.UUID(s)
        assert str(u) == s and u.version == 4 and u.variant == uuid.RFC_4122


# --- a percent is never shown on a threshold it is not on ------------------------------------------------------

@pytest.mark.parametrize("value,shown", [
    ("-29.96", "\u221229.96 %"), ("-30", "\u221230 %"), ("-30.04", "\u221230.04 %"), ("19.96", "+19.96 %"),
    ("-34.04", "\u221234 %"), ("-49.99", "\u221249.99 %"), ("24.95", "+24.95 %"), ("12.34", "+12.3 %"),
])
def test_a_percent_near_a_threshold_is_not_rounded_onto_it(value, shown):
    assert base.fmt_pct(Decimal(value)) == shown


def test_a_stable_disease_card_does_not_say_minus_30_percent():
    """RECIST 1.1: −29.96 % from baseline is SD (PR needs ≥ 30 % decrease); the card must not read "−30 %"."""
    from cds_service.cards import _summary

    tps = tuple(recist.Timepoint(d, (recist.TargetMeasurement("L1", False, Decimal(mm)),), None, "no")
                for d, mm in ((date(2024, 1, 8), "100.00"), (date(2024, 3, 4), "70.04")))
    a = recist.assess(recist.RecistInputs(tps), date(2024, 4, 1))
    assert a.category == "SD"
    assert "\u221229.96 %" in _summary(a) and "\u221230 %" not in _summary(a)
    assert "\u221229.96 %" in " ".join(e.text for e in a.evidence)
