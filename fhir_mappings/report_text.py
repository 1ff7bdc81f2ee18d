"""Categories and findings *stated* in report text (DiagnosticReport ``conclusion`` / ``presentedForm``).

Most EHRs send imaging and pathology reports as text only (codes.md §7.1, §7.2): "RECIST 1.1: PR", "Deauville
score of 4", "complete metabolic response", "ypT0 ypN0", "RCB-II", "MRD negative", "no evidence of disease".
This module finds those statements with a table of patterns (``RULES``) and tells whether each is negated.
It never computes a category: a stated category is *reported* evidence, shown beside the computed one and never
merged with it silently (design.md "Reported vs computed").

API
    ``extract(text) -> list[Stated]``            every statement in one text, in text order
    ``stated_in_record(record, kinds) -> list[(date, report ref, Stated)]``  every statement of the given kinds in
                                                  the record's DiagnosticReports, in date order

``Stated(kind, value, span_text, negated)``:

* ``kind``   what was stated (see ``KINDS``): a criteria key ("recist", "irecist", "mrecist", "lugano", "deauville",
  "imwg", "eln", "iwcll", "rano", "pcwg3", "gcig", "choi", "ata", "mrd", "pcr", "ypT", "ypN", "rcb_class",
  "rcb_index"), the criteria-free "response" (a category word with no criteria name: "partial response"), or a
  finding ("disease", "new_lesion", "residual_invasive", "residual_disease", "dcis", "lvi", "malignancy",
  "metastasis", "suspicious", "recurrence", "nonspecific", "faint_thyroid_bed_uptake", "uptake", "study_negative").
* ``value``  the normalised category ("PR", "CMR", "3", "ypN0(i+)", "RCB-II", "1.537", "excellent") or, for a
  finding, the finding's name ("evidence of disease", "new lesion", "MRD").
* ``span_text`` the words it was read from, including the negation cue when there is one.
* ``negated`` the text denies the statement: "no evidence of disease" is Stated("disease", "evidence of disease",
  ..., negated=True); "no new lesions" is Stated("new_lesion", "new lesion", ..., True); "MRD negative" is
  Stated("mrd", "MRD", ..., True); "not a partial response" is Stated("response", "PR", ..., True).

Negation (a small NegEx-style rule set, [I]): a cue ("no", "not", "without", "negative for", "free of", "absence
of", ...) at most ``PRE_WINDOW_WORDS`` words before the statement, in the same clause, negates it.  Clauses end
at . ; : and line breaks, at "but", "however", "although", "except", "whereas", and at a comma unless the
statement is part of a list ("no invasive carcinoma, DCIS or LVI": all three are negated).  "No change", "no
interval change", "no significant change" and "not only" are not negations.  For findings, a cue right after the
statement also negates it ("MRD negative", "LVI: not identified", "lymphovascular invasion absent").  Some rows
are negative by themselves ("NED", "disease-free", "MRD-negative"); a cue flips them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Callable, Iterable

from fhir_mappings.labs import report_text
from fhir_mappings.record import PatientRecord, ReportHead, Resource, concept_text, effective_date, ref_of


def items(value: Any) -> list:
    """A FHIR repeating element as a list ([] for a missing or malformed one): hostile input never crashes."""
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class Stated:
    kind: str
    value: str
    span_text: str
    negated: bool
    start: int = 0  # offsets of span_text in the text (for highlighting)
    end: int = 0


# --- category vocabulary ------------------------------------------------------------------------------------

# words -> the papers' abbreviations (longest phrases first when matching)
CATEGORY_WORDS: dict[str, str] = {
    "stringent complete response": "sCR",
    "very good partial response": "VGPR",
    "complete metabolic response": "CMR",
    "partial metabolic response": "PMR",
    "no metabolic response": "NMR",
    "progressive metabolic disease": "PMD",
    "complete remission with incomplete hematologic recovery": "CRi",
    "complete remission with incomplete haematological recovery": "CRi",
    "complete remission with incomplete haematologic recovery": "CRi",
    "complete remission with partial hematologic recovery": "CRh",
    "complete remission with partial haematological recovery": "CRh",
    "complete remission with partial haematologic recovery": "CRh",
    "morphologic leukemia-free state": "MLFS",
    "morphologic leukaemia-free state": "MLFS",
    "non-cr/non-pd": "non-CR/non-PD",
    "non-cr non-pd": "non-CR/non-PD",
    "complete response": "CR",
    "complete remission": "CR",
    "partial response": "PR",
    "partial remission": "PR",
    "minimal response": "MR",
    "minor response": "MR",
    "stable disease": "SD",
    "progressive disease": "PD",
    "disease progression": "PD",
    "progression": "PD",
    "not evaluable": "NE",
    "inevaluable": "NE",
    "unconfirmed progressive disease": "iUPD",
    "confirmed progressive disease": "iCPD",
    "excellent response": "excellent",
    "excellent": "excellent",
    "biochemical incomplete response": "biochemical incomplete",
    "biochemical incomplete": "biochemical incomplete",
    "structural incomplete response": "structural incomplete",
    "structural incomplete": "structural incomplete",
    "indeterminate response": "indeterminate",
    "indeterminate": "indeterminate",
}
CATEGORY_ABBREVIATIONS = ("non-CR/non-PD", "sCR", "VGPR", "CMR", "PMR", "NMR", "PMD", "MLFS", "CRh", "CRi", "iCR",
                          "iPR", "iSD", "iUPD", "iCPD", "CR", "PR", "SD", "PD", "MR", "NE")
_ABBR = {a.lower(): a for a in CATEGORY_ABBREVIATIONS}

CRITERIA_NAMES: dict[str, str] = {  # spelling in text (lower-case, without version) -> kind
    "recist": "recist", "mrecist": "mrecist", "irecist": "irecist", "lugano": "lugano", "imwg": "imwg",
    "eln": "eln", "iwcll": "iwcll", "rano": "rano", "pcwg3": "pcwg3", "pcwg": "pcwg3", "gcig": "gcig", "choi": "choi",
    "ata": "ata", "cheson": "lugano",
}


def _alt(words: Iterable[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"[\s-]+") for w in sorted(words, key=len, reverse=True))


_CAT_WORDS_RE = _alt(CATEGORY_WORDS)
_CAT_ABBR_RE = "|".join(re.escape(a) for a in sorted(CATEGORY_ABBREVIATIONS, key=len, reverse=True))
_CRIT_RE = (r"(?P<crit>m?RECIST|iRECIST|Lugano|Cheson|IMWG|ELN|iwCLL|RANO|PCWG3?|GCIG|Choi|ATA)"
            r"(?:[\s-]*(?:v(?:ersion)?\s*)?\d+(?:\.\d+)?)?")


def category_value(text: str) -> str:
    """Normalise a category phrase or abbreviation ("partial response", "pr", "VGPR") to the abbreviation."""
    t = re.sub(r"[\s-]+", " ", text.strip().lower())
    for words, abbr in CATEGORY_WORDS.items():
        if re.sub(r"[\s-]+", " ", words) == t:
            return abbr
    return _ABBR.get(t.replace(" ", ""), text.strip())


# --- the table ----------------------------------------------------------------------------------------------

ValueFn = Callable[[re.Match], str]


@dataclass(frozen=True)
class Rule:
    """One row: a pattern, what it states, and how negation applies.

    finding:  a cue after the statement can negate it ("MRD negative", "LVI: not identified").
    negative: the row is itself a negative statement ("NED", "disease-free"); a cue flips it.
    needs:    a cheap pre-screen: groups of literals, every match of ``pattern`` contains at least one literal
              of each group (lower-case for a case-insensitive row, as written for a case-sensitive one). A text
              lacking all the literals of a group cannot match, so the row's regex is not run on it. Derive them
              from the pattern by hand and keep them in the matched part (not in a lookaround);
              tests/test_report_text.py checks every match of every row against them.
    """

    kind: str
    value: str | ValueFn
    pattern: str
    finding: bool = False
    negative: bool = False
    flags: int = re.IGNORECASE
    needs: tuple[tuple[str, ...], ...] = ()


def _crit_value(m: re.Match) -> str:
    return category_value(m.group("cat"))


def _crit_kind(m: re.Match) -> str:
    return CRITERIA_NAMES.get(m.group("crit").lower(), m.group("crit").lower())


def _ypt(m: re.Match) -> str:
    return "ypT" + re.sub(r"\s+", "", m.group("t")).lower().replace("x", "X")


def _ypn(m: re.Match) -> str:
    suffix = re.sub(r"\s+", "", m.group("sfx") or "").lower()
    return "ypN" + re.sub(r"\s+", "", m.group("n")).lower().replace("x", "X") + suffix


def _roman(m: re.Match) -> str:
    c = m.group("cls").upper()
    return "RCB-" + {"1": "I", "2": "II", "3": "III"}.get(c, c)


_T_TOKEN = r"(?P<t>is|x|0|1\s*mi|[1-4]\s*[a-d]?)(?![0-9a-z])"
_N_TOKEN = r"(?P<n>x|0|1\s*mi|[1-3]\s*[a-c]?)(?![0-9a-z])(?P<sfx>(?:\s*\(\s*(?:i|mol|sn|f)\s*[+-]?\s*\))*)"

RULES: tuple[Rule, ...] = (
    # criteria-prefixed categories: "RECIST 1.1: PR", "IMWG response: VGPR", "Lugano 2014 - complete metabolic response"
    Rule("*criteria*", _crit_value,
         r"\b" + _CRIT_RE + r"(?:\s+(?:overall\s+|time[\s-]?point\s+|best\s+overall\s+)?"
         r"(?:response|category|assessment|classification|criteria))?\s*(?:[:=(\-–]|is|was|of)?\s*"
         r"(?P<cat>" + _CAT_WORDS_RE + r"|(?<![A-Za-z])(?-i:" + _CAT_ABBR_RE + r")(?![A-Za-z]))",
         needs=(("recist", "lugano", "cheson", "imwg", "eln", "iwcll", "rano", "pcwg", "gcig", "choi", "ata"),)),
    # "Response: PR", "Overall response = CR" (no criteria named)
    Rule("response", _crit_value,
         r"\b(?:best\s+)?(?:overall\s+)?response(?:\s+assessment)?\s*[:=]\s*(?P<cat>" + _CAT_WORDS_RE
         + r"|(?<![A-Za-z])(?-i:" + _CAT_ABBR_RE + r")(?![A-Za-z]))",
         needs=(("response",), (":", "="))),
    # Deauville five-point scale
    Rule("deauville", lambda m: m.group("ds").upper(),
         r"\b(?:Deauville|5[\s-]?PS|five[\s-]point[\s-]scale)(?:[\s-]+(?:5|five)[\s-]?(?:point|PS))?"
         r"(?:\s+(?:score|scale|criteria|category))*\s*(?:[:=(]|of|was|is)?\s*(?P<ds>[1-5]|X)\b",
         needs=(("deauville", "ps", "five"),)),
    Rule("deauville", lambda m: m.group("ds").upper(), r"\bDS\s*[:=]?\s*(?P<ds>[1-5]|X)\b", flags=0,
         needs=(("DS",),)),
    # criteria-specific phrases (unambiguous without a criteria name)
    Rule("imwg", "sCR", r"\bstringent\s+complete\s+response\b",
         needs=(("stringent",),)),
    Rule("imwg", "VGPR", r"\bvery\s+good\s+partial\s+response\b|\bVGPR\b",
         needs=(("very", "vgpr"),)),
    Rule("lugano", lambda m: CATEGORY_WORDS[re.sub(r"[\s-]+", " ", m.group(0).lower())],
         r"\b(?:complete\s+metabolic\s+response|partial\s+metabolic\s+response|no\s+metabolic\s+response|"
         r"progressive\s+metabolic\s+disease)\b",
         needs=(("metabolic",),)),
    Rule("lugano", lambda m: m.group(0).upper(), r"\b(?:CMR|PMR|PMD)\b", flags=0,
         needs=(("CMR", "PMR", "PMD"),)),
    Rule("eln", "MLFS", r"\bmorphologic\s+leuk(?:a)?emia[\s-]free\s+state\b|\bMLFS\b",
         needs=(("morphologic", "mlfs"),)),
    Rule("eln", "CRi", r"\bcomplete\s+remission\s+with\s+incomplete\s+(?:hematologic(?:al)?|haematologic(?:al)?|count|blood\s+count)"
                       r"\s+recovery\b|\bCRi\b",
         needs=(("remission", "cri"),)),
    Rule("eln", "CRh", r"\bcomplete\s+remission\s+with\s+partial\s+(?:hematologic(?:al)?|haematologic(?:al)?)\s+recovery\b|\bCRh\b",
         needs=(("remission", "crh"),)),
    Rule("ata", lambda m: category_value(m.group("cat")),
         r"\b(?P<cat>excellent|biochemical(?:ly)?\s+incomplete|structural(?:ly)?\s+incomplete|indeterminate)\s+response\b",
         needs=(("response",), ("excellent", "incomplete", "indeterminate"))),
    Rule("ata", lambda m: category_value(m.group("cat").replace("ally", "al").replace("ly ", " ")),
         r"\b(?P<cat>biochemical\s+incomplete|structural\s+incomplete)\b",
         needs=(("incomplete",),)),
    Rule("mrd", "MRD", r"\bMRD[\s-]*negativ(?:e|ity)\b|\bnegative\s+for\s+(?:MRD|minimal\s+residual\s+disease|measurable\s+residual"
                       r"\s+disease)\b|\bundetectable\s+MRD\b|\buMRD\d?\b", negative=True,
         needs=(("mrd", "negative"),)),
    Rule("mrd", "MRD", r"\b(?:MRD|minimal\s+residual\s+disease|measurable\s+residual\s+disease)\b(?:\s*\((?:MRD)\))?", finding=True,
         needs=(("mrd", "residual"),)),
    Rule("pcr", "pCR", r"\bpatholog(?:ic|ical)\s+complete\s+(?:response|remission)\b",
         needs=(("patholog",), ("complete",))),
    Rule("pcr", "pCR", r"\bpCR\b", flags=0,
         needs=(("pCR",),)),
    # generic category words (no criteria named)
    Rule("response", lambda m: category_value(m.group(0)),
         r"\b(?:complete\s+response|complete\s+remission|partial\s+response|partial\s+remission|stable\s+disease|"
         r"progressive\s+disease|disease\s+progression|minimal\s+response|minor\s+response)\b",
         needs=(("complete", "partial", "stable", "progress", "minimal", "minor"),)),
    # AJCC post-neoadjuvant categories
    Rule("ypT", _ypt, r"(?<![A-Za-z])y\s*p?\s*T\s*" + _T_TOKEN,
         needs=(("y",), ("t",))),
    Rule("ypN", _ypn, r"(?<![A-Za-z])y\s*p?\s*N\s*" + _N_TOKEN,
         needs=(("y",), ("n",))),
    # residual cancer burden
    Rule("rcb_class", _roman, r"\b(?:RCB|residual\s+cancer\s+burden)(?:\s+class(?:ification)?)?\s*[:=\-]?\s*"
                               r"(?:class\s*)?(?P<cls>III|II|I|0|[0-3])(?![A-Za-z0-9.])",
         needs=(("rcb", "burden"),)),
    Rule("rcb_index", lambda m: m.group("idx"),
         r"\b(?:RCB|residual\s+cancer\s+burden)(?:\s+(?:index|score|value)|(?=\s*[:=]\s*\d+\.\d))\s*(?:[:=(]|of|was|is)?\s*"
         r"(?P<idx>\d+(?:\.\d+)?)",
         needs=(("rcb", "burden"),)),
    # findings
    Rule("disease", "evidence of disease", r"\bNED\b", negative=True, flags=0,
         needs=(("NED",),)),
    Rule("disease", "evidence of disease", r"\b(?:disease[\s-]free|free\s+of\s+disease)\b", negative=True,
         needs=(("free",), ("disease",))),
    Rule("disease", "evidence of disease",
         r"\b(?:(?:clinical|radiologic(?:al)?|biochemical|structural|objective|any)\s+)?evidence\s+of\s+"
         r"(?:(?:residual|active|recurrent|metastatic|persistent|locoregional|distant|malignant)\s+)?"
         r"(?:disease|malignancy|tumou?r|cancer)\b(?!\s+(?:progression|recurrence|relapse))", finding=True,
         needs=(("evidence",),)),
    Rule("new_lesion", "new lesion", r"\bnew\s+(?:(?:measurable|non[\s-]?measurable|target|non[\s-]?target|"
                                     r"suspicious|metastatic|focal|FDG[\s-]avid|avid)\s+)*(?:lesions?|metastas[ie]s|"
                                     r"sites?\s+of\s+disease|foci|focus|nodules?|deposits?)\b", finding=True,
         needs=(("new",),)),
    Rule("residual_invasive", "residual invasive carcinoma",
         r"\bresidual\s+invasive\s+(?:\w+\s+)?(?:carcinoma|cancer|disease|tumou?r)\b", finding=True,
         needs=(("residual",), ("invasive",))),
    Rule("residual_disease", "residual disease", r"\bresidual\s+(?:tumou?r|disease|carcinoma|cancer)\b(?!\s+burden)", finding=True,
         needs=(("residual",),)),
    Rule("dcis", "DCIS", r"\b(?:(?:residual\s+)?(?:DCIS|ductal\s+carcinoma\s+in[\s-]situ)|in[\s-]situ\s+carcinoma)\b",
         finding=True,
         needs=(("dcis", "situ"),)),
    Rule("lvi", "lymphovascular invasion", r"\b(?:lympho[\s-]?vascular(?:\s+space)?\s+invasion|LVSI|LVI|"
                                           r"(?:angio)?lymphatic\s+invasion)\b", finding=True,
         needs=(("lympho", "lymphatic", "lvi", "lvsi"),)),
    Rule("malignancy", "malignancy", r"\bmalignan(?:cy|t\s+cells?)\b", finding=True,
         needs=(("malignan",),)),
    Rule("metastasis", "metastasis", r"\b(?:metastas[ie]s|metastatic)\b", finding=True,
         needs=(("metasta",),)),
    Rule("suspicious", "suspicious finding", r"\b(?:suspicious|worrisome|concerning)\b", finding=True,
         needs=(("suspicious", "worrisome", "concerning"),)),
    Rule("recurrence", "recurrence", r"\b(?:recurren(?:ce|t)|relapse)\b", finding=True,
         needs=(("recurren", "relapse"),)),
    Rule("nonspecific", "non-specific finding",
         r"\b(?:non[\s-]?specific|indeterminate|equivocal|of\s+(?:uncertain|undetermined)\s+significance)\b", finding=True,
         needs=(("specific", "indeterminate", "equivocal", "significance"),)),
    Rule("faint_thyroid_bed_uptake", "faint thyroid-bed uptake",
         r"\b(?:faint|minimal|low[\s-]grade|mild)\s+(?:\w+\s+){0,3}?uptake\s+(?:(?:in|within|at|of)\s+)?(?:the\s+)?"
         r"(?:thyroid[\s-]bed|thyroid\s+remnant|remnant)\b|\b(?:faint|minimal)\s+thyroid[\s-]bed\s+uptake\b",
         finding=True,
         needs=(("uptake",), ("faint", "minimal", "grade", "mild"))),
    Rule("uptake", "abnormal uptake", r"\b(?:abnormal|focal|pathologic(?:al)?|iodine[\s-]avid|FDG[\s-]avid|"
                                      r"hypermetabolic|increased|avid|intense|significant)\s+(?:\w+\s+)?"
                                      r"(?:uptake|activity|focus|foci)\b|\b(?:FDG|iodine|RAI)[\s-]avid\s+(?:\w+\s+)?"
                                      r"(?:disease|lesions?|nodes?|nodules?|metastas[ie]s|tumou?r)\b", finding=True,
         needs=(("uptake", "activity", "focus", "foci", "avid"),)),
    Rule("study_negative", "negative study",
         r"\b(?:negative|normal|unremarkable)\s+(?:\w+\s+)?(?:study|scan|examination|exam|ultrasound|sonogram|"
         r"US|CT|MRI|PET(?:/CT)?|WBS|whole[\s-]body\s+scan|imaging)\b"
         r"|(?:^|(?<=[:.\n]))\s*(?:negative|normal|unremarkable|no\s+abnormalit(?:y|ies)(?:\s+(?:detected|seen))?)\s*\.?\s*(?=$|\n)"
         r"|\bno\s+(?:(?:acute|significant|suspicious|sonographic|scintigraphic|focal)\s+)*(?:abnormalit(?:y|ies)|findings)\b"
         r"|\bno\s+uptake\b",
         needs=(("negative", "normal", "unremarkable", "abnormalit", "findings", "uptake"),)),
)
KINDS = tuple(sorted({r.kind for r in RULES if r.kind != "*criteria*"} | set(CRITERIA_NAMES.values())))

# --- negation -------------------------------------------------------------------------------------------------

PRE_WINDOW_WORDS = 6
_PRE_CUE = re.compile(
    r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|absent|denies|ruled\s+out|rules\s+out|"
    r"no\s+signs?\s+of|no\s+evidence\s+of|neither|nor|never|lack\s+of|resolution\s+of|resolved)\b|\bnon(?=[\s-])",
    re.IGNORECASE)
_PSEUDO = re.compile(r"\b(?:no|not)\s+(?:(?:significant|interval|appreciable|definite)\s+)?(?:change|increase|decrease|"
                     r"growth|only|longer\s+(?:seen|present|visible))\b", re.IGNORECASE)
_POST_CUE = re.compile(
    r"^\s*(?:[:=\-–]\s*|\(\s*)?(?:(?:is|was|are|were|remains?|status)\s*:?\s*)?"
    r"(?:negative|not\s+(?:detected|identified|seen|present|found|visualized|visualised)|absent|undetectable|"
    r"excluded|none(?:\s+(?:seen|identified))?|no)\b", re.IGNORECASE)
_POST_POSITIVE = re.compile(r"^\s*(?:[:=\-–]\s*|\(\s*)?(?:(?:is|was|are|were)\s+)?(?:positive|present|detected|identified)\b",
                            re.IGNORECASE)
_CLAUSE_END = re.compile(r"[.;:\n!?]|\b(?:but|however|although|though|except|whereas|while)\b", re.IGNORECASE)
_LIST_NEXT = re.compile(r"^\s*(?:,|\b(?:or|and|nor)\b)", re.IGNORECASE)


def _pre_negation(text: str, start: int, end: int, finding: bool) -> int | None:
    """Start offset of a negation cue before [start, end) in the same clause, or None.

    Only findings are read across a comma as list items ("no invasive carcinoma, DCIS or LVI")."""
    lo = max(0, start - 120)
    window = text[lo:start]
    last_end = None
    for m in _CLAUSE_END.finditer(window):
        last_end = m.end()
    if last_end is not None:
        window, lo = window[last_end:], lo + last_end
    # a comma ends the clause unless the statement is part of a list ("no A, B or C")
    if "," in window:
        in_list = finding and (bool(re.search(r"\b(?:or|and|nor)\s*$", window, re.IGNORECASE))
                               or bool(_LIST_NEXT.match(text[end:end + 60])))
        if not in_list:
            cut = window.rfind(",") + 1
            window, lo = window[cut:], lo + cut
    words = re.findall(r"\S+", window)
    if len(words) > PRE_WINDOW_WORDS + (4 if "," in window else 0):
        keep = " ".join(words[-(PRE_WINDOW_WORDS + (4 if "," in window else 0)):])
        cut = window.rfind(keep) if keep in window else 0
        window, lo = window[cut:], lo + cut
    cues = [m for m in _PRE_CUE.finditer(window)]
    pseudo = {m.start() for m in _PSEUDO.finditer(window)}
    cues = [m for m in cues if m.start() not in pseudo]
    return lo + cues[0].start() if cues else None


def _post_negation(text: str, end: int) -> int | None:
    """End offset of a negation cue right after a finding ("MRD negative", "LVI: not identified")."""
    m = _POST_CUE.match(text[end:end + 40])
    return end + m.end() if m else None


# --- extraction ---------------------------------------------------------------------------------------------

_COMPILED = tuple((r, re.compile(r.pattern, r.flags | re.MULTILINE)) for r in RULES)
_GENERIC_KIND_PRIORITY = {"response": 1, "uptake": 1, "residual_disease": 1, "nonspecific": 0}
# Characters other than ASCII letters that re.IGNORECASE matches to an ASCII letter (dotted/dotless i, long s,
# Kelvin sign; tests/test_report_text.py recomputes the set). In a text without them, every letter a
# case-insensitive literal matched is ASCII, so the literal is in text.lower().
_ASCII_CASE_LOOKALIKES = frozenset("\u0130\u0131\u017f\u212a")
# (case-insensitive, needs) per row, for the pre-screen
_SCREENS = tuple((bool(r.flags & re.IGNORECASE), r.needs) for r in RULES)
_CACHE_MAX_CHARS = 4096  # texts up to this length are memoised (report templates repeat within and across calls)


def extract(text: str) -> list[Stated]:
    """Every statement in ``text`` (conclusion or report body), in text order; overlapping matches keep the
    longest (so "very good partial response" is VGPR, not PR, and "no evidence of disease" one statement)."""
    if not text:
        return []
    if type(text) is str and len(text) <= _CACHE_MAX_CHARS:
        return list(_extract_cached(text))
    return _extract(text)


@lru_cache(maxsize=1024)
def _extract_cached(text: str) -> tuple[Stated, ...]:
    return tuple(_extract(text))  # Stated is frozen: the cached statements are shared, never changed


def _rows_to_run(text: str, screen: bool = True) -> list[int]:
    """Indices of the rows whose literals (``Rule.needs``) are all in ``text``: the others cannot match."""
    if not screen or type(text) is not str or not (text.isascii() or _ASCII_CASE_LOOKALIKES.isdisjoint(text)):
        return list(range(len(_COMPILED)))
    low = text.lower()
    out = []
    for order, (nocase, needs) in enumerate(_SCREENS):  # plain loops: this runs for every report text
        hay = low if nocase else text
        for group in needs:
            for lit in group:
                if lit in hay:
                    break
            else:
                break  # no literal of this group: the row cannot match
        else:
            out.append(order)
    return out


def _extract(text: str, screen: bool = True) -> list[Stated]:
    found: list[tuple[int, int, int, Rule, re.Match]] = []
    for order in _rows_to_run(text, screen):
        rule, rx = _COMPILED[order]
        for m in rx.finditer(text):
            if m.end() > m.start():
                found.append((m.start(), m.end(), order, rule, m))
    # longest first, then table order; a match inside an accepted one is dropped
    found.sort(key=lambda x: (-(x[1] - x[0]), x[2]))
    taken: list[tuple[int, int]] = []
    out: list[Stated] = []
    for start, end, _, rule, m in found:
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        kind = _crit_kind(m) if rule.kind == "*criteria*" else rule.kind
        value = rule.value(m) if callable(rule.value) else rule.value
        span_start, span_end = start, end
        negated = False
        cue = _pre_negation(text, start, end, rule.finding)
        if cue is not None:
            negated, span_start = True, cue
        elif rule.finding and not _POST_POSITIVE.match(text[end:end + 40]):
            post = _post_negation(text, end)
            if post is not None:
                negated, span_end = True, post
        if rule.negative:
            negated = not negated
        out.append(Stated(kind, value, text[span_start:span_end].strip(), negated, span_start, span_end))
    out.sort(key=lambda s: (s.start, s.end))
    return out


def report_texts(report: Resource) -> str:
    """conclusion, conclusionCode text and text presentedForm of one DiagnosticReport."""
    form = report.get("presentedForm")
    if isinstance(form, list) and form:
        first = report_text({"conclusion": report.get("conclusion"), "presentedForm": form})
    else:  # what report_text gives without a presentedForm: the conclusion
        first = report.get("conclusion")
        if not isinstance(first, str):
            first = ""
    codes = report.get("conclusionCode")
    if not isinstance(codes, list) or not codes:
        return first
    parts = [first] if first else []
    for cc in codes:
        t = concept_text(cc)
        if t:
            parts.append(t)
    return "\n".join(parts)


def dated_reports(record: PatientRecord) -> list[tuple[Resource | ReportHead, date]]:
    """(report, effective_date(report)) for the record's DiagnosticReports that have a date, in record order
    (PatientRecord.dated_reports: once per record; the report statements and the RECIST time points both read it).

    A report is its dict, or for one not decoded a record.ReportHead: read only its reference, date members, text
    (report_texts) and ``result`` through ``get``."""
    return record.dated_reports()


def stated_in_record(record: PatientRecord, kinds: Iterable[str] | None = None, *,
                     reports: Iterable[Resource] | None = None) -> list[tuple[date, str | None, Stated]]:
    """Statements of the given kinds (all kinds when None) in the record's DiagnosticReports, in date order.

    Reports without a date are skipped (a stated category needs a date to be placed on the timeline)."""
    wanted = set(kinds) if kinds is not None else None
    if reports is None:
        # every report's text is read once per record, whichever mappers and cards ask
        if "stated_all" not in record.memo:
            record.memo["stated_all"] = _stated_dated(dated_reports(record))
        everything = record.memo["stated_all"]
    else:
        everything = _stated(reports)
    return [x for x in everything if wanted is None or x[2].kind in wanted]


def _stated(reports: Iterable[Resource]) -> list[tuple[date, str | None, Stated]]:
    return _stated_dated((rep, d) for rep in reports if (d := effective_date(rep)) is not None)


def _stated_key(x: tuple[date, str | None, Stated]) -> tuple[date, str, int]:
    return x[0], x[1] or "", x[2].start


def _stated_dated(dated: Iterable[tuple[Resource, date]]) -> list[tuple[date, str | None, Stated]]:
    out: list[tuple[date, str | None, Stated]] = []
    for rep, d in dated:
        text = report_texts(rep)
        if text:
            found = extract(text)
            if found:
                ref = ref_of(rep)
                for s in found:
                    out.append((d, ref, s))
    out.sort(key=_stated_key)
    return out
