"""Small shared pieces for the imaging engines iRECIST, mRECIST and Choi.

Kept apart from ``rules/recist.py`` on purpose (that engine is written
independently); everything here is plain arithmetic on ``Decimal`` plus the
RECIST 1.1 thresholds that iRECIST re-uses unchanged and that mRECIST / Choi
report as their "RECIST 1.1 equivalent".  Standard library only, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Callable, Iterable, Mapping, Optional, Sequence

from .base import PRECISION, D, Number, change_at_least, change_at_most, fmt, fmt_pct, pct_change

# --- RECIST 1.1 thresholds (Eisenhauer EA et al., Eur J Cancer 2009;45:228-247) -------------------
RECIST_PR_PCT = Decimal(-30)
"""PR: sum of diameters decreased by >= 30 % vs the baseline sum (Eisenhauer 2009 §4.3.1)."""
RECIST_PD_PCT = Decimal(20)
"""PD: sum increased by >= 20 % vs the nadir (smallest sum on study incl. baseline) (Eisenhauer 2009 §4.3.1)."""
RECIST_PD_ABS_MM = Decimal(5)
"""PD also needs an absolute increase >= 5 mm over the nadir (Eisenhauer 2009 §4.3.1)."""
RECIST_NODE_NORMAL_SA_MM = Decimal(10)
"""CR: every nodal target must have a short axis < 10 mm (Eisenhauer 2009 §4.3.1)."""
RECIST_TOO_SMALL_DEFAULT_MM = Decimal(5)
"""A target present but too small to measure counts as 5 mm (Eisenhauer 2009 §4.3.2; RECIST WG Q&A)."""
RESPONSE_CONFIRM_MIN_DAYS = 28
"""CR/PR confirmation: repeat assessment no less than 4 weeks (28 days) later (Eisenhauer 2009 §4.4.3/§4.6)."""

CIT_RECIST_TARGET = "Eisenhauer 2009 (RECIST 1.1) §4.3.1"
CIT_RECIST_TABLE1 = "Eisenhauer 2009 (RECIST 1.1) §4.4.1 Table 1"
CIT_RECIST_CONFIRM = "Eisenhauer 2009 (RECIST 1.1) §4.6"

Dec = Optional[Decimal]


def dec(value: Number | str | float | None) -> Dec:
    """Decimal or None (inputs may arrive as int/str from a mapper or a vignette)."""
    return None if value is None else D(value)


def frac(value: Number | Fraction) -> Fraction:
    """Exact rational (Decimal -> Fraction is exact)."""
    return value if isinstance(value, Fraction) else Fraction(D(value))


def frac_to_dec(value: Fraction) -> Decimal:
    """Fraction -> Decimal at 50 significant digits (for values/display only, never for thresholds)."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return Decimal(value.numerator) / Decimal(value.denominator)


def pct(current: Number, reference: Number) -> Dec:
    """Percent change or None when the reference is 0 (undefined)."""
    return None if D(reference) == 0 else pct_change(current, reference)


def mm(value: Number) -> str:
    return f"{fmt(value)} mm"


def p(value: Dec) -> str:
    return "n/a" if value is None else fmt_pct(value)


# Non-target status words used by the overall tables (RECIST 1.1 §4.3.3); None = no non-target disease.
NT_CR, NT_NN, NT_PD, NT_NE = "CR", "non-CR/non-PD", "PD", "NE"


def non_target_at(value: Optional[str], normalise: Callable[[Optional[str]], Optional[str]], baseline_present: bool,
                  when: date, missing: list[str]) -> Optional[str]:
    """A time point's non-target status read with the criterion's own ``normalise``: NE (with the reason added to
    ``missing``) when the value cannot be read, or when non-target disease was present at baseline and this time
    point says nothing of it; None when there is none to assess."""
    try:
        nt = normalise(value)
    except ValueError as err:
        missing.append(str(err))
        return NT_NE
    if nt is None and baseline_present:
        missing.append(f"non-target disease not assessed on {when}")
        return NT_NE
    return nt


def overall_response(target: str, nt: Optional[str], new: bool) -> str:
    """RECIST 1.1 Table 1 (targets +/- non-targets) and Table 2 (non-target only; ``target == "none"``).

    target: CR / PR / SD / PD / NE / none.  Returns CR, PR, SD, NN (non-CR/non-PD), PD or NE.
    """
    if target == "PD" or nt == NT_PD or new:
        return "PD"
    if target == "none":
        return {NT_CR: "CR", NT_NN: "NN", NT_NE: "NE", None: "NE"}[nt]
    if target == "NE":
        return "NE"
    if target == "CR":
        return "CR" if nt in (NT_CR, None) else "PR"
    return target  # PR or SD


@dataclass(frozen=True)
class SumReading:
    """A sum of diameters judged against baseline (response) and nadir (progression).

    category is one of ``CR``, ``PR``, ``SD``, ``PD``.
    """

    category: str
    sum_mm: Decimal
    baseline_mm: Decimal
    nadir_mm: Decimal
    pct_from_baseline: Dec
    pct_from_nadir: Dec
    abs_from_nadir_mm: Decimal
    text: str


def classify_sum(
    current: Decimal,
    baseline: Decimal,
    nadir: Decimal,
    *,
    complete: bool,
    pr_pct: Decimal = RECIST_PR_PCT,
    pd_pct: Decimal = RECIST_PD_PCT,
    pd_abs_mm: Decimal | None = RECIST_PD_ABS_MM,
    label: str = "Sum",
) -> SumReading:
    """RECIST-style target reading: PD (vs nadir) first, then CR, PR (vs baseline), else SD.

    ``complete`` says whether the complete-response condition holds (all lesions gone /
    nodes < 10 mm / no enhancement); the caller decides what that means for its criterion.
    ``pd_abs_mm`` None means there is no absolute-increase rule (mRECIST).
    A nadir of 0 has no percent change: PD then needs a real increase (and the absolute
    rule, when there is one).
    """
    absolute = current - nadir
    if nadir > 0:
        relative_ok = change_at_least(current, nadir, pd_pct)
    else:
        relative_ok = current > nadir
    absolute_ok = True if pd_abs_mm is None else absolute >= pd_abs_mm
    pct_b = pct(current, baseline)
    pct_n = pct(current, nadir)
    abs_rule = "" if pd_abs_mm is None else f" and >= +{mm(pd_abs_mm)}"
    if relative_ok and absolute_ok:
        category = "PD"
        text = (f"{label} {mm(current)} is {p(pct_n)} ({'+' if absolute >= 0 else ''}{mm(absolute)}) from the nadir "
                f"{mm(nadir)} (PD needs >= +{fmt(pd_pct)} %{abs_rule})")
    elif complete:
        category = "CR"
        text = f"{label} {mm(current)}: complete-response condition met for every target lesion"
    elif baseline > 0 and change_at_most(current, baseline, pr_pct):
        category = "PR"
        text = (f"{label} {mm(current)} is {p(pct_b)} from baseline {mm(baseline)} "
                f"(PR needs <= {fmt(pr_pct)} %)")
    else:
        category = "SD"
        why = []
        why.append(f"{p(pct_b)} from baseline {mm(baseline)} (PR needs <= {fmt(pr_pct)} %)")
        why.append(f"{p(pct_n)}, {'+' if absolute >= 0 else ''}{mm(absolute)} from nadir {mm(nadir)} "
                   f"(PD needs >= +{fmt(pd_pct)} %{abs_rule})")
        text = f"{label} {mm(current)} is " + "; ".join(why) + ": neither PR nor PD"
    return SumReading(category, current, baseline, nadir, pct_b, pct_n, absolute, text)


def progression_established(partial_sum: Decimal, nadir: Decimal, *, pd_pct: Decimal = RECIST_PD_PCT,
                            pd_abs_mm: Decimal | None = RECIST_PD_ABS_MM) -> bool:
    """With some lesions unmeasured the sum can only be larger: PD is certain when the measured part meets it
    (Eisenhauer 2009 §4.3.2 missing measurements; criteria.md §2.3)."""
    if pd_abs_mm is not None and partial_sum - nadir < pd_abs_mm:
        return False
    if nadir > 0:
        return change_at_least(partial_sum, nadir, pd_pct)
    return partial_sum > nadir


def response_confirmed(series: Sequence[tuple[date, str]], accepted: Mapping[str, Iterable[str]],
                       min_days: int = RESPONSE_CONFIRM_MIN_DAYS, skip: Iterable[str] = ("NE",)) -> bool:
    """Is the response at the last time point confirmed by an earlier one >= ``min_days`` before?

    ``accepted[c]`` lists the categories that count as the same response run for a response ``c``
    (e.g. PR is confirmed by an earlier PR or CR).  Walks back over the uninterrupted run (time points in
    ``skip`` such as NE are passed over, any other category ends the run).
    """
    if not series:
        return False
    last_date, last_cat = series[-1]
    ok = set(accepted.get(last_cat, ()))
    if not ok:
        return False
    skip = set(skip)
    for when, cat in reversed(series[:-1]):
        if cat in skip:
            continue
        if cat not in ok:
            return False
        if (last_date - when).days >= min_days:
            return True
    return False
