"""Remission timeline: when remission was first met, confirmed, how long it has lasted, and when it was lost.

Works on :class:`rules.base.Assessment` alone (its ``history`` of dated outcomes), so every criteria set gets
the same timeline without special cases (reference/design.md, "One engine interface").

Choices, with their sources
---------------------------
* **Generic confirmation (>= 28 days).** Remission (``Outcome.PARTIAL`` or ``Outcome.COMPLETE``) counts as
  confirmed when the same or a better remission outcome is seen again at an assessment **at least 28 days**
  after the level was first met, with **no loss** (``PROGRESSION`` / ``RELAPSE``) in between.  This is the
  RECIST 1.1 confirmation interval ("no less than 4 weeks", Eisenhauer 2009 §4.4.3; criteria.md §2.9, §11)
  and what the lay seeds say as "remission must last at least one month" (WebMD, Verywell; surveillance.md §1,
  criteria.md §11).  Exactly 28 days confirms; 27 days does not.  Intervening stable / not-evaluable /
  minor-response time points do not break a confirmation - only a loss does (the brief's rule; RECIST
  Table 3 handles PR-SD sequences inside the engine, not here).
* **The criterion's own rule wins when it confirms.**  criteria.md §11 [I] recommends showing the
  criterion-specific confirmation status rather than a blanket one-month rule: when ``assessment.confirmed`` is
  True and the current outcome is a remission (e.g. IMWG: two consecutive assessments with no minimum interval;
  pCR: a single pathology assessment needs no confirmation), the timeline reports it as confirmed by the
  criterion, dated at the generic confirmation if that happened, else at the assessment date.
* **Episodes.**  A remission episode starts at the first remission time point after none (or after a loss)
  and ends at the first loss.  Top-level fields describe the latest episode; all episodes are kept in
  ``episodes``.
* **Durations.**  Duration of response runs from the first date remission was met to the first documented
  loss, or to ``as_of`` while not lost (RECIST 1.1 §4.6, criteria.md §2.9).  The status phrase of a current
  remission gives the time at the *current level* (e.g. time in CR).  Month counts are whole calendar months
  (:func:`whole_months_between`).
* **Best response** is the best time-point outcome so far, ranked COMPLETE > PARTIAL > MINOR > STABLE >
  NO_RESPONSE > UNCONFIRMED_PROGRESSION > PROGRESSION / RELAPSE; INDETERMINATE and NOT_EVALUABLE are not
  ranked.  It is not RECIST "best overall response" (which needs confirmation and SD minimum duration; that
  is the engine's job).  Ties keep the earliest date.
* **Severity for alerting.**  ``"critical"`` when the current assessment is a progression / relapse and the
  episode it ended had reached complete remission (relapse from CR: IMWG "relapse from CR", RECIST "after a
  confirmed CR any reappearance = PD"; criteria.md §2.9 note a, §6.3, §11).  ``"warning"`` when it ended a
  partial response, or when the current assessment is an unconfirmed progression (iUPD, PDu, suspected
  relapse) during a remission episode.  Otherwise None - in particular an old loss followed by stable disease
  on later therapy does not keep alerting.
* **Remission, never cure.**  The timeline never says "cured"; :func:`cure_note` adds a sourced sentence only
  for the cancer types where the project references support one.
* Time points dated after ``as_of`` are ignored (``as_of`` is the reference date; the clock is never read).
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, fields
from datetime import date, timedelta

from rules.base import Assessment, Outcome, TimepointResult, frozen_builder

CONFIRMATION_DAYS = 28
"""RECIST 1.1 confirmation interval (>= 4 weeks; criteria.md §2.9, §11; surveillance.md §1)."""

CONFIRMATION_CITATION = (
    "confirmation >= 4 weeks (28 days): RECIST 1.1, Eisenhauer 2009 §4.4.3 (criteria.md §2.9, §11); "
    "'must last at least one month' (WebMD, Verywell; surveillance.md §1)"
)

SEVERITY_CRITICAL = "critical"
SEVERITY_WARNING = "warning"

_RANK: dict[Outcome, int] = {
    Outcome.COMPLETE: 8,
    Outcome.PARTIAL: 7,
    Outcome.MINOR: 6,
    Outcome.STABLE: 5,
    Outcome.NO_RESPONSE: 4,
    Outcome.UNCONFIRMED_PROGRESSION: 3,
    Outcome.PROGRESSION: 2,
    Outcome.RELAPSE: 2,
}

_WORDS: dict[Outcome, str] = {
    Outcome.COMPLETE: "complete response",
    Outcome.PARTIAL: "partial response",
    Outcome.MINOR: "minor response",
    Outcome.STABLE: "stable disease",
    Outcome.NO_RESPONSE: "no response",
    Outcome.PROGRESSION: "progression",
    Outcome.RELAPSE: "relapse",
    Outcome.UNCONFIRMED_PROGRESSION: "unconfirmed progression",
    Outcome.INDETERMINATE: "indeterminate response",
    Outcome.NOT_EVALUABLE: "not evaluable",
}

# What a remission level is called once it is reached or lost ("relapse after complete remission").
_LEVEL_WORDS: dict[Outcome, str] = {
    Outcome.COMPLETE: "complete remission",
    Outcome.PARTIAL: "partial response",
}


def outcome_rank(outcome: Outcome) -> int | None:
    """Rank for best response (higher is better); None for outcomes that are not ranked."""
    return _RANK.get(outcome)


# ---------------------------------------------------------------------------
# Calendar arithmetic (standard library only)
# ---------------------------------------------------------------------------

def add_months(d: date, months: int) -> date:
    """Add calendar months, clamping the day to the end of the target month (31 Jan + 1 month = 28/29 Feb)."""
    total = d.year * 12 + (d.month - 1) + months
    year, month0 = divmod(total, 12)
    month = month0 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def whole_months_between(start: date, end: date) -> int:
    """Largest m >= 0 with ``add_months(start, m) <= end`` (0 when end < start)."""
    if end < start:
        return 0
    m = (end.year - start.year) * 12 + (end.month - start.month)
    while m > 0 and add_months(start, m) > end:
        m -= 1
    return max(m, 0)


def duration_phrase(start: date, end: date) -> str:
    """'N months' in whole calendar months; under one month, 'N days'."""
    months = whole_months_between(start, end)
    if months == 0:
        days = max((end - start).days, 0)
        return "1 day" if days == 1 else f"{days} days"
    return "1 month" if months == 1 else f"{months} months"


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RemissionEpisode:
    """One stretch of remission: from the first remission time point to the first loss (or still open).

    start / start_outcome / start_category: first time point with PARTIAL or COMPLETE
    best_outcome / best_category:           best remission level reached in the episode
    complete_start:                         first COMPLETE time point in the episode (None if never)
    remission_confirmed_on:                 generic >= 28-day confirmation of remission (PR or better)
    complete_confirmed_on:                  generic >= 28-day confirmation of COMPLETE
    last_remission_date:                    last time point with a remission outcome
    end / end_outcome / end_category:       the loss that ended it (None while open)
    """

    start: date
    start_outcome: Outcome
    start_category: str
    best_outcome: Outcome
    best_category: str
    complete_start: date | None
    remission_confirmed_on: date | None
    complete_confirmed_on: date | None
    last_remission_date: date
    end: date | None = None
    end_outcome: Outcome | None = None
    end_category: str | None = None

    @property
    def is_open(self) -> bool:
        return self.end is None


@dataclass(frozen=True)
class Timeline:
    """Remission status of one assessment's history as of a date.

    criteria / current_category / current_outcome / current_date: the assessment the timeline ends with
    in_remission:             current outcome is PARTIAL or COMPLETE
    remission_start:          first date remission was met in the latest episode (None if never)
    remission_outcome:        the outcome on that date (PARTIAL or COMPLETE)
    level:                    current remission level if in remission, else the best level of the latest episode
    level_start:              first date ``level`` (or better) was met in the latest episode
    confirmed:                ``level`` is confirmed (generic >= 28 days, or by the criterion's own rule)
    confirmed_on:             date of that confirmation
    confirm_on_or_after:      level_start + 28 days while unconfirmed (None otherwise)
    confirmation_basis:       "generic >= 28 days" or "criterion: <criteria>" (None if unconfirmed)
    duration_days / duration_phrase: remission_start to loss (or as_of), the RECIST duration of response
    level_duration_days:      level_start to loss (or as_of)
    best_outcome / best_category / best_date: best time-point outcome so far (first date it was reached)
    complete_remission_start: first COMPLETE date in the latest episode
    complete_remission_days:  its duration to loss (or as_of)
    loss_date / loss_category / loss_outcome / lost_from: loss that ended the latest episode (None if open)
    severity:                 "critical", "warning" or None (see module docstring)
    status:                   one plain phrase for the card
    episodes:                 all remission episodes in date order
    cure_note:                sourced sentence from :func:`cure_note` when cancer_type was given and applies
    notes:                    caveats (ignored future time points, which rule confirmed ...)
    citations:                where the rules come from
    """

    criteria: str
    as_of: date
    current_category: str
    current_outcome: Outcome
    current_date: date | None
    in_remission: bool
    remission_start: date | None
    remission_outcome: Outcome | None
    level: Outcome | None
    level_start: date | None
    confirmed: bool
    confirmed_on: date | None
    confirm_on_or_after: date | None
    confirmation_basis: str | None
    duration_days: int | None
    duration_phrase: str | None
    level_duration_days: int | None
    best_outcome: Outcome | None
    best_category: str | None
    best_date: date | None
    complete_remission_start: date | None
    complete_remission_days: int | None
    loss_date: date | None
    loss_category: str | None
    loss_outcome: Outcome | None
    lost_from: Outcome | None
    severity: str | None
    status: str
    episodes: tuple[RemissionEpisode, ...] = ()
    cure_note: str | None = None
    notes: tuple[str, ...] = ()
    citations: tuple[str, ...] = (CONFIRMATION_CITATION,)


_new_timeline = frozen_builder(Timeline)
_new_episode = frozen_builder(RemissionEpisode)
_CURE_NOTE_AT = [f.name for f in fields(Timeline)].index("cure_note")
assert [f.name for f in fields(Timeline)][-4:] == ["episodes", "cure_note", "notes", "citations"]
_CITATIONS = fields(Timeline)[-1].default


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------

def _effective_history(assessment: Assessment, as_of: date) -> tuple[list[TimepointResult], list[str]]:
    notes: list[str] = []
    points = list(assessment.history)
    if assessment.assessment_date is not None and (
        not points or max(p.date for p in points) < assessment.assessment_date
    ):
        # The history should end with the current assessment (base.py); add it when an engine left it out.
        points.append(
            TimepointResult(assessment.assessment_date, assessment.category, assessment.outcome, assessment.values)
        )
    future = [p for p in points if p.date > as_of]
    if future:
        notes.append(f"{len(future)} time point(s) dated after {as_of.isoformat()} ignored")
    points = sorted((p for p in points if p.date <= as_of), key=lambda p: p.date)  # stable: same-day order kept
    return points, notes


def _confirmation(points: list[TimepointResult], level: Outcome) -> tuple[date | None, date | None]:
    """(first date ``level`` or better was met, first generic confirmation date) within one episode."""
    need = _RANK[level]
    start: date | None = None
    for p in points:
        if p.outcome.is_remission and _RANK[p.outcome] >= need:
            if start is None:
                start = p.date
            elif (p.date - start).days >= CONFIRMATION_DAYS:
                return start, p.date
    return start, None


def _episodes(points: list[TimepointResult]) -> list[RemissionEpisode]:
    groups: list[tuple[list[TimepointResult], TimepointResult | None]] = []
    current: list[TimepointResult] | None = None
    for p in points:
        if p.outcome.is_remission:
            if current is None:
                current = []
            current.append(p)
        elif p.outcome.is_loss:
            if current is not None:
                groups.append((current, p))
                current = None
        elif current is not None:
            current.append(p)
    if current is not None:
        groups.append((current, None))

    episodes = []
    for members, loss in groups:
        remissions = [p for p in members if p.outcome.is_remission]
        first = remissions[0]
        best = first
        for p in remissions:
            if _RANK[p.outcome] > _RANK[best.outcome]:
                best = p
        _, remission_confirmed = _confirmation(members, Outcome.PARTIAL)
        complete_start, complete_confirmed = _confirmation(members, Outcome.COMPLETE)
        episodes.append(
            _new_episode(  # RemissionEpisode(...) with every field given (rules.base.frozen_builder)
                start=first.date,
                start_outcome=first.outcome,
                start_category=first.category,
                best_outcome=best.outcome,
                best_category=best.category,
                complete_start=complete_start,
                remission_confirmed_on=remission_confirmed,
                complete_confirmed_on=complete_confirmed,
                last_remission_date=remissions[-1].date,
                end=loss.date if loss else None,
                end_outcome=loss.outcome if loss else None,
                end_category=loss.category if loss else None,
            )
        )
    return episodes


def _best(points: list[TimepointResult]) -> TimepointResult | None:
    best: TimepointResult | None = None
    for p in points:
        r = _RANK.get(p.outcome)
        if r is None:
            continue
        if best is None or r > _RANK[best.outcome]:
            best = p
    return best


def build_timeline(assessment: Assessment, as_of: date, *, cancer_type: str | None = None) -> Timeline:
    """Build the remission timeline of ``assessment`` as of ``as_of`` (see the module docstring for the rules).

    ``cancer_type`` (optional) only adds :func:`cure_note` to the result.
    """
    points, notes = _effective_history(assessment, as_of)
    episodes = _episodes(points)
    best = _best(points)
    current_outcome = assessment.outcome
    current_word = _WORDS[current_outcome]
    latest = episodes[-1] if episodes else None

    in_remission = current_outcome.is_remission and latest is not None and latest.is_open
    level: Outcome | None = None
    level_start: date | None = None
    confirmed = False
    confirmed_on: date | None = None
    confirm_on_or_after: date | None = None
    basis: str | None = None
    duration_days = level_days = complete_days = None
    dur_phrase: str | None = None
    loss_date = loss_category = loss_outcome = lost_from = None
    severity: str | None = None

    if latest is not None:
        end = latest.end if latest.end is not None else as_of
        duration_days = (end - latest.start).days
        dur_phrase = duration_phrase(latest.start, end)
        level = current_outcome if in_remission else latest.best_outcome
        if level is Outcome.COMPLETE:
            level_start, confirmed_on = latest.complete_start, latest.complete_confirmed_on
        else:
            level_start, confirmed_on = latest.start, latest.remission_confirmed_on
        if confirmed_on is not None:
            confirmed, basis = True, f"generic >= {CONFIRMATION_DAYS} days"
        if (
            in_remission
            and not confirmed
            and assessment.confirmed
            and assessment.outcome.is_remission
        ):
            confirmed = True
            confirmed_on = assessment.assessment_date
            basis = f"criterion: {assessment.criteria}"
            notes.append(f"confirmed by the {assessment.criteria} rule (criteria.md §11)")
        if not confirmed and level_start is not None:
            confirm_on_or_after = level_start + timedelta(days=CONFIRMATION_DAYS)
        if level_start is not None:
            level_days = (end - level_start).days
        if latest.complete_start is not None:
            complete_days = (end - latest.complete_start).days
        if latest.end is not None:
            loss_date, loss_category, loss_outcome = latest.end, latest.end_category, latest.end_outcome
            lost_from = latest.best_outcome
            if current_outcome.is_loss:
                severity = SEVERITY_CRITICAL if lost_from is Outcome.COMPLETE else SEVERITY_WARNING
        elif current_outcome is Outcome.UNCONFIRMED_PROGRESSION:
            severity = SEVERITY_WARNING

    status = _status(
        current_outcome, current_word, latest, in_remission, level, level_start, confirmed,
        confirm_on_or_after, as_of, assessment.assessment_date, bool(points),
    )

    # Timeline has 31 fields: built positionally (rules.base.frozen_builder), in the order Timeline declares them,
    # and once (the cure note is read from the timeline without it, then the timeline is built with it)
    fields_ = [
        assessment.criteria,                                # criteria
        as_of,                                              # as_of
        assessment.category,                                # current_category
        current_outcome,                                    # current_outcome
        assessment.assessment_date,                         # current_date
        in_remission,                                       # in_remission
        latest.start if latest else None,                   # remission_start
        latest.start_outcome if latest else None,           # remission_outcome
        level,                                              # level
        level_start,                                        # level_start
        confirmed,                                          # confirmed
        confirmed_on,                                       # confirmed_on
        confirm_on_or_after,                                # confirm_on_or_after
        basis,                                              # confirmation_basis
        duration_days,                                      # duration_days
        dur_phrase,                                         # duration_phrase
        level_days,                                         # level_duration_days
        best.outcome if best else None,                     # best_outcome
        best.category if best else None,                    # best_category
        best.date if best else None,                        # best_date
        latest.complete_start if latest else None,          # complete_remission_start
        complete_days,                                      # complete_remission_days
        loss_date,                                          # loss_date
        loss_category,                                      # loss_category
        loss_outcome,                                       # loss_outcome
        lost_from,                                          # lost_from
        severity,                                           # severity
        status,                                             # status
        tuple(episodes),                                    # episodes
        None,                                               # cure_note
        tuple(notes),                                       # notes
        _CITATIONS,                                         # citations
    ]
    timeline = _new_timeline(*fields_)
    if cancer_type:
        note = cure_note(cancer_type, timeline)
        if note:
            fields_[_CURE_NOTE_AT] = note
            timeline = _new_timeline(*fields_)
    return timeline


def _status(
    current: Outcome,
    current_word: str,
    latest: RemissionEpisode | None,
    in_remission: bool,
    level: Outcome | None,
    level_start: date | None,
    confirmed: bool,
    confirm_on_or_after: date | None,
    as_of: date,
    current_date: date | None,
    has_points: bool,
) -> str:
    if latest is None:
        if not has_points and current_date is None:
            return f"no assessable time point ({current_word})"
        if current.is_loss or current is Outcome.UNCONFIRMED_PROGRESSION:
            return f"{current_word}, no remission so far"
        return f"no remission so far ({current_word})"
    if in_remission and level is not None and level_start is not None:
        kind = "complete" if level is Outcome.COMPLETE else "partial"
        if confirmed:
            return f"in {kind} remission, confirmed, {duration_phrase(level_start, as_of)}"
        text = f"unconfirmed {kind} response \u2014 confirm on or after {confirm_on_or_after.isoformat()}"
        if level is Outcome.COMPLETE and latest.remission_confirmed_on is not None:
            text += f" (remission confirmed on {latest.remission_confirmed_on.isoformat()} as partial response)"
        return text
    level_word = _LEVEL_WORDS.get(level or latest.best_outcome, "response")
    if latest.end is not None:
        loss_word = _WORDS[latest.end_outcome] if latest.end_outcome else "loss of response"
        if current.is_loss:
            return f"{current_word} after {level_word}"
        return f"{current_word}; {loss_word} after {level_word} on {latest.end.isoformat()}"
    if current is Outcome.UNCONFIRMED_PROGRESSION:
        return f"unconfirmed progression after {level_word} \u2014 confirm at the next assessment"
    return f"{current_word} after {level_word} (remission first met {latest.start.isoformat()})"


# ---------------------------------------------------------------------------
# Remission vs cure
# ---------------------------------------------------------------------------

_CURE_NOTES: dict[str, str] = {
    # Only statements the project references make, with their sources. Nothing is said about testicular cancer,
    # APL or childhood ALL cure rates in criteria.md or surveillance.md, so no note is given for them.
    "hodgkin": (
        "Hodgkin lymphoma is one of the curable lymphomas named in the ASH Choosing Wisely recommendation "
        "(Blood 2017;129(5):561; criteria.md §4, surveillance.md §2.4), and the greatest relapse risk is within "
        "the first 3 years (Canadian Cancer Society, Hodgkin lymphoma follow-up; surveillance.md §1). "
        "This record shows complete remission for {months}; it is reported as remission, not as a cure."
    ),
    "dlbcl": (
        "Diffuse large B-cell lymphoma is one of the curable lymphomas named in the ASH Choosing Wisely "
        "recommendation (Blood 2017;129(5):561; criteria.md §4, surveillance.md §2.5). "
        "This record shows complete remission for {months}; it is reported as remission, not as a cure."
    ),
    "all": (
        "In acute lymphoblastic leukaemia, recurrence is unusual after 5 years (Canadian Cancer Society, ALL "
        "follow-up; surveillance.md §1). This record shows complete remission for {months}; it is reported as "
        "remission, not as a cure."
    ),
}

_CURE_ALIASES: dict[str, str] = {
    "hodgkin": "hodgkin",
    "hodgkin_lymphoma": "hodgkin",
    "hl": "hodgkin",
    "dlbcl": "dlbcl",
    "diffuse_large_b_cell_lymphoma": "dlbcl",
    "all": "all",
    "all_cr": "all",
    "acute_lymphoblastic_leukemia": "all",
    "acute_lymphoblastic_leukaemia": "all",
}


def cure_note(cancer_type: str | None, timeline: Timeline) -> str | None:
    """A sourced sentence on remission vs cure, or None.

    Given only when the cancer type is one the references describe as curable or as rarely recurring late
    (Hodgkin lymphoma and DLBCL: "curable lymphomas", ASH Choosing Wisely via Blood 2017;129:561; ALL:
    "recurrence is unusual after 5 years", Canadian Cancer Society) **and** the timeline is in a confirmed
    complete remission.  The sentence never says the patient is cured.
    """
    if not cancer_type:
        return None
    key = _CURE_ALIASES.get(cancer_type.strip().lower().replace(" ", "_").replace("-", "_"))
    if key is None:
        return None
    if not (timeline.in_remission and timeline.level is Outcome.COMPLETE and timeline.confirmed):
        return None
    start = timeline.complete_remission_start or timeline.level_start
    if start is None:
        return None
    return _CURE_NOTES[key].format(months=duration_phrase(start, timeline.as_of))
