"""Chart specifications for the response timeline app, read off the assessment card extension.

The app draws what the cards already say: every point is a value the engine put on a dated history entry
(``history[].values``), every reference line is a baseline/nadir the engine reported (``values``) combined with the
criterion's own threshold constant imported from ``rules`` (so a threshold is defined once, in the engine). Nothing
here assesses anything: a chart never decides a category, it shows the numbers behind the category the card gives.

A spec is plain JSON: ``{id, title, unit, scale, yMin, series: [{key, label, points: [{date, value, category,
outcome}]}], refs: [{label, value, kind}], note, description}``. ``kind`` is ``baseline``, ``nadir``, ``response``
(the response zone lies below the line), ``progression`` (the progression zone lies above it), ``normal-low`` /
``normal-high`` (a normal range) or ``limit`` (a threshold without a zone). ``description`` is the chart's text
alternative (every point and reference in words), for the figure's aria description.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterable

from rules import choi, eln2022, gcig, imwg2016, iwcll2018, lugano2014, mrecist, pcwg3, rano2, recist
from rules import ata2015

Json = dict[str, Any]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        return None
    return float(v)


def _r(x: float, places: int = 2) -> float:
    q = round(x, places)
    return int(q) if q == int(q) else q


def _fmt(x: float) -> str:
    """A number as a clinician reads it: no trailing zeros, 3 significant digits below 10, a real minus sign."""
    if x == int(x):
        text = str(int(x))
    elif abs(x) >= 10:
        text = f"{x:.1f}".rstrip("0").rstrip(".")
    else:
        text = f"{x:.3g}"
    return text.replace("-", "\u2212")


def _pct(p: Decimal | int) -> float:
    return float(p) / 100.0


def series(ext: Json, key: str, label: str, *, include_values_when_no_history: bool = True) -> Json | None:
    """Points of one value key over the history (date, value, category at that date)."""
    pts = []
    for h in ext.get("history") or ():
        v = _num((h.get("values") or {}).get(key))
        if v is not None and h.get("date"):
            pts.append({"date": h["date"], "value": v, "category": h.get("category"), "outcome": h.get("outcome")})
    if not pts and include_values_when_no_history:
        v = _num((ext.get("values") or {}).get(key))
        if v is not None and ext.get("assessmentDate"):
            pts.append({"date": ext["assessmentDate"], "value": v, "category": ext.get("category"),
                        "outcome": ext.get("outcome")})
    if not pts:
        return None
    pts.sort(key=lambda p: p["date"])
    return {"key": key, "label": label, "points": pts}


def _first(ext: Json, *keys: str) -> float | None:
    vals = ext.get("values") or {}
    for k in keys:
        v = _num(vals.get(k))
        if v is not None:
            return v
    return None


def _baseline_from_history(ext: Json, key: str) -> float | None:
    for h in ext.get("history") or ():
        if "baseline" in str(h.get("category", "")).lower() or "pretreatment" in str(h.get("category", "")).lower():
            v = _num((h.get("values") or {}).get(key))
            if v is not None:
                return v
    return None


def _ref(label: str, value: float | None, kind: str, short: str | None = None) -> Json | None:
    """A reference line; ``short`` is the tag drawn beside the line (default: by kind), ``label`` the legend text."""
    if value is None:
        return None
    return {"label": label, "value": _r(value, 3), "kind": kind, **({"short": short} if short else {})}


def _describe(spec: Json) -> str:
    parts = [f"{spec['title']} ({spec['unit']})." if spec.get("unit") else f"{spec['title']}."]
    for s in spec["series"]:
        pts = "; ".join(f"{p['date']}: {_fmt(p['value'])}" + (f" ({p['category']})" if p.get("category") else "")
                        for p in s["points"])
        parts.append(f"{s['label']}: {pts}.")
    for ref in spec["refs"]:
        parts.append(f"{ref['label']}: {_fmt(ref['value'])}.")
    if spec.get("note"):
        parts.append(spec["note"])
    return " ".join(parts)


def make(chart_id: str, title: str, unit: str, series_list: Iterable[Json | None], refs: Iterable[Json | None],
         *, scale: str = "linear", y_min: float | None = 0, note: str | None = None, kind: str = "marker") -> Json | None:
    ss = [s for s in series_list if s]
    if not ss:
        return None
    spec = {"id": chart_id, "title": title, "unit": unit, "kind": kind, "scale": scale, "yMin": y_min,
            "series": ss, "refs": [r for r in refs if r], "note": note}
    if scale == "log" and any(p["value"] <= 0 for s in ss for p in s["points"]):
        spec["scale"] = "linear"
    spec["description"] = _describe(spec)
    return {k: v for k, v in spec.items() if v is not None}


# --- one builder per criteria family ------------------------------------------------------------------------------

def _sum_of_diameters(ext: Json, key: str, base_keys: tuple[str, ...], nadir_keys: tuple[str, ...], title: str,
                      pr_pct: Decimal, pd_pct: Decimal, pd_abs_mm: Decimal | None, chart_id: str = "burden") -> Json | None:
    s = series(ext, key, title)
    if s is None:
        return None
    base = _first(ext, *base_keys)
    if base is None:
        base = _baseline_from_history(ext, key)
    nadir = _first(ext, *nadir_keys)
    if nadir is None and s["points"]:
        nadir = min(p["value"] for p in s["points"])
    refs = [_ref(f"Baseline {_fmt(base)} mm", base, "baseline") if base is not None else None,
            _ref(f"Nadir {_fmt(nadir)} mm", nadir, "nadir") if nadir is not None else None]
    if base is not None:
        v = base * (1 + _pct(pr_pct))
        refs.append(_ref(f"Response: {_fmt(float(pr_pct))} % from baseline ({_fmt(v)} mm)", v, "response"))
    if nadir is not None:
        grow = nadir * (1 + _pct(pd_pct))
        if pd_abs_mm is not None:
            v = max(grow, nadir + float(pd_abs_mm))
            label = f"Progression: +{_fmt(float(pd_pct))} % and +{_fmt(float(pd_abs_mm))} mm from nadir ({_fmt(v)} mm)"
        else:
            v = grow
            label = f"Progression: +{_fmt(float(pd_pct))} % from nadir ({_fmt(v)} mm)"
        refs.append(_ref(label, v, "progression"))
    return make(chart_id, title, "mm", [s], refs, kind="burden")


def _recist(ext: Json) -> list[Json | None]:
    chart = _sum_of_diameters(ext, "target_sum_mm", ("baseline_sum_mm",), ("nadir_sum_mm",),
                              "Sum of target lesion diameters", recist.PR_DECREASE_PCT, recist.PD_INCREASE_PCT,
                              recist.PD_ABSOLUTE_MM)
    if chart is not None:
        chart["note"] = ("Target lesions only: a new lesion or unequivocal non-target progression is progression "
                         "whatever the sum (see the category at each date).")
        chart["description"] += " " + chart["note"]
    return [chart]


def _mrecist(ext: Json) -> list[Json | None]:
    return [_sum_of_diameters(ext, "viable_sum_mm", ("baseline_viable_sum_mm",), ("nadir_viable_sum_mm",),
                              "Sum of viable (enhancing) tumour diameters", mrecist.MRECIST_PR_PCT,
                              mrecist.MRECIST_PD_PCT, None)]


def _choi(ext: Json) -> list[Json | None]:
    size = _sum_of_diameters(ext, "sld_mm", ("baseline_sld_mm",), ("nadir_sld_mm",), "Sum of longest diameters",
                             choi.CHOI_PR_SIZE_PCT, choi.CHOI_PD_SIZE_PCT, None)
    base_hu = _first(ext, "baseline_attenuation_hu")
    hu = make("attenuation", "Tumour attenuation (CT density)", "HU",
              [series(ext, "attenuation_hu", "Attenuation")],
              [_ref(f"Baseline {_fmt(base_hu)} HU", base_hu, "baseline") if base_hu is not None else None,
               _ref(f"Response: {_fmt(float(choi.CHOI_PR_ATTENUATION_PCT))} % from baseline",
                    base_hu * (1 + _pct(choi.CHOI_PR_ATTENUATION_PCT)), "response") if base_hu else None],
              note="Choi PR: size down 10 % or attenuation down 15 %.", y_min=None)
    return [size, hu]


def _spd(ext: Json, key: str, base_keys: tuple[str, ...], nadir_keys: tuple[str, ...], title: str,
         pr_pct: Decimal, pd_pct: Decimal | None, note: str | None = None) -> Json | None:
    s = series(ext, key, title)
    if s is None:
        return None
    base = _first(ext, *base_keys)
    if base is None:
        base = _baseline_from_history(ext, key)
    nadir = _first(ext, *nadir_keys)
    refs = [_ref(f"Baseline {_fmt(base)} mm²", base, "baseline") if base is not None else None,
            _ref(f"Nadir {_fmt(nadir)} mm²", nadir, "nadir") if nadir is not None else None]
    if base is not None:
        v = base * (1 + _pct(pr_pct))
        refs.append(_ref(f"Response: {_fmt(float(pr_pct))} % from baseline ({_fmt(v)} mm²)", v, "response"))
    if pd_pct is not None and nadir is not None:
        v = nadir * (1 + _pct(pd_pct))
        refs.append(_ref(f"Progression: +{_fmt(float(pd_pct))} % from nadir ({_fmt(v)} mm²)", v, "progression"))
    return make("burden", title, "mm²", [s], refs, note=note, kind="burden")


def _lugano_ct(ext: Json) -> list[Json | None]:
    return [_spd(ext, "SPD_current_mm2", ("SPD_baseline_mm2",), ("SPD_nadir_mm2",),
                 "Sum of the products of the diameters (SPD)", lugano2014.PR_SPD_CHANGE_MAX_PCT, None,
                 note=f"Lugano progression is judged per lesion (PPD +{_fmt(float(lugano2014.PD_LESION_PPD_INCREASE_PCT))}"
                      " % from its nadir with a size increment), not on the SPD.")]


def _lugano_pet(ext: Json) -> list[Json | None]:
    cmr = float(lugano2014.DEAUVILLE_CMR_MAX)
    return [make("deauville", "Highest Deauville score (5-point scale)", "score",
                 [series(ext, "highest_deauville_score", "Deauville score")],
                 [_ref(f"Complete metabolic response: score {_fmt(cmr)} or less", cmr, "response", "CMR")],
                 y_min=1, kind="burden")]


def _rano(ext: Json) -> list[Json | None]:
    return [_spd(ext, "SPD_mm2", ("baseline_SPD_mm2",), ("nadir_SPD_mm2",),
                 "Sum of the products of perpendicular diameters (SPD)", rano2.PR_PCT_2D, rano2.PD_PCT_2D)]


def _imwg(ext: Json) -> list[Json | None]:
    out = []
    base = _first(ext, "baseline_serum_M_g_dL")
    nadir = _first(ext, "nadir_serum_M_g_dL", "latest_nadir_serum_M_g_dL")
    refs = [_ref(f"Baseline {_fmt(base)} g/dL", base, "baseline") if base is not None else None,
            _ref(f"Nadir {_fmt(nadir)} g/dL", nadir, "nadir") if nadir is not None else None]
    if base is not None:
        refs.append(_ref(f"Partial response: −{_fmt(float(imwg2016.PR_SERUM_REDUCTION_PCT))} % from baseline",
                         base * (1 - _pct(imwg2016.PR_SERUM_REDUCTION_PCT)), "response"))
        refs.append(_ref(f"VGPR: −{_fmt(float(imwg2016.VGPR_SERUM_REDUCTION_PCT))} % from baseline",
                         base * (1 - _pct(imwg2016.VGPR_SERUM_REDUCTION_PCT)), "limit", "VGPR"))
    if nadir is not None:
        v = max(nadir * (1 + _pct(imwg2016.PD_PCT_INCREASE)), nadir + float(imwg2016.PD_SERUM_ABS_G_DL))
        refs.append(_ref(f"Progression: +{_fmt(float(imwg2016.PD_PCT_INCREASE))} % and "
                         f"+{_fmt(float(imwg2016.PD_SERUM_ABS_G_DL))} g/dL from nadir", v, "progression"))
    out.append(make("serum-m", "Serum M-protein", "g/dL", [series(ext, "serum_M_g_dL", "Serum M-protein")], refs))
    base_u = _first(ext, "baseline_urine_M_mg_24h")
    nadir_u = _first(ext, "nadir_urine_M_mg_24h", "latest_nadir_urine_M_mg_24h")
    refs_u = [_ref(f"Baseline {_fmt(base_u)} mg/24 h", base_u, "baseline") if base_u is not None else None,
              _ref(f"Partial response: −{_fmt(float(imwg2016.PR_URINE_REDUCTION_PCT))} % or below 200 mg/24 h",
                   max(base_u * (1 - _pct(imwg2016.PR_URINE_REDUCTION_PCT)), 200.0) if base_u is not None else None,
                   "response")]
    if nadir_u is not None:
        refs_u.append(_ref("Progression: +25 % and +200 mg/24 h from nadir",
                           max(nadir_u * (1 + _pct(imwg2016.PD_PCT_INCREASE)), nadir_u + 200), "progression"))
    out.append(make("urine-m", "Urine M-protein", "mg/24 h", [series(ext, "urine_M_mg_24h", "Urine M-protein")],
                    refs_u))
    base_d = _first(ext, "dFLC_baseline_mg_dL")
    nadir_d = _first(ext, "nadir_dFLC_mg_dL", "latest_nadir_dFLC_mg_dL")
    refs_d = [_ref(f"Baseline {_fmt(base_d)} mg/dL", base_d, "baseline") if base_d is not None else None,
              _ref(f"Partial response: −{_fmt(float(imwg2016.PR_DFLC_REDUCTION_PCT))} % from baseline",
                   base_d * (1 - _pct(imwg2016.PR_DFLC_REDUCTION_PCT)) if base_d is not None else None, "response")]
    if nadir_d is not None:
        refs_d.append(_ref(f"Progression: +25 % and more than +{_fmt(float(imwg2016.PD_DFLC_ABS_GT_MG_DL))} mg/dL "
                           "from nadir", max(nadir_d * (1 + _pct(imwg2016.PD_PCT_INCREASE)),
                                             nadir_d + float(imwg2016.PD_DFLC_ABS_GT_MG_DL)), "progression"))
    out.append(make("dflc", "Free light chains: involved minus uninvolved (dFLC)", "mg/dL",
                    [series(ext, "dFLC_mg_dL", "dFLC")], refs_d))
    out.append(make("flc", "Serum free light chains", "mg/dL",
                    [series(ext, "kappa_FLC_mg_dL", "Kappa"), series(ext, "lambda_FLC_mg_dL", "Lambda")], []))
    out.append(make("flc-ratio", "Free light chain ratio (kappa/lambda)", "ratio",
                    [series(ext, "FLC_ratio", "FLC ratio")],
                    [_ref("Normal range low 0.26", float(imwg2016.FLC_RATIO_NORMAL_LOW), "normal-low"),
                     _ref("Normal range high 1.65", float(imwg2016.FLC_RATIO_NORMAL_HIGH), "normal-high")],
                    scale="log", y_min=None))
    out.append(make("bmpc", "Bone marrow plasma cells", "%", [series(ext, "BMPC_pct", "Plasma cells")],
                    [_ref(f"Complete response: below {_fmt(float(imwg2016.CR_BMPC_LT_PCT))} %",
                          float(imwg2016.CR_BMPC_LT_PCT), "response")]))
    return out


def _ata(ext: Json) -> list[Json | None]:
    framework = str((ext.get("values") or {}).get("framework", ""))
    if "lobectomy" in framework:
        exc, bio = float(ata2015.LOBECTOMY_EXCELLENT_BELOW_NG_ML), float(ata2015.LOBECTOMY_BIOCHEMICAL_ABOVE_NG_ML)
    elif "without RAI" in framework or "no-RAI" in ext.get("criteria", ""):
        exc = float(ata2015.NO_RAI_SUPPRESSED_EXCELLENT_BELOW_NG_ML)
        bio = float(ata2015.NO_RAI_SUPPRESSED_BIOCHEMICAL_ABOVE_NG_ML)
    else:
        exc, bio = float(ata2015.RAI_SUPPRESSED_EXCELLENT_BELOW_NG_ML), float(ata2015.RAI_SUPPRESSED_BIOCHEMICAL_NG_ML)
    return [make("tg", "Thyroglobulin (Tg)", "ng/mL", [series(ext, "Tg_ng_mL", "Tg")],
                 [_ref(f"Excellent response: suppressed Tg below {_fmt(exc)} ng/mL", exc, "response"),
                  _ref(f"Biochemical incomplete: suppressed Tg from {_fmt(bio)} ng/mL", bio, "progression")],
                 note="Thresholds shown are for suppressed (non-stimulated) Tg; stimulated Tg has its own."),
            make("tgab", "Thyroglobulin antibodies (TgAb)", "IU/mL", [series(ext, "TgAb_IU_mL", "TgAb")], [])]


def _eln(ext: Json) -> list[Json | None]:
    pre = _first(ext, "pretreatment_bone_marrow_blasts_pct")
    cr = float(eln2022.CR_BLASTS_BELOW_PCT)
    return [make("blasts", "Bone marrow blasts", "%", [series(ext, "bone_marrow_blasts_pct", "Marrow blasts"),
                                                      series(ext, "pb_blasts_pct", "Peripheral blood blasts")],
                 [_ref(f"Pretreatment {_fmt(pre)} %", pre, "baseline") if pre is not None else None,
                  _ref(f"Complete remission: below {_fmt(cr)} % blasts", cr, "response", "CR")]),
            make("anc", "Absolute neutrophil count", "×10⁹/L", [series(ext, "anc_10e9_per_L", "ANC")],
                 [_ref(f"CR: ANC {_fmt(float(eln2022.CR_MIN_ANC_10E9_PER_L))} or more",
                       float(eln2022.CR_MIN_ANC_10E9_PER_L), "limit", "CR"),
                  _ref(f"CRh: ANC {_fmt(float(eln2022.CRH_MIN_ANC_10E9_PER_L))} or more",
                       float(eln2022.CRH_MIN_ANC_10E9_PER_L), "limit", "CRh")]),
            make("platelets", "Platelets", "×10⁹/L", [series(ext, "platelets_10e9_per_L", "Platelets")],
                 [_ref(f"CR: platelets {_fmt(float(eln2022.CR_MIN_PLATELETS_10E9_PER_L))} or more",
                       float(eln2022.CR_MIN_PLATELETS_10E9_PER_L), "limit", "CR"),
                  _ref(f"CRh: platelets {_fmt(float(eln2022.CRH_MIN_PLATELETS_10E9_PER_L))} or more",
                       float(eln2022.CRH_MIN_PLATELETS_10E9_PER_L), "limit", "CRh")])]


def _pcwg3(ext: Json) -> list[Json | None]:
    base = _first(ext, "baseline_ng_mL") or _baseline_from_history(ext, "PSA_ng_mL")
    nadir = _first(ext, "nadir_ng_mL")
    refs = [_ref(f"Baseline {_fmt(base)} ng/mL", base, "baseline") if base is not None else None,
            _ref(f"Nadir {_fmt(nadir)} ng/mL", nadir, "nadir") if nadir is not None else None,
            _ref(f"PSA response: {_fmt(float(pcwg3.PSA_RESPONSE_PCT))} % from baseline",
                 base * (1 + _pct(pcwg3.PSA_RESPONSE_PCT)) if base is not None else None, "response")]
    if nadir is not None:
        refs.append(_ref(f"PSA progression: +{_fmt(float(pcwg3.PSA_PROGRESSION_PCT))} % and "
                         f"+{_fmt(float(pcwg3.PSA_PROGRESSION_ABS_NG_ML))} ng/mL above nadir",
                         max(nadir * (1 + _pct(pcwg3.PSA_PROGRESSION_PCT)),
                             nadir + float(pcwg3.PSA_PROGRESSION_ABS_NG_ML)), "progression"))
    return [make("psa", "Prostate-specific antigen (PSA)", "ng/mL", [series(ext, "PSA_ng_mL", "PSA")], refs)]


def _gcig(ext: Json) -> list[Json | None]:
    pre = _first(ext, "pretreatment_U_mL") or _baseline_from_history(ext, "CA125_U_mL")
    uln = _first(ext, "uln_U_mL")
    prog = _first(ext, "progression_threshold_U_mL")
    return [make("ca125", "CA-125", "U/mL", [series(ext, "CA125_U_mL", "CA-125")],
                 [_ref(f"Pretreatment {_fmt(pre)} U/mL", pre, "baseline") if pre is not None else None,
                  _ref(f"Response: {_fmt(float(gcig.RESPONSE_REDUCTION_PCT))} % from pretreatment",
                       pre * (1 + _pct(gcig.RESPONSE_REDUCTION_PCT)) if pre is not None else None, "response"),
                  _ref(f"Upper limit of normal {_fmt(uln)} U/mL", uln, "normal-high", "ULN") if uln is not None else None,
                  _ref(f"Progression threshold {_fmt(prog)} U/mL", prog, "progression") if prog is not None else None])]


def _iwcll(ext: Json) -> list[Json | None]:
    return [make("lymphocytes", "Blood lymphocytes", "×10⁹/L", [series(ext, "lymphocytes_10e9_per_L", "Lymphocytes")],
                 [_ref(f"Complete response: below {_fmt(float(iwcll2018.LYMPHOCYTES_CR_MAX))}",
                       float(iwcll2018.LYMPHOCYTES_CR_MAX), "response")]),
            make("nodes", "Largest lymph node", "mm", [series(ext, "largest_node_mm", "Largest node")],
                 [_ref(f"Complete response: below {_fmt(float(iwcll2018.NODE_CR_MAX_MM))} mm",
                       float(iwcll2018.NODE_CR_MAX_MM), "response")], kind="burden")]


def _mrd(ext: Json) -> list[Json | None]:
    thr = _num((ext.get("values") or {}).get("threshold_fraction"))
    return [make("mrd", "Measurable residual disease", "%", [series(ext, "mrd_level_pct", "MRD level")],
                 [_ref(f"Threshold {_fmt(thr * 100)} %", thr * 100, "response") if thr else None],
                 scale="log", y_min=None)]


BUILDERS: tuple[tuple[Callable[[str], bool], Callable[[Json], list[Json | None]]], ...] = (
    (lambda c: c.startswith("RECIST") or c.startswith("iRECIST"), _recist),
    (lambda c: c.startswith("mRECIST"), _mrecist),
    (lambda c: c.startswith("Choi"), _choi),
    (lambda c: c.startswith("Lugano") and "PET" in c, _lugano_pet),
    (lambda c: c.startswith("Lugano"), _lugano_ct),
    (lambda c: c.startswith("RANO"), _rano),
    (lambda c: c.startswith("IMWG") and "MRD" not in c, _imwg),
    (lambda c: c.startswith("ATA"), _ata),
    (lambda c: c.startswith("ELN"), _eln),
    (lambda c: c.startswith("PCWG3"), _pcwg3),
    (lambda c: c.startswith("GCIG"), _gcig),
    (lambda c: c.startswith("iwCLL"), _iwcll),
    (lambda c: c.startswith("ALL MRD"), _mrd),
)


def charts_for(ext: Json) -> list[Json]:
    """The charts of one assessment (an ``org.remission-cds.assessment`` extension); [] when nothing is charted."""
    criteria = str(ext.get("criteria", ""))
    for match, build in BUILDERS:
        if match(criteria):
            return [c for c in build(ext) if c]
    return []
