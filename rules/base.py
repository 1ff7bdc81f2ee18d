"""The one engine interface every criteria set shares.

Every criteria engine in ``rules`` takes its own typed inputs (frozen dataclasses
defined next to the engine) plus ``as_of`` (a ``datetime.date``; the engines never
read the clock) and returns an :class:`Assessment`.  The card builder, the
remission timeline and the machine-readable card extension work on
``Assessment`` alone, so no criteria set needs special handling downstream.

Arithmetic at thresholds is exact: values are ``Decimal`` and comparisons use
the helpers below (or cross-multiplication), never floats.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal
from enum import Enum
from typing import Any, Callable, Mapping, Union

Number = Union[Decimal, int]
KeyValue = Union[Decimal, int, str, bool, None, date]


class Outcome(str, Enum):
    """Criteria-independent meaning of a category.

    Used by the timeline (remission first met / lost), by card indicators and by
    surveillance. Each engine maps its own categories onto these.
    """

    COMPLETE = "complete"          # CR, CMR, sCR, excellent, pCR, MRD-negative ...
    PARTIAL = "partial"            # PR, PMR, VGPR, CRh, CRi, MLFS ...
    MINOR = "minor"                # MR (IMWG, RANO) - a response below partial
    STABLE = "stable"              # SD, NMR, non-CR/non-PD, indeterminate-but-stable
    NO_RESPONSE = "no_response"    # ELN no response / refractory
    PROGRESSION = "progression"    # PD, PMD, iCPD
    RELAPSE = "relapse"            # relapse after complete remission (haematological, molecular)
    UNCONFIRMED_PROGRESSION = "unconfirmed_progression"  # iUPD, PDu, suspected relapse
    INDETERMINATE = "indeterminate"  # e.g. ATA indeterminate, RANO steroid rule
    NOT_EVALUABLE = "not_evaluable"  # NE / insufficient data

    @property
    def is_remission(self) -> bool:
        return self in _REMISSION_OUTCOMES

    @property
    def is_loss(self) -> bool:
        return self in _LOSS_OUTCOMES


# the tuples the two properties test (built once: the timeline asks for every time point)
_REMISSION_OUTCOMES = (Outcome.COMPLETE, Outcome.PARTIAL)
_LOSS_OUTCOMES = (Outcome.PROGRESSION, Outcome.RELAPSE)


@dataclass(frozen=True)
class Source:
    """The primary publication a criteria set comes from (shown on the card)."""

    label: str
    url: str


@dataclass(frozen=True)
class Evidence:
    """One rule that fired, in words a clinician can check.

    rule:     stable identifier, e.g. ``"recist.target.pr"``
    text:     plain sentence with the numbers, e.g. ``"Sum 70 mm is -30.0 % from baseline 100 mm (PR needs <= -30 %)"``
    citation: where the threshold comes from, e.g. ``"Eisenhauer 2009 §4.3.1"``
    refs:     FHIR references of the resources the numbers came from (filled by the mapper; may be empty)
    """

    rule: str
    text: str
    citation: str = ""
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class TimepointResult:
    """The category at one earlier (or the current) assessment, for the timeline."""

    date: date
    category: str
    outcome: Outcome
    values: Mapping[str, KeyValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    """What an engine returns.

    criteria:        the criteria set, e.g. ``"RECIST 1.1"``
    category:        the paper's abbreviation, e.g. ``"PR"``, ``"CRh"``, ``"VGPR"``, ``"excellent"``
    label:           the category in words, e.g. ``"partial response"``
    outcome:         criteria-independent meaning (:class:`Outcome`)
    assessment_date: date of the assessment the category applies to (None if nothing was assessable)
    confirmed:       whether the category is confirmed by the criterion's own rule
                     (RECIST >= 4 weeks, IMWG two consecutive assessments, ...). Categories that need no
                     confirmation (e.g. a single pathology assessment) are confirmed=True.
    values:          key numbers, machine-readable (Decimal for measurements; names with units,
                     e.g. ``"baseline_sum_mm"``, ``"pct_change_from_baseline"``)
    evidence:        every rule that fired, in order
    history:         time-point results in date order (the last one is the current assessment)
    missing:         what data was missing or unusable (plain phrases); non-empty for NE / insufficient data
    notes:           caveats to show (interpretation choices, boundary conventions)
    source:          primary publication
    """

    criteria: str
    category: str
    label: str
    outcome: Outcome
    assessment_date: date | None
    confirmed: bool
    source: Source
    values: Mapping[str, KeyValue] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    history: tuple[TimepointResult, ...] = ()
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def frozen_builder(cls: type) -> Callable[..., Any]:
    """A constructor taking every field of the frozen dataclass ``cls`` positionally, in order, that builds the
    same instance as ``cls(...)`` without the frozen ``__init__``'s ``object.__setattr__`` per field (engines and
    mappers build one per time point, lesion or evidence line). Only for classes whose fields are all plain init
    fields and that have no ``__post_init__`` (checked here); tests compare the two constructions."""
    names = [f.name for f in fields(cls)]
    if not getattr(cls, "__dataclass_params__").frozen or hasattr(cls, "__post_init__") or any(
            not f.init for f in fields(cls)):
        raise TypeError(f"{cls.__name__}: not a plain frozen dataclass")
    args = ", ".join(names)
    body = "".join(f"\n    d[{n!r}] = {n}" for n in names)
    src = f"def build({args}):\n    obj = new(cls)\n    d = obj.__dict__{body}\n    return obj\n"
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    exec(src, scope)  # noqa: S102 - generated from the field names, as dataclasses itself does
    build = scope["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


_new_evidence = frozen_builder(Evidence)


class EvidenceLog:
    """Collects evidence while an engine works (a small helper, not required)."""

    def __init__(self) -> None:
        self._items: list[Evidence] = []

    def add(self, rule: str, text: str, citation: str = "", refs: tuple[str, ...] = ()) -> None:
        self._items.append(_new_evidence(rule, text, citation, tuple(refs)))

    def items(self) -> tuple[Evidence, ...]:
        return tuple(self._items)


# ---------------------------------------------------------------------------
# Exact arithmetic helpers
# ---------------------------------------------------------------------------

PRECISION = 50


def D(value: Number | str | float) -> Decimal:
    """Decimal from int, str or Decimal. Floats go through ``repr`` so 0.1 stays 0.1."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


# The context of pct_change: the default one (the service never changes the thread's context) at 50 digits. One
# context built here instead of a localcontext() per call (a time point's evidence computes up to three changes).
_PCT_CONTEXT = Context(prec=PRECISION)


def pct_change(current: Number, reference: Number) -> Decimal:
    """(current - reference) / reference * 100, exact to 50 significant digits.

    Raises ZeroDivisionError when reference is 0: callers decide what that means.
    """
    cur = current if type(current) is Decimal else D(current)
    ref = reference if type(reference) is Decimal else D(reference)
    ctx = _PCT_CONTEXT
    return ctx.divide(ctx.multiply(ctx.subtract(cur, ref), 100), ref)


def change_at_most(current: Number, reference: Number, pct: Number) -> bool:
    """True when the change from reference is <= pct percent (pct negative for decreases).

    Cross-multiplied, so there is no division and no rounding: ``(cur-ref)*100 <= pct*ref``
    for a positive reference.
    """
    cur, ref, p = D(current), D(reference), D(pct)
    if ref <= 0:
        raise ValueError("reference must be positive")
    return (cur - ref) * 100 <= p * ref


def change_at_least(current: Number, reference: Number, pct: Number) -> bool:
    """True when the change from reference is >= pct percent (exact, cross-multiplied)."""
    cur, ref, p = D(current), D(reference), D(pct)
    if ref <= 0:
        raise ValueError("reference must be positive")
    return (cur - ref) * 100 >= p * ref


_QUANTUM = {places: Decimal(1).scaleb(-places) for places in range(7)}  # exact (one digit): no context rounding


def rounded(value: Decimal, places: int = 2) -> Decimal:
    """Round for display only (half-even is avoided: half away from zero)."""
    q = _QUANTUM.get(places) if type(places) is int else None  # every evidence sentence formats numbers
    if q is None:
        q = Decimal(1).scaleb(-places)
    return D(value).quantize(q, rounding=ROUND_HALF_UP)


def fmt(value: Number, places: int = 1) -> str:
    """Format a number for a card: no trailing zeros beyond what is meaningful."""
    if type(value) is Decimal and type(places) is int and 0 <= places <= 6:  # every evidence sentence: no helpers
        s = format(value.quantize(_QUANTUM[places], rounding=ROUND_HALF_UP), "f")
    else:
        s = format(rounded(D(value), places), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s if s != "-0" else "0"


def display_places(value: Decimal, places: int, fits: Callable[[Decimal], bool], most: int = 6) -> int:
    """The fewest decimals, from ``places`` up to ``most``, at which ``value`` rounded (half up) is the value itself
    or ``fits``: a number shown beside a threshold or a class must not read as on the other side of it."""
    while places < most:
        r = rounded(value, places)
        if r == value or fits(r):
            break
        places += 1
    return places


def fmt_near(value: Number, thresholds: tuple[Decimal, ...], places: int = 1) -> str:
    """``fmt(value, places)`` for a value shown beside its thresholds: more decimals where rounding would put the
    shown number on or across a threshold the exact value is not on (4.96 % blasts are "4.96 %", never "5 %"
    beside "< 5 %")."""
    exact = D(value)
    if exact.is_finite():
        places = display_places(exact, places, lambda r: all(
            (r > t) == (exact > t) and (r < t) == (exact < t) for t in thresholds))
    return fmt(exact, places)


_FIVE = Decimal(5)


def _pct_places(value: Decimal, places: int) -> int:
    """``places``, or more where rounding would move the value onto a multiple of 5 %: the percent thresholds of
    the criteria are (20, 25, 30, 50, 90...; IMWG's "MR <= 49 %" is the exception), so −29.96 % is shown as such,
    never as "−30 %" beside a stable disease, and −30.04 % not as a value that looks exactly on the line."""
    return display_places(value, places, lambda r: r % _FIVE != 0)


def fmt_pct(value: Number, places: int = 1) -> str:
    """Signed percent for cards, with a real minus sign: '−34 %', '+20 %' (more decimals where rounding would land
    on a multiple of 5 %, see :func:`_pct_places`)."""
    if type(value) is Decimal and type(places) is int and 0 <= places <= 6 and value.is_finite():
        places = _pct_places(value, places)
        v = value.quantize(_QUANTUM[places], rounding=ROUND_HALF_UP)
        sign = "+" if v > 0 else ("\u2212" if v < 0 else "")
        s = format(v.copy_abs(), "f")  # abs(v) is v without its sign: v already fits the context (quantize)
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        return f"{sign}{s} %"
    exact = D(value)
    if type(places) is int and 0 <= places <= 6 and exact.is_finite():
        places = _pct_places(exact, places)
    v = rounded(exact, places)
    sign = "+" if v > 0 else ("\u2212" if v < 0 else "")
    return f"{sign}{fmt(abs(v), places)} %"
