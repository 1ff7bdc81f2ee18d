"""iwCLL 2018 response assessment for chronic lymphocytic leukaemia (Hallek M et al., Blood 2018;131:2745-2760).

Reference: remission-cds ``criteria.md`` §10.1 (Table 4), §11 (iwCLL row), §12 item 16; MRD via ``rules/mrd.py``.

Categories (``Assessment.category``): ``"CR"``, ``"CRi"``, ``"PR"``, ``"SD"``, ``"PD"`` and ``"NE"``.
Relapse and refractoriness are annotations (``values["relapse"]``, ``values["refractory"]``), not categories:
vignette CLL-03 expects category ``"PD"`` with relapse = yes.

Outcome mapping: CR -> COMPLETE; CRi, PR -> PARTIAL; SD -> STABLE (NO_RESPONSE when refractory: no response to
the last therapy); PD -> PROGRESSION (RELAPSE when it is a relapse: PD >= 6 months after CR/CRi/PR, iwCLL's own
term, criteria.md §11); NE -> NOT_EVALUABLE.

Units (criteria.md §1): node diameters and spleen length in mm, node SPD in mm² (1 cm = 10 mm, 1 cm² = 100 mm²),
counts in 10^9/L, haemoglobin in g/dL.

Decision rules (Table 4 as reproduced in criteria.md §10.1):

* PD (any one): node SPD or largest-node diameter +50 % from baseline or from the nadir; spleen / liver +50 % from
  baseline or nadir; lymphocytes +50 % over baseline (and >= 5 x 10^9/L [P], see LYMPHOCYTE_PD_MIN); platelets
  -50 % from baseline or haemoglobin -2 g/dL from baseline *secondary to CLL*; marrow CLL cells +50 % on
  successive biopsies; a new lesion or transformation [P].  Constitutional symptoms alone are not PD; isolated
  lymphocytosis on a BCR-pathway inhibitor is not PD (input flag ``bcr_inhibitor``).
* CR: no node >= 15 mm, spleen < 130 mm, liver normal, no constitutional symptoms, lymphocytes < 4, platelets
  >= 100, haemoglobin >= 11.0 g/dL untransfused, and (when reported) neutrophils > 1.5 x 10^9/L, marrow
  without CLL cells or nodules.
* CRi: CR except persistent cytopenia not due to CLL (hypocellular clear marrow, or cytopenia recorded as not due
  to CLL).
* PR: at least 2 group-A parameters abnormal at baseline improved (1 if only 1 was abnormal) and 1 group-B
  parameter improved if any was abnormal (none required if none was).
* SD: none of the above, with every baseline-abnormal parameter measured.

Interpretation choices [I] (criteria.md §0 tags; all documented in ``Assessment.notes`` when they matter):

1. Nadir = smallest value at baseline or any earlier assessment (criteria.md §0 global convention 4); "from
   response" in Table 4 is read as from this nadir.
2. A group-A parameter counts as improved for PR when it decreased >= 50 % OR reached its CR level (node < 15 mm,
   spleen < 130 mm, normal liver, lymphocytes < 4): a parameter meeting the CR column has improved.
3. Neutrophils (criteria.md §12 item 16): iwCLL 2008 Table 4 lists ANC > 1.5 x 10^9/L (> 1500/µL) for CR; the 2018
   table reproduction shows no ANC row.  The engine applies ANC > 1.5 to CR/CRi when ANC is reported and does
   not require it otherwise (keyword ``use_anc`` turns it off); ANC is not used for PR.
4. Marrow is required for CR (Table 4: "not done" belongs to the PR column); keyword ``require_marrow_for_cr``.
   Without marrow, a patient meeting every other CR criterion is reported as PR if the PR rule is met, else NE.
5. Spleen change is computed on the craniocaudal length (``spleen_change_basis="length"``, the literal table);
   ``"enlargement"`` uses the length beyond the 130 mm upper normal instead.
6. A group-B fall (platelets, haemoglobin) counts as PD only when ``cytopenia_due_to_cll`` is True; when it is
   not recorded the fall is reported in evidence/notes and not counted (never guessed).
7. Haemoglobin with unknown transfusion status is used, with a note; with ``transfused=True`` it is not used.
8. Timing: response (CR/CRi/PR) is assessed >= 2 months after the end of therapy; an earlier assessment is
   annotated and ``confirmed`` is False.  No other confirmation rule exists (``confirmed`` True otherwise).
9. Relapse = PD on a date >= 6 calendar months after the first CR/CRi/PR; refractory (needs ``therapy_end``) =
   SD after therapy, or PD without an earlier response or within 6 months of the end of the last therapy
   (criteria.md §10.1, §11; Blood 2012;119:4101).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum

from . import mrd as mrd_rules
from .base import (
    Assessment, Evidence, KeyValue, Outcome, Source, TimepointResult, change_at_least, change_at_most, fmt,
    fmt_pct, pct_change,
)

CRITERIA = "iwCLL 2018"
SOURCE = Source(
    label="Hallek M et al. iwCLL guidelines for diagnosis, indications for treatment, response assessment, and "
    "supportive management of CLL. Blood 2018;131:2745-2760",
    url="https://doi.org/10.1182/blood-2017-09-806398",
)
CIT = "Hallek 2018 Table 4; criteria.md §10.1"
CIT_TIMING = "Hallek 2018 (response >= 2 months after end of therapy) [P]; criteria.md §10.1, §11"
CIT_RELAPSE = "Hallek 2018; Blood 2012;119:4101 (relapse / refractory); criteria.md §10.1, §11"

# --- Thresholds (Hallek 2018 Table 4 as in criteria.md §10.1 unless stated) ---------------------------------
NODE_CR_MAX_MM = Decimal(15)            # CR: no node >= 1.5 cm
SPLEEN_NORMAL_MAX_MM = Decimal(130)     # CR: spleen < 13 cm
LYMPHOCYTES_CR_MAX = Decimal(4)         # CR: lymphocytes < 4 x 10^9/L
PLATELETS_CR_MIN = Decimal(100)         # CR / PR: platelets >= 100 x 10^9/L
HEMOGLOBIN_CR_MIN = Decimal("11.0")     # CR / PR: haemoglobin >= 11.0 g/dL untransfused
NEUTROPHILS_CR_MIN = Decimal("1.5")     # CR: ANC > 1.5 x 10^9/L (iwCLL 2008 Table 4, PMC2972576; §12 item 16)
# §12 item 16 checked: the 2018 Table 4 (ashpublications view-large 8031833) has no neutrophil row; the 2008 Table 4
# (PMC2972576 T4, view-large 6922359) has > 1500/µL for CR - hence the [I] "when reported" rule (docstring item 3).
PR_DECREASE_PCT = Decimal(-50)          # PR: decrease >= 50 % from baseline (group A)
PR_INCREASE_PCT = Decimal(50)           # PR: platelets / haemoglobin increase >= 50 % over baseline (group B)
PD_INCREASE_PCT = Decimal(50)           # PD: increase >= 50 % from baseline or from response (nodes, liver/spleen,
                                        #     lymphocytes over baseline, marrow CLL cells on successive biopsies)
PD_PLATELET_DECREASE_PCT = Decimal(-50) # PD: platelets decrease >= 50 % from baseline secondary to CLL
PD_HEMOGLOBIN_DROP_G_DL = Decimal(2)    # PD: haemoglobin decrease >= 2 g/dL from baseline secondary to CLL
LYMPHOCYTE_PD_MIN = Decimal(5)          # PD: with >= 5 x 10^9/L (5000/µL) B lymphocytes (Hallek 2008/2018 text) [P;
                                        # re-check: not in Table 4 (view-large 8031833); text not found]
RESPONSE_ASSESSMENT_MONTHS = 2          # response assessed >= 2 months after completion of therapy [P; re-check:
                                        # Hallek 2018 text not found in stored sources]
RELAPSE_MONTHS = 6                      # relapse = PD >= 6 months after CR/PR; refractory < 6 months [V Blood 2012]

RESPONSE_CATEGORIES = ("CR", "CRi", "PR")
LABELS = {
    "CR": "complete remission", "CRi": "complete remission with incomplete marrow recovery",
    "PR": "partial remission", "SD": "stable disease", "PD": "progressive disease", "NE": "not evaluable",
}
OUTCOMES = {
    "CR": Outcome.COMPLETE, "CRi": Outcome.PARTIAL, "PR": Outcome.PARTIAL, "SD": Outcome.STABLE,
    "PD": Outcome.PROGRESSION, "NE": Outcome.NOT_EVALUABLE,
}


class Marrow(str, Enum):
    NORMOCELLULAR_CLEAR = "normocellular, no CLL cells, no B-lymphoid nodules"
    HYPOCELLULAR_CLEAR = "hypocellular, no CLL cells, no B-lymphoid nodules"
    RESIDUAL = "CLL cells or B-lymphoid nodules present"


@dataclass(frozen=True)
class CllTimepoint:
    """One dated assessment (or the pre-treatment baseline).  None = not measured / not recorded.

    largest_node_mm:        longest diameter of the largest lymph node
    node_spd_mm2:           sum of the products of diameters of the measured nodes
    spleen_mm:              spleen craniocaudal length
    liver_mm:               liver size measure used for % change (optional); liver_normal: normal liver size
    constitutional_symptoms: B symptoms present
    lymphocytes, platelets, neutrophils: 10^9/L; hemoglobin_g_dl: g/dL
    transfused:             red-cell transfusion or erythropoietin before the haemoglobin value
    marrow:                 marrow finding (None = not done); marrow_cll_pct: CLL cells in marrow (%)
    cytopenia_due_to_cll:   whether a cytopenia is attributed to CLL (True) or not (False, e.g. treatment toxicity)
    new_lesion:             new node >= 15 mm, new hepatomegaly/splenomegaly or organ infiltrate [P]
    transformation:         transformation to a more aggressive histology (Richter) [P]
    reported_category:      shortcut: a category already recorded for this earlier assessment (used for history,
                            nadir and relapse timing instead of recomputing)
    refs:                   FHIR references of the resources the numbers came from
    spleen_normal:          spleen not enlarged (True) / splenomegaly (False) by examination, used only when
                            ``spleen_mm`` is not measured (a record often has the exam finding without a length)
    nodes_normal:           no lymphadenopathy (True: no node >= 1.5 cm by examination / imaging) / lymphadenopathy
                            (False), used only when ``largest_node_mm`` is not measured (Table 4 CR column "none
                            >= 1.5 cm" can be stated without a size)
    """

    date: date
    largest_node_mm: Decimal | None = None
    node_spd_mm2: Decimal | None = None
    spleen_mm: Decimal | None = None
    liver_mm: Decimal | None = None
    liver_normal: bool | None = None
    constitutional_symptoms: bool | None = None
    lymphocytes: Decimal | None = None
    platelets: Decimal | None = None
    hemoglobin_g_dl: Decimal | None = None
    neutrophils: Decimal | None = None
    transfused: bool | None = None
    marrow: Marrow | None = None
    marrow_cll_pct: Decimal | None = None
    cytopenia_due_to_cll: bool | None = None
    new_lesion: bool = False
    transformation: bool = False
    reported_category: str | None = None
    refs: tuple[str, ...] = ()
    spleen_normal: bool | None = None
    nodes_normal: bool | None = None


@dataclass(frozen=True)
class CllInputs:
    """assessments: dated assessments after baseline (any order; those after ``as_of`` are ignored)
    baseline:     pre-treatment assessment (needed for PR/SD and baseline-referenced PD; CR and nadir-PD work
                  without it)
    therapy_end:  date of the last dose of the last therapy (fixed-duration); None for continuous therapy
    bcr_inhibitor: on a BCR-pathway inhibitor (BTK / PI3K inhibitor): isolated lymphocytosis is not PD
    mrd:          MRD results (rules.mrd.MrdResult); uMRD4 is reported alongside the category
    """

    assessments: tuple[CllTimepoint, ...]
    baseline: CllTimepoint | None = None
    therapy_end: date | None = None
    bcr_inhibitor: bool = False
    mrd: tuple[mrd_rules.MrdResult, ...] = ()


def add_months(d: date, months: int) -> date:
    """Calendar months later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise ValueError(d)  # pragma: no cover


@dataclass
class _Eval:
    category: str = "NE"
    values: dict[str, KeyValue] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ev(self, rule: str, text: str, refs: tuple[str, ...], citation: str = CIT) -> None:
        self.evidence.append(Evidence(rule=rule, text=text, citation=citation, refs=refs))


class _Engine:
    def __init__(self, inputs: CllInputs, *, spleen_change_basis: str, require_marrow_for_cr: bool,
                 use_anc: bool) -> None:
        if spleen_change_basis not in ("length", "enlargement"):
            raise ValueError("spleen_change_basis must be 'length' or 'enlargement'")
        self.inputs = inputs
        self.baseline = inputs.baseline
        self.spleen_basis = spleen_change_basis
        self.require_marrow = require_marrow_for_cr
        self.use_anc = use_anc

    # -- parameter accessors ---------------------------------------------------------------------------------
    def spleen_metric(self, tp: CllTimepoint) -> Decimal | None:
        if tp.spleen_mm is None:
            return None
        if self.spleen_basis == "enlargement":
            return tp.spleen_mm - SPLEEN_NORMAL_MAX_MM
        return tp.spleen_mm

    def refs_of(self, *tps: CllTimepoint | None) -> tuple[str, ...]:
        out: list[str] = []
        for tp in tps:
            if tp is not None:
                out.extend(r for r in tp.refs if r not in out)
        return tuple(out)

    # -- PD ----------------------------------------------------------------------------------------------------
    def check_pd(self, tp: CllTimepoint, priors: list[CllTimepoint], e: _Eval) -> bool:
        base = self.baseline
        refs_pool = [p for p in ([base] if base else []) + priors]
        found: list[str] = []

        def increase(name: str, key: str, unit: str, get) -> None:
            cur = get(tp)
            if cur is None:
                return
            e.values[f"{key}"] = tp_val = cur
            candidates = [(p, get(p)) for p in refs_pool if get(p) is not None]
            if not candidates:
                return
            nadir_tp, nadir = min(candidates, key=lambda c: c[1])
            e.values[f"nadir_{key}"] = nadir
            refs = [("nadir", nadir_tp, nadir)]
            if base is not None and get(base) is not None:
                refs.insert(0, ("baseline", base, get(base)))
            short = key.removesuffix("_mm2").removesuffix("_mm")
            for label, ref_tp, ref in refs:
                if ref <= 0:
                    continue
                pct = pct_change(tp_val, ref)
                e.values[f"pct_change_{short}_from_{label}"] = pct
                if change_at_least(tp_val, ref, PD_INCREASE_PCT):
                    found.append(name)
                    e.ev(f"iwcll.pd.{key}",
                         f"{name} {fmt(tp_val)} {unit} is {fmt_pct(pct)} from {label} {fmt(ref)} {unit} "
                         f"({ref_tp.date.isoformat()}); PD needs >= +50 %", self.refs_of(tp, ref_tp))
                    return

        increase("Node SPD", "node_spd_mm2", "mm²", lambda t: t.node_spd_mm2)
        if "Node SPD" not in found:
            increase("Largest node", "largest_node_mm", "mm", lambda t: t.largest_node_mm)
        spleen_key = "spleen_mm" if self.spleen_basis == "length" else "spleen_enlargement_mm"
        increase("Spleen", spleen_key, "mm", self.spleen_metric)
        increase("Liver", "liver_mm", "mm", lambda t: t.liver_mm)

        lymph_pd = False
        if tp.lymphocytes is not None:
            e.values["lymphocytes_10e9_per_L"] = tp.lymphocytes
            if base is not None and base.lymphocytes is not None and base.lymphocytes > 0:
                pct = pct_change(tp.lymphocytes, base.lymphocytes)
                e.values["pct_change_lymphocytes_from_baseline"] = pct
                if change_at_least(tp.lymphocytes, base.lymphocytes, PD_INCREASE_PCT) and \
                        tp.lymphocytes >= LYMPHOCYTE_PD_MIN:
                    lymph_pd = True
                    text = (f"Lymphocytes {fmt(tp.lymphocytes, 2)} x10^9/L are {fmt_pct(pct)} over baseline "
                            f"{fmt(base.lymphocytes, 2)} (PD needs >= +50 % and >= {fmt(LYMPHOCYTE_PD_MIN)} x10^9/L)")
                    e.ev("iwcll.pd.lymphocytes", text, self.refs_of(tp, base))

        if base is not None and tp.platelets is not None and base.platelets is not None and base.platelets > 0:
            pct = pct_change(tp.platelets, base.platelets)
            e.values["pct_change_platelets_from_baseline"] = pct
            if change_at_most(tp.platelets, base.platelets, PD_PLATELET_DECREASE_PCT):
                text = (f"Platelets {fmt(tp.platelets)} x10^9/L are {fmt_pct(pct)} from baseline "
                        f"{fmt(base.platelets)} (PD needs a fall >= 50 % secondary to CLL)")
                if tp.cytopenia_due_to_cll:
                    found.append("Platelets")
                    e.ev("iwcll.pd.platelets", text, self.refs_of(tp, base))
                else:
                    e.notes.append(text + "; not counted because the fall is not recorded as due to CLL.")
        if base is not None and tp.hemoglobin_g_dl is not None and base.hemoglobin_g_dl is not None:
            drop = base.hemoglobin_g_dl - tp.hemoglobin_g_dl
            e.values["hemoglobin_change_g_dL"] = -drop
            if drop >= PD_HEMOGLOBIN_DROP_G_DL:
                text = (f"Haemoglobin {fmt(tp.hemoglobin_g_dl)} g/dL is {fmt(drop)} g/dL below baseline "
                        f"{fmt(base.hemoglobin_g_dl)} (PD needs a fall >= 2 g/dL secondary to CLL)")
                if tp.cytopenia_due_to_cll:
                    found.append("Haemoglobin")
                    e.ev("iwcll.pd.hemoglobin", text, self.refs_of(tp, base))
                else:
                    e.notes.append(text + "; not counted because the fall is not recorded as due to CLL.")
        if tp.marrow_cll_pct is not None:
            earlier = [p for p in refs_pool if p.marrow_cll_pct is not None]
            if earlier:
                prev = max(earlier, key=lambda p: p.date)
                if prev.marrow_cll_pct > 0 and change_at_least(tp.marrow_cll_pct, prev.marrow_cll_pct,
                                                                PD_INCREASE_PCT):
                    found.append("Marrow")
                    e.ev("iwcll.pd.marrow",
                         f"Marrow CLL cells {fmt(tp.marrow_cll_pct)} % vs {fmt(prev.marrow_cll_pct)} % on "
                         f"{prev.date.isoformat()} ({fmt_pct(pct_change(tp.marrow_cll_pct, prev.marrow_cll_pct))}; "
                         "PD needs >= +50 % on successive biopsies)", self.refs_of(tp, prev))
        if tp.new_lesion:
            found.append("New lesion")
            e.ev("iwcll.pd.new_lesion", "New lesion (node >= 15 mm, hepato-/splenomegaly or organ infiltrate)",
                 self.refs_of(tp), "Hallek 2018 §PD definition [P]")
        if tp.transformation:
            found.append("Transformation")
            e.ev("iwcll.pd.transformation", "Transformation to a more aggressive histology",
                 self.refs_of(tp), "Hallek 2018 §PD definition [P]")
        if lymph_pd:
            if self.inputs.bcr_inhibitor and not found:
                e.notes.append("Isolated lymphocytosis on a BCR-pathway inhibitor is not PD (iwCLL 2018).")
                e.ev("iwcll.pd.lymphocytosis_bcri", "Lymphocyte rise is isolated and the patient is on a BCR-pathway "
                     "inhibitor: not counted as PD", self.refs_of(tp), CIT)
            else:
                found.append("Lymphocytes")
        if tp.constitutional_symptoms and not found:
            e.notes.append("Constitutional symptoms alone do not define PD (iwCLL 2018).")
        return bool(found)

    # -- CR / CRi ----------------------------------------------------------------------------------------------
    def group_a_cr(self, tp: CllTimepoint, e: _Eval) -> tuple[bool | None, list[str]]:
        """(all group-A CR criteria met?, unmet/missing phrases)."""
        checks: list[tuple[str, bool | None]] = [
            ("no lymph node >= 15 mm", tp.nodes_normal if tp.largest_node_mm is None
             else tp.largest_node_mm < NODE_CR_MAX_MM),
            ("spleen < 130 mm", tp.spleen_normal if tp.spleen_mm is None else tp.spleen_mm < SPLEEN_NORMAL_MAX_MM),
            ("normal liver", tp.liver_normal),
            ("no constitutional symptoms",
             None if tp.constitutional_symptoms is None else not tp.constitutional_symptoms),
            ("lymphocytes < 4 x10^9/L", None if tp.lymphocytes is None else tp.lymphocytes < LYMPHOCYTES_CR_MAX),
        ]
        return self._combine(checks)

    def counts_cr(self, tp: CllTimepoint, e: _Eval) -> tuple[bool | None, list[str]]:
        hb_ok: bool | None
        if tp.hemoglobin_g_dl is None or tp.transfused:
            hb_ok = None
        else:
            hb_ok = tp.hemoglobin_g_dl >= HEMOGLOBIN_CR_MIN
        checks: list[tuple[str, bool | None]] = [
            ("platelets >= 100 x10^9/L", None if tp.platelets is None else tp.platelets >= PLATELETS_CR_MIN),
            ("untransfused haemoglobin >= 11.0 g/dL", hb_ok),
        ]
        if self.use_anc and tp.neutrophils is not None:
            checks.append(("neutrophils > 1.5 x10^9/L", tp.neutrophils > NEUTROPHILS_CR_MIN))
        return self._combine(checks)

    @staticmethod
    def _combine(checks: list[tuple[str, bool | None]]) -> tuple[bool | None, list[str]]:
        if any(v is False for _, v in checks):
            return False, [n for n, v in checks if v is False]
        if any(v is None for _, v in checks):
            return None, [n for n, v in checks if v is None]
        return True, []

    # -- PR ----------------------------------------------------------------------------------------------------
    def check_pr(self, tp: CllTimepoint, e: _Eval) -> bool | None:
        base = self.baseline
        if base is None:
            return None
        a_abn = a_imp = b_abn = b_imp = 0
        unmeasured: list[str] = []
        texts: list[str] = []

        def group_a(name: str, abnormal: bool, cur_normal: bool | None, cur: Decimal | None,
                    ref: Decimal | None, unit: str) -> None:
            nonlocal a_abn, a_imp
            if not abnormal:
                return
            a_abn += 1
            dec = (cur is not None and ref is not None and ref > 0 and change_at_most(cur, ref, PR_DECREASE_PCT))
            if cur_normal is None and cur is None:
                unmeasured.append(name)
                return
            if dec or cur_normal:
                a_imp += 1
                how = (f"{fmt_pct(pct_change(cur, ref))} from baseline {fmt(ref)} {unit}" if dec
                       else "now within the CR limit")
                texts.append(f"{name} improved ({how})")

        spd = base.node_spd_mm2 is not None and tp.node_spd_mm2 is not None
        node_abn = (base.largest_node_mm is not None and base.largest_node_mm >= NODE_CR_MAX_MM) or \
                   (base.largest_node_mm is None and base.node_spd_mm2 is not None and base.node_spd_mm2 > 0) or \
                   (base.largest_node_mm is None and base.node_spd_mm2 is None and base.nodes_normal is False)
        group_a("Lymph nodes", node_abn,
                tp.nodes_normal if tp.largest_node_mm is None else tp.largest_node_mm < NODE_CR_MAX_MM,
                tp.node_spd_mm2 if spd else tp.largest_node_mm,
                base.node_spd_mm2 if spd else base.largest_node_mm, "mm²" if spd else "mm")
        group_a("Spleen", (base.spleen_mm >= SPLEEN_NORMAL_MAX_MM) if base.spleen_mm is not None
                else base.spleen_normal is False,
                tp.spleen_normal if tp.spleen_mm is None else tp.spleen_mm < SPLEEN_NORMAL_MAX_MM,
                self.spleen_metric(tp), self.spleen_metric(base), "mm")
        group_a("Liver", base.liver_normal is False, tp.liver_normal,
                tp.liver_mm, base.liver_mm, "mm")
        if not self.inputs.bcr_inhibitor:
            group_a("Lymphocytes", base.lymphocytes is not None and base.lymphocytes >= LYMPHOCYTES_CR_MAX,
                    None if tp.lymphocytes is None else tp.lymphocytes < LYMPHOCYTES_CR_MAX,
                    tp.lymphocytes, base.lymphocytes, "x10^9/L")

        def group_b(name: str, abnormal: bool, cur: Decimal | None, ref: Decimal | None, limit: Decimal,
                    unit: str, usable: bool = True) -> None:
            nonlocal b_abn, b_imp
            if not abnormal:
                return
            b_abn += 1
            if cur is None or not usable:
                unmeasured.append(name)
                return
            if cur >= limit or (ref is not None and ref > 0 and change_at_least(cur, ref, PR_INCREASE_PCT)):
                b_imp += 1
                texts.append(f"{name} improved ({fmt(cur)} {unit}; baseline {fmt(ref) if ref is not None else '-'}; "
                             f"PR needs >= {fmt(limit)} or +50 %)")

        group_b("Platelets", base.platelets is not None and base.platelets < PLATELETS_CR_MIN, tp.platelets,
                base.platelets, PLATELETS_CR_MIN, "x10^9/L")
        group_b("Haemoglobin", base.hemoglobin_g_dl is not None and base.hemoglobin_g_dl < HEMOGLOBIN_CR_MIN,
                tp.hemoglobin_g_dl, base.hemoglobin_g_dl, HEMOGLOBIN_CR_MIN, "g/dL", usable=not tp.transfused)

        need_a, need_b = min(2, a_abn), min(1, b_abn)
        e.values.update({"group_a_abnormal_at_baseline": a_abn, "group_a_improved": a_imp,
                         "group_b_abnormal_at_baseline": b_abn, "group_b_improved": b_imp})
        if a_abn + b_abn == 0:
            e.notes.append("No group-A or group-B parameter was abnormal at baseline: PR cannot be assessed.")
            return False
        if a_imp >= need_a and b_imp >= need_b:
            e.ev("iwcll.pr", "; ".join(texts) + f" - {a_imp}/{a_abn} group A (needs {need_a}), {b_imp}/{b_abn} "
                 f"group B (needs {need_b})", self.refs_of(tp, base))
            if unmeasured:
                e.notes.append("PR met although not measured: " + ", ".join(unmeasured) + ".")
            return True
        if unmeasured:
            e.missing.extend(f"{u} (abnormal at baseline) at this assessment" for u in unmeasured)
            return None
        return False

    # -- one time point ----------------------------------------------------------------------------------------
    def evaluate(self, tp: CllTimepoint, priors: list[CllTimepoint]) -> _Eval:
        e = _Eval()
        for k, v in (("largest_node_mm", tp.largest_node_mm), ("node_spd_mm2", tp.node_spd_mm2),
                     ("spleen_mm", tp.spleen_mm), ("lymphocytes_10e9_per_L", tp.lymphocytes),
                     ("platelets_10e9_per_L", tp.platelets), ("hemoglobin_g_dL", tp.hemoglobin_g_dl),
                     ("neutrophils_10e9_per_L", tp.neutrophils)):
            if v is not None:
                e.values[k] = v
        if self.check_pd(tp, priors, e):
            e.category = "PD"
            return e
        a_ok, a_why = self.group_a_cr(tp, e)
        c_ok, c_why = self.counts_cr(tp, e)
        marrow = tp.marrow
        marrow_clear = None if marrow is None else marrow in (Marrow.NORMOCELLULAR_CLEAR, Marrow.HYPOCELLULAR_CLEAR)
        if self.use_anc and tp.neutrophils is None and a_ok and c_ok:
            e.notes.append("Neutrophils not reported: CR assessed without the iwCLL 2008 ANC > 1.5 x10^9/L "
                           "criterion (not in the 2018 Table 4 reproduction; criteria.md §12 item 16).")
        if tp.transfused is None and tp.hemoglobin_g_dl is not None and a_ok:
            e.notes.append("Transfusion status not recorded: haemoglobin taken as untransfused.")
        if a_ok and marrow_clear:
            if c_ok:
                e.category = "CR"
                e.ev("iwcll.cr", "All CR criteria met: no node >= 15 mm, spleen < 130 mm, normal liver, no "
                     "constitutional symptoms, lymphocytes < 4, platelets >= 100, Hb >= 11 g/dL untransfused, "
                     f"marrow {marrow.value}", self.refs_of(tp))
                return e
            cytopenia_not_cll = marrow is Marrow.HYPOCELLULAR_CLEAR or tp.cytopenia_due_to_cll is False
            if c_ok is False and cytopenia_not_cll:
                e.category = "CRi"
                e.ev("iwcll.cri", "Group-A CR criteria and clear marrow met; persistent cytopenia not due to CLL "
                     f"({', '.join(c_why)} not met; marrow {marrow.value})", self.refs_of(tp))
                return e
        if a_ok and c_ok and marrow is None:
            if self.require_marrow:
                e.notes.append("All clinical and blood CR criteria met but no marrow: CR needs a marrow without CLL "
                               "cells (iwCLL 2018 Table 4).")
            else:
                e.category = "CR"
                e.ev("iwcll.cr.no_marrow", "All clinical and blood CR criteria met; marrow not required by option",
                     self.refs_of(tp))
                return e
        pr = self.check_pr(tp, e)
        if pr:
            e.category = "PR"
            return e
        if self.baseline is None:
            if a_ok is not False and c_ok is not False:  # CR still possible: say what it lacks
                e.missing.extend(f"{w} (CR criterion not measured)" for w in a_why + c_why)
                if marrow is None:
                    e.missing.append("bone-marrow examination (to confirm CR)")
            e.missing.append("pre-treatment baseline assessment (needed for PR / SD)")
            return e
        if pr is None:
            return e  # missing filled by check_pr
        e.category = "SD"
        e.ev("iwcll.sd", "Neither PD, CR/CRi nor PR criteria met", self.refs_of(tp, self.baseline))
        return e


def assess(inputs: CllInputs, as_of: date, *, spleen_change_basis: str = "length",
           require_marrow_for_cr: bool = True, use_anc: bool = True) -> Assessment:
    """iwCLL 2018 response as of ``as_of`` (see module docstring for rules and [I] choices)."""
    eng = _Engine(inputs, spleen_change_basis=spleen_change_basis, require_marrow_for_cr=require_marrow_for_cr,
                  use_anc=use_anc)
    tps = sorted((t for t in inputs.assessments if t.date <= as_of), key=lambda t: t.date)
    ignored = len(inputs.assessments) - len(tps)
    if not tps:
        return Assessment(criteria=CRITERIA, category="NE", label=LABELS["NE"], outcome=Outcome.NOT_EVALUABLE,
                          assessment_date=None, confirmed=False, source=SOURCE,
                          missing=("response assessment on or before the as-of date",))

    history: list[TimepointResult] = []
    categories: dict[date, str] = {}
    final: _Eval | None = None
    for i, tp in enumerate(tps):
        last = i == len(tps) - 1
        if tp.reported_category and not last:
            cat = tp.reported_category.strip()
            cat = "PR" if cat.upper().startswith("PR") else cat
            ev = _Eval(category=cat)
        else:
            ev = eng.evaluate(tp, tps[:i])
        categories[tp.date] = ev.category
        history.append(TimepointResult(date=tp.date, category=ev.category,
                                       outcome=OUTCOMES.get(ev.category, Outcome.NOT_EVALUABLE),
                                       values=dict(ev.values)))
        if last:
            final = ev
    assert final is not None
    cur = tps[-1]
    cat = final.category
    values = dict(final.values)
    notes = list(final.notes)
    evidence = list(final.evidence)
    outcome = OUTCOMES[cat]
    confirmed = cat != "NE"

    # Relapse / refractory annotations
    responses = [t.date for t in tps[:-1] if categories[t.date] in RESPONSE_CATEGORIES]
    relapse = False
    if cat == "PD" and responses:
        first = min(responses)
        values["first_response_date"] = first
        values["days_since_first_response"] = (cur.date - first).days
        if cur.date >= add_months(first, RELAPSE_MONTHS):
            relapse = True
            outcome = Outcome.RELAPSE
            evidence.append(Evidence("iwcll.relapse", f"PD on {cur.date.isoformat()} is "
                                     f"{(cur.date - first).days} days after response first met on "
                                     f"{first.isoformat()} (relapse needs >= 6 months)", CIT_RELAPSE,
                                     eng.refs_of(cur)))
    values["relapse"] = relapse
    refractory: bool | None = None
    if inputs.therapy_end is not None and cat in ("SD", "PD"):
        within = cur.date < add_months(inputs.therapy_end, RELAPSE_MONTHS)
        refractory = not relapse and (cat == "SD" or not responses or within)
        if refractory:
            if cat == "SD":
                outcome = Outcome.NO_RESPONSE
            evidence.append(Evidence("iwcll.refractory", f"{cat} on {cur.date.isoformat()}: "
                                     + ("no response to the last therapy" if cat == "SD" or not responses else
                                        f"progression within 6 months of the end of therapy "
                                        f"({inputs.therapy_end.isoformat()})") + " = refractory", CIT_RELAPSE,
                                     eng.refs_of(cur)))
    elif cat in ("SD", "PD"):
        notes.append("End of therapy not given: refractoriness not assessed.")
    values["refractory"] = refractory

    # Timing of response assessment
    if inputs.therapy_end is not None:
        values["days_after_end_of_therapy"] = (cur.date - inputs.therapy_end).days
        if cat in RESPONSE_CATEGORIES and cur.date < add_months(inputs.therapy_end, RESPONSE_ASSESSMENT_MONTHS):
            confirmed = False
            notes.append(f"Assessed {(cur.date - inputs.therapy_end).days} days after the end of therapy: iwCLL "
                         "response is assessed >= 2 months after completion of therapy; reassess on/after "
                         f"{add_months(inputs.therapy_end, RESPONSE_ASSESSMENT_MONTHS).isoformat()}.")
            evidence.append(Evidence("iwcll.timing.early", "Response assessed < 2 months after end of therapy",
                                     CIT_TIMING, eng.refs_of(cur)))
    elif cat in RESPONSE_CATEGORIES:
        notes.append("No end-of-therapy date (continuous therapy): the >= 2-month timing rule could not be checked.")
    if cat != "NE":
        notes.append("iwCLL defines no confirmation interval beyond the timing rule (confirmed reflects timing only).")

    # MRD (uMRD4) alongside the clinical category
    label = LABELS[cat]
    mrd_used = [r for r in inputs.mrd if r.date <= as_of]
    if mrd_used:
        m = mrd_rules.assess(mrd_rules.MrdInputs(mrd_rules.Scheme.CLL, tuple(mrd_used)), as_of)
        values["mrd_status"] = m.category
        values["mrd_level_fraction"] = m.values.get("mrd_level_fraction")
        values["mrd_sensitivity_fraction"] = m.values.get("sensitivity_fraction")
        evidence.extend(m.evidence)
        notes.extend(n for n in m.notes if "confirmation interval" not in n)
        if m.category == "uMRD4" and cat in RESPONSE_CATEGORIES:
            label = f"{label} with undetectable MRD (uMRD4)"
    if inputs.bcr_inhibitor and cat == "PR":
        label = f"{label} (BCR-inhibitor: lymphocyte count not used; PR with lymphocytosis possible)"
    if ignored:
        notes.append(f"{ignored} assessment(s) dated after {as_of.isoformat()} were not used.")

    history[-1] = TimepointResult(date=cur.date, category=cat, outcome=outcome, values=dict(values))
    return Assessment(
        criteria=CRITERIA, category=cat, label=label, outcome=outcome, assessment_date=cur.date,
        confirmed=confirmed if cat != "NE" else False, source=SOURCE, values=values, evidence=tuple(evidence),
        history=tuple(history), missing=tuple(dict.fromkeys(final.missing)), notes=tuple(dict.fromkeys(notes)),
    )
