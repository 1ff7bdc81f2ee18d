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


class Head(msgspec.Struct):
    """The members of a resource the record index reads (any JSON value; anything else is skipped unparsed)."""

    resourceType: Any = None
    id: Any = None
    status: Any = None
    code: Any = None
    verificationStatus: Any = None


class _Entry(msgspec.Struct):
    resource: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class _Bundle(msgspec.Struct):
    resourceType: Any = None
    entry: list[_Entry] | None = None
    link: Any = None


_HEAD = msgspec.json.Decoder(Head)
_BUNDLE = msgspec.json.Decoder(_Bundle)
_ANY = msgspec.json.Decoder()


class RawResource:
    """One resource of a Bundle: its decoded head and raw JSON; :meth:`resource` decodes the rest, once."""

    __slots__ = ("head", "raw", "_res")

    def __init__(self, head: Head, raw: msgspec.Raw) -> None:
        self.head = head
        self.raw = raw
        self._res: Resource | None = None

    def resource(self) -> Resource:
        res = self._res
        if res is None:
            res = self._res = _ANY.decode(self.raw)
            self.raw = None  # type: ignore[assignment]  # the text is no longer needed
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
    out: list[RawResource] = []
    for e in bundle.entry:
        r = e.resource
        try:
            out.append(RawResource(_HEAD.decode(r), r))
        except msgspec.ValidationError:
            continue  # not an object (or absent): the plain path skips such entries too
    return LazyBundle(out, bundle.link)


def resource_of(item: Resource | RawResource) -> Resource:
    return item if type(item) is dict else item.resource()  # type: ignore[union-attr]


def type_of(item: Any) -> Any:
    if type(item) is RawResource:
        return item.head.resourceType
    return item.get("resourceType") if isinstance(item, dict) else None
