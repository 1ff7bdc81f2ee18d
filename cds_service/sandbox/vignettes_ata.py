"""ATA 2015 vignettes (prefix ``ATA``) -> FHIR patients, in the representations of docs/fhir-inputs-ata.md.

Each clinical fact becomes what a record carries: the initial surgery and RAI ablation as Procedures (CPT code and
text), Tg as LOINC 3013-0 in ng/mL ("<0.1" as a comparator), the way it was drawn as a coded context on the Tg
(suppressed / withdrawal) or as the thyrotropin alfa injections of an rhTSH test, TSH as 3016-3, TgAb as 8098-6
with the lab's interpretation, each imaging study as a radiology DiagnosticReport whose conclusion is the
vignette's finding text, the initial ATA risk and an earlier reported response as project-coded Observations.
Vignette field variants read: ``date``/``dates``; ``Tg_ng_mL`` (number, "<0.1 (text)", list, or a dict by
condition) and ``Tg_<condition>_ng_mL``/``_ug_L``; ``Tg_condition`` (text or list); ``TSH_mIU_L``; ``TgAb``
(text), ``TgAb_IU_mL`` (number or list), ``TgAb_assay``, ``TgAb_cutoff_IU_mL``; imaging keys naming neck US,
WBS, CT, MRI, PET or "imaging"; ``ATA_initial_risk``; ``prior_response``.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from cds_service.sandbox.builders import PatientBuilder, concept, qty
from cds_service.sandbox.vignettes import Vignette, VignetteInputError, _pid, check_keys, converter, parse_quantity
from fhir_mappings import ata as m
from fhir_mappings.record import LOCAL, LOINC, SNOMED
from rules import ata2015 as engine

Json = dict[str, Any]
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_NUM = re.compile(r"(<=|<|≤|>=|>)?\s*([0-9]+(?:\.[0-9]+)?)")

_MODALITY_KEYS = (
    (re.compile(r"(?:^|_)(?:dx)?wbs(?:_|$)|whole_body|rai_scan|i131_scan|iodine_scan|radioiodine", re.I), "wbs"),
    (re.compile(r"(?:^|_)(?:neck_)?(?:us|ultrasound|sonograph\w*)(?:_|$)|neck_us|us_neck", re.I), "us"),
    (re.compile(r"(?:^|_)(?:ct|mri|mr|pet|fdg|pet_ct|cross_sectional)(?:_|$)", re.I), "cross"),
    (re.compile(r"^imaging(?:_|$)|^imaging$", re.I), "any"),
)
_TITLES = {"us": "US Neck (thyroid bed and cervical nodes)", "wbs": "NM Whole body scan, diagnostic I-123/I-131",
           "cross": "CT Neck and Chest"}


def _dates(inp: dict) -> list[str]:
    for k in ("dates", "assessment_dates"):
        if isinstance(inp.get(k), list) and inp[k]:
            return [str(x) for x in inp[k]]
    for k in ("date", "assessment_date", "as_of"):
        if isinstance(inp.get(k), str):
            return [inp[k]]
    return ["2024-10-01"]


def _series(raw: Any, dates: list[str]) -> list[tuple[str, Any]]:
    """Values aligned with the last len(values) dates (a single value goes to the last date)."""
    seq = raw if isinstance(raw, list) else [raw]
    seq = seq[-len(dates):] if len(seq) > len(dates) else seq
    return list(zip(dates[-len(seq):], seq))


def _num(x: Any) -> tuple[Decimal | None, str | None]:
    if isinstance(x, bool):
        return None, None
    if isinstance(x, (int, float, Decimal)):
        return Decimal(str(x)), None
    mm = _NUM.search(str(x))
    if not mm:
        return None, None
    return Decimal(mm.group(2)), {"≤": "<="}.get(mm.group(1) or "", mm.group(1))


def _condition(text: str) -> str | None:
    """How the Tg was drawn, as the vignette states it (None when it does not say)."""
    c = m.tg_context_from_text(text or "")
    if c is None:
        return None
    if c is engine.TgCondition.STIMULATED_RHTSH:
        return "rhtsh"
    if c is engine.TgCondition.STIMULATED_WITHDRAWAL:
        return "withdrawal"
    if c == "stimulated":
        return "stimulated"
    return "suppressed"


def _tsh_in(text: str) -> Decimal | None:
    mm = re.search(r"TSH\s*[:=]?\s*(?:of\s*)?([0-9]+(?:\.[0-9]+)?)", text or "", re.I)
    return Decimal(mm.group(1)) if mm else None


_RAI_KEYS = {"rai", "rai_ablation", "radioiodine", "rai_remnant_ablation", "i131", "remnant_ablation", "rai_given"}


def _surgery(p: PatientBuilder, inp: dict) -> str:
    s = " ".join(str(inp.get(k, "")) for k in ("surgery", "initial_therapy", "treatment", "initial_treatment")).lower()
    when = inp.get("surgery_date")
    no_rai = re.search(r"\bno\s+(?:rai|radioiodine|i-?131)|without\s+(?:rai|radioiodine)|rai\s+not|not\s+ablated", s)
    rai = bool(re.search(r"\brai\b|radioiodine|radioactive iodine|i-?131|remnant ablation|ablation", s)) and not no_rai
    for key in [k for k in inp if k.lower() in _RAI_KEYS]:
        flag = inp.get(key)
        if isinstance(flag, str):
            flag = not re.match(r"\s*(?:no|none|not|false|n)\b", flag, re.I) if flag.strip() else None
        if isinstance(flag, bool):
            rai = flag
    completion = re.search(r"(?<!no )completion(?:\s+thyroidectomy)?", s) and not re.search(r"no\s+completion|without\s+"
                                                                                       r"completion", s)
    if re.search(r"lobectomy|hemithyroidectomy|hemi-thyroidectomy", s) and not completion:
        _procedure(p, when, "60220", "Thyroid lobectomy, unilateral (hemithyroidectomy)")
        kind = "lobectomy"
    else:
        _procedure(p, when, "60240", "Total thyroidectomy")
        kind = "total"
    if rai:
        _procedure(p, inp.get("RAI_date") or inp.get("rai_date"), "79005",
                   "Radioactive iodine (I-131) remnant ablation")
    return kind if kind == "lobectomy" else ("total+rai" if rai else "total")


def _procedure(p: PatientBuilder, when: str | None, cpt: str, text: str) -> Json:
    res: Json = {"resourceType": "Procedure", "id": p._id("proc"), "status": "completed", "subject": p.subject,
                 "code": {"coding": [{"system": m.CPT, "code": cpt, "display": text}], "text": text}}
    if when:
        res["performedDateTime"] = when
    return p.add(res)


def _rhtsh(p: PatientBuilder, tg_date: str) -> None:
    d = date.fromisoformat(tg_date)
    for days in (4, 3):  # two daily 0.9 mg IM injections; Tg 72 h after the second
        p.add({"resourceType": "MedicationAdministration", "id": p._id("medadmin"), "status": "completed",
               "subject": p.subject,
               "medicationCodeableConcept": {"text": "Thyrotropin alfa (Thyrogen) 0.9 mg IM"},
               "effectiveDateTime": (d - timedelta(days=days)).isoformat(),
               "dosage": {"text": "0.9 mg intramuscular", "dose": qty(Decimal("0.9"), "mg")}})


def _tg(p: PatientBuilder, when: str, raw: Any, cond: str | None, tsh: Decimal | None, note: str | None) -> None:
    value, comp = _num(raw)
    comps: list[Json] = []
    if cond in ("suppressed", "withdrawal", "stimulated"):
        code = {"suppressed": "suppressed", "withdrawal": "withdrawal-stimulated", "stimulated": "stimulated"}[cond]
        comps.append({"code": concept(m.TG_CONTEXT, display="Thyroglobulin stimulation context"),
                      "valueCodeableConcept": concept(LOCAL, code, code.replace("-", " "))})
    elif cond == "rhtsh":
        _rhtsh(p, when)
    if value is None:
        p.observation(m.TG, when, display="Thyroglobulin [Mass/volume] in Serum or Plasma", value_string=str(raw),
                      components=comps, note=note)
    else:
        obs = p.observation(m.TG, when, display="Thyroglobulin [Mass/volume] in Serum or Plasma", value=value,
                            unit="ng/mL", components=comps, note=note)
        if comp:
            obs["valueQuantity"]["comparator"] = comp
    if tsh is not None:
        p.observation(m.TSH, when, display="Thyrotropin [Units/volume] in Serum or Plasma", value=tsh, unit="m[IU]/L")


_TG_UNIT = re.compile(r"_(?P<unit>ng_mL|ng_ml|ug_L|ug_l)$")
_TG_NAME = re.compile(r"(?:(?P<pre>[A-Za-z_]+?)_)?(?:Tg|thyroglobulin)(?:_(?P<ctx>[A-Za-z_]+?))?", re.I)
_TG_NOT_CTX = {"condition", "context", "date", "dates", "assay", "method"}


class _TgKey:
    """A Tg field name: ``Tg_ng_mL``, ``Tg_<condition>_ng_mL``, ``<condition>_Tg_ng_mL``, ``Tg`` / ``thyroglobulin``
    (value with its unit, or a bare number in ng/mL); None for TgAb and Tg_condition."""

    @staticmethod
    def fullmatch(key: str) -> dict | None:
        um = _TG_UNIT.search(key)
        name = key[:um.start()] if um else key
        m = _TG_NAME.fullmatch(name)
        if not m or (m.group("ctx") or "").lower() in _TG_NOT_CTX:
            return None
        ctx = m.group("ctx") if (m.group("ctx") or "").lower() not in ("value", "level", "result") else None
        return {"pre": m.group("pre"), "ctx": ctx, "unit": um.group("unit") if um else None}


_TG_KEY = _TgKey


def _tg_entries(inp: dict, dates: list[str]) -> list[tuple[str, Any, str | None, str | None]]:
    """(date, raw value, condition, note) for every Tg the vignette gives."""
    out = []
    cond_raw = inp.get("Tg_condition") or inp.get("Tg_context") or ""
    conds = dict(_series(cond_raw, dates)) if isinstance(cond_raw, list) else {}
    for k, raw in inp.items():
        km = _TG_KEY.fullmatch(k)
        if not km:
            continue
        ctx = " ".join(x for x in (km["pre"], km["ctx"]) if x).replace("_", " ")
        if isinstance(raw, list) and raw and all(isinstance(x, dict) for x in raw):
            for i, item in enumerate(raw):  # [{"date", "ng_mL" / "value", "condition"}, ...]
                d = item.get("date")
                val = next((item[f] for f in ("ng_mL", "ng_ml", "ug_L", "value", "Tg", "Tg_ng_mL") if f in item),
                           None)
                if not isinstance(d, str) or val is None:
                    raise VignetteInputError("?", f"{k}[{i}]", "a Tg result needs 'date' and 'ng_mL' (or 'value')")
                cond = str(item.get("condition") or item.get("Tg_condition") or ctx or
                           (cond_raw if not isinstance(cond_raw, list) else ""))
                out.append((d, val, _condition(cond), None))
            continue
        if km["unit"] is None and not isinstance(raw, (dict, list)):
            q = parse_quantity(raw)
            if q is not None and q[2] and re.sub(r"\s+", "", q[2]).lower() not in ("ng/ml", "ug/l", "µg/l"):
                raise VignetteInputError("?", k, f"Tg unit {q[2]!r} (ng/mL = ug/L expected)")
        if isinstance(raw, dict):
            for sub, val in raw.items():
                for d, x in _series(val, dates):
                    out.append((d, x, _condition(sub), None))
            continue
        for d, x in _series(raw, dates):
            text = ctx or str(conds.get(d, cond_raw if not isinstance(cond_raw, list) else ""))
            note = re.sub(r"^[<>=\s0-9.]*", "", str(x)).strip(" ()") if isinstance(x, str) else None
            out.append((d, x, _condition(text), note or None))
    return out


def _tgab_flag(inp: dict) -> str:
    """TgAb written as a yes/no under a name that says which: ``TgAb_positive: false``, ``TgAb_negative: true``."""
    for key, val in inp.items():
        m = re.fullmatch(r"(?:TgAb|anti_?Tg|Tg_?antibod(?:y|ies))_(positive|negative|present|detected|absent)", key,
                         re.I)
        if m and isinstance(val, bool):
            pos = val if m.group(1).lower() in ("positive", "present", "detected") else not val
            return "positive" if pos else "negative"
        if m:
            raise VignetteInputError("?", key, f"expected true/false, got {val!r}")
    return ""


_TREND = re.compile(r"(\d+(?:\.\d+)?)\s*(?:->|→|to)\s*(\d+(?:\.\d+)?)")


def _tgab(p: PatientBuilder, inp: dict, dates: list[str]) -> None:
    text = str(inp.get("TgAb") or inp.get("TgAb_status") or inp.get("anti_Tg") or inp.get("TgAb_trend") or
               _tgab_flag(inp))
    trend = _TREND.search(text)
    if trend and inp.get("TgAb_IU_mL") is None:
        # "positive, rising (35 -> 80 IU/mL)": two values on the same assay; the earlier one, undated in the
        # vignette, is written six months before the assessment (the trend is what Table 11 uses)
        last = date.fromisoformat(dates[-1])
        earlier = (last - timedelta(days=182)).isoformat() if len(dates) < 2 else dates[-2]
        inp = {**inp, "TgAb_IU_mL": [trend.group(1), trend.group(2)], "TgAb_assay": "same assay"}
        dates = [earlier, dates[-1]]
    elif re.search(r"\b(rising|increasing|declining|decreasing|falling|stable)\b", text, re.I) and \
            not isinstance(inp.get("TgAb_IU_mL"), list):
        raise VignetteInputError("?", "TgAb", f"a TgAb trend ({text!r}) needs its values: TgAb_IU_mL as a list "
                                              "with dates, or 'a -> b' in the text")
    neg_text = bool(re.search(r"negative|undetectable|not detected|absent", text, re.I))
    pos_text = bool(re.search(r"positive|detected|present|elevated", text, re.I)) and not neg_text
    cutoff = inp.get("TgAb_cutoff_IU_mL") or inp.get("TgAb_URL_IU_mL")
    assays = inp.get("TgAb_assay")
    raw = inp.get("TgAb_IU_mL")
    if raw is not None:
        series = _series(raw, dates)
        assay_seq = dict(_series(assays, dates)) if isinstance(assays, list) else {}
        for d, x in series:
            value, comp = _num(x)
            if value is None:
                continue
            obs = p.observation(m.TGAB, d, display="Thyroglobulin Ab [Units/volume] in Serum or Plasma", value=value,
                                unit="[IU]/mL")
            if comp:
                obs["valueQuantity"]["comparator"] = comp
            assay = assay_seq.get(d) or ("Anti-Tg immunoassay" if not isinstance(assays, list) else None)
            if assay:
                obs["method"] = {"text": str(assay) if isinstance(assays, list) else "Anti-Tg immunoassay"}
            if cutoff is not None:
                obs["referenceRange"] = [{"high": qty(_num(cutoff)[0], "[IU]/mL")}]
            elif comp in ("<", "<=") or neg_text:
                obs["interpretation"] = [concept(INTERP, "N", "Normal")]
            else:  # a quantified antibody level without a cut-off is given because it is present (interfering)
                obs["interpretation"] = [concept(INTERP, "POS", "Positive")]
        return
    if not text:
        return
    value, comp = _num(text)
    when = dates[-1]
    if value is not None:
        obs = p.observation(m.TGAB, when, display="Thyroglobulin Ab [Units/volume] in Serum or Plasma", value=value,
                            unit="[IU]/mL")
        if comp:
            obs["valueQuantity"]["comparator"] = comp
    else:
        obs = p.observation(m.TGAB, when, display="Thyroglobulin Ab [Units/volume] in Serum or Plasma",
                            value_code=(SNOMED, "260385009") if neg_text else (SNOMED, "10828004"))
        obs["valueCodeableConcept"]["coding"][0]["display"] = "Negative" if neg_text else "Positive"
    if neg_text or pos_text:
        obs["interpretation"] = [concept(INTERP, "N" if neg_text else "POS", "Normal" if neg_text else "Positive")]
    obs["method"] = {"text": "Anti-Tg immunoassay"}


def _imaging(p: PatientBuilder, inp: dict, dates: list[str]) -> None:
    for k, raw in inp.items():
        kind = next((kd for rx, kd in _MODALITY_KEYS if rx.search(k)), None)
        if k.lower() in _RAI_KEYS:
            continue
        if isinstance(raw, bool) and (kind is not None or re.search(r"structural|functional_disease", k, re.I)):
            # "neck_US_negative": true / "imaging_negative": false / "structural_disease": true
            neg = re.search(r"negative|normal|clear", k, re.I)
            pos = re.search(r"positive|disease|abnormal|structural|metasta", k, re.I)
            if not (neg or pos):
                raise VignetteInputError("?", k, "a yes/no imaging field needs a name saying what it answers "
                                                 "(e.g. neck_US_negative) or a finding text")
            raw = "negative" if raw == bool(neg) else "structural disease present"
            kind = kind or "any"
        if kind is None or raw is None or re.search(r"_(?:date|dates|mm|cm)$", k, re.I):
            continue
        items = raw if isinstance(raw, list) else [raw]
        series = _series(items, dates)
        for d, finding in series:
            if isinstance(finding, dict):
                d = finding.get("date", d)
                finding = finding.get("result") or finding.get("finding") or finding.get("text") or ""
            text = str(finding).strip()
            modality = kind
            if kind == "any":
                mod = m.modality_of(text)
                modality = {engine.ImagingModality.WBS: "wbs", engine.ImagingModality.CROSS_SECTIONAL: "cross"}.get(
                    mod, "us") if mod else "us"
            title = _TITLES[modality]
            if modality == "cross":
                k_low = k.lower()
                title = ("FDG PET/CT" if "pet" in k_low or "fdg" in k_low else
                         "MRI Neck" if "mri" in k_low or k_low.startswith("mr") else
                         "CT Chest" if "chest" in k_low else _TITLES["cross"])
            rep = p.report(d, category="radiology", code=(LOINC, "18748-4", "Diagnostic imaging study"),
                           conclusion=text[:1].upper() + text[1:])
            rep["code"]["text"] = title


def _risk(p: PatientBuilder, inp: dict, when: str) -> None:
    raw = next((inp[k] for k in ("ATA_initial_risk", "ATA_risk", "initial_risk", "ata_risk") if inp.get(k)), None)
    if raw is None:
        return
    t = str(raw).lower()
    code = "intermediate" if "intermediate" in t else "high" if "high" in t else "low" if "low" in t else None
    if code:
        p.observation(m.ATA_RISK, when, display="ATA 2015 initial risk of recurrence", category="survey",
                      value_code=(LOCAL, code))


def _prior(p: PatientBuilder, inp: dict, first: str) -> None:
    raw = next((inp[k] for k in ("prior_response", "previous_response", "prior_category", "prior_ATA_response")
                if inp.get(k)), None)
    if raw is None:
        return
    when = inp.get("prior_response_date") or (date.fromisoformat(first) - timedelta(days=365)).isoformat()
    t = str(raw).lower()
    code = next((c for c in ("excellent", "indeterminate", "biochemical incomplete", "structural incomplete") if c in t),
                None)
    if code:
        p.observation(m.ATA_REPORTED, when, display="ATA response to therapy (reported)", category="survey",
                      value_code=(LOCAL, code.replace(" ", "-")))


_KNOWN = {"surgery", "initial_therapy", "treatment", "initial_treatment", "surgery_date", "rai_date",
          "diagnosis_date", "dates", "assessment_dates", "date", "assessment_date", "as_of", "tg_condition",
          "tg_context", "tsh_miu_l", "tsh", "tsh_uiu_ml", "tgab", "tgab_status", "tgab_iu_ml", "tgab_assay", "tgab_cutoff_iu_ml",
          "tgab_url_iu_ml", "anti_tg", "tgab_trend", "ata_initial_risk", "ata_risk", "initial_risk",
          "prior_response", "previous_response", "prior_category", "prior_ata_response", "prior_response_date",
          "note", "notes", "histology", "tnm", "stage"}
_RELEVANT = re.compile(r"tg|thyroglob|tsh|scan|imaging|ultrasound|sonograph|(?:^|_)(?:ct|mri|pet|us|wbs|fdg)(?:_|$)")


def _known(key: str) -> bool:
    k = key.lower()
    return (k in _KNOWN or k in _RAI_KEYS or _TG_KEY.fullmatch(key) is not None
            or bool(re.fullmatch(r"(?:tgab|anti_?tg|tg_?antibod(?:y|ies))_(?:positive|negative|present|detected|"
                                 r"absent)", k))
            or any(rx.search(key) for rx, _ in _MODALITY_KEYS) or bool(re.search(r"structural|functional_disease", k)))


@converter("ATA", engine.CRITERIA)
def ata(v: Vignette) -> PatientBuilder:
    inp = v["inputs"]
    check_keys(v, inp, "", _known, _RELEVANT, "ATA 2015")
    p = PatientBuilder(_pid(v))
    p.condition(icd10="C73", snomed=None, text="Papillary thyroid carcinoma", onset=inp.get("diagnosis_date"))
    dates = _dates(inp)
    kind = _surgery(p, inp)
    tsh_given = next((inp[k] for k in inp if k.lower() in ("tsh_miu_l", "tsh", "tsh_uiu_ml")), None)
    tsh_by_date = dict(_series(tsh_given, dates)) if tsh_given is not None else {}
    for d, raw, cond, note in _tg_entries(inp, dates):
        cond_text = str(inp.get("Tg_condition") or "")
        tsh = tsh_by_date.pop(d, None)
        tsh = _num(tsh)[0] if tsh is not None else _tsh_in(cond_text)
        _tg(p, d, raw, cond, tsh, note)
    for d, x in tsh_by_date.items():
        value = _num(x)[0]
        if value is not None:
            p.observation(m.TSH, d, display="Thyrotropin [Units/volume] in Serum or Plasma", value=value, unit="m[IU]/L")
    _tgab(p, inp, dates)
    _imaging(p, inp, dates)
    _risk(p, inp, dates[-1])
    _prior(p, inp, dates[0])
    crit = v.get("criteria")
    if crit not in (engine.CRITERIA, engine.CRITERIA_NO_RAI):
        crit = engine.CRITERIA if kind == "total+rai" else engine.CRITERIA_NO_RAI
    p.card_criteria = crit  # type: ignore[attr-defined]
    return p
