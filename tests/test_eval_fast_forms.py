"""The hook's per-call fast paths give what their plain forms (tests/plain_forms.py) give, on random inputs."""
from __future__ import annotations

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
