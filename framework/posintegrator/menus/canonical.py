"""The canonical JSON of a menu, encoded a product at a time: its content hash and stored body.

Canonical means what ``orjson.dumps(menu.model_dump(mode="json"), option=OPT_SORT_KEYS)``
gives: compact, keys sorted. The host stores and serves these bytes and hashes them. Encoding
a 20,000-variation menu in that one call holds the interpreter lock for a tenth of a second,
and the API waits meanwhile; a product at a time it is thousands of short calls, and a
product unchanged since the last check keeps its bytes (see ``ProductMemo`` in
:mod:`posintegrator.menus.sync`). The bytes are the same either way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from posintegrator.store import MenuBody

#: Fields left out of the content hash: when the POS changed the menu (not what it is), and
#: the location (so that locations offering the same menu share one hash and one check).
VOLATILE = frozenset({"source_updated_at", "location"})


def encoded(value: Any) -> bytes:
    """``value`` (JSON-ready data) as canonical JSON."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class CanonicalMenu:
    """A menu's canonical JSON, member by member.

    :param members: each top-level field as its encoded ``"key":value``, in key order.
    """

    members: list[tuple[str, bytes]]

    @classmethod
    def of(cls, dumped: dict[str, Any], products: list[bytes] | None = None) -> CanonicalMenu:
        """The canonical JSON of ``dumped`` (a menu's ``model_dump(mode="json")``).

        :param products: each product already encoded (:func:`encoded`), in order; encoded
            here when not given.
        """
        if products is None:
            products = [encoded(product) for product in dumped.get("products", ())]
        members = []
        for key in sorted(dumped):
            value = b"[" + b",".join(products) + b"]" if key == "products" else encoded(dumped[key])
            members.append((key, encoded(key) + b":" + value))
        return cls(members)

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON without the :data:`VOLATILE` fields: unchanged when
        only timestamps move, and the same for every location offering the same menu."""
        hashed = hashlib.sha256(b"{")
        hashed.update(b",".join(member for key, member in self.members if key not in VOLATILE))
        hashed.update(b"}")
        return hashed.hexdigest()

    def body(self) -> MenuBody:
        """The canonical JSON cut around the location's value, as stored for every location
        offering this menu."""
        before = [member for key, member in self.members if key < "location"]
        after = [member for key, member in self.members if key > "location"]
        head = b"{" + b"".join(member + b"," for member in before) + b'"location":'
        tail = b"".join(b"," + member for member in after) + b"}"
        return MenuBody(head, tail)


def content_hash_of(dumped: dict[str, Any]) -> str:
    """:meth:`CanonicalMenu.content_hash` of a menu's ``model_dump(mode="json")``."""
    return CanonicalMenu.of(dumped).content_hash()
