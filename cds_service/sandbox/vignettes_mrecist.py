"""mRECIST (HCC) vignettes -> FHIR (docs/fhir-inputs-mrecist.md).

An HCC Condition (ICD-10-CM C22.0); per time point an imaging report grouping TumorSize per target lesion with the
conventional and the viable (arterially enhancing) longest diameter, or the reported viable / total sums; the
non-target status; new lesions (new nodes with their short axis) or the new-lesion status; a new or increasing
effusion and its cytology.
"""
from __future__ import annotations

from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept
from cds_service.sandbox.imaging_facts import (
    cytology_word,
    field,
    is_nodal,
    new_lesion_items,
    quantity,
    timepoints,
    truthy,
)
from cds_service.sandbox.vignettes import Vignette, _pid, check_imaging_top, converter, gather_timepoints
from fhir_mappings import codes
from fhir_mappings.imaging_series import EFFUSION, EFFUSION_CYTOLOGY, TARGET_SUM, VIABLE_DIAMETER, VIABLE_SUM
from fhir_mappings.record import LOCAL, SNOMED

VIABLE_STEMS = ("viable_enhancing_ld", "viable_ld", "viable_enhancing", "enhancing_ld", "viable_diameter", "viable",
                "arterial_enhancing_ld", "viable_mm")
TOTAL_STEMS = ("ld", "total_ld", "longest_diameter", "total", "size", "diameter")
SA_STEMS = ("short_axis", "sa")
VIABLE_SUM_STEMS = ("viable_sum", "viable_enhancing_sum", "sum_viable", "viable_sld", "viable_sum_of_diameters")
TOTAL_SUM_STEMS = ("total_sum", "target_sum", "sum", "sld", "total_sld", "sum_of_diameters")


def non_target_value(nt: Any) -> str:
    if isinstance(nt, bool):
        return "IR/SD" if nt else "none"
    t = str(nt).strip().lower()
    if t in ("none", "no", ""):
        return "none"
    if t in ("ne", "not evaluated", "not assessed") or "not evaluated" in t:
        return "NE"
    if t.startswith("pd") or "progress" in t or "unequivocal" in t:
        return "PD"
    if t.startswith("cr") or "no enhancement" in t or "disappeared" in t or "loss of enhancement" in t \
            or "non-enhancing" in t:
        return "CR"
    return "IR/SD"


def _effusion(tp: dict) -> tuple[bool, str | None]:
    """(new or increasing effusion/ascites, cytology word) of one time point."""
    eff = field(tp, "effusion", "effusion_new_or_increased", "new_effusion", "ascites", "new_ascites",
                "pleural_effusion", "effusion_or_ascites")
    cyto = field(tp, "effusion_cytology", "cytology", "cytology_malignant", "effusion_cytology_malignant")
    if isinstance(eff, dict):
        cyto = field(eff, "cytology", "cytology_malignant", "malignant_cytology", default=cyto)
        eff = field(eff, "new_or_increased", "new", "increased", "present", default=True)
    return truthy(eff), cytology_word(cyto)


@converter("mRECIST", "mRECIST (HCC)")
def mrecist(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    p = PatientBuilder(_pid(v))
    p.condition(icd10="C22.0", snomed="25370001", text="Hepatocellular carcinoma", onset="2023-10-01")
    check_imaging_top(v, inp, "mRECIST")
    tps = timepoints(gather_timepoints(v, inp))
    bodies: dict[str, dict] = {}

    def body(lesion_id: str, site: str, nodal: bool) -> dict:
        if lesion_id not in bodies:
            bodies[lesion_id] = p.lesion(lesion_id, site or ("lymph node" if nodal else "liver"), nodal=nodal)
        return bodies[lesion_id]

    for k, tp in enumerate(tps):
        when = tp["date"]
        results = []
        for i, t in enumerate(field(tp, "targets", "target_lesions", "lesions", default=[]) or []):
            lid = str(t.get("id", f"T{i + 1}"))
            nodal = is_nodal(t)
            total, viable, sa = quantity(t, TOTAL_STEMS), quantity(t, VIABLE_STEMS), quantity(t, SA_STEMS)
            site = t.get("site", "")
            if nodal and truthy(t.get("porta_hepatis")):
                site = f"porta hepatis lymph node {site}".strip()
            kwargs: dict[str, Any] = {"role": "target"}
            if nodal and (sa or viable or total):
                size = sa or viable or total
                kwargs.update(short_axis_mm=size[0], longest_mm=(total or size)[0], unit=size[1])
            elif total is not None:
                kwargs.update(longest_mm=total[0], unit=total[1])
            elif viable is None:
                kwargs["not_assessed"] = True
            obs = p.tumor_size(body(lid, site, nodal), when, **kwargs)
            if viable is not None and not nodal:
                obs["component"].append({"code": concept(VIABLE_DIAMETER, display="Viable (arterially enhancing) "
                                                         "tumour longest diameter"),
                                         "valueQuantity": {"value": viable[0], "unit": viable[1],
                                                           "system": "http://unitsofmeasure.org", "code": viable[1]}})
            results.append(obs)
        if not results:
            vs, ts = quantity(tp, VIABLE_SUM_STEMS), quantity(tp, TOTAL_SUM_STEMS)
            if vs is not None:
                results.append(p.observation(VIABLE_SUM, when, value=vs[0], unit=vs[1], category="imaging",
                                             display="Sum of viable target diameters (reported)"))
            if ts is not None:
                results.append(p.observation(TARGET_SUM, when, value=ts[0], unit=ts[1], category="imaging",
                                             display="Sum of target lesion diameters (reported)"))
        nt = field(tp, "non_target", "non_target_status", "nontarget")
        if nt is not None:
            results.append(p.observation(codes.NON_TARGET_RESPONSE, when, value_code=non_target_value(nt),
                                         category="imaging", note=None if isinstance(nt, bool) else str(nt)))
        if k > 0:
            items, word = new_lesion_items(field(tp, "new_lesions", "new_lesion"))
            nodes = field(tp, "new_nodes", "new_lymph_nodes", default=[]) or []
            for i, n in enumerate(list(items) + [dict(x, type="nodal") for x in nodes if isinstance(x, dict)]):
                lid = str(n.get("id", f"NL{i + 1}"))
                nodal = is_nodal(n)
                site = n.get("site", "")
                if nodal and truthy(n.get("porta_hepatis")):
                    site = f"porta hepatis lymph node {site}".strip()
                size = quantity(n, SA_STEMS) if nodal else None
                size = size or quantity(n, TOTAL_STEMS) or quantity(n, VIABLE_STEMS)
                kwargs: dict[str, Any] = {"role": "new"}
                if size is not None and nodal:
                    kwargs.update(short_axis_mm=size[0], longest_mm=size[0], unit=size[1])
                elif size is not None:
                    kwargs.update(longest_mm=size[0], unit=size[1])
                results.append(p.tumor_size(body(lid, site, nodal), when, **kwargs))
            if word is not None and not items and not nodes:
                results.append(p.observation(codes.NEW_LESION, when, value_code="yes" if word == "another" else word,
                                             category="imaging"))
            effusion, cytology = _effusion(tp)
            if effusion:
                results.append(p.observation(EFFUSION, when, value_bool=True, category="imaging",
                                             display="New or increasing effusion or ascites"))
                if cytology is not None:
                    p.observation(EFFUSION_CYTOLOGY, when, value_code=(LOCAL, cytology), category="laboratory",
                                  display="Effusion cytology", method=concept(SNOMED, "116147009",
                                                                              "Cytologic test (procedure)"))
        p.report(when, results=results)
    return p
