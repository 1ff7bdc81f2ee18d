"""Surveillance schedules after remission or end of curative treatment: what is due, overdue, or advised against.

The schedules are **data**, not code: the defaults live in ``rules/data/surveillance.json`` (transcribed from
reference/surveillance.md §2-§4, with a citation, a version and the codes that count as "done" on every row) and
any caller may pass its own ``schedules`` mapping of the same shape (checked by :func:`validate_schedules`).
surveillance.md §0 asks for exactly this: "keep these schedules in versioned data ... with a citation and a
version field on each row. Do not hard-code them."

Schedule data (keys)
--------------------
Top level: ``schema_version`` (1), ``data_version``, ``source_document``, ``interval_convention``,
``grace_days`` (int >= 0, added to the overdue boundary; default 0), ``cancer_types`` (mapping).

Cancer type: ``label``, ``aliases`` (list), ``anchor`` (what date the anchor is), ``reference`` (section of the
reference), ``source`` (the §4 "src"), ``items`` (list), ``not_recommended`` (list), ``notes`` (list of str).

Item: ``id``, ``label``, ``kind`` (visit | lab | imaging | procedure), ``type`` (recurring | time_points |
limit), ``bands`` (list of ``{from_month, to_month|null, every: [lower, upper]|null, unit: months|weeks,
note?}``), optional ``band_basis`` (as_of | last_done), ``first_due`` ([lower, upper] months), ``time_points_months``
and ``window_months`` (time_points), ``thereafter_note``, ``condition`` ({key, text}), ``note``; always
``citation``, ``version``, ``evidence``, ``verify`` (bool), ``codes`` (list of ``system|code``), ``codes_note``.

Not-recommended entry: ``id``, ``label``, ``codes``, ``codes_note``, ``citation``, ``version``, ``evidence``,
``verify``, optional ``from_month`` / ``to_month`` (window in months since anchor) and ``unless``.

Rules, and why
--------------
* **Anchor.**  Guidelines count "every X months during year N after end of treatment or confirmed remission"
  (from surgery for colorectal cancer); the anchor date is passed explicitly (surveillance.md §0).
* **Phase** = the band containing the whole calendar months from the anchor to ``as_of`` (``band_basis``
  "as_of", the default), so the year-4 interval applies from the third anniversary on.  An item may instead
  take the band in force when it was last done (``band_basis`` "last_done"): colonoscopy "at 1 year; if normal
  3 years later, then every 5 years" counts from the previous colonoscopy (NCCN Colon, surveillance.md §2.2).
* **Due and overdue.**  Guidelines give ranges ("q3-6m").  Due date = last done + the **lower** bound: the
  earliest repeat that is still inside the guideline.  Overdue = ``as_of`` after last done + the **upper**
  bound (+ ``grace_days``): the latest.  Between the two the item is "due"; before the due date "upcoming".
  A single value ("q6m") is both bounds.  Never done since the anchor: due = anchor + ``first_due`` lower bound
  (e.g. mammogram >= 6 months after radiation; colonoscopy at 1 year) or else anchor + the first band's lower
  bound, overdue after the matching upper bound.  A last-done date before the anchor does not count (the
  schedule starts at the anchor); one after ``as_of`` is ignored as impossible.
* **Thereafter.**  A band with ``to_month`` null is the open-ended "thereafter" rule (e.g. yearly after year
  5).  After the last closed band the item is "completed-phase" (the guideline's schedule has ended, e.g.
  colorectal CEA after 5 years); so is an item whose next due date would fall after that end.  A band with ``every`` null schedules nothing in that band (testicular
  seminoma: no CT in year 4, EAU/ESMO); the next band with an interval gives the next due date.
* **Time points** (``time_points``: e.g. DLBCL CBC/LDH at months 3, 6, 12, 24, ESMO) are due at anchor + point;
  a point counts as done when last done is on or after point - ``window_months``; overdue after point +
  ``window_months``.  Among missed points the latest one that has opened is reported.
* **Limits** (``limit``: "CT no more often than every 6 months for 2 years", NCCN DLBCL/FL) schedule nothing:
  status "as_indicated", with the earliest date a repeat fits; they feed :func:`check_order` "too_early".
* **Not recommended** entries (surveillance.md §3) are reported with status "not_recommended" while their
  window (``from_month`` / ``to_month``) covers the phase.  They apply to asymptomatic patients in remission:
  :func:`check_order` only reports them when ``in_remission`` is True.
* Month arithmetic is calendar based with the day clamped to the month's end (:func:`rules.timeline.add_months`);
  weeks are 7 days.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from typing import Any, Mapping

from rules.timeline import add_months, whole_months_between

STATUS_DUE = "due"
STATUS_OVERDUE = "overdue"
STATUS_UPCOMING = "upcoming"
STATUS_NOT_RECOMMENDED = "not_recommended"
STATUS_COMPLETED = "completed-phase"
STATUS_AS_INDICATED = "as_indicated"

FINDING_NOT_RECOMMENDED = "not_recommended"
FINDING_TOO_EARLY = "too_early"

_ITEM_TYPES = ("recurring", "time_points", "limit")
_KINDS = ("visit", "lab", "imaging", "procedure")
_UNITS = ("months", "weeks")
_BASES = ("as_of", "last_done")


@dataclass(frozen=True)
class PlanItem:
    """One line of a surveillance plan.

    item_id / label / kind: the schedule item (kind: visit, lab, imaging, procedure; "not_recommended" entries
                            have kind "not_recommended")
    status:       due | overdue | upcoming | not_recommended | completed-phase | as_indicated
    interval:     plain phrase, e.g. "every 3-6 months (years 1-3)"
    due_date:     next due date (for limits: earliest date a repeat fits); None when nothing is scheduled
    overdue_after: the item is overdue after this date
    last_done:    as given by the caller (None if never)
    citation / version / evidence / verify: where the row comes from and how firm it is
    codes:        ``system|code`` strings that count as done (or, for not_recommended, as the advised-against order)
    phase:        the band in force, e.g. "years 1-3"
    condition:    when the item applies ("after breast-conserving therapy"); None = always
    note:         extra guideline detail
    """

    item_id: str
    label: str
    kind: str
    status: str
    interval: str
    due_date: date | None
    overdue_after: date | None
    last_done: date | None
    citation: str
    version: str
    evidence: str
    verify: bool
    codes: tuple[str, ...]
    phase: str = ""
    condition: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class SurveillancePlan:
    """Surveillance plan for one cancer type as of a date.

    cancer_type / label: resolved schedule key and its label
    anchor / as_of / months_since_anchor: the reference dates (whole calendar months)
    items:    scheduled items first (schedule order), then the not-recommended entries in force
    notes:    schedule notes (as-indicated tests, caveats) and data issues (ignored last-done dates)
    source / reference / data_version: provenance of the schedule data
    """

    cancer_type: str
    label: str
    anchor: date
    as_of: date
    months_since_anchor: int
    items: tuple[PlanItem, ...]
    notes: tuple[str, ...]
    source: str
    reference: str
    data_version: str

    def item(self, item_id: str) -> PlanItem | None:
        for it in self.items:
            if it.item_id == item_id:
                return it
        return None

    def with_status(self, *statuses: str) -> tuple[PlanItem, ...]:
        return tuple(it for it in self.items if it.status in statuses)


@dataclass(frozen=True)
class OrderFinding:
    """A reason to pause on an order (order-select / order-sign).

    kind:       "not_recommended" (guideline advises against it) or "too_early" (done less than the lower
                interval bound ago)
    order_code: the ``system|code`` of the order that matched
    item_id / label: the schedule row it matched
    message:    plain sentence for the card
    citation / version: the guideline
    next_due:   for too_early, the date from which it fits the schedule
    last_done:  for too_early, when it was last done
    unless:     for not_recommended, the exception the guideline names ("unless high-risk criteria are met")
    """

    kind: str
    order_code: str
    item_id: str
    label: str
    message: str
    citation: str
    version: str
    next_due: date | None = None
    last_done: date | None = None
    unless: str | None = None


# ---------------------------------------------------------------------------
# Data loading and validation
# ---------------------------------------------------------------------------

def load_default_schedules() -> dict:
    """The packaged default schedules (``rules/data/surveillance.json``) as plain data (a fresh copy each call)."""
    text = resources.files("rules.data").joinpath("surveillance.json").read_text(encoding="utf-8")
    return json.loads(text)


_DEFAULTS: dict | None = None


def _defaults() -> dict:
    global _DEFAULTS
    if _DEFAULTS is None:
        _DEFAULTS = load_default_schedules()
    return _DEFAULTS


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_range(v: Any, where: str, problems: list[str], allow_null: bool = False) -> None:
    if v is None:
        if not allow_null:
            problems.append(f"{where}: missing interval")
        return
    if not (isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v)):
        problems.append(f"{where}: must be [lower, upper] integers, got {v!r}")
        return
    lo, hi = v
    if lo <= 0 or hi < lo:
        problems.append(f"{where}: need 0 < lower <= upper, got {v!r}")


def _check_codes(codes: Any, note: Any, where: str, problems: list[str]) -> None:
    if not isinstance(codes, list):
        problems.append(f"{where}.codes: must be a list of 'system|code' strings")
        return
    for c in codes:
        if not isinstance(c, str) or c.count("|") != 1 or not all(part.strip() for part in c.split("|")):
            problems.append(f"{where}.codes: {c!r} is not 'system|code'")
    if not codes and not (isinstance(note, str) and note.strip()):
        problems.append(f"{where}: no codes and no codes_note saying why")


def _check_text(entry: Mapping, key: str, where: str, problems: list[str]) -> None:
    v = entry.get(key)
    if not isinstance(v, str) or not v.strip():
        problems.append(f"{where}.{key}: required non-empty text")


def _window(entry: Mapping) -> tuple[int, int | None]:
    return entry.get("from_month", 0) or 0, entry.get("to_month")


def _windows_overlap(a: tuple[int, int | None], b: tuple[int, int | None]) -> bool:
    a_end = a[1] if a[1] is not None else float("inf")
    b_end = b[1] if b[1] is not None else float("inf")
    return a[0] < b_end and b[0] < a_end


def validate_schedules(data: Any) -> list[str]:
    """Problems in schedule data (an empty list means it is usable). For config checking at start-up."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        return ["schedules: must be a mapping"]
    if data.get("schema_version") != 1:
        problems.append(f"schema_version: expected 1, got {data.get('schema_version')!r}")
    grace = data.get("grace_days", 0)
    if not _is_int(grace) or grace < 0:
        problems.append(f"grace_days: must be an integer >= 0, got {grace!r}")
    types = data.get("cancer_types")
    if not isinstance(types, Mapping) or not types:
        problems.append("cancer_types: must be a non-empty mapping")
        return problems
    seen_names: dict[str, str] = {}
    for key, ct in types.items():
        w = f"cancer_types.{key}"
        if not isinstance(ct, Mapping):
            problems.append(f"{w}: must be a mapping")
            continue
        for name in [key, *(ct.get("aliases") or [])]:
            norm = _norm(name) if isinstance(name, str) else None
            if norm is None:
                problems.append(f"{w}.aliases: {name!r} is not text")
            elif norm in seen_names and seen_names[norm] != key:
                problems.append(f"{w}: name {name!r} is also used by {seen_names[norm]}")
            else:
                seen_names[norm] = key
        _check_text(ct, "label", w, problems)
        _check_text(ct, "source", w, problems)
        items = ct.get("items")
        avoid = ct.get("not_recommended", [])
        if not isinstance(items, list):
            problems.append(f"{w}.items: must be a list")
            items = []
        if not isinstance(avoid, list):
            problems.append(f"{w}.not_recommended: must be a list")
            avoid = []
        ids: set[str] = set()
        for i, it in enumerate(items):
            iw = f"{w}.items[{i}]"
            if not isinstance(it, Mapping):
                problems.append(f"{iw}: must be a mapping")
                continue
            _validate_item(it, iw, problems)
            if it.get("id") in ids:
                problems.append(f"{iw}: duplicate id {it.get('id')!r}")
            ids.add(it.get("id"))
        for i, nr in enumerate(avoid):
            nw = f"{w}.not_recommended[{i}]"
            if not isinstance(nr, Mapping):
                problems.append(f"{nw}: must be a mapping")
                continue
            for k in ("id", "label", "citation", "version"):
                _check_text(nr, k, nw, problems)
            _check_codes(nr.get("codes"), nr.get("codes_note"), nw, problems)
            f, t = nr.get("from_month", 0), nr.get("to_month")
            if not _is_int(f) or f < 0 or (t is not None and (not _is_int(t) or t <= f)):
                problems.append(f"{nw}: window from_month {f!r} / to_month {t!r} is not valid")
            if nr.get("id") in ids:
                problems.append(f"{nw}: duplicate id {nr.get('id')!r}")
            ids.add(nr.get("id"))
        # The same order code must not be both scheduled and advised against at the same time.
        for nr in avoid:
            if not isinstance(nr, Mapping) or not isinstance(nr.get("codes"), list):
                continue
            nwin = _window(nr) if _is_int(nr.get("from_month", 0)) else (0, None)
            for it in items:
                if not isinstance(it, Mapping) or not isinstance(it.get("codes"), list):
                    continue
                both = set(nr["codes"]) & set(it["codes"])
                if not both:
                    continue
                bands = [b for b in it.get("bands") or [] if isinstance(b, Mapping) and b.get("every") is not None]
                if it.get("type") == "time_points" and it.get("time_points_months"):
                    pts = it["time_points_months"]
                    bands = [{"from_month": min(pts), "to_month": max(pts) + 1}]
                for b in bands:
                    bwin = (b.get("from_month", 0), b.get("to_month"))
                    if all(_is_int(x) or x is None for x in bwin) and _windows_overlap(nwin, bwin):
                        problems.append(
                            f"{w}: {sorted(both)[0]} is both scheduled ({it.get('id')}) and not recommended "
                            f"({nr.get('id')}) in the same months"
                        )
                        break
    return problems


def _validate_item(it: Mapping, w: str, problems: list[str]) -> None:
    for k in ("id", "label", "citation", "version"):
        _check_text(it, k, w, problems)
    if it.get("kind") not in _KINDS:
        problems.append(f"{w}.kind: must be one of {_KINDS}, got {it.get('kind')!r}")
    typ = it.get("type", "recurring")
    if typ not in _ITEM_TYPES:
        problems.append(f"{w}.type: must be one of {_ITEM_TYPES}, got {typ!r}")
    if it.get("band_basis", "as_of") not in _BASES:
        problems.append(f"{w}.band_basis: must be one of {_BASES}")
    if not isinstance(it.get("verify", False), bool):
        problems.append(f"{w}.verify: must be true or false")
    _check_codes(it.get("codes"), it.get("codes_note"), w, problems)
    if "first_due" in it:
        _check_range(it["first_due"], f"{w}.first_due", problems)
    cond = it.get("condition")
    if cond is not None and not (
        isinstance(cond, Mapping) and isinstance(cond.get("key"), str) and isinstance(cond.get("text"), str)
    ):
        problems.append(f"{w}.condition: must be {{key, text}}")
    if typ == "time_points":
        pts = it.get("time_points_months")
        if not (isinstance(pts, list) and pts and all(_is_int(p) and p > 0 for p in pts) and pts == sorted(set(pts))):
            problems.append(f"{w}.time_points_months: must be increasing positive integers")
        win = it.get("window_months", 1)
        if not _is_int(win) or win < 0:
            problems.append(f"{w}.window_months: must be an integer >= 0")
        return
    bands = it.get("bands")
    if not isinstance(bands, list) or not bands:
        problems.append(f"{w}.bands: must be a non-empty list")
        return
    expected_from = 0
    for j, b in enumerate(bands):
        bw = f"{w}.bands[{j}]"
        if not isinstance(b, Mapping):
            problems.append(f"{bw}: must be a mapping")
            return
        f, t = b.get("from_month"), b.get("to_month")
        if not _is_int(f) or f != expected_from:
            problems.append(f"{bw}.from_month: expected {expected_from} (bands must start at 0 and be contiguous), got {f!r}")
        if t is None:
            if j != len(bands) - 1:
                problems.append(f"{bw}.to_month: only the last band may be open-ended (null)")
        elif not _is_int(t) or (_is_int(f) and t <= f):
            problems.append(f"{bw}.to_month: must be an integer greater than from_month, got {t!r}")
        if b.get("unit", "months") not in _UNITS:
            problems.append(f"{bw}.unit: must be one of {_UNITS}")
        _check_range(b.get("every"), f"{bw}.every", problems, allow_null=True)
        expected_from = t if _is_int(t) else expected_from
    if all(isinstance(b, Mapping) and b.get("every") is None for b in bands):
        problems.append(f"{w}.bands: no band has an interval")


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------

def _norm(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def resolve_cancer_type(cancer_type: str, schedules: Mapping | None = None) -> str | None:
    """The schedule key for a cancer type name or alias (case- and separator-insensitive), or None."""
    data = schedules if schedules is not None else _defaults()
    types = data.get("cancer_types", {})
    want = _norm(cancer_type)
    for key, ct in types.items():
        if _norm(key) == want or any(_norm(a) == want for a in ct.get("aliases", [])):
            return key
    return None


def _add(d: date, n: int, unit: str) -> date:
    return d + timedelta(weeks=n) if unit == "weeks" else add_months(d, n)


def _sub_months(d: date, n: int) -> date:
    return add_months(d, -n)


def _band_at(bands: list, month: int) -> tuple[int, Mapping] | None:
    for i, b in enumerate(bands):
        if b["from_month"] <= month and (b["to_month"] is None or month < b["to_month"]):
            return i, b
    return None


def _years(from_month: int, to_month: int | None) -> str:
    if from_month % 12 == 0 and (to_month is None or to_month % 12 == 0):
        y0 = from_month // 12 + 1
        if to_month is None:
            return f"from year {y0}"
        y1 = to_month // 12
        return f"year {y0}" if y0 == y1 else f"years {y0}\u2013{y1}"
    if to_month is None:
        return f"from month {from_month}"
    return f"months {from_month}\u2013{to_month}"


def _every(rng: list[int], unit: str) -> str:
    lo, hi = rng
    word = unit if (hi != 1) else unit.rstrip("s")
    return f"every {lo} {word}" if lo == hi else f"every {lo}\u2013{hi} {word}"


def _classify(as_of: date, due: date, overdue_after: date) -> str:
    if as_of < due:
        return STATUS_UPCOMING
    if as_of <= overdue_after:
        return STATUS_DUE
    return STATUS_OVERDUE


def plan(
    cancer_type: str,
    anchor: date,
    last_done: Mapping[str, date | None],
    as_of: date,
    schedules: Mapping | None = None,
    *,
    conditions: Mapping[str, bool] | None = None,
) -> SurveillancePlan:
    """Surveillance plan for ``cancer_type`` (schedule key or alias) as of ``as_of``.

    ``last_done`` maps item ids to the last date the item was done (a mapper finds it with the item's codes).
    ``conditions`` (optional) maps an item's ``condition.key`` to whether it applies: False drops the item,
    True or absent keeps it (absent: the condition text is shown for the clinician to judge).
    Raises KeyError for an unknown cancer type (use :func:`resolve_cancer_type` or the ``generic_solid`` schedule).
    """
    data = schedules if schedules is not None else _defaults()
    key = resolve_cancer_type(cancer_type, data)
    if key is None:
        raise KeyError(f"no surveillance schedule for cancer type {cancer_type!r}")
    ct = data["cancer_types"][key]
    grace = timedelta(days=data.get("grace_days", 0) or 0)
    month = whole_months_between(anchor, as_of) if as_of >= anchor else -1
    notes: list[str] = list(ct.get("notes", []))
    out: list[PlanItem] = []
    conditions = conditions or {}

    for it in ct.get("items", []):
        cond = it.get("condition")
        if cond and conditions.get(cond["key"]) is False:
            continue
        raw_last = last_done.get(it["id"])
        done = raw_last
        if done is not None and done > as_of:
            notes.append(f"{it['id']}: last done {done.isoformat()} is after {as_of.isoformat()}; ignored")
            done = None
        elif done is not None and done < anchor:
            done = None  # before the anchor: the schedule starts at the anchor
        out.append(_plan_item(it, anchor, done, raw_last, as_of, month, grace))

    for nr in ct.get("not_recommended", []):
        f, t = _window(nr)
        if month >= f and (t is None or month < t) or (month < 0 and f == 0):
            out.append(
                PlanItem(
                    item_id=nr["id"],
                    label=nr["label"],
                    kind="not_recommended",
                    status=STATUS_NOT_RECOMMENDED,
                    interval="not recommended routinely" + (f" ({_years(f, t)})" if f or t is not None else ""),
                    due_date=None,
                    overdue_after=None,
                    last_done=last_done.get(nr["id"]),
                    citation=nr["citation"],
                    version=nr["version"],
                    evidence=nr.get("evidence", ""),
                    verify=bool(nr.get("verify", False)),
                    codes=tuple(nr.get("codes", [])),
                    phase=_years(f, t),
                    condition=(f"unless {nr['unless']}" if nr.get("unless") else None),
                    note=nr.get("codes_note"),
                )
            )

    return SurveillancePlan(
        cancer_type=key,
        label=ct.get("label", key),
        anchor=anchor,
        as_of=as_of,
        months_since_anchor=max(month, 0),
        items=tuple(out),
        notes=tuple(notes),
        source=ct.get("source", ""),
        reference=ct.get("reference", ""),
        data_version=str(data.get("data_version", "")),
    )


def _plan_item(
    it: Mapping, anchor: date, done: date | None, raw_last: date | None, as_of: date, month: int, grace: timedelta
) -> PlanItem:
    typ = it.get("type", "recurring")
    cond = it.get("condition")
    base = dict(
        item_id=it["id"],
        label=it["label"],
        kind=it.get("kind", ""),
        last_done=raw_last,
        citation=it["citation"],
        version=it["version"],
        evidence=it.get("evidence", ""),
        verify=bool(it.get("verify", False)),
        codes=tuple(it.get("codes", [])),
        condition=cond["text"] if cond else None,
        note=it.get("note"),
    )
    if typ == "time_points":
        status, due, overdue, interval, phase = _time_points(it, anchor, done, as_of)
    else:
        status, due, overdue, interval, phase = _recurring(it, anchor, done, as_of, max(month, 0), grace)
    return PlanItem(status=status, due_date=due, overdue_after=overdue, interval=interval, phase=phase, **base)


def _schedule_end_phrase(it: Mapping, end_month: int) -> str:
    if end_month % 12 == 0:
        text = f"schedule ended after year {end_month // 12}"
    else:
        text = f"schedule ended after month {end_month}"
    if it.get("thereafter_note"):
        text += f"; {it['thereafter_note']}"
    return text


def _recurring(
    it: Mapping, anchor: date, done: date | None, as_of: date, month: int, grace: timedelta
) -> tuple[str, date | None, date | None, str, str]:
    bands = it["bands"]
    is_limit = it.get("type") == "limit"
    basis_month = month
    if it.get("band_basis") == "last_done" and done is not None:
        basis_month = whole_months_between(anchor, done)
    found = _band_at(bands, basis_month)
    if found is None:
        return STATUS_COMPLETED, None, None, _schedule_end_phrase(it, bands[-1]["to_month"]), "after the schedule"
    idx, band = found
    phase = _years(band["from_month"], band["to_month"])
    unit = band.get("unit", "months")
    not_before: date | None = None
    if band.get("every") is None:
        # Nothing in this band: the next band with an interval gives the next date, not before it starts.
        nxt = next(((j, b) for j, b in enumerate(bands) if j > idx and b.get("every") is not None), None)
        if nxt is None:
            return STATUS_COMPLETED, None, None, _schedule_end_phrase(it, band["from_month"]), phase
        band = nxt[1]
        unit = band.get("unit", "months")
        not_before = add_months(anchor, band["from_month"])
    lo, hi = band["every"]
    interval = (f"no more often than {_every([lo, lo], unit)}" if is_limit else _every([lo, hi], unit))
    interval += f" ({_years(band['from_month'], band['to_month'])})"
    if band.get("note"):
        interval += f" \u2014 {band['note']}"
    if not_before is not None:
        interval = f"none in {phase}; then {interval}"

    if is_limit:
        if done is None:
            return STATUS_AS_INDICATED, None, None, interval, phase
        return STATUS_AS_INDICATED, _add(done, lo, unit), None, interval, phase

    if done is None:
        first = it.get("first_due")
        if first:
            due, overdue = add_months(anchor, first[0]), add_months(anchor, first[1])
        else:
            b0 = next(b for b in bands if b.get("every") is not None)
            u0 = b0.get("unit", "months")
            due, overdue = _add(anchor, b0["every"][0], u0), _add(anchor, b0["every"][1], u0)
    else:
        due, overdue = _add(done, lo, unit), _add(done, hi, unit)
    if not_before is not None and due < not_before:
        due = not_before
        overdue = max(overdue, not_before)
    end_month = bands[-1]["to_month"]
    if end_month is not None and due >= add_months(anchor, end_month):
        # The next one would fall after the guideline's schedule has ended: nothing more is scheduled.
        return STATUS_COMPLETED, None, None, _schedule_end_phrase(it, end_month), phase
    overdue = overdue + grace
    return _classify(as_of, due, overdue), due, overdue, interval, phase


def _time_points(
    it: Mapping, anchor: date, done: date | None, as_of: date
) -> tuple[str, date | None, date | None, str, str]:
    pts: list[int] = it["time_points_months"]
    win = it.get("window_months", 1)
    if len(pts) > 1:
        interval = "at months " + ", ".join(str(p) for p in pts[:-1]) + f" and {pts[-1]}"
    else:
        interval = f"at month {pts[0]}"
    if it.get("thereafter_note"):
        interval += f"; {it['thereafter_note']}"
    phase = f"months {pts[0]}\u2013{pts[-1]}"
    pending = [p for p in pts if done is None or done < _sub_months(add_months(anchor, p), win)]
    if not pending:
        return STATUS_COMPLETED, None, None, interval, phase
    opened = [p for p in pending if _sub_months(add_months(anchor, p), win) <= as_of]
    p = opened[-1] if opened else pending[0]
    due = add_months(anchor, p)
    overdue = add_months(due, win)
    status = _classify(as_of, due, overdue)
    if status == STATUS_UPCOMING and _sub_months(due, win) <= as_of:
        status = STATUS_DUE  # inside the window before the point
    return status, due, overdue, interval + f" (next: month {p})", phase


# ---------------------------------------------------------------------------
# Order checks
# ---------------------------------------------------------------------------

def check_order(
    cancer_type: str,
    order_codes: list[str],
    anchor: date,
    last_done: Mapping[str, date | None],
    as_of: date,
    in_remission: bool,
    schedules: Mapping | None = None,
) -> list[OrderFinding]:
    """Findings for an order at ``as_of`` (order-select / order-sign): advised against, or too early.

    * "not_recommended": an order code is on a not-recommended entry in force (surveillance.md §3), with the
      citation and the guideline's exception.
    * "too_early": an order code belongs to a scheduled item that was done less than the lower interval bound
      ago (for limits, "no more often than"), with the date it would fit.
    * Nothing when the order fits, the code is unknown, the schedule has ended, or ``in_remission`` is False:
      surveillance schedules are for asymptomatic patients in remission; during active disease tests are
      ordered on other grounds.
    Codes are compared as exact ``system|code`` strings (surrounding whitespace ignored).
    """
    if not in_remission:
        return []
    data = schedules if schedules is not None else _defaults()
    key = resolve_cancer_type(cancer_type, data)
    if key is None:
        return []
    ct = data["cancer_types"][key]
    p = plan(key, anchor, last_done, as_of, data)
    findings: list[OrderFinding] = []
    wanted = [c.strip() for c in order_codes]

    for nr in ct.get("not_recommended", []):
        pi = p.item(nr["id"])
        if pi is None or pi.status != STATUS_NOT_RECOMMENDED:
            continue
        for code in wanted:
            if code in pi.codes:
                unless = nr.get("unless")
                msg = f"{nr['label']}: not recommended for routine surveillance in remission (per {nr['citation']})"
                if unless:
                    msg += f", unless {unless}"
                findings.append(
                    OrderFinding(FINDING_NOT_RECOMMENDED, code, nr["id"], nr["label"], msg + ".", nr["citation"],
                                 nr["version"], unless=unless)
                )
                break

    for it in ct.get("items", []):
        pi = p.item(it["id"])
        if pi is None or pi.last_done is None or pi.due_date is None:
            continue
        if pi.last_done < anchor or pi.last_done > as_of:
            continue
        if not (as_of < pi.due_date):
            continue
        next_due = pi.due_date
        if it.get("type") == "time_points":
            if pi.status != STATUS_UPCOMING:
                continue
            next_due = _sub_months(pi.due_date, it.get("window_months", 1))  # the window opens before the point
        for code in wanted:
            if code in pi.codes:
                msg = (
                    f"{it['label']} was done on {pi.last_done.isoformat()}; the schedule ({pi.interval}) "
                    f"has the next one from {next_due.isoformat()} (per {it['citation']})."
                )
                findings.append(
                    OrderFinding(FINDING_TOO_EARLY, code, it["id"], it["label"], msg, it["citation"], it["version"],
                                 next_due=next_due, last_done=pi.last_done)
                )
                break
    return findings
