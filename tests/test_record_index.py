"""PatientRecord look-ups that skip reading resources must answer exactly what the reading versions answer."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from fhir_mappings.record import PatientRecord, ref_of

_TYPES = st.sampled_from(["Observation", "DiagnosticReport", "Condition", "BodyStructure", "", None, 3])
_IDS = st.one_of(st.sampled_from(["a", "b", "1", "x/y", "", None, 0, 7]), st.text(max_size=4))
_STATUS = st.sampled_from([None, "final", "entered-in-error", "cancelled"])


@st.composite
def _resources(draw):
    out = []
    for _ in range(draw(st.integers(0, 12))):
        res = {"resourceType": draw(_TYPES), "id": draw(_IDS)}
        status = draw(_STATUS)
        if status:
            res["status"] = status
        out.append(res)
    return out


def _references(record_resources):
    known = [f"{r.get('resourceType')}/{r.get('id')}" for r in record_resources]
    base = st.one_of(st.sampled_from(known or ["Observation/a"]), st.text(max_size=12))
    decorated = st.builds(lambda ref, pre, hist: f"{pre}{ref}{hist}", base,
                          st.sampled_from(["", "http://x.org/fhir/", "urn:", "/", "a/b/"]),
                          st.sampled_from(["", "/_history/2", "/_history/", "/"]))
    return st.one_of(decorated, st.builds(lambda r: {"reference": r}, decorated),
                     st.sampled_from([None, 5, {}, {"reference": 3}, [], {"display": "x"}]))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_ref_key_is_ref_of_get(data):
    resources = data.draw(_resources())
    record = PatientRecord(resources)
    for _ in range(8):
        ref = data.draw(_references(resources))
        target = record.get(ref)
        assert record.ref_key(ref) == (ref_of(target) if target is not None else None)


_SYSTEMS = st.sampled_from(["http://cap.org/eCC", "http://loinc.org", "urn:oid:2.16.840.1.113883.6.1",
                            "http://snomed.info/sct", "", None, 3, ["x"], {"a": 1}, "missing"])


def _scan_with_system(record, system, rtype):
    """with_system() as a scan of every resource of the type (the reference answer)."""
    from fhir_mappings.record import SYSTEM_ALIASES

    wanted = {system} | {alias for alias, canon in SYSTEM_ALIASES.items() if canon == system}
    out = []
    for r in record.of_type(rtype):
        code = r.get("code")
        coding = code.get("coding") if isinstance(code, dict) else None
        if isinstance(coding, list) and any(isinstance(c, dict) and c.get("system") in wanted for c in coding):
            out.append(r)
    return out


@st.composite
def _coded_resources(draw):
    out = []
    for i in range(draw(st.integers(0, 10))):
        codings = []
        for _ in range(draw(st.integers(0, 4))):
            c = {}
            system = draw(_SYSTEMS)
            if system != "missing":
                c["system"] = system
            if draw(st.booleans()):
                c["code"] = draw(st.sampled_from(["1", " 2 ", 3]))
            codings.append(c if draw(st.integers(0, 9)) else "not a coding")
        res = {"resourceType": draw(st.sampled_from(["Observation", "Condition"])),
               "code": draw(st.sampled_from([{"coding": codings}, {"coding": codings}, codings, None]))}
        if draw(st.booleans()):
            res["id"] = str(i)
        out.append(res)
        if draw(st.integers(0, 5)) == 0:
            out.append(res)  # the same dict twice (without an id it is not deduplicated)
    return out


_LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"


def _obs(*systems, rid=None):
    res = {"resourceType": "Observation", "code": {"coding": [{"system": s, "code": "1"} for s in systems]}}
    return {**res, "id": rid} if rid else res


@settings(max_examples=300, deadline=None)
@given(_coded_resources(), st.sampled_from(["http://cap.org/eCC", "http://loinc.org", "http://snomed.info/sct"]),
       st.sampled_from(["Observation", "Condition"]))
@example([_obs("http://loinc.org"), _obs(_LOINC_OID), _obs("http://loinc.org", _LOINC_OID)], "http://loinc.org",
         "Observation")  # a system and its alias both present: the scan
@example([_obs("a", "b", "http://cap.org/eCC"), _obs("b", "a", "b", "http://cap.org/eCC", "a")], "http://cap.org/eCC",
         "Observation")  # the wanted system in a third coding
@example([_obs("http://cap.org/eCC")] * 2 + [_obs("http://cap.org/eCC", rid="1")] * 2, "http://cap.org/eCC",
         "Observation")  # one dict twice without an id (listed twice), twice with one (once)
@example([_obs("http://cap.org/eCC", ["x"])], "http://cap.org/eCC", "Observation")
@example([_obs(["x"], "http://cap.org/eCC")], "http://cap.org/eCC", "Observation")
def test_with_system_index_equals_the_scan(resources, system, rtype):
    try:
        expected = _scan_with_system(PatientRecord(resources), system, rtype)
    except TypeError:  # an unhashable system: the scan raises, and so must the index
        try:
            PatientRecord(resources).with_system(system, rtype)
        except TypeError:
            return
        raise AssertionError("with_system did not raise where the scan does")
    got = PatientRecord(resources).with_system(system, rtype)
    assert [id(r) for r in got] == [id(r) for r in expected]


# --- with_codes: the direct coding match and the remembered sort keys give what the set-based scan gave ----------

def _with_codes_by_scan(record, keys, rtype=None):
    from datetime import date as _date

    from fhir_mappings.record import concept_keys, effective_date

    out = {}
    for rt in ("Observation", "Condition"):
        for r in record.of_type(rt):
            if (rtype is None or r.get("resourceType") == rtype) and any(
                    isinstance(k, str) and k in concept_keys(r.get("code")) for k in keys):
                out[id(r)] = r
    return sorted(out.values(), key=lambda r: (effective_date(r) or _date.min, ref_of(r) or ""))


_KEYS = st.lists(st.sampled_from(["http://loinc.org|1", "http://loinc.org|2", "|3", "|1", "http://cap.org/eCC|1",
                                  "http://snomed.info/sct|2", "a|b|1", "x", 5, "http://loinc.org| 2 "]), max_size=4)


@settings(max_examples=400, deadline=None)
@given(_coded_resources(), _KEYS, st.sampled_from([None, "Observation", "Condition"]))
def test_with_codes_matches_the_scan(resources, keys, rtype):
    for i, r in enumerate(resources):
        r.setdefault("id", str(i))
        r["effectiveDateTime"] = ["2024-01-02", "2023", None, "2024-01-02T10:00:00Z"][i % 4]
    record = PatientRecord(resources)
    expected = _with_codes_by_scan(record, keys, rtype)
    assert record.with_codes(keys, rtype) == expected
    assert record.with_codes(keys, rtype) == expected  # again, with the remembered sort keys


# --- the index pass: duplicates, unusable statuses, voided Conditions, one coding or several -------------------------

def _plain_index(resources):
    """What PatientRecord.__init__ keeps, written plainly: (by type, by ref, by bare code, by system, issues)."""
    from collections import defaultdict

    from fhir_mappings.record import concept_keys

    by_type, by_ref, by_code, by_system, issues, seen = defaultdict(list), {}, defaultdict(list), defaultdict(list), [], set()
    for res in resources:
        if not isinstance(res, dict):
            continue
        rtype, rid, status = res.get("resourceType"), res.get("id"), res.get("status")
        if not isinstance(rtype, str) or rtype == "OperationOutcome":
            continue
        ref = f"{rtype}/{rid}" if rtype and rid else None
        if ref:
            if ref in seen:
                continue
            seen.add(ref)
        if isinstance(status, str) and status in ("entered-in-error", "cancelled"):
            issues.append((ref, f"{rtype} skipped", f"status is {status}"))
            continue
        voided = {f"http://terminology.hl7.org/CodeSystem/condition-ver-status|{c}" for c in ("entered-in-error", "refuted")}
        if rtype == "Condition" and concept_keys(res.get("verificationStatus")) & voided:
            issues.append((ref, "Condition skipped", "verification status is entered-in-error or refuted"))
            continue
        by_type[rtype].append(id(res))
        if ref:
            by_ref[ref] = id(res)
        code = res.get("code")
        coding = code.get("coding") if isinstance(code, dict) else None
        systems = []
        for c in coding if isinstance(coding, list) else ():
            if isinstance(c, dict):
                if isinstance(c.get("code"), str):
                    by_code[c["code"].strip()].append(id(res))
                s = c.get("system")
                if isinstance(s, str) and s not in systems:
                    systems.append(s)
                    by_system[s].append(id(res))
    return dict(by_type), by_ref, dict(by_code), dict(by_system), issues


_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


@st.composite
def _indexed_resources(draw):
    out = []
    for _ in range(draw(st.integers(0, 14))):
        res = {"resourceType": draw(st.sampled_from(["Observation", "Condition", "Condition", 3, "OperationOutcome"])),
               "id": draw(st.sampled_from(["a", "b", "c", "", None]))}
        status = draw(_STATUS)
        if status:
            res["status"] = status
        res["verificationStatus"] = draw(st.sampled_from([
            None, {"coding": [{"system": _VER, "code": "refuted"}]}, {"coding": [{"system": _VER, "code": "confirmed"}]},
            {"coding": [{"system": _VER, "code": " entered-in-error "}, "x"]}]))
        res["code"] = draw(st.sampled_from([
            None, "x", {"coding": []}, {"coding": [{"system": "http://loinc.org", "code": " 1"}]},
            {"coding": [{"code": "1"}]}, {"coding": [{"system": "s", "code": 2}]}, {"coding": "x"},
            {"coding": [{"system": "s", "code": "1"}, {"system": "s", "code": "2"}, {"system": "t"}, 4]}]))
        out.append({k: v for k, v in res.items() if v is not None})
    return out + draw(st.lists(st.sampled_from(out), max_size=4)) if out else out  # some twice (two prefetch keys)


@settings(max_examples=400, deadline=None)
@given(_indexed_resources())
def test_the_index_pass_is_the_plain_pass(resources):
    """Resource dicts (the plain decode) and RawResource heads (the lazy prefetch) are indexed as the plain pass
    indexes the dicts: the same resources under the same keys, in the same order, and the same issues."""
    import msgspec
    import orjson

    from fhir_mappings.rawjson import lazy_value, resource_of

    by_type, by_ref, by_code, by_system, issues = _plain_index(resources)
    record = PatientRecord(resources)
    assert {t: [id(r) for r in v] for t, v in record._by_type.items()} == by_type
    assert {k: id(r) for k, r in record._by_ref.items()} == by_ref
    assert {k: [id(r) for r in v] for k, v in record._by_bare_code.items()} == by_code
    assert {k: [id(r) for r in v] for k, v in record._by_system.items()} == by_system
    assert [(i.ref, i.what, i.why) for i in record.issues] == issues

    content = {id(r): r for r in resources}  # the plain pass's ids -> the resource, compared by content
    lazy = PatientRecord(lazy_value(msgspec.Raw(orjson.dumps({"resourceType": "Bundle", "entry": [
        {"resource": r} for r in resources]}))).resources)
    assert {t: [resource_of(r) for r in v] for t, v in lazy._by_type.items()} == {
        t: [content[i] for i in v] for t, v in by_type.items()}
    assert {k: resource_of(r) for k, r in lazy._by_ref.items()} == {k: content[i] for k, i in by_ref.items()}
    assert {k: [resource_of(r) for r in v] for k, v in lazy._by_bare_code.items()} == {
        k: [content[i] for i in v] for k, v in by_code.items()}
    assert {k: [resource_of(r) for r in v] for k, v in lazy._by_system.items()} == {
        k: [content[i] for i in v] for k, v in by_system.items()}
    assert [(i.ref, i.what, i.why) for i in lazy.issues] == issues
