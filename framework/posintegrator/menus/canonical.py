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


#: Products joined into one piece of the canonical JSON (a few hundred kilobytes): each join
#: holds the interpreter lock only briefly.
PRODUCTS_PER_PIECE = 256


@dataclass(frozen=True)
class CanonicalMenu:
    """A menu's canonical JSON, member by member.

    :param members: each top-level field as its encoded ``"key":value``, in key order, in
        pieces (the products of a big menu are some 10 MB: joined, hashed and stored a piece
        at a time, never copied whole more than once).
    """

    members: list[tuple[str, list[bytes]]]

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
            if key == "products":
                pieces = [encoded(key) + b":["]
                for start in range(0, len(products), PRODUCTS_PER_PIECE):
                    if start:
                        pieces.append(b",")
                    pieces.append(b",".join(products[start : start + PRODUCTS_PER_PIECE]))
                pieces.append(b"]")
            else:
                pieces = [encoded(key) + b":" + encoded(dumped[key])]
            members.append((key, pieces))
        return cls(members)

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON without the :data:`VOLATILE` fields: unchanged when
        only timestamps move, and the same for every location offering the same menu."""
        hashed = hashlib.sha256(b"{")
        separator = b""
        for key, pieces in self.members:
            if key in VOLATILE:
                continue
            hashed.update(separator)
            separator = b","
            for piece in pieces:
                hashed.update(piece)
        hashed.update(b"}")
        return hashed.hexdigest()

    def body(self) -> MenuBody:
        """The canonical JSON cut around the location's value, as stored for every location
        offering this menu."""
        head = [b"{"]
        tail: list[bytes] = []
        for key, pieces in self.members:
            if key < "location":
                head.extend((*pieces, b","))
            elif key > "location":
                tail.extend((b",", *pieces))
        head.append(b'"location":')
        tail.append(b"}")
        return MenuBody(b"".join(head), b"".join(tail))


def content_hash_of(dumped: dict[str, Any]) -> str:
    """:meth:`CanonicalMenu.content_hash` of a menu's ``model_dump(mode="json")``."""
    return CanonicalMenu.of(dumped).content_hash()
