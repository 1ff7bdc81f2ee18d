"""Remission timeline: confirmation (>= 28 days), durations, best response, loss severity, cure wording."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from rules.base import Assessment, Outcome, Source, TimepointResult
from rules.timeline import (
    CONFIRMATION_DAYS,
    add_months,
    build_timeline,
    cure_note,
    duration_phrase,
    whole_months_between,
)

SRC = Source("test", "https://example.org")
O = Outcome
CAT = {
    O.COMPLETE: "CR", O.PARTIAL: "PR", O.MINOR: "MR", O.STABLE: "SD", O.PROGRESSION: "PD", O.RELAPSE: "relapse",
    O.UNCONFIRMED_PROGRESSION: "iUPD", O.NOT_EVALUABLE: "NE", O.NO_RESPONSE: "NR", O.INDETERMINATE: "IND",
}


def assess(*points: tuple[date, Outcome], confirmed: bool = False, criteria: str = "RECIST 1.1") -> Assessment:
    history = tuple(TimepointResult(d, CAT[o], o) for d, o in points)
    last_d, last_o = points[-1]
    return Assessment(criteria, CAT[last_o], CAT[last_o], last_o, last_d, confirmed, SRC, history=history)


D0 = date(2024, 1, 1)
PR1 = date(2024, 3, 4)


def test_unconfirmed_partial_response_gives_confirmation_date():
    t = build_timeline(assess((D0, O.STABLE), (PR1, O.PARTIAL)), as_of=date(2024, 3, 10))
    assert t.in_remission
    assert t.remission_start == PR1
    assert not t.confirmed
    assert t.confirm_on_or_after == date(2024, 4, 1)  # 2024-03-04 + 28 days (leap year)
    assert t.status == "unconfirmed partial response \u2014 confirm on or after 2024-04-01"
    assert t.severity is None


def test_partial_response_confirmed_at_exactly_28_days():
    second = PR1 + timedelta(days=28)
    t = build_timeline(assess((D0, O.STABLE), (PR1, O.PARTIAL), (second, O.PARTIAL)), as_of=second)
    assert t.confirmed and t.confirmed_on == second
    assert t.confirmation_basis.startswith("generic")
    assert t.status.startswith("in partial remission, confirmed")


def test_partial_response_not_confirmed_at_27_days():
    second = PR1 + timedelta(days=CONFIRMATION_DAYS - 1)
    t = build_timeline(assess((D0, O.STABLE), (PR1, O.PARTIAL), (second, O.PARTIAL)), as_of=second)
    assert not t.confirmed
    assert t.confirmed_on is None
    assert t.confirm_on_or_after == PR1 + timedelta(days=28)
    assert t.status.startswith("unconfirmed partial response")


def test_better_outcome_confirms_partial_response():
    t = build_timeline(assess((PR1, O.PARTIAL), (date(2024, 5, 1), O.COMPLETE)), as_of=date(2024, 5, 1))
    # Current level is CR (unconfirmed), but remission itself is confirmed by the later CR.
    assert t.level is O.COMPLETE and not t.confirmed
    assert t.episodes[0].remission_confirmed_on == date(2024, 5, 1)
    assert "confirm on or after 2024-05-29" in t.status
    assert "remission confirmed on 2024-05-01" in t.status


def test_worse_outcome_does_not_confirm_complete_response():
    t = build_timeline(
        assess((date(2024, 1, 1), O.COMPLETE), (date(2024, 3, 1), O.PARTIAL), (date(2024, 4, 1), O.PARTIAL)),
        as_of=date(2024, 4, 1),
    )
    assert t.episodes[0].complete_confirmed_on is None
    assert t.episodes[0].remission_confirmed_on == date(2024, 3, 1)  # PR-or-better seen again >= 28 d later
    assert t.level is O.PARTIAL and t.confirmed


def test_loss_in_between_prevents_confirmation():
    t = build_timeline(
        assess((date(2024, 1, 1), O.PARTIAL), (date(2024, 1, 20), O.PROGRESSION), (date(2024, 3, 1), O.PARTIAL)),
        as_of=date(2024, 3, 1),
    )
    assert not t.confirmed
    assert t.remission_start == date(2024, 3, 1)  # a new episode after the loss
    assert len(t.episodes) == 2


def test_stable_in_between_does_not_break_confirmation():
    t = build_timeline(
        assess((date(2024, 1, 1), O.PARTIAL), (date(2024, 1, 20), O.STABLE), (date(2024, 2, 1), O.PARTIAL)),
        as_of=date(2024, 2, 1),
    )
    assert t.confirmed and t.confirmed_on == date(2024, 2, 1)


def test_criterion_confirmation_is_respected():
    # IMWG: two consecutive assessments, no minimum interval (criteria.md §6.2, §11).
    a = assess((date(2024, 1, 1), O.PARTIAL), (date(2024, 1, 15), O.PARTIAL), confirmed=True, criteria="IMWG 2016")
    t = build_timeline(a, as_of=date(2024, 1, 20))
    assert t.confirmed
    assert t.confirmation_basis == "criterion: IMWG 2016"
    assert t.confirmed_on == date(2024, 1, 15)
    assert t.confirm_on_or_after is None


def test_criterion_flag_ignored_when_not_in_remission():
    a = assess((date(2024, 1, 1), O.PARTIAL), (date(2024, 1, 15), O.STABLE), confirmed=True)
    t = build_timeline(a, as_of=date(2024, 1, 20))
    assert not t.in_remission and not t.confirmed


def test_complete_then_progression_is_critical():
    a = assess((date(2024, 1, 1), O.COMPLETE), (date(2024, 3, 1), O.COMPLETE), (date(2024, 9, 2), O.PROGRESSION))
    t = build_timeline(a, as_of=date(2024, 9, 10))
    assert t.severity == "critical"
    assert t.loss_date == date(2024, 9, 2) and t.loss_category == "PD" and t.loss_outcome is O.PROGRESSION
    assert t.lost_from is O.COMPLETE
    assert not t.in_remission
    assert t.status == "progression after complete remission"
    assert t.duration_days == (date(2024, 9, 2) - date(2024, 1, 1)).days  # duration of response ends at loss


def test_relapse_after_complete_via_partial_is_still_critical():
    a = assess((date(2024, 1, 1), O.COMPLETE), (date(2024, 4, 1), O.PARTIAL), (date(2024, 6, 1), O.RELAPSE))
    t = build_timeline(a, as_of=date(2024, 6, 1))
    assert t.severity == "critical"
    assert t.status == "relapse after complete remission"


def test_partial_then_progression_is_warning():
    a = assess((D0, O.STABLE), (PR1, O.PARTIAL), (date(2024, 5, 1), O.PARTIAL), (date(2024, 8, 1), O.PROGRESSION))
    t = build_timeline(a, as_of=date(2024, 8, 1))
    assert t.severity == "warning"
    assert t.status == "progression after partial response"
    assert t.lost_from is O.PARTIAL


def test_unconfirmed_progression_after_response_is_warning():
    a = assess((PR1, O.PARTIAL), (date(2024, 5, 1), O.UNCONFIRMED_PROGRESSION))
    t = build_timeline(a, as_of=date(2024, 5, 1))
    assert t.severity == "warning"
    assert t.loss_date is None
    assert t.status.startswith("unconfirmed progression after partial response")


def test_progression_without_prior_remission_has_no_severity():
    t = build_timeline(assess((D0, O.STABLE), (PR1, O.PROGRESSION)), as_of=PR1)
    assert t.severity is None
    assert t.remission_start is None
    assert t.status == "progression, no remission so far"


def test_old_loss_then_stable_does_not_keep_alerting():
    a = assess((date(2023, 1, 1), O.COMPLETE), (date(2023, 6, 1), O.PROGRESSION), (date(2023, 9, 1), O.STABLE))
    t = build_timeline(a, as_of=date(2023, 9, 1))
    assert t.severity is None
    assert t.loss_date == date(2023, 6, 1)
    assert t.status == "stable disease; progression after complete remission on 2023-06-01"


def test_best_response_ranks_complete_over_partial_and_keeps_first_date():
    a = assess(
        (date(2024, 1, 1), O.STABLE), (date(2024, 2, 1), O.PARTIAL), (date(2024, 4, 1), O.COMPLETE),
        (date(2024, 6, 1), O.COMPLETE), (date(2024, 8, 1), O.PARTIAL),
    )
    t = build_timeline(a, as_of=date(2024, 8, 1))
    assert (t.best_outcome, t.best_category, t.best_date) == (O.COMPLETE, "CR", date(2024, 4, 1))


def test_best_response_ignores_not_evaluable_and_ranks_minor_over_stable():
    a = assess((date(2024, 1, 1), O.STABLE), (date(2024, 2, 1), O.MINOR), (date(2024, 3, 1), O.NOT_EVALUABLE))
    t = build_timeline(a, as_of=date(2024, 3, 1))
    assert t.best_outcome is O.MINOR
    assert t.status == "no remission so far (not evaluable)"


def test_duration_in_complete_remission():
    a = assess((date(2024, 1, 10), O.PARTIAL), (date(2024, 3, 10), O.COMPLETE), (date(2024, 4, 10), O.COMPLETE))
    t = build_timeline(a, as_of=date(2024, 8, 15))
    assert t.status == "in complete remission, confirmed, 5 months"
    assert t.complete_remission_start == date(2024, 3, 10)
    assert t.complete_remission_days == (date(2024, 8, 15) - date(2024, 3, 10)).days
    assert t.duration_days == (date(2024, 8, 15) - date(2024, 1, 10)).days
    assert t.duration_phrase == "7 months"


def test_future_time_points_are_ignored():
    a = assess((date(2024, 1, 1), O.PARTIAL), (date(2024, 6, 1), O.PROGRESSION))
    t = build_timeline(a, as_of=date(2024, 2, 1))
    assert t.loss_date is None
    assert any("ignored" in n for n in t.notes)


def test_current_assessment_added_when_history_is_empty():
    a = Assessment("ATA 2015", "excellent", "excellent response", O.COMPLETE, date(2024, 5, 1), True, SRC)
    t = build_timeline(a, as_of=date(2024, 11, 1))
    assert t.remission_start == date(2024, 5, 1)
    assert t.confirmed and t.confirmation_basis == "criterion: ATA 2015"
    assert t.status == "in complete remission, confirmed, 6 months"


def test_never_says_cured():
    a = assess((date(2020, 1, 1), O.COMPLETE), (date(2020, 3, 1), O.COMPLETE))
    for ct in ("hodgkin", "dlbcl", "all", "breast_early", None):
        t = build_timeline(a, as_of=date(2025, 3, 1), cancer_type=ct)
        assert "cured" not in t.status.lower()
        assert t.cure_note is None or "cured" not in t.cure_note.lower()


def test_cure_note_only_for_sourced_types_and_confirmed_cr():
    a = assess((date(2020, 1, 1), O.COMPLETE), (date(2020, 3, 1), O.COMPLETE))
    t = build_timeline(a, as_of=date(2025, 3, 1), cancer_type="Hodgkin")
    assert t.cure_note is not None and "Choosing Wisely" in t.cure_note and "62 months" in t.cure_note
    assert "Canadian Cancer Society" in cure_note("ALL", t)
    # No source in the references for these: no note, no invented citation.
    assert cure_note("testicular_I_seminoma", t) is None
    assert cure_note("apl", t) is None
    unconfirmed = build_timeline(assess((date(2020, 1, 1), O.COMPLETE)), as_of=date(2020, 1, 10))
    assert cure_note("hodgkin", unconfirmed) is None
    partial = build_timeline(assess((date(2020, 1, 1), O.PARTIAL), (date(2020, 3, 1), O.PARTIAL)), as_of=date(2021, 1, 1))
    assert cure_note("hodgkin", partial) is None


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 11, 15), 3, date(2025, 2, 15)),
        (date(2024, 5, 5), 0, date(2024, 5, 5)),
    ],
)
def test_add_months_clamps_day(start, months, expected):
    assert add_months(start, months) == expected


def test_whole_months_and_phrases():
    assert whole_months_between(date(2024, 1, 31), date(2024, 2, 29)) == 1
    assert whole_months_between(date(2024, 1, 15), date(2024, 2, 14)) == 0
    assert whole_months_between(date(2024, 1, 15), date(2025, 1, 15)) == 12
    assert duration_phrase(date(2024, 1, 15), date(2024, 2, 14)) == "30 days"
    assert duration_phrase(date(2024, 1, 15), date(2024, 2, 15)) == "1 month"
