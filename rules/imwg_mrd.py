"""IMWG 2016 minimal residual disease (MRD) categories for multiple myeloma.

Kumar S et al. Lancet Oncol 2016;17:e328-e346, MRD criteria table (criteria.md §6.4, §9 myeloma row, §11 IMWG row,
§12 item 6).  The standard response categories are in :mod:`rules.imwg2016`.

Categories (``Assessment.category``), best first, and their :class:`~rules.base.Outcome`:

* ``"sustained MRD-negative"`` (COMPLETE): marrow MRD-negative (NGF and/or NGS) **and** imaging-negative, confirmed
  on a second occasion at least one year later, in CR throughout.
* ``"imaging-plus MRD-negative"`` (COMPLETE): NGF/NGS MRD-negative plus a negative PET/CT (every area of increased
  tracer uptake gone, or below mediastinal blood pool / surrounding normal tissue).
* ``"sequencing MRD-negative"`` (COMPLETE): no clonal plasma cells by NGS (clonoSEQ/LymphoSIGHT or validated
  equivalent).
* ``"flow MRD-negative"`` (COMPLETE): no phenotypically aberrant clonal plasma cells by NGF (EuroFlow SOP or
  validated equivalent).
* ``"relapse from MRD-negative"`` (RELAPSE): an MRD-positive result after an MRD-negative one (criteria.md §6.3;
  used for DFS).
* Otherwise the standard IMWG response category passed in (``response_category``; e.g. ``"CR"`` when the MRD test
  is positive or not evaluable), with its IMWG outcome; ``"NE"`` (NOT_EVALUABLE) when no response category is known.

Rules and interpretation choices
--------------------------------
* MRD categories require CR (or sCR).  When the record gives a response other than CR/sCR the MRD result does not
  make an IMWG MRD category and the response category is returned (with a note).
* The assay must reach a sensitivity of at least 1 in 10^5 (``MIN_SENSITIVITY_FRACTION``); a negative result is
  accepted when its limit of detection is <= 1e-5 (exactly 1e-5 meets "minimum sensitivity 1 in 10^5").  A negative
  from a less sensitive assay (e.g. 1e-4 flow) is **not evaluable** for MRD negativity (criteria.md §9 [I]); the
  response category stands and ``values["MRD_evaluable"]`` is False.  A negative without a stated limit of
  detection is not evaluable either (never guessed from the cell count).
* Methods: NGF / next-generation flow / EuroFlow -> flow; NGS / clonoSEQ / LymphoSIGHT / sequencing -> sequencing.
  Other flow assays that reach 1e-5 are treated as a "validated equivalent" flow method (noted); other methods
  (e.g. ASO-qPCR) are not IMWG 2016 MRD methods and are not evaluable.
* MRD is read on bone marrow (NGF/NGS of the marrow aspirate); a test whose ``sample`` names peripheral blood is not
  evaluable.
* The result is read from the latest evaluable test (a positive result is always evaluable).
* Imaging for imaging-plus / sustained: a PET/CT within ``PET_WINDOW_DAYS`` (90 days, [I]: Kumar 2016 gives no
  window) of the MRD test.
* "At least 1 year apart" = the second negative on or after the first one's anniversary (Feb 29 -> Mar 1), and no
  positive MRD test in between; CR must be maintained throughout (``cr_maintained`` False blocks it; unknown is
  noted).
* MRD needs no confirmation by two consecutive assessments (criteria.md §6.4 [P]); ``confirmed`` is True for an
  evaluable result.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .base import Assessment, D, Evidence, Outcome, Source, TimepointResult

CRITERIA = "IMWG 2016 MRD"
SOURCE = Source(
    label="Kumar S et al. IMWG consensus criteria for response and minimal residual disease assessment in "
    "multiple myeloma. Lancet Oncol 2016;17:e328-e346 (MRD criteria)",
    url="https://doi.org/10.1016/S1470-2045(16)30206-6",
)
CIT = "Kumar 2016 (IMWG MRD criteria)"

# Minimum assay sensitivity 1 in 10^5 nucleated cells for NGF and NGS (Kumar 2016 MRD table; criteria.md §6.4 [V],
# §9 [P]; checked: reproduction of the Kumar 2016 MRD table in a public myeloma-education repository, found by
# find_string "minimum sensitivity of 1 in 10": "1 in 10^5 nucleated cells or higher" for flow and NGS).
# Negative results need LOD <= this fraction.
MIN_SENSITIVITY_FRACTION = Decimal("1e-5")
# Sustained MRD negativity: confirmed a minimum of 1 year apart (criteria.md §6.4 [V]; same reproduction: "confirmed
# 1 year apart").
SUSTAINED_MIN_YEARS = 1
# [I] PET/CT must be within this many days of the MRD marrow to count for imaging-plus / sustained (Kumar 2016 gives
# no window; vignette MRD-03 has PET 5-6 days after the marrow).
PET_WINDOW_DAYS = 90

SUSTAINED = "sustained MRD-negative"
IMAGING_PLUS = "imaging-plus MRD-negative"
SEQUENCING = "sequencing MRD-negative"
FLOW = "flow MRD-negative"
RELAPSE_MRD = "relapse from MRD-negative"

LABELS = {
    SUSTAINED: "sustained MRD negativity (marrow and imaging, >= 1 year apart)",
    IMAGING_PLUS: "imaging-plus MRD negativity (NGF/NGS negative and PET/CT negative)",
    SEQUENCING: "sequencing MRD negativity (NGS, sensitivity >= 1 in 10^5)",
    FLOW: "flow MRD negativity (next-generation flow, sensitivity >= 1 in 10^5)",
    RELAPSE_MRD: "relapse from MRD-negative state",
    "sCR": "stringent complete response (MRD negativity not established)",
    "CR": "complete response (MRD negativity not established)",
    "VGPR": "very good partial response",
    "PR": "partial response",
    "MR": "minimal response",
    "SD": "stable disease",
    "PD": "progressive disease",
    "relapse from CR": "relapse from complete response",
    "NE": "not evaluable",
}
OUTCOMES = {
    SUSTAINED: Outcome.COMPLETE,
    IMAGING_PLUS: Outcome.COMPLETE,
    SEQUENCING: Outcome.COMPLETE,
    FLOW: Outcome.COMPLETE,
    RELAPSE_MRD: Outcome.RELAPSE,
    "sCR": Outcome.COMPLETE,
    "CR": Outcome.COMPLETE,
    "VGPR": Outcome.PARTIAL,
    "PR": Outcome.PARTIAL,
    "MR": Outcome.MINOR,
    "SD": Outcome.STABLE,
    "PD": Outcome.PROGRESSION,
    "relapse from CR": Outcome.RELAPSE,
    "NE": Outcome.NOT_EVALUABLE,
}


@dataclass(frozen=True)
class MRDTest:
    """One marrow MRD test.

    method:               e.g. "NGF", "EuroFlow", "NGS", "clonoSEQ", "8-colour flow", "ASO-qPCR"
    result:               "negative" / "positive" (synonyms such as "no clonotype detected" accepted)
    sensitivity_fraction: limit of detection / sensitivity as a fraction (1e-5 = 1 in 100 000)
    level_fraction:       measured MRD level when positive (optional)
    """

    date: date
    method: str
    result: str
    sensitivity_fraction: Decimal | None = None
    level_fraction: Decimal | None = None
    cells_evaluated: int | None = None
    sample: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class PETScan:
    """A PET/CT read for MRD imaging: negative = every area of increased uptake seen at baseline or on a preceding
    PET/CT has gone, or is below mediastinal blood pool / surrounding normal tissue."""

    date: date
    negative: bool
    ref: str | None = None


@dataclass(frozen=True)
class IMWGMRDInputs:
    """response_category: the patient's IMWG response at the MRD test (e.g. "CR", "sCR", from rules.imwg2016);
    cr_maintained: CR held throughout the interval between two MRD tests (None = not stated)."""

    mrd_tests: tuple[MRDTest, ...]
    pet_scans: tuple[PETScan, ...] = ()
    response_category: str | None = None
    response_confirmed: bool | None = None
    cr_maintained: bool | None = None


# ---------------------------------------------------------------------------


def _result(s: str) -> str | None:
    t = s.strip().lower()
    if t in ("negative", "neg", "mrd-negative", "mrd negative", "undetectable", "not detected") or \
            t.startswith("no ") or t.startswith("negative") or "not detected" in t or "undetectable" in t:
        return "negative"
    if t in ("positive", "pos", "detected", "mrd-positive", "mrd positive") or t.startswith("positive") or \
            "detected" in t:
        return "positive"
    return None


def _method(s: str) -> tuple[str | None, bool]:
    """(family 'flow'/'sequencing'/None, is the named IMWG method)."""
    t = s.strip().lower()
    if "ngs" in t or "clonoseq" in t or "lymphosight" in t or "sequenc" in t:
        return "sequencing", True
    if "ngf" in t or "next-generation flow" in t or "next generation flow" in t or "euroflow" in t:
        return "flow", True
    if "flow" in t or "mfc" in t or "cytometry" in t:
        return "flow", False
    return None, False


def _anniversary(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # Feb 29
        return date(d.year + years, 3, 1)


def _norm_response(c: str | None) -> str | None:
    if c is None:
        return None
    t = c.strip()
    low = t.lower()
    if low.startswith("scr") or low.startswith("stringent"):
        return "sCR"
    if low.startswith("relapse"):
        return "relapse from CR"
    head = t.split()[0].rstrip(",;(").upper()
    for k in ("CR", "VGPR", "PR", "MR", "SD", "PD", "NE"):
        if head == k:
            return k
    if low.startswith("complete"):
        return "CR"
    raise ValueError(f"unknown IMWG response category {c!r}")


def _pet_near(pets: tuple[PETScan, ...], d: date) -> PETScan | None:
    near = [p for p in pets if abs((p.date - d).days) <= PET_WINDOW_DAYS]
    if not near:
        return None
    return min(near, key=lambda p: (abs((p.date - d).days), p.date))


def assess(inputs: IMWGMRDInputs, as_of: date) -> Assessment:
    """IMWG 2016 MRD category at ``as_of`` (see module docstring)."""
    ev: list[Evidence] = []
    notes: list[str] = []
    missing: list[str] = []
    values: dict = {}
    resp = _norm_response(inputs.response_category)
    tests = sorted((t for t in inputs.mrd_tests if t.date <= as_of), key=lambda t: t.date)
    pets = tuple(p for p in inputs.pet_scans if p.date <= as_of)
    if len(tests) < len(inputs.mrd_tests):
        notes.append("MRD tests after the as-of date were not used.")

    # ---- classify each test ----
    classified: list[tuple[MRDTest, str | None, bool, str | None]] = []  # (test, result, evaluable, family)
    history: list[TimepointResult] = []
    for t in tests:
        res = _result(t.result)
        fam, named = _method(t.method)
        refs = (t.ref,) if t.ref else ()
        d = t.date.isoformat()
        evaluable = False
        if res is None:
            notes.append(f"{d}: MRD result {t.result!r} not understood.")
        elif fam is None:
            notes.append(f"{d}: method {t.method!r} is not an IMWG 2016 MRD method (NGF or NGS) -> not evaluable.")
            ev.append(Evidence("imwg_mrd.method", f"{d}: {t.method} is not NGF/NGS -> not evaluable for IMWG MRD.",
                               f"{CIT}; criteria.md §6.4", refs))
        elif t.sample and ("blood" in t.sample.lower() or t.sample.strip().lower() in ("pb", "plasma")):
            notes.append(f"{d}: MRD on {t.sample} -> not evaluable (IMWG 2016 MRD is assessed on bone marrow).")
            ev.append(Evidence("imwg_mrd.sample", f"{d}: {t.method} on {t.sample}: IMWG MRD needs a bone-marrow "
                               f"sample -> not evaluable.", f"{CIT}; criteria.md §6.4", refs))
        elif res == "positive":
            evaluable = True
            lvl = f" at {t.level_fraction}" if t.level_fraction is not None else ""
            ev.append(Evidence("imwg_mrd.positive", f"{d}: {t.method} MRD-positive{lvl}.", f"{CIT}; criteria.md §6.4",
                               refs))
        else:
            sens = None if t.sensitivity_fraction is None else D(t.sensitivity_fraction)
            if sens is None:
                notes.append(f"{d}: negative {t.method} result without a stated sensitivity/LOD -> not evaluable.")
            elif sens <= MIN_SENSITIVITY_FRACTION:
                evaluable = True
                if not named:
                    notes.append(f"{d}: {t.method} taken as a validated equivalent of NGF (sensitivity {sens}).")
                ev.append(Evidence("imwg_mrd.negative", f"{d}: {t.method} negative with sensitivity {sens} (<= "
                                   f"{MIN_SENSITIVITY_FRACTION} required, i.e. >= 1 in 10^5) -> "
                                   f"{'sequencing' if fam == 'sequencing' else 'flow'} MRD-negative.",
                                   f"{CIT}; criteria.md §6.4, §9", refs))
            else:
                ev.append(Evidence("imwg_mrd.insufficient_sensitivity", f"{d}: {t.method} negative but sensitivity "
                                   f"{sens} does not reach 1 in 10^5 (needs <= {MIN_SENSITIVITY_FRACTION}) -> not "
                                   f"evaluable for MRD negativity.", f"{CIT}; criteria.md §9 [I]", refs))
                notes.append(f"{d}: negative {t.method} at sensitivity {sens} is not evaluable for IMWG MRD "
                             f"negativity (needs 1e-5).")
        classified.append((t, res, evaluable, fam))

    ev_tests = [c for c in classified if c[2]]
    if inputs.response_category is not None:
        ev.append(Evidence("imwg_mrd.response", f"IMWG response at the MRD assessment: {resp}"
                           + ("" if inputs.response_confirmed is None else
                              (" (confirmed)" if inputs.response_confirmed else " (not confirmed)")) + ".",
                           f"{CIT}; criteria.md §6.4 (MRD categories require CR)"))

    def fallback(reason_missing: str | None = None) -> tuple[str, bool]:
        if resp is None:
            if reason_missing:
                missing.append(reason_missing)
            missing.append("IMWG response category (MRD categories require CR)")
            return "NE", False
        return resp, bool(inputs.response_confirmed) if inputs.response_confirmed is not None else True

    category: str
    confirmed = True
    key_date: date | None = tests[-1].date if tests else None
    if not tests:
        missing.append("MRD test (NGF or NGS on bone marrow)")
        category, confirmed = "NE", False
    elif not ev_tests:
        values["MRD_evaluable"] = False
        category, confirmed = fallback()
        if category not in ("NE",):
            notes.append("No MRD result evaluable under IMWG 2016; the response category stands.")
        else:
            missing.insert(0, "MRD result with sensitivity >= 1 in 10^5 by NGF or NGS")
    else:
        latest, lres, _, lfam = ev_tests[-1]
        key_date = latest.date
        values["MRD_evaluable"] = True
        values["MRD_method"] = latest.method
        values["MRD_test_date"] = latest.date
        if latest.sensitivity_fraction is not None:
            values["MRD_sensitivity_fraction"] = D(latest.sensitivity_fraction)
        values["MRD_negative"] = lres == "negative"
        earlier_neg = [c for c in ev_tests[:-1] if c[1] == "negative"]
        if resp is not None and resp not in ("CR", "sCR"):
            notes.append(f"IMWG MRD categories require CR; the response is {resp}, so the MRD result gives no MRD "
                         f"category.")
            category, confirmed = fallback()
        elif lres == "positive":
            if earlier_neg:
                category = RELAPSE_MRD
                ev.append(Evidence("imwg_mrd.relapse", f"{latest.date.isoformat()}: MRD-positive after MRD-negative "
                                   f"on {earlier_neg[-1][0].date.isoformat()} -> relapse from MRD-negative (loss of "
                                   f"MRD negativity; DFS only).", f"{CIT}; criteria.md §6.3",
                                   (latest.ref,) if latest.ref else ()))
            else:
                category, confirmed = fallback()
                notes.append("MRD-positive: no MRD-negative category.")
        elif resp is None:
            category, confirmed = "NE", False
            missing.append("IMWG response category at the MRD test (MRD categories require CR)")
        else:
            pet = _pet_near(pets, latest.date)
            imaging_neg = pet is not None and pet.negative
            values["imaging_plus_MRD_negative"] = imaging_neg
            if pet is not None:
                values["PET_date"] = pet.date
                ev.append(Evidence("imwg_mrd.pet", f"PET/CT {pet.date.isoformat()} "
                                   f"{'negative' if pet.negative else 'positive'} (within {PET_WINDOW_DAYS} days of "
                                   f"the marrow {latest.date.isoformat()}).", f"{CIT}; criteria.md §6.4",
                                   (pet.ref,) if pet.ref else ()))
            # sustained: an earlier negative (with negative imaging) >= 1 year before, no positive in between
            sustained_from = None
            for c in ev_tests[:-1]:
                t0 = c[0]
                if c[1] != "negative" or _anniversary(t0.date, SUSTAINED_MIN_YEARS) > latest.date:
                    continue
                between = [x for x in ev_tests if t0.date < x[0].date < latest.date and x[1] == "positive"]
                p0 = _pet_near(pets, t0.date)
                if between or p0 is None or not p0.negative:
                    continue
                sustained_from = t0
                break
            if sustained_from is not None and imaging_neg and inputs.cr_maintained is not False:
                category = SUSTAINED
                days = (latest.date - sustained_from.date).days
                values["days_between"] = days
                values["first_MRD_negative_date"] = sustained_from.date
                if inputs.cr_maintained is None:
                    notes.append("CR throughout the interval was not stated; sustained MRD negativity assumes it.")
                ev.append(Evidence("imwg_mrd.sustained", f"MRD-negative marrow and negative PET/CT on "
                                   f"{sustained_from.date.isoformat()} and {latest.date.isoformat()}, {days} days apart "
                                   f"(>= {SUSTAINED_MIN_YEARS} year) -> sustained MRD-negative.",
                                   f"{CIT}; criteria.md §6.4", tuple(r for r in (sustained_from.ref, latest.ref) if r)))
            elif imaging_neg:
                category = IMAGING_PLUS
                ev.append(Evidence("imwg_mrd.imaging_plus", f"NGF/NGS negative {latest.date.isoformat()} plus "
                                   f"negative PET/CT -> imaging-plus MRD-negative.", f"{CIT}; criteria.md §6.4",
                                   tuple(r for r in (latest.ref, pet.ref if pet else None) if r)))
            else:
                same_day = [c for c in ev_tests if c[0].date == latest.date and c[1] == "negative"]
                fams = {c[3] for c in same_day}
                category = SEQUENCING if "sequencing" in fams else FLOW
                if pet is None:
                    notes.append("No PET/CT near the MRD test: imaging-plus MRD negativity not assessable.")
            if sustained_from is None and earlier_neg:
                gap = (latest.date - earlier_neg[0][0].date).days
                values.setdefault("days_between", gap)

    history = tuple(
        TimepointResult(t.date, ("MRD-negative" if r == "negative" and e else "MRD-positive" if r == "positive"
                                 else "NE"),
                        Outcome.COMPLETE if (r == "negative" and e) else (
                            Outcome.STABLE if r == "positive" else Outcome.NOT_EVALUABLE),
                        {"method": t.method, "evaluable": e,
                         **({"sensitivity_fraction": D(t.sensitivity_fraction)} if t.sensitivity_fraction is not None
                            else {})})
        for t, r, e, _ in classified)
    if category == "NE":
        confirmed = False
    return Assessment(
        criteria=CRITERIA,
        category=category,
        label=LABELS.get(category, category),
        outcome=OUTCOMES.get(category, Outcome.NOT_EVALUABLE),
        assessment_date=key_date,
        confirmed=confirmed,
        source=SOURCE,
        values=values,
        evidence=tuple(ev),
        history=history,
        missing=tuple(missing),
        notes=tuple(notes),
    )
