"""iRECIST vignettes -> FHIR (docs/fhir-inputs-irecist.md).

The record is a solid tumour on a checkpoint inhibitor (a MedicationRequest from the vignette's ``treatment``),
with per time point an imaging report grouping: TumorSize per target lesion, or the reported target sum; the
non-target status; new lesions as TumorSize of a lesion first seen then (with their NLT/NLNT reading and any
growth), or only the new-lesion status when the vignette gives a yes/no.
"""
from __future__ import annotations

from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept
from cds_service.sandbox.imaging_facts import field, is_nodal, new_lesion_items, quantity, timepoints, truthy
from cds_service.sandbox.vignettes import (
    Vignette,
    _confirmation_required,
    _pid,
    check_imaging_top,
    converter,
    gather_timepoints,
)
from fhir_mappings import codes
from fhir_mappings.imaging_series import INTERPRETATION, NEW_LESION_CATEGORY, TARGET_SUM
from fhir_mappings.irecist import CHECKPOINT_INHIBITORS, CHECKPOINT_RXNORM
from fhir_mappings.record import LOCAL

SUM_STEMS = ("target_sum", "sum_of_diameters", "sod", "target_sld", "sld", "sum")
SIZE_STEMS = ("ld", "longest_diameter", "size", "diameter")
SA_STEMS = ("short_axis", "sa")
INCREASED = {"interpretation": [concept(INTERPRETATION, "U", "Significant change up")]}


def medication_text(treatment: Any) -> tuple[str, str | None]:
    """(text, RxNorm ingredient code) for the vignette's treatment; a class ("anti-PD-1") is kept as written."""
    text = str(treatment or "immune checkpoint inhibitor (per protocol)")
    low = text.lower()
    for generic, brands in CHECKPOINT_INHIBITORS.items():
        if generic in low or any(b in low for b in brands):
            code = next((c for c, g in CHECKPOINT_RXNORM.items() if g == generic), None)
            return text, code
    if "anti" in low and "antibody" not in low:
        text += " monoclonal antibody"
    return text, None


def non_target_value(nt: Any) -> tuple[str, bool]:
    """(coded status, further increase) for a vignette's non-target fact."""
    if isinstance(nt, bool):
        return ("non-CR/non-PD" if nt else "none"), False
    txt = str(nt).strip().lower()
    further = "further" in txt or "increas" in txt or "worse" in txt
    if txt in ("none", "no", "absent at baseline", ""):
        return "none", False
    if txt in ("ne", "not evaluated", "not assessed", "not evaluable") or "not evaluated" in txt:
        return "NE", False
    if txt.startswith("pd") or "unequivocal" in txt or "progress" in txt or txt in ("iupd", "icpd") or further:
        return "PD", further
    if txt.startswith("cr") or txt.startswith("icr") or "disappeared" in txt or txt == "absent" \
            or "resolved" in txt:
        return "CR", False
    return "non-CR/non-PD", False


def new_category_code(cat: Any) -> str | None:
    if not isinstance(cat, str) or not cat.strip():
        return None
    t = cat.strip().lower()
    if "nlnt" in t or "non-target" in t or "non target" in t or "nontarget" in t:
        return "NLNT"
    if "nlt" in t or "target" in t:
        return "NLT"
    return None


@converter("iRECIST", "iRECIST")
def irecist(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    p = PatientBuilder(_pid(v))
    p.condition(icd10="C80.1", text="Malignant neoplasm, metastatic solid tumour", onset="2023-12-01")
    check_imaging_top(v, inp, "iRECIST")
    tps = timepoints(gather_timepoints(v, inp))
    first = tps[0]["date"] if tps else "2024-01-01"
    text, rxnorm = medication_text(field(inp, "treatment", "drug", "therapy", "immunotherapy"))
    p.medication(field(inp, "treatment_start", default=first), text, rxnorm=rxnorm)
    if truthy(field(inp, "confirmation_required")) or _confirmation_required(field(inp, "trial_design")):
        p.observation(codes.TRIAL_CONFIRMATION, first, value_bool=True, category="survey")

    bodies: dict[str, dict] = {}

    def body(lesion_id: str, site: str, nodal: bool) -> dict:
        if lesion_id not in bodies:
            bodies[lesion_id] = p.lesion(lesion_id, site or "unspecified", nodal=nodal)
        return bodies[lesion_id]

    for tp in tps:
        when = tp["date"]
        results = []
        for i, t in enumerate(field(tp, "target_lesions", "targets", "lesions", default=[]) or []):
            lid = str(t.get("id", f"T{i + 1}"))
            nodal = is_nodal(t)
            ld, sa = quantity(t, SIZE_STEMS), quantity(t, SA_STEMS)
            kwargs: dict[str, Any] = {"role": "target"}
            size = sa if nodal and sa else ld
            reported = str(t.get("reported_as", "")).lower()
            if "too small" in reported and size is None:
                kwargs["too_small"] = True
            elif size is None:
                kwargs["not_assessed"] = True
            elif nodal:
                kwargs.update(short_axis_mm=size[0], longest_mm=(ld or size)[0], unit=size[1])
            else:
                kwargs.update(longest_mm=size[0], unit=size[1])
            results.append(p.tumor_size(body(lid, t.get("site", ""), nodal), when, **kwargs))
        total = quantity(tp, SUM_STEMS)
        if total is not None and not results:
            results.append(p.observation(TARGET_SUM, when, value=total[0], unit=total[1], category="imaging",
                                         display="Sum of target lesion diameters (reported)"))
        nt = field(tp, "non_target", "non_target_status", "nontarget")
        if nt is not None:
            value, further = non_target_value(nt)
            further = further or truthy(field(tp, "non_target_further_increase", default=False))
            results.append(p.observation(codes.NON_TARGET_RESPONSE, when, value_code=value, category="imaging",
                                         note=str(nt) if not isinstance(nt, bool) else None,
                                         extra=INCREASED if further else None))
        items, word = new_lesion_items(field(tp, "new_lesions", "new_lesion"))
        for i, n in enumerate(items):
            lid = str(n.get("id", f"NL{i + 1}"))
            nodal = is_nodal(n)
            ld, sa = quantity(n, SIZE_STEMS), quantity(n, SA_STEMS)
            size = sa if nodal and sa else ld
            kwargs = {"role": "new"}
            if size is not None and nodal:
                kwargs.update(short_axis_mm=size[0], longest_mm=(ld or size)[0], unit=size[1])
            elif size is not None:
                kwargs.update(longest_mm=size[0], unit=size[1])
            obs = p.tumor_size(body(lid, n.get("site", ""), nodal), when, **kwargs)
            cat = new_category_code(n.get("category"))
            if cat:
                obs["component"].append({"code": concept(NEW_LESION_CATEGORY),
                                         "valueCodeableConcept": concept(LOCAL, cat)})
            if truthy(n.get("increased")) or "increas" in str(n.get("change", n.get("status", ""))).lower():
                obs.update(INCREASED)
            results.append(obs)
        if word == "another" and tp is not tps[0]:
            # a further new lesion besides those reported before: a lesion of its own, first seen now
            results.append(p.tumor_size(body(f"NL-{when}", "unspecified", False), when, role="new",
                                        not_assessed=True))
        if word is not None and not items and tp is not tps[0]:
            value = {"yes": "yes", "no": "no", "equivocal": "equivocal", "another": "yes"}[word]
            results.append(p.observation(codes.NEW_LESION, when, value_code=value, category="imaging"))
        p.report(when, results=results)
    return p
