"""One index over the raw FHIR resources of a patient, built once per hook call.

Resources stay plain JSON dicts (parsed by orjson); typed objects are built only for what a criterion uses.
Unusable resources (entered-in-error, cancelled, no date) are recorded as issues, not raised.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Iterator

import msgspec

from fhir_mappings.rawjson import Concept, RawResource, resource_of, type_of

Resource = dict[str, Any]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
UCUM = "http://unitsofmeasure.org"
LOCAL = "http://remission-cds.org/fhir/CodeSystem/criteria-inputs"

UNUSABLE_STATUS = {"entered-in-error", "cancelled"}
SYSTEM_ALIASES = {"urn:oid:2.16.840.1.113883.6.1": LOINC, "urn:oid:2.16.840.1.113883.6.96": SNOMED,
                  "http://snomed.info/id": SNOMED, "urn:oid:2.16.840.1.113883.6.90": ICD10CM}


_VOIDED = frozenset({  # Condition.verificationStatus keys that void a Condition
    "http://terminology.hl7.org/CodeSystem/condition-ver-status|entered-in-error",
    "http://terminology.hl7.org/CodeSystem/condition-ver-status|refuted",
})


@dataclass(frozen=True)
class MappingIssue:
    """Something in the record that could not be used, and why (never carries clinical values)."""

    ref: str | None
    what: str
    why: str

    def text(self) -> str:
        return f"{self.what}: {self.why}" + (f" ({self.ref})" if self.ref else "")


def ref_of(res: Resource) -> str | None:
    rtype, rid = res.get("resourceType"), res.get("id")
    return f"{rtype}/{rid}" if rtype and rid else None


def codings(concept: Any) -> Iterator[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept, with OID spellings of common systems normalised."""
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return
    for c in concept["coding"]:
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            system = c.get("system") if isinstance(c.get("system"), str) else ""
            yield SYSTEM_ALIASES.get(system, system), c["code"].strip()


def concept_keys(concept: Any) -> set[str]:
    """``system|code`` keys of a CodeableConcept (the pairs of :func:`codings`).

    Written out rather than built from ``codings()``: it runs for every resource of every hook call.
    """
    out: set[str] = set()
    if type(concept) is Concept:  # a RawResource's head: the same pairs, read from the decoded struct
        for c in concept.coding or ():
            code = c.code
            if isinstance(code, str):
                system = c.system if isinstance(c.system, str) else ""
                out.add(f"{SYSTEM_ALIASES.get(system, system)}|{code.strip()}")
        return out
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return out
    for c in concept["coding"]:
        if isinstance(c, dict):
            code = c.get("code")
            if isinstance(code, str):
                system = c.get("system")
                if not isinstance(system, str):
                    system = ""
                out.add(f"{SYSTEM_ALIASES.get(system, system)}|{code.strip()}")
    return out


def concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if isinstance(concept.get("text"), str):
        return concept["text"]
    coding = concept.get("coding")
    for c in coding if isinstance(coding, list) else ():
        if isinstance(c, dict) and isinstance(c.get("display"), str):
            return c["display"]
    return ""


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) == 4:
            return date(int(value), 1, 1)
        if len(value) == 7:
            return date(int(value[:4]), int(value[5:7]), 1)
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


# the members effective_date reads, in its order (ReportHead holds them all)
DATE_KEYS = ("effectiveDateTime", "issued", "performedDateTime", "recordedDate", "authoredOn", "onsetDateTime")
PERIOD_KEYS = ("effectivePeriod", "performedPeriod")


def effective_date(res: Resource) -> date | None:
    for key in DATE_KEYS:
        d = parse_date(res.get(key))
        if d:
            return d
    for key in PERIOD_KEYS:
        p = res.get(key)
        if isinstance(p, dict):
            d = parse_date(p.get("start")) or parse_date(p.get("end"))
            if d:
                return d
    return None


def to_decimal(value: Any) -> Decimal | None:
    """A finite Decimal, or None (NaN and infinities, e.g. the string "NaN" in a valueQuantity, are not values)."""
    if isinstance(value, bool) or value is None:
        return None
    out: Decimal | None = None
    if isinstance(value, (int, Decimal)):
        out = Decimal(value)
    elif isinstance(value, float):
        out = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            out = Decimal(value.strip())
        except InvalidOperation:
            return None
    return out if out is not None and out.is_finite() else None


def quantity(q: Any) -> tuple[Decimal | None, str | None, str | None]:
    """(value, ucum unit, comparator) of a Quantity; unit prefers ``code`` when the system is UCUM."""
    if not isinstance(q, dict):
        return None, None, None
    v = to_decimal(q.get("value"))
    unit = q.get("code") if isinstance(q.get("code"), str) and q.get("system") in (UCUM, None) else None
    if unit is None and isinstance(q.get("unit"), str):
        unit = q["unit"]
    comp = q.get("comparator") if isinstance(q.get("comparator"), str) else None
    return v, unit, comp


def _has_coding(concept: Any, system: str, code: str) -> bool:
    """Whether ``f"{system}|{code}"`` is one of :func:`concept_keys` of the concept (system already normalised
    in the key; the coding's is normalised here)."""
    if type(concept) is Concept:
        for c in concept.coding or ():
            bare = c.code
            if isinstance(bare, str) and bare.strip() == code:
                s = c.system if isinstance(c.system, str) else ""
                if SYSTEM_ALIASES.get(s, s) == system:
                    return True
        return False
    if not isinstance(concept, dict):
        return False
    coding = concept.get("coding")
    if not isinstance(coding, list):
        return False
    for c in coding:
        if isinstance(c, dict):
            bare = c.get("code")
            if isinstance(bare, str) and bare.strip() == code:
                s = c.get("system")
                if not isinstance(s, str):
                    s = ""
                if SYSTEM_ALIASES.get(s, s) == system:
                    return True
    return False


def _head_get(self: Any, key: str, default: Any = None) -> Any:
    """``dict.get`` over the members a :class:`ReportHead` holds; any other member is an error, never a silent
    None (a reader that needs more of the report must decode it: ``record.get(ref_of(head))``)."""
    if key not in _REPORT_HEAD_FIELDS:
        raise KeyError(f"a ReportHead does not hold {key!r}")
    value = getattr(self, key)
    return default if value is msgspec.UNSET else value


# What the record's report readers (report_text.stated_in_record, recist._report_dates) read of a DiagnosticReport:
# its reference, the members effective_date reads, its text (report_text.report_texts: conclusion, conclusionCode,
# presentedForm) and its result references. Read from the raw JSON of a report not yet decoded (a scan that builds
# only these members: a chemistry panel's results and an imaging report's conclusion, not the rest); each member
# is the value the decoded dict holds (UNSET when absent), and ``get`` answers as the dict's does. Plain decoded
# values in slots, no cycles: untracked by the GC (gc=False), like rawjson.Head.
ReportHead = msgspec.defstruct(
    "ReportHead",
    [(k, Any, msgspec.UNSET) for k in ("resourceType", "id", *DATE_KEYS, *PERIOD_KEYS, "conclusion",
                                        "conclusionCode", "presentedForm", "result")],
    namespace={"get": _head_get}, module=__name__, gc=False)
_REPORT_HEAD_FIELDS = frozenset(ReportHead.__struct_fields__)
_REPORT_HEAD = msgspec.json.Decoder(ReportHead)


class PatientRecord:
    """Resources of one patient indexed by type, id and code."""

    def __init__(self, resources: Iterable[Resource], patient_id: str | None = None) -> None:
        self.patient_id = patient_id
        self.issues: list[MappingIssue] = []
        # per-call memo for derived views several mappers share (report statements, resources by code system)
        self.memo: dict[Any, Any] = {}
        self._by_type: dict[str, list[Resource]] = defaultdict(list)
        self._by_ref: dict[str, Resource] = {}
        # Index by the bare code string only: a prefetch holds thousands of resources a criterion never asks for,
        # and building their system|code keys cost more than the rest of the index. with_codes() checks the
        # full system|code of the few candidates (concept_keys), so the answers are the same.
        self._by_bare_code: dict[str, list[Resource]] = defaultdict(list)
        # Resources by the (raw, string) system of their code's codings, built in the same pass: with_system()
        # would otherwise read every resource's codings a second time. A non-hashable system (the scan would
        # raise on it) sends with_system() back to the scan.
        self._by_system: dict[str, list[Resource]] = defaultdict(list)
        self._odd_system = False
        self._decoded_types: set[str] = set()
        self._order: dict[int, tuple[date, str]] = {}  # with_codes' sort key of each resource handed out, by id
        by_type, by_ref, by_bare_code, by_system = self._by_type, self._by_ref, self._by_bare_code, self._by_system
        skipped: set[str] = set()  # refs of the resources skipped below (the others are the keys of by_ref)
        # An item is a resource dict, or a RawResource (fhir_mappings/rawjson.py: its head decoded, the rest on
        # demand). The index lists hold the items as given; what a mapper receives is always the dict
        # (of_type, get, with_codes and with_system decode a RawResource the first time, once).
        for res in resources:  # runs for every prefetch resource of every call: locals, no helper calls
            if type(res) is RawResource:
                head = res.head
                rtype, rid, status, code = head.resourceType, head.id, head.status, head.code
            elif isinstance(res, dict):
                head = None
                rtype, rid, status, code = res.get("resourceType"), res.get("id"), res.get("status"), res.get("code")
            else:
                continue
            if not isinstance(rtype, str) or rtype == "OperationOutcome":  # a search's warnings, not patient data
                continue
            ref = f"{rtype}/{rid}" if rtype and rid else None  # ref_of(res), inlined
            if ref and (ref in by_ref or ref in skipped):
                continue  # the same resource from two prefetch keys
            if isinstance(status, str) and status in UNUSABLE_STATUS:
                if ref:
                    skipped.add(ref)
                self.issues.append(MappingIssue(ref, f"{rtype} skipped", f"status is {status}"))
                continue
            if rtype == "Condition" and concept_keys(
                    head.verificationStatus if head is not None else res.get("verificationStatus")) & _VOIDED:
                if ref:
                    skipped.add(ref)
                self.issues.append(MappingIssue(ref, "Condition skipped", "verification status is entered-in-error or refuted"))
                continue
            by_type[rtype].append(res)
            if ref:
                by_ref[ref] = res
            if type(code) is Concept:  # a RawResource's head (fhir_mappings/rawjson.py)
                coding = code.coding
                if not coding:
                    continue
                if len(coding) == 1:  # the usual case: the loop below for one coding, without its tuples
                    c = coding[0]
                    bare, system = c.code, c.system
                    if isinstance(bare, str):
                        by_bare_code[bare.strip()].append(res)
                    if isinstance(system, str):
                        by_system[system].append(res)
                    elif system is not None and not self._odd_system:
                        try:
                            hash(system)
                        except TypeError:
                            self._odd_system = True
                    continue
                pairs = [(c.code, c.system) for c in coding]
            elif isinstance(code, dict):
                coding = code.get("coding")
                if not isinstance(coding, list):
                    continue
                pairs = [(c.get("code"), c.get("system")) for c in coding if isinstance(c, dict)]  # type: ignore[assignment]
            else:
                continue
            systems: set[str] | str | None = None  # the systems this resource is listed under
            for bare, system in pairs:
                if isinstance(bare, str):
                    by_bare_code[bare.strip()].append(res)
                if isinstance(system, str):
                    if systems is None:  # the usual single coding: no set
                        systems = system
                        by_system[system].append(res)
                    elif isinstance(systems, str):
                        if system != systems:
                            systems = {systems, system}
                            by_system[system].append(res)
                    elif system not in systems:
                        systems.add(system)
                        by_system[system].append(res)
                elif system is not None and not self._odd_system:
                    try:
                        hash(system)
                    except TypeError:
                        self._odd_system = True

    def of_type(self, rtype: str) -> list[Resource]:
        items = self._by_type.get(rtype)
        if not items:
            return []
        if rtype not in self._decoded_types:  # decode the type's RawResources in place, once
            for i, item in enumerate(items):
                if type(item) is RawResource:
                    items[i] = item.resource()
            self._decoded_types.add(rtype)
        return items

    def dated_reports(self) -> list[tuple[Resource | ReportHead, date]]:
        """(report, effective_date(report)) for the record's DiagnosticReports that have a date, in record order,
        computed once per record.

        A report already decoded (or a plain dict) is given as its dict; one still raw (rawjson.RawResource) as a
        :class:`ReportHead`, read from its JSON without decoding the resource: ``get`` answers for the members a
        ReportHead holds exactly as the dict would, and raises KeyError for any other. So a reader of dates, text
        and result references leaves the reports undecoded (at 1,000 Observations, half of them chemistry panels
        no criterion reads)."""
        out = self.memo.get("dated_reports")
        if out is None:
            out = []
            decode_head = _REPORT_HEAD.decode
            for item in self._by_type.get("DiagnosticReport", ()):
                if type(item) is RawResource:
                    rep = item._res
                    if rep is None:
                        try:
                            rep = decode_head(item.raw)
                        except msgspec.ValidationError:  # not expected (the head was read): the resource itself
                            rep = item.resource()
                else:
                    rep = item
                d = effective_date(rep)
                if d is not None:
                    out.append((rep, d))
            self.memo["dated_reports"] = out
        return out

    def get(self, reference: Any) -> Resource | None:
        if isinstance(reference, dict):
            reference = reference.get("reference")
        if not isinstance(reference, str):
            return None
        if reference.count("/") != 1:  # not "Type/id", the usual case
            reference = reference.split("/_history/")[0]
            if reference.count("/") > 1:  # absolute URL
                reference = "/".join(reference.rsplit("/", 2)[-2:])
        item = self._by_ref.get(reference)
        return item.resource() if type(item) is RawResource else item

    def ref_key(self, reference: Any) -> str | None:
        """``ref_of(self.get(reference))`` without reading the target: the ``Type/id`` under which a Reference
        (or reference string) resolves in this record, or None. The index keys are ``ref_of`` of their resource,
        so for a walk over many references (every report's ``result``) this touches no target resource."""
        if isinstance(reference, dict):
            reference = reference.get("reference")
        if not isinstance(reference, str):
            return None
        if reference.count("/") != 1:
            reference = reference.split("/_history/")[0]
            if reference.count("/") > 1:  # absolute URL
                reference = "/".join(reference.rsplit("/", 2)[-2:])
        return reference if reference in self._by_ref else None

    def with_codes(self, keys: Iterable[str], rtype: str | None = None) -> list[Resource]:
        """Resources whose ``code`` carries any of ``system|code`` keys, in date order, without duplicates.

        A candidate comes from the bare-code index under the code after one of the key's "|"; it matches when one
        of its codings has that code (stripped) and, normalised, the system before that "|" (which is
        ``key in concept_keys(code)`` for that candidate, without building the set)."""
        out: dict[int, Resource] = {}
        by_bare_code = self._by_bare_code
        for k in keys:
            if not isinstance(k, str):
                continue
            at = k.find("|")
            while at >= 0:  # the code is what follows a "|" (the first one, unless the system holds one)
                bare = k[at + 1:]
                candidates = by_bare_code.get(bare)
                if candidates:
                    system = k[:at]
                    for item in candidates:
                        if type(item) is RawResource:  # the head holds type and code: decode only what matches
                            if (rtype is None or item.head.resourceType == rtype) and _has_coding(
                                    item.head.code, system, bare):
                                res = item.resource()
                                out[id(res)] = res
                        elif (rtype is None or item.get("resourceType") == rtype) and _has_coding(
                                item.get("code"), system, bare):
                            out[id(item)] = item
                at = k.find("|", at + 1)
        if len(out) < 2:
            return list(out.values())
        order = self._order
        for i, r in out.items():
            if i not in order:
                order[i] = (effective_date(r) or date.min, ref_of(r) or "")
        return sorted(out.values(), key=lambda r: order[id(r)])

    def with_system(self, system: str, rtype: str) -> list[Resource]:
        """Resources of ``rtype`` whose ``code`` has a coding in ``system`` (computed once per record)."""
        key = ("with_system", system, rtype)
        if key not in self.memo:
            wanted = {system} | {alias for alias, canon in SYSTEM_ALIASES.items() if canon == system}
            listed = [self._by_system[s] for s in wanted if isinstance(s, str) and s in self._by_system]
            if not self._odd_system and len(listed) <= 1:
                # from the index: the resources (of any type) with a coding in the one system present, in
                # record order; keep those of rtype (what the scan below returns, without reading the others)
                self.memo[key] = [resource_of(r) for r in (listed[0] if listed else ()) if type_of(r) == rtype]
                return self.memo[key]
            out = []
            for r in self.of_type(rtype):  # every resource of the type: plain loops, no generator per resource
                code = r.get("code")
                coding = code.get("coding") if isinstance(code, dict) else None
                if isinstance(coding, list):
                    for c in coding:
                        if isinstance(c, dict) and c.get("system") in wanted:
                            out.append(r)
                            break
            self.memo[key] = out
        return self.memo[key]

    def issue(self, res: Resource | None, what: str, why: str) -> None:
        self.issues.append(MappingIssue(ref_of(res) if res else None, what, why))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_type.values())
