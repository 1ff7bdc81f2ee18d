"""Lugano 2014 inputs (rules.lugano2014) from FHIR: PET-CT (Deauville 5PS) or CT (LDi x SDi, spleen, marrow).

Representations, codes and one example resource per input are in docs/fhir-inputs-lugano.md.

PET-CT or CT (Cheson 2014: PET-CT for FDG-avid histologies, CT for the others or when PET is unavailable):

* PET-CT when the record holds a follow-up PET-CT (a Deauville score, coded or in a PET report's text, or any
  other PET finding after baseline) and the histology is FDG-avid or unknown, or when there is no usable CT
  series (baseline and follow-up) to use instead;
* CT when there is no follow-up PET-CT, or the histology is not reliably FDG-avid (marginal zone, MALT, small
  lymphocytic, lymphoplasmacytic, mycosis fungoides) and a CT series exists;
* ``options["lugano_modality"]`` ("pet" / "ct") overrides the choice.

PET-CT inputs per scan (a PET DiagnosticReport and the Observations it groups, or dated Observations):

* Deauville score: SNOMED 708895006 (mCODE DeauvilleScale; valueInteger 1-5, X as interpretation NCIt C136879),
  or LOCAL ``deauville-score``; when nothing is coded for a scan, the PET report's conclusion/presentedForm text
  ("Deauville 3", "Deauville score of 4", "5PS 2", "DS 4", "score X"; negated and threshold mentions skipped;
  scores stated for the baseline scan kept apart). Text scores are marked "as reported" on the card.
* SUVmax (LOCAL ``suv-max``, unitless SUV), marrow FDG pattern (LOCAL ``bone-marrow-fdg``, or the report's marrow
  sentence), new FDG-avid lesions (LOCAL ``lymphoma-new-lesion``, or text with negation), the reader's uptake
  comparison (LOCAL ``fdg-uptake-vs-baseline``), residual mass (mCODE TumorSize on the scan date).
* Baseline scan: a report titled/concluded baseline, staging or pre-treatment; else the earliest of two or more
  scans unless it is labelled interim/end of treatment.

CT inputs per time point: mCODE TumorSize (21889-1; 33728-7 = LDi, 33729-5 = SDi, mm or cm) per lesion tracked by
BodyStructure identifier (the RECIST helpers), spleen length (LOCAL ``spleen-length``; referenceRange.high = the
normal length), marrow biopsy (LOCAL ``bone-marrow-involvement`` or bone-marrow report text), new lesions,
non-measured lesions (LOCAL ``lymphoma-non-measured-lesions``), and an SPD or SPD % change stated in a report
(LOCAL ``lymphoma-spd`` / ``lymphoma-spd-pct-change`` or "SPD -10 %" in CT report text) when lesions are only
described.

Never raises on clinical data: unusable values become ``record.issue`` entries; the engine's LuganoInputError
becomes an issue and an insufficient-data result.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping

from fhir_mappings import codes
from fhir_mappings.labs import local_codes, report_text
from fhir_mappings.recist import _organ
from fhir_mappings.record import (
    LOCAL,
    LOINC,
    SNOMED,
    PatientRecord,
    Resource,
    codings,
    concept_keys,
    concept_text,
    effective_date,
    quantity,
    ref_of,
    to_decimal,
)
from fhir_mappings.routing import RoutedCancer
from fhir_mappings.units import UnitError, UnitSpec, normalise
from rules import lugano2014 as engine
from rules.base import Assessment

try:  # the shared stated-finding extractor (another module's work); this module's own patterns are used with it
    from fhir_mappings.report_text import extract as _stated_extract
except ImportError:  # pragma: no cover - the module's own patterns suffice
    _stated_extract = None

# ---------------------------------------------------------------------------
# Codes (docs/fhir-inputs-lugano.md; grades from shared/reference/codes.md)
# ---------------------------------------------------------------------------

DEAUVILLE = f"{SNOMED}|708895006"                       # mCODE DeauvilleScale, codes.md §3.6, grade A
DEAUVILLE_LOCAL = f"{LOCAL}|deauville-score"            # project code (same value representation)
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
NCIT_DEAUVILLE: dict[str, int | str] = {"C99728": 1, "C99747": 2, "C99748": 3, "C99749": 4, "C99750": 5,
                                        "C136879": "X"}   # DeauvilleScaleVS (codes.md §1), grade A
SUV_MAX = f"{LOCAL}|suv-max"
PET_MARROW = f"{LOCAL}|bone-marrow-fdg"
UPTAKE_VS_BASELINE = f"{LOCAL}|fdg-uptake-vs-baseline"
NEW_LESION = f"{LOCAL}|lymphoma-new-lesion"
SITE_NEW = f"{LOCAL}|new-site"                                       # component of a Deauville Observation
SITE_PHYSIOLOGICAL = f"{LOCAL}|uptake-not-above-surrounding-tissue"  # component of a Deauville Observation
ATTRIBUTABLE = f"{LOCAL}|attributable-to-lymphoma"                   # component of a new-lesion / TumorSize
SPLEEN_LENGTH = f"{LOCAL}|spleen-length"
MARROW_INVOLVEMENT = f"{LOCAL}|bone-marrow-involvement"
NON_MEASURED = f"{LOCAL}|lymphoma-non-measured-lesions"
SPD = f"{LOCAL}|lymphoma-spd"
SPD_PCT = f"{LOCAL}|lymphoma-spd-pct-change"
NEW_SPLENOMEGALY = f"{LOCAL}|new-or-recurrent-splenomegaly"
MARROW_REPORT_CODES = {f"{LOINC}|33721-2", f"{LOINC}|48807-2"}  # codes.md §3.2 bone marrow reports, grade A

LUGANO_OBSERVATION_CODES = (
    DEAUVILLE, DEAUVILLE_LOCAL, SUV_MAX, PET_MARROW, UPTAKE_VS_BASELINE, NEW_LESION, codes.NEW_LESION,
    codes.TUMOR_SIZE, SPLEEN_LENGTH, MARROW_INVOLVEMENT, NON_MEASURED, codes.NON_TARGET_RESPONSE, SPD, SPD_PCT,
    NEW_SPLENOMEGALY,
)

# Units
DIAMETER_MM = UnitSpec("a lymphoma lesion diameter (LDi/SDi)", "mm", ("cm",), {
    "mm2": "unit 'mm2' is an area, not a diameter: send LDi and SDi as lengths (mm or cm)",
    "cm2": "unit 'cm2' is an area, not a diameter: send LDi and SDi as lengths (mm or cm)",
})
SPLEEN_MM = UnitSpec("the spleen length", "mm", ("cm",), {
    "mL": "unit 'mL' is a spleen volume, not the vertical length Lugano uses",
    "cm3": "unit 'cm3' is a spleen volume, not the vertical length Lugano uses",
    "cm2": "unit 'cm2' is an area, not the vertical spleen length",
})
SPD_MM2 = UnitSpec("a sum of products of diameters", "mm2", ("cm2",), {
    "mm": "unit 'mm' is a length; an SPD is an area (mm2 or cm2)",
    "cm": "unit 'cm' is a length; an SPD is an area (mm2 or cm2)",
})
PCT = UnitSpec("an SPD percent change", "%", (), unitless_ok=True)
# SUV is a ratio (SUVbw is numerically g/mL); no UCUM conversion applies, so accepted spellings are listed.
SUV_UNITS = ("{SUVbw}", "{SUV}", "{SUVmax}", "{SUVlbm}", "{SUVbsa}", "1", "{ratio}", "g/mL", "g/ml", "SUV")
SUV_SPEC = UnitSpec("SUVmax", "{SUVbw}", SUV_UNITS, {
    "%": "SUVmax is a ratio, not a percentage",
    "Bq/mL": "'Bq/mL' is an activity concentration; send the standardised uptake value (SUV)",
    "kBq/mL": "'kBq/mL' is an activity concentration; send the standardised uptake value (SUV)",
}, unitless_ok=True)

ATTACH_DAYS = 14         # a finding within this many days of an imaging time point belongs to it
MARROW_ATTACH_DAYS = 60  # a marrow biopsy is often done days to weeks apart from the scan

# Histology -> FDG avidity (Cheson 2014 Table 1 / Barrington 2014: routinely FDG-avid vs variably avid)
_AVID_WORDS = ("hodgkin", "diffuse large", "dlbcl", "follicular", "mantle", "burkitt", "t-cell", "t cell", "ptcl",
               "anaplastic", "primary mediastinal", "high-grade", "high grade", "grey zone", "gray zone",
               "plasmablastic", "transformed", "nk/t", "lymphoblastic")
_NON_AVID_WORDS = ("marginal zone", "malt", "small lymphocytic", "sll", "lymphoplasmacytic", "waldenstr",
                   "mycosis fungoides", "sezary", "hairy cell", "chronic lymphocytic")
_AVID_ICD = ("C81", "C82", "C83.1", "C83.3", "C83.5", "C83.7", "C84.4", "C84.6", "C84.7", "C84.Z", "C85.2",
             "C86")
_NON_AVID_ICD = ("C83.0", "C88.0", "C88.4", "C84.0", "C84.1", "C91.4")
_IMMUNOMODULATORY = ("lenalidomide", "pomalidomide", "pembrolizumab", "nivolumab", "ipilimumab", "atezolizumab",
                     "durvalumab", "avelumab", "cemiplimab", "tislelizumab", "axicabtagene", "tisagenlecleucel",
                     "lisocabtagene", "brexucabtagene", "car-t", "car t-cell", "chimeric antigen",
                     "mosunetuzumab", "glofitamab", "epcoritamab", "checkpoint inhibitor", "anti-pd-1")


@dataclass
class LuganoMapping:
    inputs: engine.LuganoPetInputs | engine.LuganoCtInputs | None
    modality: str | None            # "PET-CT" or "CT"
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


# ===========================================================================
# Report text: sentences, negation, Deauville / SUVmax / new lesions / marrow / SPD
# ===========================================================================

_SENTENCE = re.compile(r"(?:\.(?!\d)|(?<!\d)\.|[;!?\n])")  # a full stop, but not the one inside "5.9"
_NEG_CUE = re.compile(r"\b(no|not|without|negative for|absence of|absent|free of|neither|nor|resolution of|"
                      r"resolved|never)\b", re.I)
_NEG_AFTER = re.compile(r"^[^,;:]{0,40}?(?::\s*)?\b(?:(?:is|are|was|were|has|have been)\s+)?(not (?:seen|identified|"
                        r"present|demonstrated|detected|visible|evident)|absent|none|nil|resolved)\b", re.I)
_NOT_BEFORE = re.compile(r"not (?:seen|present|visible|identified) (?:at|on|in|before|previously)", re.I)
_CLAUSE_BREAK = re.compile(r"[,:]|\bbut\b|\bhowever\b|\bexcept\b|\balthough\b|\bwhereas\b", re.I)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text or "") if s and s.strip()]


def negated(sentence: str, start: int, end: int) -> bool:
    """Is the mention at [start, end) negated? NegEx-style: a cue up to 6 words before it in the same clause, or
    "not seen / absent / none" right after it (not "not seen at baseline", which dates the finding)."""
    before = _CLAUSE_BREAK.split(sentence[:start])[-1]
    if _NEG_CUE.search(" ".join(before.split()[-6:])):
        return True
    after = sentence[end:]
    m = _NEG_AFTER.search(after)
    if m and not _NOT_BEFORE.match(after[m.start(1):]):
        return True
    return False


_BASE_CUE = re.compile(r"\b(baseline|(?<!re)staging|pre-?treatment|pre-?therapy|previous(?:ly)?|prior|initial(?:ly)?|"
                       r"at diagnosis)\b", re.I)
_REF_WORDS = re.compile(r"\b(compared|comparison|relative|versus|vs|than|since)\b", re.I)
_NOW_WORDS = re.compile(r"\b(now|currently|current|today|presently|this (?:scan|study|examination))\b", re.I)


def about_baseline(sentence: str, start: int) -> bool:
    """Does the mention at ``start`` state a value of the baseline scan ("baseline Deauville 5", "(prior SUVmax 9)")?"""
    before = sentence[:start]
    open_ = before.rfind("(")
    if open_ != -1 and open_ > before.rfind(")"):
        inner, head = before[open_ + 1:], before[:open_]
        if _BASE_CUE.search(inner) and not _NOW_WORDS.search(inner):
            return True
        return bool(_BASE_CUE.search(" ".join(head.split()[-4:]))) and not _NOW_WORDS.search(inner)
    cues = list(_BASE_CUE.finditer(before))
    if not cues:
        return False
    last = cues[-1]
    gap = before[last.end():]
    if len(gap) > 25 or _NOW_WORDS.search(gap):
        return False
    if not re.search(r"[,:]", gap):
        return True  # "baseline Deauville 5", "compared with the baseline scan Deauville 5"
    # "At baseline, Deauville 5" (baseline) vs "Compared to prior, Deauville 4" (the current score)
    return not _REF_WORDS.search(before[max(0, last.start() - 20):last.start()])


_DS_KEY = (r"(?:deauville(?:\s+(?:five|5)[\s-]*point(?:\s+scale)?)?(?:\s*\(?5-?ps\)?)?|five[\s-]*point\s+scale|"
           r"5[\s-]?ps|ds)")
_DS_GAP = (r"(?:[\s:=(-]*(?:score|scale|criteria|category|grade|rating|of|was|is|equals|"
           r"(?:at|in|of)\s+(?:all\s+)?(?:the\s+)?(?:lymphoma\s+|residual\s+|nodal\s+|known\s+)?"
           r"(?:sites?|lesions?|disease))\b)*[\s:=(-]*")
_DS_RE = re.compile(rf"\b{_DS_KEY}(?![a-z0-9]){_DS_GAP}([1-5x])\b(?![\s-]*point)(?!\s*(?:\.\d|,\d|cm|mm|%))"
                    r"(?:\s*(?:-|–|to|or|/)\s*([1-5])\b(?!\s*(?:\.\d|cm|mm|%)))?", re.I)
_DS_RANGE = re.compile(r"\b([1-5])\s*(-|–|to|or|/)\s*([1-5])\b(?!\s*(?:\.\d|cm|mm|%))")
_DS_FROM_TO = re.compile(rf"\b{_DS_KEY}(?![a-z0-9])[^.;]{{0,30}}?\bfrom\s+([1-5])\s+to\s+([1-5x])\b", re.I)
_SCORE_X = re.compile(r"\bscored?\s*(?:of\s*)?(x)\b", re.I)
_PAREN_BASE = re.compile(r"^\s*\(\s*(?:at\s+)?(?:baseline|(?<!re)staging|pre-?treatment|previously|prior|initially)"
                         r"\s*(?:deauville|ds|5-?ps|score|suv\s*max|suvmax)?\s*[:=]?\s*(\d+(?:\.\d+)?|x)\s*\)", re.I)
_NOT_LYMPHOMA = re.compile(r"\bscore\s*x\b|\bdeauville\s*x\b|\(x\)|unlikely|infect|inflammat|reactive|sarcoid|"
                           r"physiolog|benign|brown fat|post-?surgical|fracture|equivocal|indeterminate|"
                           r"uncertain significance|not (?:related|attributable|consistent) (?:to|with)", re.I)


@dataclass
class TextScore:
    score: int | str
    about_baseline: bool
    site: str
    ambiguous_range: bool = False


def _stated_spans(sentence: str, kind: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, value, negated) of statements of ``kind`` found by the shared report-text extractor."""
    if _stated_extract is None:
        return []
    return [(st.start, st.end, st.value, st.negated) for st in _stated_extract(sentence) if st.kind == kind]


def deauville_in_text(text: str) -> list[TextScore]:
    """Deauville scores stated in report text (negated and threshold mentions skipped).

    Statements come from the shared extractor (fhir_mappings.report_text) and this module's patterns together
    (the union, so "score X", "from 5 to 3" and ranges are read too); a mention negated by either is skipped.
    Each is marked as about the baseline scan when the sentence says so ("baseline Deauville 5")."""
    out: list[TextScore] = []
    for sent in sentences(text):
        taken: list[tuple[int, int]] = []
        for m in _DS_FROM_TO.finditer(sent):
            if negated(sent, m.start(), m.end()):
                continue
            taken.append(m.span())
            out.append(TextScore(int(m.group(1)), True, ""))
            cur = m.group(2).upper()
            out.append(TextScore(cur if cur == "X" else int(cur), False, ""))
        shared = _stated_spans(sent, "deauville")
        found: list[tuple[int, int, str, bool]] = [(a, b, v, n) for a, b, v, n in shared]
        for m in list(_DS_RE.finditer(sent)) + list(_SCORE_X.finditer(sent)):
            found.append((m.start(), m.end(), m.group(1).upper(), negated(sent, m.start(), m.end())))
        found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
        groups: list[list[tuple[int, int, str, bool]]] = []
        for f in found:
            if groups and f[0] < max(g[1] for g in groups[-1]):
                groups[-1].append(f)
            else:
                groups.append([f])
        for g in groups:
            start = min(f[0] for f in g if not f[3]) if any(not f[3] for f in g) else g[0][0]
            end = max(f[1] for f in g)
            if any(f[3] for f in g) or any(a <= start < b for a, b in taken):
                continue
            if re.match(r"[\s-]*point", sent[end:]):
                continue  # "Deauville 5-point scale": the scale's name, not a score
            raw = g[0][2].strip().upper()
            if raw not in ("1", "2", "3", "4", "5", "X"):
                continue
            score: int | str = raw if raw == "X" else int(raw)
            ambiguous = False
            rng = _DS_RANGE.search(sent, start, end + 12)
            if rng and score != "X" and int(rng.group(1)) == score:
                if not (rng.group(3) == "5" and rng.group(2) == "/"):
                    score, ambiguous = max(int(score), int(rng.group(3))), True
                end = max(end, rng.end())
            site = _CLAUSE_BREAK.split(sent[:start])[-1].strip(" ()-") if score == "X" else ""
            out.append(TextScore(score, about_baseline(sent, start), site[:80], ambiguous))
            pb = _PAREN_BASE.match(sent[end:])
            if pb and pb.group(1).isdigit() and 1 <= int(pb.group(1)) <= 5:
                out.append(TextScore(int(pb.group(1)), True, ""))
    return out


_SUV_RE = re.compile(r"\b(?:suv\s*\(?max\)?|maximum\s+suv|suvmax)\b[\s:=]*(?:(?:of|was|is|up\s+to|measuring|"
                     r"measured|approximately|approx\.?|about|~)\s*)*[\s:=]*(\d+(?:\.\d+)?)(?!\s*%)", re.I)
_SUV_FROM_TO = re.compile(r"\b(?:suv\s*\(?max\)?|maximum\s+suv|suvmax)\b[^.;]{0,30}?\bfrom\s+(\d+(?:\.\d+)?)\s+to\s+"
                          r"(\d+(?:\.\d+)?)", re.I)
_REFERENCE_ORGAN = re.compile(r"\b(liver|hepatic|mediastin\w*|blood\s*pool|reference|background|aort\w*)\b", re.I)


def suvmax_in_text(text: str) -> tuple[Decimal | None, Decimal | None]:
    """(highest SUVmax of lymphoma sites, baseline SUVmax) stated in report text; reference organs excluded."""
    cur: list[Decimal] = []
    base: list[Decimal] = []
    for sent in sentences(text):
        if _NOT_LYMPHOMA.search(sent):
            continue
        taken: list[tuple[int, int]] = []
        for m in _SUV_FROM_TO.finditer(sent):
            taken.append(m.span())
            base.append(Decimal(m.group(1)))
            cur.append(Decimal(m.group(2)))
        for m in _SUV_RE.finditer(sent):
            if any(a <= m.start() < b for a, b in taken):
                continue
            clause = _CLAUSE_BREAK.split(sent[:m.start()])[-1]
            if _REFERENCE_ORGAN.search(" ".join(clause.split()[-3:])):
                continue
            (base if about_baseline(sent, m.start()) else cur).append(Decimal(m.group(1)))
            pb = _PAREN_BASE.match(sent[m.end():])
            if pb and pb.group(1).upper() != "X":
                base.append(Decimal(pb.group(1)))
    return (max(cur) if cur else None), (max(base) if base else None)


_NEW_RE = re.compile(r"\bnew(?:ly)?\b[\w\s/.-]{0,40}?\b(lesions?|foci|focus|sites?|nodes?|nodules?|mass(?:es)?|areas?|"
                     r"deposits?|uptake|disease|involvement|lymphadenopathy|adenopathy)\b", re.I)


def new_lesions_in_text(text: str) -> bool | None:
    """True when a report states new lesion(s) consistent with lymphoma, False when it states none, else None.
    Mentions attributed to another cause (score X, infection, inflammation...) are not counted either way."""
    found: bool | None = None
    for sent in sentences(text):
        mentions = [(m.start(), m.end(), m.group(0), negated(sent, m.start(), m.end())) for m in _NEW_RE.finditer(sent)]
        mentions += [(a, b, sent[a:b], n) for a, b, _, n in _stated_spans(sent, "new_lesion")]
        for start, end, words, neg in mentions:
            if "marrow" in sent.lower() and "lesion" not in words.lower():
                continue
            if neg or any(n for a, b, _, n in mentions if a < end and start < b):
                found = False if found is None else found
                continue
            if _NOT_LYMPHOMA.search(sent):
                continue
            found = True
    return found


_FOCAL = re.compile(r"\b(focal|foci|focus|multifocal|lesions?|involvement|infiltrat\w*|fdg-avid disease|avid disease|"
                    r"deposits?)\b", re.I)
_DIFFUSE = re.compile(r"\b(diffuse\w*|reactive|g-?csf|growth factor|homogene\w*|hyperplas\w*|rebound|"
                      r"stimulat\w*)\b", re.I)
_NEGATIVE_MARROW = re.compile(r"\b(no|physiologic\w*|unremarkable|negative|not involved|uninvolved)\b|^\s*normal\b|"
                              r"\bnormal\s+(?:marrow\s+)?(?:uptake|appearance|activity|marrow)\b|\bwithin normal\b",
                              re.I)
_REDUCED = re.compile(r"\b(reduc\w*|decreas\w*|improv\w*|less|lower|diminish\w*|residual|partial\w*)\b", re.I)
_UNCHANGED = re.compile(r"\b(unchanged|no (?:significant )?change|stable|persist\w*|similar)\b", re.I)
_INCREASED = re.compile(r"\b(increas\w*|higher|more intense|progress\w*|greater)\b", re.I)
_NEW_OR_RECURRENT = re.compile(r"\b(new|recurren\w*|reappear\w*)\b", re.I)

FOCAL_UNQUALIFIED = "focal"


def _hit(rx: re.Pattern, t: str) -> bool:
    return any(not negated(t, m.start(), m.end()) for m in rx.finditer(t))


def pet_marrow_of_text(text: str) -> engine.PetMarrow | str | None:
    """Marrow FDG pattern from words; ``FOCAL_UNQUALIFIED`` when focal uptake is stated without a comparison."""
    t = " ".join(text.split())
    if not t:
        return None
    t = re.sub(r"\bno\s+(?:significant\s+|interval\s+)?change\b", "unchanged", t, flags=re.I)
    focal = _hit(_FOCAL, t)
    if _hit(_NEW_OR_RECURRENT, t) and (focal or re.search(r"uptake|avid|fdg|activity", t, re.I)):
        return engine.PetMarrow.NEW_OR_RECURRENT
    reduced, unchanged = _hit(_REDUCED, t), _hit(_UNCHANGED, t)
    if focal:
        if reduced:
            return engine.PetMarrow.RESIDUAL_REDUCED
        if unchanged:
            return engine.PetMarrow.UNCHANGED
        return FOCAL_UNQUALIFIED
    if re.search(r"\b(reactive|g-?csf|growth factor|rebound|stimulat\w*|hyperplas\w*)\b", t, re.I):
        return engine.PetMarrow.DIFFUSE_REACTIVE
    if reduced:
        return engine.PetMarrow.RESIDUAL_REDUCED
    if unchanged:
        return engine.PetMarrow.UNCHANGED
    if re.search(r"\b(diffuse\w*|homogene\w*)\b", t, re.I):
        return engine.PetMarrow.DIFFUSE_REACTIVE
    if _NEGATIVE_MARROW.search(t):
        return engine.PetMarrow.NO_FDG_AVID_DISEASE
    return None


_NOT_DONE = re.compile(r"\bnot\s+(?:re-?)?(?:biopsied|assessed|done|performed|repeated|examined|sampled|evaluated)\b|"
                       r"\bno (?:repeat|biopsy|re-?biopsy)\b|\bpending\b|\bnot available\b", re.I)
_INVOLVED = re.compile(r"\b(involve\w*|infiltrat\w*|lymphoma|positive|disease)\b", re.I)


def ct_marrow_of_text(text: str) -> engine.CtMarrow | None:
    t = " ".join(text.split())
    if not t or _NOT_DONE.search(t):
        return None
    if re.search(r"\bindeterminate\b|\bequivocal\b", t, re.I):
        if re.search(r"\b(ihc|immunohistochem\w*)\b[^.;]{0,20}\bnegative\b|\bnegative\b[^.;]{0,20}\b(ihc|immunohisto)",
                     t, re.I):
            return engine.CtMarrow.NOT_INVOLVED
        return engine.CtMarrow.INDETERMINATE
    if re.search(r"\buninvolved\b", t, re.I):
        return engine.CtMarrow.NOT_INVOLVED
    hits = list(_INVOLVED.finditer(t))
    if any(not negated(t, m.start(), m.end()) and not (m.group(1).lower() == "positive" and re.search(
            r"\bnegative\b", t, re.I)) for m in hits):
        return engine.CtMarrow.INVOLVED
    if hits or re.search(r"\b(negative|normal|no evidence|unremarkable|clear)\b", t, re.I):
        return engine.CtMarrow.NOT_INVOLVED
    return None


_SPD_PCT = re.compile(r"\bSPD\b[^.;%]{0,40}?([+\-−–]?)\s*(\d+(?:\.\d+)?)\s*%", re.I)
_PCT_SPD = re.compile(r"([+\-−–]?)\s*(\d+(?:\.\d+)?)\s*%\s*(?:\w+\s+){0,3}?(?:in|of)\s+(?:the\s+)?SPD\b", re.I)
_DOWN = re.compile(r"\b(decreas\w*|reduc\w*|declin\w*|smaller|fall|fell|drop\w*|lower|shrink\w*|regress\w*)\b", re.I)
_UP = re.compile(r"\b(increas\w*|grow\w*|grew|larger|rise|rose|higher|enlarg\w*)\b", re.I)


def spd_pct_in_text(text: str) -> tuple[Decimal | None, str | None]:
    """SPD % change from baseline stated in a report, signed; (None, why) when stated but unusable."""
    for sent in sentences(text):
        m = _SPD_PCT.search(sent) or _PCT_SPD.search(sent)
        if not m:
            continue
        if re.search(r"\bnadir\b|\bprior\b|\bprevious\b|\blast\b", sent, re.I) and not re.search(
                r"\bbaseline\b", sent, re.I):
            return None, "SPD change stated against an earlier scan, not against baseline"
        sign, value = m.group(1), Decimal(m.group(2))
        if sign in ("-", "−", "–"):
            return -value, None
        if sign == "+":
            return value, None
        down, up = bool(_DOWN.search(sent)), bool(_UP.search(sent))
        if value == 0:
            return value, None
        if down and not up:
            return -value, None
        if up and not down:
            return value, None
        return None, "SPD change stated without a direction"
    return None, None


def uptake_in_text(text: str) -> engine.UptakeChange | None:
    """The reader's comparison of lymphoma-site uptake with baseline ("reduced uptake compared with baseline")."""
    found: set[engine.UptakeChange] = set()
    for sent in sentences(text):
        if re.search(r"marrow|spleen|splenic", sent, re.I) or _NOT_LYMPHOMA.search(sent):
            continue
        if not re.search(r"\b(compared|versus|vs\.?|relative to|since|than)\b[^.;]{0,25}\b(baseline|staging|prior|"
                         r"previous|pre-?treatment)\b|\bfrom baseline\b", sent, re.I):
            continue
        if not re.search(r"\b(uptake|fdg|avidity|metabolic|metabolism|activity|suv)\b", sent, re.I):
            continue
        if _UNCHANGED.search(sent):
            found.add(engine.UptakeChange.UNCHANGED)
        elif _REDUCED.search(sent) and not _INCREASED.search(sent):
            found.add(engine.UptakeChange.REDUCED)
        elif _INCREASED.search(sent) and not _REDUCED.search(sent):
            found.add(engine.UptakeChange.INCREASED)
    return found.pop() if len(found) == 1 else None


# ===========================================================================
# Small readers
# ===========================================================================

def _items(value: Any) -> list:
    """A FHIR list element, or [] when the element is missing or malformed."""
    return value if isinstance(value, list) else []


def _report_text(rep: Resource) -> str:
    return report_text({**rep, "presentedForm": _items(rep.get("presentedForm"))})


def _timepoint_dates(record: PatientRecord) -> dict[str, date]:
    """Observation reference -> date of the report that groups it (``result``): the report date is the scan date."""
    when: dict[str, date] = {}
    for rep in record.of_type("DiagnosticReport"):
        d = effective_date(rep)
        if d is None:
            continue
        for r in _items(rep.get("result")):
            target = record.get(r)
            if target is not None and ref_of(target):
                when[ref_of(target) or ""] = d
    return when


def _lesion_key(obs: Resource, record: PatientRecord) -> tuple[str, Resource | None]:
    """The lesion's BodyStructure identifier (as fhir_mappings.recist), tolerant of malformed focus elements."""
    for f in _items(obs.get("focus")):
        if not isinstance(f, dict):
            continue
        body = record.get(f)
        if body is not None:
            for ident in _items(body.get("identifier")):
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    return ident["value"], body
            return ref_of(body) or "", body
        ident = f.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return ident["value"], None
        if isinstance(f.get("reference"), str):
            return f["reference"], None
    site = concept_text(obs.get("bodySite"))
    return (f"site:{site}" if site else ""), None


def _is_nodal(obs: Resource, body: Resource | None) -> bool:
    """Nodal lesion: the NODAL component, or a lymph-node location (as fhir_mappings.recist, tolerant)."""
    for c in _components(obs, codes.NODAL):
        if isinstance(c.get("valueBoolean"), bool):
            return c["valueBoolean"]
    for res, key in ((body, "location"), (obs, "bodySite")):
        if res and isinstance(res.get(key), dict):
            if concept_keys(res[key]) & codes.LYMPH_NODE_SNOMED:
                return True
            if re.search(r"lymph node|\bln\b|\bnodes?\b|nodal", _displays(res[key])):
                return True
    return False


def _displays(concept: Any) -> str:
    """The text and every coding display of a CodeableConcept (lower-cased), tolerant of malformed input."""
    if not isinstance(concept, dict):
        return ""
    out = [concept_text(concept)]
    out += [c["display"] for c in _items(concept.get("coding")) if isinstance(c, dict)
            and isinstance(c.get("display"), str)]
    return " ".join(out).lower()


def _components(obs: Resource, key: str) -> list[dict]:
    return [c for c in _items(obs.get("component")) if isinstance(c, dict) and key in concept_keys(c.get("code"))]


def _comp_bool(obs: Resource, key: str) -> bool | None:
    for c in _components(obs, key):
        if isinstance(c.get("valueBoolean"), bool):
            return c["valueBoolean"]
        for k in concept_keys(c.get("valueCodeableConcept")):
            v = k.split("|", 1)[1].lower()
            if v in ("y", "yes", "true", "373066001"):
                return True
            if v in ("n", "no", "false", "373067005"):
                return False
    return None


def _value_words(obs: Resource) -> tuple[list[str], str]:
    """(codes of valueCodeableConcept, lower-cased words: display/text/valueString)."""
    vc = obs.get("valueCodeableConcept")
    keys = [k.split("|", 1)[1].lower() for k in concept_keys(vc)]
    text = concept_text(vc) or (obs.get("valueString") if isinstance(obs.get("valueString"), str) else "")
    return keys, (text or "").lower()


def _notes(obs: Resource) -> str:
    return " ".join(n["text"] for n in _items(obs.get("note")) if isinstance(n, dict) and
                    isinstance(n.get("text"), str))


def _suv(obs: Resource, record: PatientRecord) -> Decimal | None:
    v, unit, _ = quantity(obs.get("valueQuantity"))
    if v is None:
        v = to_decimal(obs.get("valueDecimal") if "valueDecimal" in obs else obs.get("valueInteger"))
        unit = None
    if v is None:
        record.issue(obs, "SUVmax skipped", "no numeric value")
        return None
    u = (unit or "").strip()
    if u in SUV_SPEC.rejected:
        record.issue(obs, "SUVmax skipped", SUV_SPEC.rejected[u])
        return None
    if u and u not in SUV_UNITS:
        record.issue(obs, "SUVmax skipped", f"unit '{u}' is not accepted for SUVmax; expected a unitless SUV "
                     f"({', '.join(SUV_UNITS[:3])}, g/mL or none)")
        return None
    if v < 0:
        record.issue(obs, "SUVmax skipped", "negative value")
        return None
    return v


def _length(obs: Resource, record: PatientRecord, spec: UnitSpec, what: str,
            q: Any = None) -> Decimal | None:
    v, unit, _ = quantity(q if q is not None else obs.get("valueQuantity"))
    if v is None:
        return None
    try:
        mm = normalise(v, unit, spec)
    except UnitError as exc:
        record.issue(obs, f"{what} skipped", str(exc))
        return None
    if mm < 0:
        record.issue(obs, f"{what} skipped", "negative value")
        return None
    return mm


def deauville_of(obs: Resource, record: PatientRecord) -> int | str | None:
    """Score 1-5 or "X" of one Deauville Observation (valueInteger + NCIt interpretation), or None with an issue."""
    interp: int | str | None = None
    for c in _items(obs.get("interpretation")):
        for _, code in codings(c):
            if code in NCIT_DEAUVILLE:
                interp = NCIT_DEAUVILLE[code]
    value: int | str | None = None
    bad = False
    raw: Any = None
    if "valueInteger" in obs:
        raw = obs["valueInteger"]
    elif isinstance(obs.get("valueQuantity"), dict):
        raw = to_decimal(obs["valueQuantity"].get("value"))
    elif isinstance(obs.get("valueString"), str):
        raw = obs["valueString"]
    elif isinstance(obs.get("valueCodeableConcept"), dict):
        keys, text = _value_words(obs)
        for k in keys:
            if k.upper() in NCIT_DEAUVILLE:
                raw = NCIT_DEAUVILLE[k.upper()]
            elif k.strip().upper() in ("1", "2", "3", "4", "5", "X"):
                raw = k
        raw = raw if raw is not None else text
    if raw is not None:
        if isinstance(raw, bool):
            bad = True
        elif isinstance(raw, (int, Decimal)):
            if raw == int(raw) and 1 <= int(raw) <= 5:
                value = int(raw)
            else:
                bad = True
        elif isinstance(raw, str):
            s = raw.strip().upper()
            m = re.fullmatch(r"(?:DEAUVILLE|DS|5-?PS|SCORE)?\s*(?:SCORE)?\s*[:=]?\s*([1-5X])", s)
            if m:
                value = m.group(1) if m.group(1) == "X" else int(m.group(1))
            else:
                bad = True
    if bad:
        record.issue(obs, "Deauville score skipped", "value is not a Deauville score (1-5 or X)")
        return None
    if value is not None and interp is not None and value != interp:
        record.issue(obs, "Deauville score skipped", "value and interpretation disagree")
        return None
    score = value if value is not None else interp
    if score is None:
        if not obs.get("dataAbsentReason"):
            record.issue(obs, "Deauville score skipped", "no value")
        return None
    return score


def _is_pet_report(rep: Resource, deauville_refs: set[str]) -> bool:
    title = _displays(rep.get("code"))
    if re.search(r"\bpet\b|fdg|positron", title):
        return True
    if any(isinstance(r, dict) and r.get("reference") in deauville_refs for r in _items(rep.get("result"))):
        return True
    text = (rep.get("conclusion") or "") if isinstance(rep.get("conclusion"), str) else ""
    return bool(re.search(r"\bdeauville\b|\b5-?ps\b|\bfdg\b", text, re.I))


def _is_marrow_report(rep: Resource) -> bool:
    if concept_keys(rep.get("code")) & MARROW_REPORT_CODES:
        return True
    return "marrow" in concept_text(rep.get("code")).lower()


def _report_title(rep: Resource) -> str:
    return concept_text(rep.get("code")) or ""


_LABEL_BASELINE = re.compile(r"\b(baseline|(?<!re)staging|pre-?treatment|pre-?therapy|initial)\b", re.I)
_LABEL_INTERIM = re.compile(r"\b(interim|mid-?treatment|after (?:cycle|\d+ cycles?)|post[- ]cycle|i-?pet)\b", re.I)
_LABEL_END = re.compile(r"\b(end[- ]of[- ](?:treatment|therapy)|eot|post-?treatment|(?:after|on) completion)\b",
                        re.I)


def _label(title: str, text: str) -> str | None:
    """interim / end of treatment / baseline, from the report title or the first sentence of its text. "Baseline"
    in the text counts only when the report introduces itself so ("Baseline staging PET-CT"), not when it compares
    with the baseline ("Deauville 4, compared with baseline Deauville 5")."""
    first = (sentences(text) or [""])[0][:120]
    for head in (title, first):
        if _LABEL_INTERIM.search(head):
            return "interim"
        if _LABEL_END.search(head):
            return "end of treatment"
    if _LABEL_BASELINE.search(title):
        return "baseline"
    m = _LABEL_BASELINE.search(first)
    if m and not _REF_WORDS.search(first[:m.start()]) and m.start() < 40:
        return "baseline"
    return None


def _nearest(d: date, anchors: list[date], window: int) -> date:
    best = min(anchors, key=lambda a: (abs((a - d).days), a < d), default=None)
    if best is not None and abs((best - d).days) <= window:
        return best
    return d


# ===========================================================================
# Histology and modality
# ===========================================================================

def fdg_avid(record: PatientRecord, routed: RoutedCancer) -> bool | None:
    """True for routinely FDG-avid histologies, False for variably avid ones, None when the record does not say."""
    cond = record.get(routed.condition_ref) if routed.condition_ref else None
    text = (routed.condition_text or "").lower()
    icd: list[str] = []
    if cond is not None:
        text += " " + _displays(cond.get("code"))
        icd = [code.upper() for system, code in codings(cond.get("code")) if re.fullmatch(r"[Cc]\d{2}.*", code)]
    if "non-hodgkin" not in text and any(w in text for w in _NON_AVID_WORDS):
        return False
    if any(w in text.replace("non-hodgkin", "") for w in _AVID_WORDS):
        return True
    if any(c.startswith(p) for c in icd for p in _NON_AVID_ICD):
        return False
    if any(c.startswith(p) for c in icd for p in _AVID_ICD):
        return True
    return None


def _immunomodulatory(record: PatientRecord) -> bool:
    for rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement"):
        for res in record.of_type(rtype):
            words = _displays(res.get("medicationCodeableConcept"))
            if any(w in words for w in _IMMUNOMODULATORY):
                return True
    return False


# ===========================================================================
# PET-CT
# ===========================================================================

@dataclass
class _PetPoint:
    date: date
    # (score, site, new site, uptake not above surrounding tissue, reference) per coded Deauville Observation
    coded: list[tuple[int | str, str, bool, bool, str | None]] = field(default_factory=list)
    text_scores: list[TextScore] = field(default_factory=list)
    text: str = ""
    suv: Decimal | None = None
    marrow: engine.PetMarrow | str | None = None
    new: bool | None = None
    uptake: engine.UptakeChange | None = None
    residual: tuple[Decimal, Decimal] | None = None
    label: str | None = None
    refs: list[str] = field(default_factory=list)
    report: bool = False

    @property
    def has_score(self) -> bool:
        return bool(self.coded) or any(not t.about_baseline for t in self.text_scores)


def _obs(record: PatientRecord, keys: Iterable[str], options: Mapping[str, Any] | None,
         input_name: str) -> list[Resource]:
    all_keys = list(keys) + [k for k, _ in local_codes(options, input_name)]
    return record.with_codes(all_keys, "Observation")


def _pet_points(record: PatientRecord, options: Mapping[str, Any] | None) -> dict[date, _PetPoint]:
    tp_dates = _timepoint_dates(record)
    points: dict[date, _PetPoint] = {}

    def when(obs: Resource, what: str) -> date | None:
        d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
        if d is None:
            record.issue(obs, f"{what} skipped", "no date")
        return d

    ds_obs = _obs(record, [DEAUVILLE, DEAUVILLE_LOCAL], options, "deauville")
    ds_refs = {r for o in ds_obs if (r := ref_of(o))}
    for obs in ds_obs:
        d = when(obs, "Deauville score")
        if d is None:
            continue
        score = deauville_of(obs, record)
        if score is None:
            continue
        site = concept_text(obs.get("bodySite"))
        pt = points.setdefault(d, _PetPoint(d))
        pt.coded.append((score, site, bool(_comp_bool(obs, SITE_NEW)), bool(_comp_bool(obs, SITE_PHYSIOLOGICAL)),
                         ref_of(obs)))
        if ref_of(obs):
            pt.refs.append(ref_of(obs) or "")
    for rep in record.of_type("DiagnosticReport"):
        if not _is_pet_report(rep, ds_refs):
            continue
        d = effective_date(rep)
        if d is None:
            record.issue(rep, "PET-CT report skipped", "no date")
            continue
        text = _report_text(rep)
        pt = points.setdefault(d, _PetPoint(d))
        pt.report = True
        pt.text += "\n" + text
        pt.label = pt.label or _label(_report_title(rep), text)
        pt.text_scores.extend(deauville_in_text(text))
        if ref_of(rep):
            pt.refs.insert(0, ref_of(rep) or "")
    return points


def _attach_pet_findings(record: PatientRecord, points: dict[date, _PetPoint],
                         options: Mapping[str, Any] | None) -> None:
    tp_dates = _timepoint_dates(record)
    anchors = sorted(points)

    def point_for(obs: Resource, what: str, create: bool = True) -> _PetPoint | None:
        d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
        if d is None:
            record.issue(obs, f"{what} skipped", "no date")
            return None
        d = _nearest(d, anchors, ATTACH_DAYS)
        if d not in points and not create:
            return None  # a finding shared with CT (new lesion) does not make a PET-CT by itself
        return points.setdefault(d, _PetPoint(d))

    for obs in _obs(record, [SUV_MAX], options, "suv_max"):
        v = _suv(obs, record)
        pt = point_for(obs, "SUVmax") if v is not None else None
        if pt is not None and v is not None:
            pt.suv = v if pt.suv is None else max(pt.suv, v)
    for obs in _obs(record, [PET_MARROW], options, "bone_marrow_fdg"):
        pt = point_for(obs, "marrow FDG finding")
        if pt is None:
            continue
        keys, text = _value_words(obs)
        value: engine.PetMarrow | str | None = None
        for k in keys:
            k2 = k.replace("-", "_")
            if k2 in engine.PetMarrow._value2member_map_:
                value = engine.PetMarrow(k2)
        if value is None:
            value = pet_marrow_of_text(text or _notes(obs))
        if value is None:
            record.issue(obs, "marrow FDG finding skipped", "value not recognised")
        else:
            pt.marrow = value
    for obs in _obs(record, [NEW_LESION, codes.NEW_LESION], options, "new_lesion"):
        pt = point_for(obs, "new-lesion finding", create=False)
        if pt is None:
            continue
        keys, text = _value_words(obs)
        if any("equivocal" in k for k in keys) or "equivocal" in text:
            continue  # PMD needs new foci consistent with lymphoma
        v = _bool_value(obs)
        if v is None:
            record.issue(obs, "new-lesion finding skipped", "value not recognised")
        elif v and _comp_bool(obs, ATTRIBUTABLE) is False:
            continue
        else:
            pt.new = v if pt.new is None else (pt.new or v)
    for obs in _obs(record, [UPTAKE_VS_BASELINE], options, "uptake_vs_baseline"):
        pt = point_for(obs, "uptake comparison")
        if pt is None:
            continue
        keys, text = _value_words(obs)
        words = " ".join(keys) + " " + text
        found = [u for u in engine.UptakeChange if u.value in words]
        if len(found) == 1:
            pt.uptake = found[0]
        else:
            record.issue(obs, "uptake comparison skipped", "value not recognised")
    # residual mass: mCODE TumorSize on a PET-CT date (largest PPD)
    for obs in record.with_codes([codes.TUMOR_SIZE], "Observation"):
        d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
        if d is None:
            continue
        d2 = _nearest(d, anchors, ATTACH_DAYS)
        if d2 not in points:
            continue
        ldi, sdi, _, _ = _lesion_dims(obs, record)
        if ldi is not None and sdi is not None:
            cur = points[d2].residual
            if cur is None or ldi * sdi > cur[0] * cur[1]:
                points[d2].residual = (ldi, sdi)


def _bool_value(obs: Resource) -> bool | None:
    if isinstance(obs.get("valueBoolean"), bool):
        return obs["valueBoolean"]
    keys, text = _value_words(obs)
    for v in keys + [text.strip()]:
        if v in ("yes", "true", "y", "present", "373066001", "52101004", "10828004"):
            return True
        if v in ("no", "false", "n", "absent", "none", "373067005", "2667000", "260385009"):
            return False
    if text:
        return new_lesions_in_text(text) if "new" in text else None
    return None


def map_pet(record: PatientRecord, routed: RoutedCancer, options: Mapping[str, Any] | None = None,
            points: dict[date, _PetPoint] | None = None) -> LuganoMapping:
    options = options or {}
    if points is None:
        points = _pet_points(record, options)
        _attach_pet_findings(record, points, options)
    if not points:
        return LuganoMapping(None, "PET-CT", ("a PET-CT with a Deauville score (coded SNOMED 708895006 or in the "
                                              "PET report text)",))
    dates = sorted(points)
    labels = {d: points[d].label for d in dates}
    baseline_day: date | None = None
    labelled = [d for d in dates if labels[d] == "baseline"]
    if labelled:
        first_follow = next((d for d in dates if labels[d] != "baseline"), None)
        before = [d for d in labelled if first_follow is None or d < first_follow]
        baseline_day = before[-1] if before else None
    elif len(dates) >= 2 and labels[dates[0]] is None:
        baseline_day = dates[0]
    notes: list[str] = []

    def scan_of(pt: _PetPoint, is_baseline: bool) -> engine.PetScan:
        highest: int | None = None
        findings: list[engine.PetFinding] = []
        as_reported = False
        if pt.coded:
            for score, site, new, phys, ref in pt.coded:
                if score == "X" or new or phys or site:
                    findings.append(engine.PetFinding(site or "unspecified site", score, new, phys, ref))
                else:
                    highest = score if highest is None else max(highest, int(score))  # type: ignore[arg-type]
            stated = [t.score for t in pt.text_scores if not t.about_baseline and t.score != "X"]
            coded_max = max([int(s) for s, *_ in pt.coded if s != "X"], default=None)
            if stated and coded_max is not None and max(int(s) for s in stated) != coded_max:
                record.issue(None, "Deauville score in report text not used",
                             f"the report text and the coded score of the {pt.date.isoformat()} PET-CT disagree; "
                             "the coded score was used")
        else:
            own = [t for t in pt.text_scores if is_baseline or not t.about_baseline]
            for t in own:
                if t.score == "X":
                    findings.append(engine.PetFinding(t.site or "site described in the report", "X"))
                else:
                    highest = int(t.score) if highest is None else max(highest, int(t.score))
                if t.ambiguous_range:
                    record.issue(None, "Deauville score range in report text",
                                 f"a range was reported on the {pt.date.isoformat()} PET-CT; the higher score was used")
            as_reported = bool(own)
        marrow = pt.marrow if isinstance(pt.marrow, engine.PetMarrow) else None
        if pt.marrow is None and pt.text and not is_baseline:
            marrow_sents = [s for s in sentences(pt.text) if "marrow" in s.lower()]
            if marrow_sents:
                v = pet_marrow_of_text(" ".join(marrow_sents))
                marrow = v if isinstance(v, engine.PetMarrow) else None
                if v == FOCAL_UNQUALIFIED:
                    pt.marrow = v
        new = pt.new
        if new is None and pt.text and not is_baseline:
            new = new_lesions_in_text(pt.text)
        uptake = pt.uptake
        if uptake is None and pt.text and not is_baseline:
            uptake = uptake_in_text(pt.text)
        suv = pt.suv
        if suv is None and pt.text:
            suv = suvmax_in_text(pt.text)[0]
        ref = next((r for r in pt.refs if r), None)
        return engine.PetScan(date=pt.date, highest_deauville_score=highest, suv_max=suv, findings=tuple(findings),
                              new_fdg_avid_lesions=new, bone_marrow=marrow, uptake_vs_baseline=uptake,
                              deauville_as_reported=as_reported, timepoint=pt.label if pt.label != "baseline" else None,
                              residual_mass_mm=pt.residual, ref=ref)

    baseline: engine.PetScan | None = None
    if baseline_day is not None:
        baseline = scan_of(points[baseline_day], True)
    follow = [d for d in dates if d != baseline_day and (baseline_day is None or d > baseline_day)]
    scans: list[engine.PetScan] = []
    prior_marrow: engine.PetMarrow | None = baseline.bone_marrow if baseline else None
    if baseline is not None and points[baseline_day].text:  # type: ignore[index]
        bt = [s for s in sentences(points[baseline_day].text) if "marrow" in s.lower()]  # type: ignore[index]
        v = pet_marrow_of_text(" ".join(bt)) if bt else None
        prior_marrow = engine.PetMarrow.NO_FDG_AVID_DISEASE if v in (
            engine.PetMarrow.NO_FDG_AVID_DISEASE, engine.PetMarrow.DIFFUSE_REACTIVE) else (
            engine.PetMarrow.UNCHANGED if v is not None else prior_marrow)
    for d in follow:
        pt = points[d]
        scan = scan_of(pt, False)
        if pt.marrow == FOCAL_UNQUALIFIED:
            if prior_marrow in (engine.PetMarrow.NO_FDG_AVID_DISEASE, engine.PetMarrow.DIFFUSE_REACTIVE):
                scan = _replace(scan, bone_marrow=engine.PetMarrow.NEW_OR_RECURRENT)
                notes.append(f"Focal marrow uptake on {d.isoformat()} where the marrow was free of FDG-avid disease "
                             "before: taken as new or recurrent marrow involvement.")
            else:
                record.issue(None, "focal marrow uptake not classified",
                             f"the {d.isoformat()} PET-CT reports focal marrow uptake without a comparison with "
                             "baseline; the highest Deauville score (whole-body, marrow included) governs")
        if scan.bone_marrow is not None:
            prior_marrow = scan.bone_marrow
        scans.append(scan)
    # baseline values stated in follow-up reports (when there is no baseline scan, or it lacks them)
    stated_ds = [int(t.score) for d in follow for t in points[d].text_scores if t.about_baseline and t.score != "X"]
    stated_suv = [v for d in follow if points[d].text and (v := suvmax_in_text(points[d].text)[1]) is not None]
    if baseline is None and (stated_ds or stated_suv):
        baseline = engine.PetScan(date=None, highest_deauville_score=max(stated_ds) if stated_ds else None,
                                  suv_max=max(stated_suv) if stated_suv else None, deauville_as_reported=True)
        notes.append("Baseline Deauville score/SUVmax taken from the follow-up report's comparison text.")
    elif baseline is not None:
        if baseline.highest_deauville_score is None and not baseline.findings and stated_ds:
            baseline = _replace(baseline, highest_deauville_score=max(stated_ds))
        if baseline.suv_max is None and stated_suv:
            baseline = _replace(baseline, suv_max=max(stated_suv))
    if not scans:
        return LuganoMapping(None, "PET-CT", ("a PET-CT after the baseline scan",), tuple(notes))
    inputs = engine.LuganoPetInputs(scans=tuple(scans), baseline=baseline, histology=routed.condition_text,
                                    immunomodulatory_therapy=_immunomodulatory(record))
    return LuganoMapping(inputs, "PET-CT", (), tuple(notes))


def _replace(scan: engine.PetScan, **kw: Any) -> engine.PetScan:
    from dataclasses import replace

    return replace(scan, **kw)


# ===========================================================================
# CT
# ===========================================================================

def _lesion_dims(obs: Resource, record: PatientRecord) -> tuple[Decimal | None, Decimal | None, bool, bool]:
    """(LDi mm, SDi mm, too_small, not_measured) of one TumorSize Observation; unit errors become issues."""
    too_small = "too small to measure" in _notes(obs).lower() or bool(
        concept_keys(obs.get("interpretation")) & {codes.TOO_SMALL})

    def value_of(comp: dict) -> Decimal | None:
        nonlocal too_small
        if codes.TOO_SMALL in concept_keys(comp.get("valueCodeableConcept")):
            too_small = True
            return None
        return _length(obs, record, DIAMETER_MM, "tumour size", comp.get("valueQuantity"))

    ldi = next((v for c in _components(obs, codes.LONGEST_DIMENSION) if (v := value_of(c)) is not None), None)
    sdi = next((v for c in _components(obs, codes.OTHER_DIMENSION) if (v := value_of(c)) is not None), None)
    if sdi is None:
        sdi = next((v for c in _components(obs, codes.SHORT_AXIS) if (v := value_of(c)) is not None), None)
    if ldi is not None and sdi is not None and sdi > ldi:
        ldi, sdi = sdi, ldi
    return ldi, sdi, too_small, ldi is None and not too_small


@dataclass
class _CtPoint:
    date: date
    lesions: dict[str, engine.LesionMeasurement] = field(default_factory=dict)
    spleen: Decimal | None = None
    marrow: engine.CtMarrow | None = None
    non_measured: engine.NonMeasured | None = None
    new_flag: bool | None = None
    new_lesions: list[engine.NewLesion] = field(default_factory=list)
    spd_mm2: Decimal | None = None
    spd_pct: Decimal | None = None
    new_splenomegaly: bool = False
    refs: list[str] = field(default_factory=list)
    text: str = ""


_NM_VALUES = {"absent": "absent", "cr": "absent", "none": "absent", "present": "present", "non-cr/non-pd": "present",
              "non-cr-non-pd": "present", "stable": "present", "unchanged": "present", "regressed": "regressed",
              "decreased": "regressed", "increased": "increased", "pd": "increased", "progression": "increased",
              "progressed": "increased"}


def _non_measured(obs: Resource) -> engine.NonMeasured | None:
    keys, text = _value_words(obs)
    for k in keys + [text.strip()]:
        if k in _NM_VALUES:
            return engine.NonMeasured(_NM_VALUES[k])
    t = text
    if not t:
        return None
    if re.search(r"unequivocal|progress|increas|enlarg", t):
        return engine.NonMeasured.INCREASED
    if re.search(r"regress|decreas|smaller|improv", t):
        return engine.NonMeasured.REGRESSED
    if re.search(r"\b(absent|resolved|none|no longer|disappeared|normal)\b", t):
        return engine.NonMeasured.ABSENT
    if re.search(r"present|stable|unchanged", t):
        return engine.NonMeasured.PRESENT
    return None


def _ct_marrow_of_obs(obs: Resource) -> engine.CtMarrow | None:
    if isinstance(obs.get("valueBoolean"), bool):
        return engine.CtMarrow.INVOLVED if obs["valueBoolean"] else engine.CtMarrow.NOT_INVOLVED
    keys, text = _value_words(obs)
    for k in keys:
        k2 = k.replace("-", "_")
        if k2 in engine.CtMarrow._value2member_map_:
            return engine.CtMarrow(k2)
        if k in ("10828004", "52101004", "positive"):
            return engine.CtMarrow.INVOLVED
        if k in ("260385009", "2667000", "negative"):
            return engine.CtMarrow.NOT_INVOLVED
    return ct_marrow_of_text(text or _notes(obs))


def map_ct(record: PatientRecord, routed: RoutedCancer, options: Mapping[str, Any] | None = None) -> LuganoMapping:
    options = options or {}
    tp_dates = _timepoint_dates(record)
    notes: list[str] = []

    def when(obs: Resource, what: str) -> date | None:
        d = tp_dates.get(ref_of(obs) or "", effective_date(obs))
        if d is None:
            record.issue(obs, f"{what} skipped", "no date")
        return d

    # --- lesions (mCODE TumorSize by BodyStructure identifier) ---
    @dataclass
    class _Les:
        key: str
        nodal: bool = False
        site: str | None = None
        role: str | None = None
        attributable: bool | None = None
        sizes: dict[date, engine.LesionMeasurement] = field(default_factory=dict)

    lesions: dict[str, _Les] = {}
    for obs in record.with_codes([codes.TUMOR_SIZE], "Observation"):
        d = when(obs, "tumour size")
        if d is None:
            continue
        key, body = _lesion_key(obs, record)
        if not key:
            record.issue(obs, "tumour size skipped", "no lesion identifier (focus) or body site to track it by")
            continue
        les = lesions.setdefault(key, _Les(key))
        les.nodal = les.nodal or _is_nodal(obs, body)
        les.site = les.site or _organ(obs, body)
        for c in _components(obs, codes.LESION_ROLE):
            for k in concept_keys(c.get("valueCodeableConcept")):
                v = k.split("|", 1)[1].lower().replace("nontarget", "non-target")
                if v in ("target", "non-target", "new"):
                    les.role = v
        a = _comp_bool(obs, ATTRIBUTABLE)
        les.attributable = a if a is not None else les.attributable
        ldi, sdi, small, not_measured = _lesion_dims(obs, record)
        kind = engine.LesionKind.NODAL if les.nodal else engine.LesionKind.EXTRANODAL
        if not_measured or (ldi is not None and sdi is None and not small):
            if ldi is not None and sdi is None:
                record.issue(obs, "tumour size incomplete", "LDi given without the perpendicular SDi (33729-5)")
            les.sizes[d] = engine.LesionMeasurement(key, None, None, kind=kind, ref=ref_of(obs))
        else:
            les.sizes[d] = engine.LesionMeasurement(key, ldi if not small else None, sdi if not small else None,
                                                    too_small_to_measure=small, kind=kind, ref=ref_of(obs))

    points: dict[date, _CtPoint] = {}
    lesion_dates = {d for les in lesions.values() for d in les.sizes}

    # --- stated SPD / SPD % change (coded, then CT report text) ---
    spd_dates: dict[date, tuple[str, Decimal, str | None]] = {}
    for obs in _obs(record, [SPD], options, "spd"):
        d = when(obs, "SPD")
        v = _length(obs, record, SPD_MM2, "SPD") if d is not None else None
        if d is not None and v is not None:
            spd_dates[d] = ("mm2", v, ref_of(obs))
    pct_dates: dict[date, tuple[Decimal, str | None]] = {}
    for obs in _obs(record, [SPD_PCT], options, "spd_pct_change"):
        d = when(obs, "SPD % change")
        if d is None:
            continue
        v, unit, _ = quantity(obs.get("valueQuantity"))
        if v is None:
            record.issue(obs, "SPD % change skipped", "no numeric value")
            continue
        try:
            pct_dates[d] = (normalise(v, unit, PCT), ref_of(obs))
        except UnitError as exc:
            record.issue(obs, "SPD % change skipped", str(exc))
    ct_reports: list[tuple[date, Resource, str]] = []
    ds_refs: set[str] = set()
    for rep in record.of_type("DiagnosticReport"):
        if _is_marrow_report(rep) or _is_pet_report(rep, ds_refs):
            continue
        d = effective_date(rep)
        if d is None:
            continue
        text = _report_text(rep)
        ct_reports.append((d, rep, text))
        if d not in pct_dates:
            pct, why = spd_pct_in_text(text)
            if pct is not None:
                pct_dates[d] = (pct, ref_of(rep))
            elif why:
                record.issue(rep, "SPD change in report text not used", why)

    # --- spleen ---
    spleen: dict[date, tuple[Decimal, str | None]] = {}
    normal: Decimal | None = None
    for obs in _obs(record, [SPLEEN_LENGTH], options, "spleen_length"):
        d = when(obs, "spleen length")
        if d is None:
            continue
        v = _length(obs, record, SPLEEN_MM, "spleen length")
        if v is None:
            if quantity(obs.get("valueQuantity"))[0] is None:
                record.issue(obs, "spleen length skipped", "no numeric value")
            continue
        spleen[d] = (v, ref_of(obs))
        for rr in _items(obs.get("referenceRange")):
            if isinstance(rr, dict) and isinstance(rr.get("high"), dict):
                n = _length(obs, record, SPLEEN_MM, "spleen reference range", rr["high"])
                if n is not None and n > 0:
                    normal = n

    anchors = sorted(lesion_dates | set(spd_dates) | set(pct_dates))
    if not anchors:
        anchors = sorted(spleen)

    def point(d: date, window: int) -> _CtPoint:
        d = _nearest(d, anchors, window) if anchors else d
        return points.setdefault(d, _CtPoint(d))

    for d in anchors:
        points.setdefault(d, _CtPoint(d))
    for d, (v, ref) in spleen.items():
        pt = point(d, ATTACH_DAYS)
        pt.spleen = v
        if ref:
            pt.refs.append(ref)
    for d, (_, v, ref) in spd_dates.items():
        points[d].spd_mm2 = v
    for d, (v, ref) in pct_dates.items():
        points[d].spd_pct = v
        if ref:
            points[d].refs.append(ref)

    # --- marrow (coded, then bone-marrow report text) ---
    for obs in _obs(record, [MARROW_INVOLVEMENT], options, "bone_marrow_involvement"):
        d = when(obs, "marrow finding")
        if d is None:
            continue
        v = _ct_marrow_of_obs(obs)
        if v is None:
            continue
        pt = point(d, MARROW_ATTACH_DAYS)
        pt.marrow = v
        if ref_of(obs):
            pt.refs.append(ref_of(obs) or "")
    coded_marrow_dates = {d for d, p in points.items() if p.marrow is not None}
    for rep in record.of_type("DiagnosticReport"):
        if not _is_marrow_report(rep):
            continue
        d = effective_date(rep)
        if d is None:
            record.issue(rep, "bone marrow report skipped", "no date")
            continue
        v = ct_marrow_of_text(_report_text(rep))
        if v is None:
            continue
        target = _nearest(d, anchors, MARROW_ATTACH_DAYS) if anchors else d
        if target in coded_marrow_dates:
            continue
        pt = point(d, MARROW_ATTACH_DAYS)
        pt.marrow = v
        if ref_of(rep):
            pt.refs.append(ref_of(rep) or "")

    # --- new lesions, non-measured lesions, new splenomegaly (coded, then CT report text) ---
    for obs in _obs(record, [NEW_LESION, codes.NEW_LESION], options, "new_lesion"):
        d = when(obs, "new-lesion finding")
        if d is None:
            continue
        keys, text = _value_words(obs)
        equivocal = any("equivocal" in k for k in keys) or "equivocal" in text
        v = True if equivocal else _bool_value(obs)
        if v is None:
            record.issue(obs, "new-lesion finding skipped", "value not recognised")
            continue
        pt = point(d, ATTACH_DAYS)
        attributable = None if equivocal else _comp_bool(obs, ATTRIBUTABLE)
        nodal = _comp_bool(obs, codes.NODAL)
        site = concept_text(obs.get("bodySite"))
        if v and (equivocal or attributable is False):
            is_node = nodal if nodal is not None else bool(re.search(r"\bnode|nodal|lymph", site, re.I))
            kind = engine.LesionKind.NODAL if is_node else engine.LesionKind.EXTRANODAL
            pt.new_lesions.append(engine.NewLesion(kind, attributable_to_lymphoma=attributable, site=site,
                                                   ref=ref_of(obs)))
            pt.new_flag = pt.new_flag if pt.new_flag else False
        else:
            pt.new_flag = v if pt.new_flag is None else (pt.new_flag or v)
    for obs in _obs(record, [NON_MEASURED, codes.NON_TARGET_RESPONSE], options, "non_measured"):
        d = when(obs, "non-measured lesion status")
        if d is None:
            continue
        v = _non_measured(obs)
        if v is None:
            record.issue(obs, "non-measured lesion status skipped", "value not recognised")
            continue
        point(d, ATTACH_DAYS).non_measured = v
    for obs in _obs(record, [NEW_SPLENOMEGALY], options, "new_splenomegaly"):
        d = when(obs, "splenomegaly finding")
        if d is not None and _bool_value(obs):
            point(d, ATTACH_DAYS).new_splenomegaly = True
    measured_new = {d for les in lesions.values() if les.role == "new" for d in les.sizes}
    for d, rep, text in ct_reports:
        if d not in points:
            continue
        pt = points[d]
        if ref_of(rep):
            pt.refs.insert(0, ref_of(rep) or "")
        if pt.new_flag is None and not pt.new_lesions and d not in measured_new:
            # [I] a report whose new lesions are measured (TumorSize) is judged on those measurements (Cheson 2014
            # Table 3 PD rules 5/6: a new node must be >1.5 cm, a new extranodal site >1.0 cm); its words "new node"
            # describe the same lesions and must not make PD of a new 1.5 cm node on their own (criteria.md §4.3)
            pt.new_flag = new_lesions_in_text(text)

    if not points:
        return LuganoMapping(None, "CT", ("CT measurements of the target lesions (mCODE TumorSize, LOINC 21889-1 "
                                          "with LDi 33728-7 and SDi 33729-5) at baseline and follow-up",))
    dates = sorted(points)
    baseline_day = dates[0]
    # --- targets: coded roles, else every lesion measured at baseline (up to 6 by PPD) ---
    # roles decide the targets only when target / non-target roles are coded: a record that codes only its new
    # lesions ("new") still has every lesion measured at baseline as a target (Cheson 2014: up to 6 largest)
    coded_roles = any(les.role in ("target", "non-target") for les in lesions.values())
    at_base = [les for les in lesions.values() if baseline_day in les.sizes]
    if coded_roles:
        targets = [les for les in at_base if les.role == "target"]
    else:
        targets = [les for les in at_base if les.role != "non-target"]
    if len(targets) > engine.MAX_TARGET_LESIONS and not coded_roles:
        def ppd(les: _Les) -> Decimal:
            m = les.sizes[baseline_day]
            if m.too_small_to_measure:
                return engine.TOO_SMALL_DEFAULT_MM ** 2
            return (m.ldi_mm or 0) * (m.sdi_mm or 0)
        targets = sorted(targets, key=ppd, reverse=True)[:engine.MAX_TARGET_LESIONS]
        notes.append(f"More than {engine.MAX_TARGET_LESIONS} lesions measured at baseline: the "
                     f"{engine.MAX_TARGET_LESIONS} largest by PPD are the targets (Cheson 2014).")
    target_keys = {t.key for t in targets}
    new_ones = [les for les in lesions.values() if les.key not in target_keys and (
        les.role == "new" or (baseline_day not in les.sizes and les.role != "non-target"))]
    for d in dates:
        pt = points[d]
        for t in targets:
            if d in t.sizes:
                pt.lesions[t.key] = t.sizes[d]
        if d == baseline_day:
            continue
        for les in new_ones:
            seen = [x for x in les.sizes if x <= d]
            if not seen:
                continue
            m = les.sizes[max(seen)]
            kind = engine.LesionKind.NODAL if les.nodal else engine.LesionKind.EXTRANODAL
            ldi, sdi = (m.ldi_mm, m.sdi_mm) if not m.too_small_to_measure else (None, None)
            pt.new_lesions.append(engine.NewLesion(kind, ldi, sdi, les.attributable, les.site or "", m.ref))

    assessments = []
    for d in dates:
        pt = points[d]
        refs = [r for r in dict.fromkeys(pt.refs) if r]
        assessments.append(engine.CtAssessment(
            date=d, lesions=tuple(pt.lesions.values()), spleen_length_mm=pt.spleen, bone_marrow=pt.marrow,
            non_measured=pt.non_measured, new_lesions=tuple(pt.new_lesions), new_lesions_reported=pt.new_flag,
            new_or_recurrent_splenomegaly=pt.new_splenomegaly, reported_spd_mm2=pt.spd_mm2,
            reported_spd_pct_change=pt.spd_pct, ref=refs[0] if refs else None))
    if not targets and any(p.spd_pct is not None or p.spd_mm2 is not None for p in points.values()):
        notes.append("Nodes only described in the report: the SPD (or its % change) stated by the report is used; "
                     "the single-lesion PD rule could not be checked.")
    inputs = engine.LuganoCtInputs(
        assessments=tuple(assessments), baseline_date=baseline_day,
        normal_spleen_length_mm=normal if normal is not None else engine.NORMAL_SPLEEN_LENGTH_MM,
        histology=routed.condition_text, immunomodulatory_therapy=_immunomodulatory(record))
    if normal is not None and normal != engine.NORMAL_SPLEEN_LENGTH_MM:
        notes.append("Normal spleen length taken from the spleen Observation's reference range.")
    return LuganoMapping(inputs, "CT", (), tuple(notes))


# ===========================================================================
# Entry: choose PET-CT or CT, run the engine
# ===========================================================================

def _ct_usable(m: LuganoMapping) -> bool:
    return isinstance(m.inputs, engine.LuganoCtInputs) and len(m.inputs.assessments) >= 2


def map_lugano(record: PatientRecord, routed: RoutedCancer, options: Mapping[str, Any] | None = None) -> LuganoMapping:
    """The inputs of the Lugano variant the record supports (see the module docstring for the choice)."""
    options = options or {}
    avid = fdg_avid(record, routed)
    forced = str(options.get("lugano_modality") or "").lower()
    before = len(record.issues)
    pet_points = _pet_points(record, options)
    _attach_pet_findings(record, pet_points, options)
    pet_issues = record.issues[before:]
    del record.issues[before:]
    pet = map_pet(record, routed, options, pet_points) if pet_points else None
    pet_issues += record.issues[before:]
    del record.issues[before:]
    ct = map_ct(record, routed, options)
    ct_issues = record.issues[before:]
    del record.issues[before:]
    has_pet_followup = pet is not None and pet.inputs is not None
    hist = {True: "FDG-avid histology", False: "histology not reliably FDG-avid", None: "histology not stated"}[avid]
    if forced in ("pet", "pet-ct"):
        chosen, why = pet, "PET-CT response assessment (configured)."
    elif forced == "ct":
        chosen, why = ct, "CT-based response assessment (configured)."
    elif has_pet_followup and (avid is not False or not _ct_usable(ct)):
        chosen = pet
        why = f"PET-CT response assessment: {hist} with a follow-up PET-CT (Cheson 2014)."
        if avid is False:
            why = f"PET-CT response assessment: {hist}, but PET-CT is the only follow-up imaging in the record."
    elif _ct_usable(ct) or not pet_points:
        chosen = ct
        why = (f"CT-based response assessment: {hist}" + (" and a CT series is available (Cheson 2014)."
                                                          if avid is False and has_pet_followup else
                                                          "; no follow-up PET-CT with a Deauville score."))
    else:
        chosen, why = pet, f"PET-CT response assessment: {hist}."
    if chosen is None:
        chosen = LuganoMapping(None, "PET-CT", ("a PET-CT with a Deauville score (coded SNOMED 708895006 or in the "
                                                "PET report text)",))
    record.issues.extend(pet_issues if chosen is pet else ct_issues)
    return LuganoMapping(chosen.inputs, chosen.modality, chosen.missing, (why,) + chosen.notes)


def assess_lugano(record: PatientRecord, routed: RoutedCancer, as_of: date,
                  options: Mapping[str, Any] | None = None
                  ) -> tuple[Assessment | None, tuple[str, ...], tuple[str, ...]]:
    """(assessment or None, missing, notes). A dated NE is returned as the assessment (its card lists what is
    missing, with the evidence that was usable); no assessable time point gives None (an insufficient-data card)."""
    mapping = map_lugano(record, routed, options)
    if mapping.inputs is None:
        return None, mapping.missing, mapping.notes
    try:
        a = engine.assess(mapping.inputs, as_of)
    except engine.LuganoInputError:
        record.issue(None, "Lugano 2014 inputs rejected", "an impossible value in the mapped inputs (a negative "
                     "size, a Deauville score outside 1-5/X, duplicate or more than 6 target lesions)")
        return None, ("usable Lugano 2014 inputs (see the issues below)",), mapping.notes
    if a.category == "NE" and a.assessment_date is None:
        return None, a.missing or ("the data this criterion needs",), mapping.notes
    return a, a.missing, mapping.notes
