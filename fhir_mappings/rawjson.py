"""Prefetch Bundles read lazily: every resource's head now, the whole resource only when a criterion asks for it.

A hook call carries hundreds to thousands of resources (vital signs, chemistry panels, notes) of which a
criterion reads a few dozen. Decoding all of them into Python objects, and freeing them afterwards, cost more
than everything the service does with the ones it reads (shared/reference/performance.md §3, §6.3 item 1:
select the relevant resources from the raw JSON first). So a searchset Bundle is decoded with msgspec into its
entries' raw JSON text (validated, not materialised); each resource's head (type, id, status, code,
verificationStatus: what :class:`fhir_mappings.record.PatientRecord` indexes) is decoded on its own; and the
resource itself becomes a dict the first time the record hands it to a mapper, once (the same dict every time).

Anything that does not have the usual shape (an entry that is not an object, ``entry`` that is not a list, a
value that is not a Bundle...) is left to the plain decoder, so odd input gets exactly the handling it always had.
"""
from __future__ import annotations

from typing import Any

import msgspec

Resource = dict[str, Any]


class Coding(msgspec.Struct, gc=False):
    """A Coding's system and code (any JSON value); display and the rest are skipped unparsed."""

    system: Any = None
    code: Any = None


class Concept(msgspec.Struct, gc=False):
    """A CodeableConcept's codings (``text`` is skipped)."""

    coding: list[Coding] | None = None


class Head(msgspec.Struct, gc=False):
    """The members of a resource the record index reads. ``code`` is a :class:`Concept` when it has the usual
    shape; a resource whose ``code`` does not is read with :class:`LooseHead` (``code`` as plain JSON)."""

    resourceType: Any = None
    id: Any = None
    status: Any = None
    code: Concept | None = None
    verificationStatus: Any = None


class LooseHead(msgspec.Struct, gc=False):
    resourceType: Any = None
    id: Any = None
    status: Any = None
    code: Any = None
    verificationStatus: Any = None


class _Entry(msgspec.Struct):
    resource: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class Bundle(msgspec.Struct):
    """A prefetch value read as a Bundle: its type, its entries' resources as raw JSON, its paging links."""

    resourceType: Any = None
    entry: list[_Entry] | None = None
    link: Any = None


class EntryHead(msgspec.Struct, gc=False):
    """An entry's resource head (:class:`Head`), when the resource is an object whose ``code`` has the usual
    shape; None when it is null or absent."""

    resource: Head | None = None


class BundleHeads(msgspec.Struct, gc=False):
    """A Bundle's entries' heads, from one decode of the whole request (see :func:`lazy_bundle`)."""

    entry: list[EntryHead] | None = None


_HEAD = msgspec.json.Decoder(Head)
_LOOSE_HEAD = msgspec.json.Decoder(LooseHead)
_BUNDLE = msgspec.json.Decoder(Bundle)
_ANY = msgspec.json.Decoder()


class RawResource(msgspec.Struct, gc=False, eq=False):
    """One resource of a Bundle: its decoded head and raw JSON; :meth:`resource` decodes the rest, once.

    A Struct rather than a class with ``__slots__`` only for its constructor, which runs in C (one per prefetch
    resource: ~0.06 µs against ~0.2 µs); compared and hashed by identity (``eq=False``), as a plain object is. It
    holds no cycle (a head, the raw text, then the decoded dict), so the cyclic GC does not track it."""

    head: Head | LooseHead
    raw: msgspec.Raw | None
    _res: Resource | None = None

    def resource(self) -> Resource:
        res = self._res
        if res is None:
            res = self._res = _ANY.decode(self.raw)
            self.raw = None  # the text is no longer needed
        return res


class LazyBundle:
    """A prefetch searchset Bundle whose entries are :class:`RawResource` (see the module docstring)."""

    __slots__ = ("resources", "link")

    def __init__(self, resources: list[RawResource], link: Any) -> None:
        self.resources = resources
        self.link = link

    def get(self, key: str, default: Any = None) -> Any:
        """The Bundle members resolution reads (``resourceType``, ``link``), as from the decoded dict."""
        if key == "resourceType":
            return "Bundle"
        if key == "link":
            return self.link
        return default


def decode(raw: bytes | msgspec.Raw) -> Any:
    """Any JSON value, as plain Python objects."""
    return _ANY.decode(raw)


def lazy_value(raw: msgspec.Raw) -> Any:
    """A prefetch value: a :class:`LazyBundle` for a Bundle whose entries are objects, else the plainly decoded
    value (a resource, an OperationOutcome, null, or anything unusual)."""
    try:
        bundle = _BUNDLE.decode(raw)
    except msgspec.ValidationError:  # not an object, or an entry that is not an object: the plain path
        return _ANY.decode(raw)
    if bundle.resourceType != "Bundle" or bundle.entry is None:
        return _ANY.decode(raw)
    return lazy_bundle(bundle)


def lazy_bundle(bundle: Bundle, heads: BundleHeads | None = None) -> LazyBundle:
    """The :class:`LazyBundle` of a decoded :class:`Bundle` (``resourceType`` "Bundle"): each entry's head.

    ``heads``, when given, are the same Bundle's entries decoded as :class:`BundleHeads` from the same JSON (one
    decode of the whole request instead of one per entry): an entry whose resource is null or absent is skipped,
    as below; any other shape made that decode fail, and the caller then gives no heads."""
    if heads is not None and heads.entry is not None and bundle.entry is not None \
            and len(heads.entry) == len(bundle.entry):
        return LazyBundle([RawResource(h.resource, e.resource) for e, h in zip(bundle.entry, heads.entry)
                           if h.resource is not None], bundle.link)
    out: list[RawResource] = []
    decode_head = _HEAD.decode
    for e in bundle.entry or ():
        r = e.resource
        try:
            head = decode_head(r)
        except msgspec.ValidationError:
            try:
                head = _LOOSE_HEAD.decode(r)  # an object whose code has another shape
            except msgspec.ValidationError:
                continue  # not an object (or absent): the plain path skips such entries too
        out.append(RawResource(head, r))
    return LazyBundle(out, bundle.link)


def resource_of(item: Resource | RawResource) -> Resource:
    return item if type(item) is dict else item.resource()  # type: ignore[union-attr]


def type_of(item: Any) -> Any:
    if type(item) is RawResource:
        return item.head.resourceType
    return item.get("resourceType") if isinstance(item, dict) else None
