"""Breast pCR / RCB inputs (rules.breast) from a FHIR record.

Three shapes of surgical pathology are read (codes.md §3.8, §6, §7.2; examples in docs/fhir-inputs-breast.md):

1. **mCODE TNM pathologic category Observations** - ``code`` SNOMED 384625004 / LOINC 21899-0 (pathologic T) and
   SNOMED 371494008 / LOINC 21900-6 (pathologic N) (grade A); the yp category in ``valueCodeableConcept``
   (AJCC-style code, SNOMED display or text) or ``valueString``.  The y prefix is required: a pathologic "pT2"
   without it is an upfront-surgery specimen, not post-neoadjuvant (recorded as an issue, not used).  A "ypT.."
   value under a *clinical* T/N code (399504009 / 21905-5, 399534004 / 21906-3) is rejected with an issue
   (mCODE: the prefix SHALL agree with the code).
2. **CAP eCC question/answer Observations** (``http://cap.org/eCC``): pT Category 327740.100004300, pN Category
   763178.100004300, and the questions recognised by their display (TNM descriptors "y (post-neoadjuvant
   therapy)", "Only DCIS is present after presurgical (neoadjuvant) therapy", lymphovascular invasion).  The yp
   category is assembled: y descriptor + pT answer + pN answer.
3. **Narrative pathology reports** (``conclusion`` / ``presentedForm``): "ypT0 ypN0", "ypT1a ypN0(i+)", residual
   DCIS, lymphovascular invasion, "RCB-II", "RCB index 1.537" via fhir_mappings.report_text.  Used only when no
   coded ypT/ypN exists, and marked "as reported by pathology on DATE".

Project codes (``LOCAL``, no standard code exists): ``breast-residual-dcis`` and ``breast-residual-lvi``
(valueBoolean or present/absent), ``breast-not-operated-progression`` (valueBoolean; or a breast-surgery
Procedure with status not-done and a statusReason naming progression), and the RCB inputs ``rcb-tumor-bed-d1``,
``rcb-tumor-bed-d2`` (mm or cm), ``rcb-cancer-cellularity``, ``rcb-in-situ-percent`` (%),
``rcb-positive-nodes`` (count), ``rcb-largest-nodal-metastasis`` (mm or cm) - as Observations or as components
of one ``rcb-panel`` Observation - plus the *reported* ``rcb-index`` and ``rcb-class``.

The breast pCR/RCB criterion applies only when the record holds post-neoadjuvant evidence (a yp category, RCB
data, a CAP y descriptor, or "not operated because of progression"); a breast cancer treated with upfront
surgery or followed with RECIST gets no pCR card.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings.labs import local_codes
from fhir_mappings.record import (
    LOCAL,
    LOINC,
    SNOMED,
    PatientRecord,
    Resource,
    concept_keys,
    concept_text,
    effective_date,
    quantity,
    ref_of,
)
from fhir_mappings.report_text import Stated, extract, items, report_texts, stated_in_record
from fhir_mappings.units import UnitError, UnitSpec, normalise
from rules import breast as engine
from rules.base import Assessment, Evidence, fmt
from rules.breast import BreastPathologyInputs, RcbMeasurements, parse_ypn

# --- codes ---------------------------------------------------------------------------------------------------
PATH_T = (f"{SNOMED}|384625004", f"{LOINC}|21899-0")
PATH_N = (f"{SNOMED}|371494008", f"{LOINC}|21900-6")
CLIN_T = (f"{SNOMED}|399504009", f"{LOINC}|21905-5")
CLIN_N = (f"{SNOMED}|399534004", f"{LOINC}|21906-3")
CAP = "http://cap.org/eCC"
CAP_PT = f"{CAP}|327740.100004300"
CAP_PN = f"{CAP}|763178.100004300"
RESIDUAL_DCIS = f"{LOCAL}|breast-residual-dcis"
RESIDUAL_LVI = f"{LOCAL}|breast-residual-lvi"
NOT_OPERATED = f"{LOCAL}|breast-not-operated-progression"
RCB_PANEL = f"{LOCAL}|rcb-panel"
RCB_D1 = f"{LOCAL}|rcb-tumor-bed-d1"
RCB_D2 = f"{LOCAL}|rcb-tumor-bed-d2"
RCB_CELLULARITY = f"{LOCAL}|rcb-cancer-cellularity"
RCB_IN_SITU = f"{LOCAL}|rcb-in-situ-percent"
RCB_NODES = f"{LOCAL}|rcb-positive-nodes"
RCB_DMET = f"{LOCAL}|rcb-largest-nodal-metastasis"
RCB_INDEX = f"{LOCAL}|rcb-index"
RCB_CLASS = f"{LOCAL}|rcb-class"
PATHOLOGY_CATEGORIES = {f"{LOINC}|LP7839-6", "http://terminology.hl7.org/CodeSystem/v2-0074|PAT",
                        "http://terminology.hl7.org/CodeSystem/v2-0074|SP"}

OBSERVATION_CODES = (*PATH_T, *PATH_N, CAP_PT, CAP_PN, RESIDUAL_DCIS, RESIDUAL_LVI, NOT_OPERATED, RCB_PANEL, RCB_D1,
                     RCB_D2, RCB_CELLULARITY, RCB_IN_SITU, RCB_NODES, RCB_DMET, RCB_INDEX, RCB_CLASS)

# input name (for options["local_codes"]) -> code
RCB_INPUTS = {"rcb_tumor_bed_d1": RCB_D1, "rcb_tumor_bed_d2": RCB_D2, "rcb_cancer_cellularity": RCB_CELLULARITY,
              "rcb_in_situ_percent": RCB_IN_SITU, "rcb_positive_nodes": RCB_NODES,
              "rcb_largest_nodal_metastasis": RCB_DMET}

# --- units ---------------------------------------------------------------------------------------------------
_LEN_REJECT = {"m": "a tumour-bed dimension in metres cannot be right; report mm or cm",
               "um": "a tumour-bed dimension in micrometres cannot be right for RCB; report mm or cm",
               "[in_i]": "inches are not used for pathology dimensions; report mm or cm",
               "%": "a dimension cannot be a percentage; check the code"}
RCB_LENGTH_MM = UnitSpec("an RCB dimension", "mm", ("cm",), _LEN_REJECT)
RCB_PERCENT = UnitSpec("an RCB percentage", "%", (), {
    "1": "a fraction (unit '1') is not accepted for RCB percentages; report % (0-100)",
    "mm": "a percentage cannot be in mm; check the code"}, unitless_ok=True)
_COUNT_UNITS = {"", "1", "{#}", "{count}", "{nodes}", "{lymph_nodes}", "{LymphNodes}", "{lymph nodes}", "/1"}
RCB_UNITS = {RCB_D1: RCB_LENGTH_MM, RCB_D2: RCB_LENGTH_MM, RCB_DMET: RCB_LENGTH_MM, RCB_CELLULARITY: RCB_PERCENT,
             RCB_IN_SITU: RCB_PERCENT}
WINDOW_DAYS = 30  # facts within 30 days before the latest pathology date belong to the same surgery [I]

_BREAST_SURGERY = re.compile(r"mastectomy|lumpectomy|breast[\s-]conserv|segmentectomy|quadrantectomy|wide\s+local\s+"
                             r"excision|excision\s+of\s+(?:the\s+)?breast|breast\s+excision|sentinel\s+(?:lymph\s+)?node|"
                             r"axillary\s+(?:lymph\s+node\s+)?dissection", re.I)
_PROGRESSION = re.compile(r"progress", re.I)
_Y_CONTEXT = re.compile(r"\by\s*\(|post[\s-]?neoadjuvant|presurgical|pre[\s-]?surgical|neoadjuvant|treatment\s+effect",
                        re.I)
_ONLY_DCIS = re.compile(r"only\s+DCIS\s+is\s+present", re.I)
_YP_HINT = re.compile(r"y\s*p\s*[TN]|RCB|residual\s+cancer\s+burden", re.I)
_T_ANY = re.compile(r"(?<![A-Za-z])(?P<y>y)?\s*(?:p\s*)?T\s*(?P<t>is|x|0|1\s*mi|[1-4]\s*[a-d]?)(?![0-9a-z])", re.I)
_N_ANY = re.compile(r"(?<![A-Za-z])(?P<y>y)?\s*(?:p\s*)?N\s*(?P<n>x|0|1\s*mi|[1-3]\s*[a-c]?)(?![0-9a-z])"
                    r"(?P<sfx>(?:\s*\(\s*(?:i|mol|sn|f)\s*[+-]?\s*\))*)", re.I)


def _texts(obs: Resource) -> list[str]:
    out = []
    vc = obs.get("valueCodeableConcept")
    if isinstance(vc, dict):
        if isinstance(vc.get("text"), str):
            out.append(vc["text"])
        for c in items(vc.get("coding")):
            if isinstance(c, dict):
                out += [x for x in (c.get("display"), c.get("code")) if isinstance(x, str)]
    if isinstance(obs.get("valueString"), str):
        out.append(obs["valueString"])
    return out


def _category(texts: Iterable[str], which: str) -> tuple[str | None, bool]:
    """(AJCC category with its y prefix when present, has_y) from the first value text that holds one."""
    rx = _T_ANY if which == "T" else _N_ANY
    for t in texts:
        m = rx.search(t)
        if m:
            tok = re.sub(r"\s+", "", m.group("t" if which == "T" else "n")).lower().replace("x", "X")
            sfx = re.sub(r"\s+", "", m.group("sfx") or "").lower() if which == "N" else ""
            return f"yp{which}{tok}{sfx}", bool(m.group("y"))
    return None, False


def _bool_value(obs: Resource) -> bool | None:
    if isinstance(obs.get("valueBoolean"), bool):
        return obs["valueBoolean"]
    t = " ".join(_texts(obs)).lower()
    t += " " + " ".join(k.split("|", 1)[1] for k in concept_keys(obs.get("valueCodeableConcept"))).lower()
    if re.search(r"\b(?:absent|not\s+identified|not\s+present|negative|no|none|false|not\s+seen|260385009|2667000)\b", t):
        return False
    if re.search(r"\b(?:present|identified|positive|yes|true|seen|52101004|10828004)\b", t):
        return True
    return None


@dataclass
class _Fact:
    date: date
    value: Any
    ref: str | None
    source: str  # "coded" | "cap" | "text"
    span: str = ""


@dataclass
class BreastMapping:
    inputs: BreastPathologyInputs | None
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    reported: dict[str, _Fact] = field(default_factory=dict)  # rcb_class / rcb_index / pcr stated by pathology


class _Reader:
    def __init__(self, record: PatientRecord, as_of: date, options: Mapping[str, Any]) -> None:
        self.record, self.as_of, self.options = record, as_of, options
        self.notes: list[str] = []
        self._report_of_map: dict[str, Resource] | None = None

    @property
    def _report_of(self) -> dict[str, Resource]:
        """The DiagnosticReport that groups each result; built on first use (most calls never need it: only an
        Observation without a date of its own takes the report's)."""
        if self._report_of_map is None:
            record, report_of = self.record, {}
            for rep in record.of_type("DiagnosticReport"):
                for r in items(rep.get("result")):
                    key = record.ref_key(r)  # ref_of(record.get(r)), without reading the result
                    if key:
                        report_of[key] = rep
            self._report_of_map = report_of
        return self._report_of_map

    def when(self, obs: Resource) -> date | None:
        return effective_date(obs) or (effective_date(self._report_of[ref_of(obs) or ""])
                                       if ref_of(obs) in self._report_of else None)

    def obs(self, codes: Iterable[str], input_name: str | None = None) -> list[Resource]:
        keys = list(codes)
        if input_name:
            keys += [k for k, _ in local_codes(self.options, input_name)]
        return self.record.with_codes(keys, "Observation")

    # --- T / N ---------------------------------------------------------------------------------------------
    def y_context_dates(self) -> set[date]:
        out = set()
        for o in self.record.with_system(CAP, "Observation"):
            text = concept_text(o.get("code")) + " " + " ".join(_texts(o))
            if _Y_CONTEXT.search(text) or _ONLY_DCIS.search(text):
                d = self.when(o)
                if d:
                    out.add(d)
        return out

    def coded_tn(self, which: str) -> list[_Fact]:
        record, out = self.record, []
        path, clin, cap = (PATH_T, CLIN_T, CAP_PT) if which == "T" else (PATH_N, CLIN_N, CAP_PN)
        y_dates = self.y_context_dates()
        for o in self.obs(clin):
            cat, has_y = _category(_texts(o), which)
            if cat and has_y:
                record.issue(o, f"y{which} under a clinical staging code not used",
                             "mCODE: the category prefix SHALL agree with Observation.code (use the pathologic code)")
        for o in self.obs(path + (cap,), "ypT" if which == "T" else "ypN"):
            d = self.when(o)
            if d is None:
                record.issue(o, f"pathologic {which} category skipped", "no date")
                continue
            cat, has_y = _category(_texts(o), which)
            is_cap = cap in concept_keys(o.get("code"))
            if cat is None:
                record.issue(o, f"pathologic {which} category skipped", "no AJCC category in the value")
                continue
            if not has_y:
                if is_cap and any(abs((d - y).days) <= 1 for y in y_dates):
                    has_y = True
                else:
                    record.issue(o, f"p{which} category not used", f"no y prefix (p{cat[3:]}): not a post-neoadjuvant "
                                 "specimen; pCR/RCB need ypT/ypN")
                    continue
            out.append(_Fact(d, cat, ref_of(o), "cap" if is_cap else "coded"))
        return out

    def stated(self) -> dict[str, list[_Fact]]:
        """Narrative pathology statements, by kind (ypT, ypN, dcis, lvi, rcb_class, rcb_index, pcr)."""
        out: dict[str, list[_Fact]] = {}
        for rep in self.record.of_type("DiagnosticReport"):
            d = effective_date(rep)
            if d is None:
                continue
            text = report_texts(rep)
            if not _YP_HINT.search(text):
                continue  # cheap test first: most reports are not post-neoadjuvant pathology
            stated: list[Stated] = extract(text)
            if not any(s.kind in ("ypT", "ypN", "rcb_class", "rcb_index") for s in stated):
                continue  # not a post-neoadjuvant pathology report
            for s in stated:
                if s.kind in ("ypT", "ypN", "rcb_class", "rcb_index") and not s.negated:
                    out.setdefault(s.kind, []).append(_Fact(d, s.value, ref_of(rep), "text", s.span_text))
                elif s.kind in ("dcis", "lvi", "pcr", "residual_invasive"):
                    out.setdefault(s.kind, []).append(_Fact(d, not s.negated, ref_of(rep), "text", s.span_text))
        return out

    # --- booleans and numbers ------------------------------------------------------------------------------
    def flags(self, code: str, input_name: str) -> list[_Fact]:
        out = []
        for o in self.obs((code,), input_name):
            d = self.when(o)
            b = _bool_value(o)
            if d is None or b is None:
                self.record.issue(o, "finding skipped", "no date" if d is None else "value is not present/absent")
                continue
            out.append(_Fact(d, b, ref_of(o), "coded"))
        return out

    def cap_lvi(self) -> list[_Fact]:
        out = []
        for o in self.record.of_type("Observation"):
            if not any(k.startswith(CAP + "|") for k in concept_keys(o.get("code"))):
                continue
            if re.search(r"lympho[\s-]?vascular|lymphatic\s+and/or\s+vascular", concept_text(o.get("code")), re.I):
                d, b = self.when(o), _bool_value(o)
                if d is not None and b is not None:
                    out.append(_Fact(d, b, ref_of(o), "cap"))
        return out

    def cap_only_dcis(self) -> list[_Fact]:
        out = []
        for o in self.record.of_type("Observation"):
            if any(k.startswith(CAP + "|") for k in concept_keys(o.get("code"))) and _ONLY_DCIS.search(" ".join(_texts(o))):
                d = self.when(o)
                if d is not None:
                    out.append(_Fact(d, True, ref_of(o), "cap"))
        return out

    def rcb_numbers(self) -> dict[str, list[_Fact]]:
        out: dict[str, list[_Fact]] = {}
        record = self.record
        for name, code in RCB_INPUTS.items():
            for o in self.obs((code,), name):
                d = self.when(o)
                if d is None:
                    record.issue(o, "RCB input skipped", "no date")
                    continue
                v = self._number(o, o.get("valueQuantity"), code)
                if v is not None:
                    out.setdefault(code, []).append(_Fact(d, v, ref_of(o), "coded"))
        for panel in self.obs((RCB_PANEL,), "rcb_panel"):
            d = self.when(panel)
            if d is None:
                record.issue(panel, "RCB panel skipped", "no date")
                continue
            for comp in items(panel.get("component")):
                if not isinstance(comp, dict):
                    continue
                for code in concept_keys(comp.get("code")) & set(RCB_INPUTS.values()):
                    v = self._number(panel, comp.get("valueQuantity", comp.get("valueInteger")), code)
                    if v is not None:
                        out.setdefault(code, []).append(_Fact(d, v, ref_of(panel), "coded"))
        return out

    def _number(self, res: Resource, q: Any, code: str) -> Decimal | int | None:
        label = code.split("|", 1)[1]
        if isinstance(q, int) and not isinstance(q, bool):
            v, unit = Decimal(q), None
        else:
            v, unit, _ = quantity(q)
        if v is None:
            if not res.get("dataAbsentReason"):
                self.record.issue(res, f"{label} skipped", "no numeric value")
            return None
        if code == RCB_NODES:
            if (unit or "").strip() not in _COUNT_UNITS:
                self.record.issue(res, f"{label} skipped", f"unit '{unit}' is not a count; expected a number of nodes")
                return None
            if not v.is_finite() or v != v.to_integral_value() or v < 0:
                self.record.issue(res, f"{label} skipped", "the number of positive nodes must be a whole number >= 0")
                return None
            return int(v)
        try:
            value = normalise(v, unit, RCB_UNITS[code])
        except UnitError as exc:
            self.record.issue(res, f"{label} skipped", str(exc))
            return None
        if not value.is_finite() or value < 0 or (RCB_UNITS[code] is RCB_PERCENT and value > 100):
            self.record.issue(res, f"{label} skipped", "out of range (dimensions >= 0, percentages 0-100)")
            return None
        return value

    def reported_rcb(self) -> dict[str, list[_Fact]]:
        out: dict[str, list[_Fact]] = {}
        for o in self.obs((RCB_INDEX,), "rcb_index"):
            d = self.when(o)
            v, _, _ = quantity(o.get("valueQuantity"))
            if d is not None and v is not None:
                out.setdefault("rcb_index", []).append(_Fact(d, str(v), ref_of(o), "coded"))
        for o in self.obs((RCB_CLASS,), "rcb_class"):
            d = self.when(o)
            s = [x for x in extract(" ".join("RCB " + t if not t.upper().startswith("RCB") else t for t in _texts(o)))
                 if x.kind == "rcb_class"]
            if d is not None and s:
                out.setdefault("rcb_class", []).append(_Fact(d, s[0].value, ref_of(o), "coded"))
        return out

    # --- not operated ----------------------------------------------------------------------------------------
    def not_operated(self) -> _Fact | None:
        found = None
        for f in self.flags(NOT_OPERATED, "breast_not_operated_progression"):
            if f.value and f.date <= self.as_of:
                found = f
        for proc in self.record.of_type("Procedure"):
            if proc.get("status") != "not-done":
                continue
            why = concept_text(proc.get("statusReason")) + " " + " ".join(
                n.get("text", "") for n in items(proc.get("note")) if isinstance(n, dict))
            if _BREAST_SURGERY.search(concept_text(proc.get("code"))) and _PROGRESSION.search(why):
                d = effective_date(proc)
                if d is None or d <= self.as_of:
                    found = found or _Fact(d, True, ref_of(proc), "coded")  # type: ignore[arg-type]
        return found

    def surgery_near(self, d: date) -> tuple[date, str | None] | None:
        best = None
        for proc in self.record.of_type("Procedure"):
            if proc.get("status") in ("not-done", "preparation"):
                continue
            pd = effective_date(proc)
            if pd is None or not _BREAST_SURGERY.search(concept_text(proc.get("code"))):
                continue
            if d - timedelta(days=WINDOW_DAYS) <= pd <= d and (best is None or pd > best[0]):
                best = (pd, ref_of(proc))
        return best


def _latest(facts: Iterable[_Fact], lo: date, hi: date) -> _Fact | None:
    inside = [f for f in facts if lo <= f.date <= hi]
    return max(inside, key=lambda f: f.date) if inside else None


def has_post_neoadjuvant_data(record: PatientRecord, options: Mapping[str, Any] | None = None) -> bool:
    """Whether the breast pCR/RCB criterion applies: a yp category, RCB data, a CAP y descriptor, a reported RCB
    or "not operated because of progression" anywhere in the record."""
    r = _Reader(record, date.max, options or {})
    local = [RESIDUAL_DCIS, RESIDUAL_LVI, NOT_OPERATED, RCB_PANEL, RCB_INDEX, RCB_CLASS, *RCB_INPUTS.values()]
    if record.with_codes(local, "Observation"):
        return True
    for o in r.obs(PATH_T + PATH_N + (CAP_PT, CAP_PN)):
        if _category(_texts(o), "T")[1] or _category(_texts(o), "N")[1]:
            return True
    if r.y_context_dates():
        return True
    for proc in record.of_type("Procedure"):
        if proc.get("status") == "not-done" and _BREAST_SURGERY.search(concept_text(proc.get("code"))):
            return True
    if stated_in_record(record, ("ypT", "ypN", "rcb_class", "rcb_index")):
        return True
    return False


def map_breast(record: PatientRecord, as_of: date, options: Mapping[str, Any] | None = None) -> BreastMapping:
    """The engine inputs for the latest post-neoadjuvant surgery on or before ``as_of``, or what is missing."""
    r = _Reader(record, as_of, options or {})
    coded_t, coded_n = r.coded_tn("T"), r.coded_tn("N")
    stated = r.stated()
    rcb_nums = r.rcb_numbers()
    reported = r.reported_rcb()
    dates = [f.date for f in (*coded_t, *coded_n, *(f for fs in rcb_nums.values() for f in fs),
                              *stated.get("ypT", ()), *stated.get("ypN", ()), *stated.get("rcb_class", ()),
                              *reported.get("rcb_class", ()), *reported.get("rcb_index", ())) if f.date <= as_of]
    later = [f for f in (*coded_t, *coded_n, *stated.get("ypT", ()), *stated.get("ypN", ())) if f.date > as_of]
    not_op = r.not_operated()
    if not dates:
        if not_op is not None:
            return BreastMapping(BreastPathologyInputs(None, not_operated_due_to_progression=True,
                                                       progression_date=not_op.date, ref=not_op.ref), (), tuple(r.notes))
        missing = ["post-neoadjuvant surgical pathology: ypT and ypN (mCODE pathologic TNM Observations, CAP eCC "
                   "answers, or a pathology report stating e.g. 'ypT0 ypN0')"]
        if later:
            missing.append(f"pathology dated after {as_of.isoformat()} is not used")
        return BreastMapping(None, tuple(missing), tuple(r.notes))
    hi = max(dates)
    lo = hi - timedelta(days=WINDOW_DAYS)
    notes = r.notes

    # ypT / ypN: coded first, else stated in the report text
    t, n = _latest(coded_t, lo, hi), _latest(coded_n, lo, hi)
    st, sn = _latest(stated.get("ypT", ()), lo, hi), _latest(stated.get("ypN", ()), lo, hi)
    ref = (t or n or st or sn).ref if (t or n or st or sn) else None
    text_used = []
    if t is None and st is not None:
        t = st
        text_used.append(st)
    if n is None and sn is not None:
        n = sn
        text_used.append(sn)
    if text_used:
        by_report: dict[tuple[date, str | None], list[str]] = {}
        for f in text_used:
            by_report.setdefault((f.date, f.ref), []).append(str(f.value))
        for (d, rref), vals in by_report.items():
            notes.append(f"{' '.join(vals)} as reported by pathology on {d.isoformat()} (report text"
                         f"{', ' + rref if rref else ''}); no coded ypT/ypN in the record.")
    same_workup = [f for f in (coded_t if t is not None and t.source != "text" else stated.get("ypT", []))
                   if lo <= f.date <= hi]
    if len({f.value for f in same_workup}) > 1:
        notes.append("More than one ypT in the same surgical work-up; the latest was used - check the pathology report.")

    # residual DCIS / LVI: coded, CAP, then the same report's text
    dcis = _latest(r.flags(RESIDUAL_DCIS, "breast_residual_dcis") + r.cap_only_dcis(), lo, hi)
    if dcis is None and t is not None and t.source == "text":
        dcis = _latest([f for f in stated.get("dcis", ()) if f.ref == t.ref], lo, hi)
    lvi = _latest(r.flags(RESIDUAL_LVI, "breast_residual_lvi") + r.cap_lvi(), lo, hi)
    if lvi is None:
        lvi = _latest([f for f in stated.get("lvi", ()) if t is not None and f.ref == t.ref], lo, hi)

    # RCB measurements
    rcb, rcb_missing, implied = _rcb(rcb_nums, lo, hi, n, dcis)
    notes.extend(implied)
    if rcb_missing and any(_latest(fs, lo, hi) for fs in rcb_nums.values()):
        notes.append("RCB not calculated: missing " + ", ".join(rcb_missing) + ".")

    surgery = r.surgery_near(hi)
    surgery_date = surgery[0] if surgery else hi
    inputs = BreastPathologyInputs(
        surgery_date=surgery_date,
        ypT=str(t.value) if t else None,
        ypN=str(n.value) if n else None,
        residual_dcis=dcis.value if dcis else None,
        residual_lvi=lvi.value if lvi else None,
        rcb=rcb,
        not_operated_due_to_progression=False,
        ref=ref,
    )
    rep: dict[str, _Fact] = {}
    for kind in ("rcb_class", "rcb_index"):
        f = _latest(reported.get(kind, []) + stated.get(kind, []), lo, hi)
        if f is not None:
            rep[kind] = f
    pcr = _latest(stated.get("pcr", ()), lo, hi)
    if pcr is not None:
        rep["pcr"] = pcr
    if later:
        notes.append(f"Pathology dated after {as_of.isoformat()} was not used.")
    return BreastMapping(inputs, (), tuple(notes), rep)


def _rcb(nums: dict[str, list[_Fact]], lo: date, hi: date, n: _Fact | None, dcis: _Fact | None
         ) -> tuple[RcbMeasurements | None, list[str], list[str]]:
    """(measurements, missing inputs, notes on implied values)."""
    got = {code: _latest(fs, lo, hi) for code, fs in nums.items()}
    got = {k: v for k, v in got.items() if v is not None}
    implied: list[str] = []
    if not got:
        return None, [], implied
    values: dict[str, Any] = {k: f.value for k, f in got.items()}
    missing = []
    node_negative = False
    if n is not None:
        try:
            pn = parse_ypn(str(n.value))
            node_negative = pn.code == "0" and not pn.itc and not pn.mol
        except ValueError:
            node_negative = False
    if RCB_IN_SITU not in values:
        if values.get(RCB_CELLULARITY) == 0:
            values[RCB_IN_SITU] = Decimal(0)
            implied.append("RCB in-situ % taken as 0: cancer cellularity is 0.")
        elif dcis is not None and dcis.value is False:
            values[RCB_IN_SITU] = Decimal(0)
            implied.append("RCB in-situ % taken as 0: no residual DCIS recorded.")
    if RCB_NODES not in values and node_negative:
        values[RCB_NODES] = 0
        implied.append("RCB positive nodes taken as 0 from the node-negative ypN.")
    if RCB_DMET not in values and values.get(RCB_NODES) == 0:
        values[RCB_DMET] = Decimal(0)
        implied.append("RCB largest nodal metastasis taken as 0: no positive node.")
    names = {RCB_D1: "tumour-bed dimension 1", RCB_D2: "tumour-bed dimension 2", RCB_CELLULARITY: "cancer cellularity %",
             RCB_IN_SITU: "in-situ % of the carcinoma", RCB_NODES: "number of positive lymph nodes",
             RCB_DMET: "largest nodal metastasis"}
    for code, name in names.items():
        if code not in values:
            missing.append(name)
    if missing:
        return None, missing, []
    refs = sorted({f.ref for f in got.values() if f.ref})
    return RcbMeasurements(values[RCB_D1], values[RCB_D2], values[RCB_CELLULARITY], values[RCB_IN_SITU],
                           int(values[RCB_NODES]), values[RCB_DMET], refs[0] if refs else None), [], implied


ENGINE_OPTIONS = {"breast_pcr_definition": "pcr_definition", "breast_itc_is_pcr": "itc_is_pcr",
                  "breast_mol_positive_is_pcr": "mol_positive_is_pcr",
                  "breast_inclusive_rcb_boundaries": "inclusive_rcb_boundaries"}


def engine_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {kw: (options or {})[k] for k, kw in ENGINE_OPTIONS.items() if k in (options or {})}


def with_reported(a: Assessment, reported: Mapping[str, _Fact]) -> Assessment:
    """Add what pathology *stated* (RCB class/index, pCR) beside the computed values: values ``*_reported`` and an
    evidence line each, and a note when they disagree (design.md: reported vs computed, never merged)."""
    if not reported:
        return a
    values, evidence, notes = dict(a.values), list(a.evidence), list(a.notes)
    cls, idx, pcr = reported.get("rcb_class"), reported.get("rcb_index"), reported.get("pcr")
    if cls is not None:
        values["RCB_class_reported"] = cls.value
    if idx is not None:
        try:
            values["RCB_index_reported"] = Decimal(str(idx.value))
        except ArithmeticError:
            pass
    if cls is not None or idx is not None:
        f = cls or idx
        assert f is not None
        what = " ".join(x for x in ((cls.value if cls else ""), (f"index {idx.value}" if idx else "")) if x)
        evidence.append(Evidence("breast.rcb.reported", f"Pathology reported {what} on {f.date.isoformat()} "
                                 f"({'report text' if f.source == 'text' else 'coded'})", "reported, not computed",
                                 tuple(x.ref for x in (cls, idx) if x is not None and x.ref)))
        computed = a.values.get("RCB_class")
        if cls is not None and computed and computed != cls.value:
            notes.append(f"Reported {cls.value} differs from the computed {computed}; check the RCB inputs.")
        if idx is not None and isinstance(a.values.get("RCB_index"), Decimal) and "RCB_index_reported" in values:
            if abs(values["RCB_index_reported"] - a.values["RCB_index"]) > Decimal("0.01"):
                notes.append(f"Reported RCB index {idx.value} differs from the computed "
                             f"{fmt(a.values['RCB_index'], 3)}; check the RCB inputs.")
    if pcr is not None:
        values["pCR_reported"] = bool(pcr.value)
        evidence.append(Evidence("breast.pcr.reported", f"Pathology stated \"{pcr.span}\" on {pcr.date.isoformat()}",
                                 "reported, not computed", (pcr.ref,) if pcr.ref else ()))
    return replace(a, values=values, evidence=tuple(evidence), notes=tuple(notes))


def assess(record: PatientRecord, as_of: date, options: Mapping[str, Any] | None = None
           ) -> tuple[Assessment | None, BreastMapping]:
    """Map and assess in one call (used by the pipeline entry and the tests)."""
    m = map_breast(record, as_of, options)
    if m.inputs is None:
        return None, m
    a = engine.assess(m.inputs, as_of, **engine_options(options))
    return with_reported(a, m.reported), m
