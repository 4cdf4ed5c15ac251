"""The last catalog read from Square, kept between syncs to read only what changed (pure).

A full read of a big catalog is many SearchCatalogObjects pages; after one price change only
that object needs reading: SearchCatalogObjects with ``begin_time`` (exclusive) returns the
objects changed since, and its ``latest_time`` says when the catalog last changed. The objects
are applied to the kept catalog, which then equals what a full read would give. When that
cannot be trusted the plugin reads everything again (see :meth:`KeptCatalog.apply`), and on a
schedule anyway (``full_catalog_read_hours``).

The catalog is kept in the connection's plugin state (``ctx.state``), so it survives a restart:
one key with what it is (format, times, how many chunks), and the objects in chunks of
:data:`CHUNK_OBJECTS`, so that one change rewrites one chunk, not the whole catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pos_square.documents import parse_time

JSONDict = dict[str, Any]

#: ``ctx.state`` key of the kept catalog's description; chunk ``n`` is under ``KEY + f":{n}"``.
KEY = "square_catalog"
FORMAT = 1
CHUNK_OBJECTS = 1000

#: Where a nested object type lives in its parent: its data field, the field naming the parent,
#: the parent's data field and the parent's list of children.
_NESTED_IN: dict[str, tuple[str, str, str, str]] = {
    "ITEM_VARIATION": ("item_variation_data", "item_id", "item_data", "variations"),
    "MODIFIER": ("modifier_data", "modifier_list_id", "modifier_list_data", "modifiers"),
    "ITEM_OPTION_VAL": (
        "item_option_value_data",
        "item_option_id",
        "item_option_data",
        "values",
    ),
}
#: The nested types an incremental read asks for beside the top-level ones: a change to a
#: variation or a modifier is found even if Square did not touch its parent.
NESTED_TYPES = tuple(_NESTED_IN)


@dataclass
class KeptCatalog:
    """The top-level catalog objects as last read (variations nested in their items, ...).

    :param objects: the top-level objects, in chunks of up to :data:`CHUNK_OBJECTS`.
    :param latest_time: Square's ``latest_time`` when the objects were read: the next
        incremental read's ``begin_time``.
    :param full_read_at: when the last full read was made.
    :param revision: how many times objects changed since that full read: with
        ``full_read_at``, it names the objects (see :attr:`version`).
    """

    chunks: list[list[JSONDict]]
    latest_time: str
    full_read_at: datetime
    revision: int = 0
    dirty: set[int] = field(default_factory=set)
    _where: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._where = {
            obj["id"]: (n, i) for n, chunk in enumerate(self.chunks) for i, obj in enumerate(chunk)
        }

    @classmethod
    def of(cls, objects: list[JSONDict], latest_time: str, at: datetime) -> KeptCatalog:
        """A catalog just read in full (every chunk is to be stored)."""
        chunks = [objects[i : i + CHUNK_OBJECTS] for i in range(0, len(objects), CHUNK_OBJECTS)]
        kept = cls(chunks or [[]], latest_time, at)
        kept.dirty = set(range(len(kept.chunks)))
        return kept

    @property
    def version(self) -> str:
        """Names these objects: a catalog kept with the same version has the same objects."""
        return catalog_version(self.full_read_at, self.revision)

    def objects(self) -> list[JSONDict]:
        """Every top-level object."""
        return [obj for chunk in self.chunks for obj in chunk]

    def apply(self, changed: list[JSONDict], latest_time: str) -> str | None:
        """Apply the objects an incremental read returned; the reason when it cannot be trusted
        (the catalog is then to be read in full), else None.

        Not trusted: a deleted object (what else went with it, a whole item's variations, is
        not listed), a nested object whose parent is not kept, an object without an id or a
        type, a ``latest_time`` earlier than the kept one (a gap: the catalog went back).
        An object whose ``version`` is the kept one is already applied and changes nothing.
        """
        if _instant(latest_time) < _instant(self.latest_time):
            return f"latest_time {latest_time} is before the kept {self.latest_time}"
        if changed:
            self.revision += 1
        for obj in changed:
            object_id, kind = obj.get("id"), obj.get("type")
            if not isinstance(object_id, str) or not isinstance(kind, str):
                return "an object without an id or a type"
            if obj.get("is_deleted"):
                return f"{kind} {object_id} was deleted"
            if kind in _NESTED_IN:
                reason = self._apply_nested(obj, kind)
                if reason is not None:
                    return reason
            else:
                self._put_top(obj)
        self.latest_time = latest_time
        return None

    def _put_top(self, obj: JSONDict) -> None:
        place = self._where.get(obj["id"])
        if place is None:
            if len(self.chunks[-1]) >= CHUNK_OBJECTS:
                self.chunks.append([])
            place = (len(self.chunks) - 1, len(self.chunks[-1]))
            self.chunks[-1].append(obj)
            self._where[obj["id"]] = place
        else:
            n, i = place
            if self.chunks[n][i].get("version") == obj.get("version") is not None:
                return
            self.chunks[n][i] = obj
        self.dirty.add(place[0])

    def _apply_nested(self, obj: JSONDict, kind: str) -> str | None:
        data_field, parent_field, parent_data_field, children_field = _NESTED_IN[kind]
        parent_id = (obj.get(data_field) or {}).get(parent_field)
        place = self._where.get(parent_id) if isinstance(parent_id, str) else None
        if place is None:
            return f"{kind} {obj['id']} belongs to {parent_id!r}, which is not kept"
        n, i = place
        parent = self.chunks[n][i]
        parent_data = parent.get(parent_data_field)
        if not isinstance(parent_data, dict):
            return f"{kind} {obj['id']}: its parent {parent_id} has no {parent_data_field}"
        children = parent_data.get(children_field)
        children = list(children) if isinstance(children, list) else []
        for index, child in enumerate(children):
            if isinstance(child, dict) and child.get("id") == obj["id"]:
                if child.get("version") == obj.get("version") is not None:
                    return None
                children[index] = obj
                break
        else:
            children.append(obj)
        # A copy of the parent, so a caller holding the old one does not see it change.
        self.chunks[n][i] = {**parent, parent_data_field: {**parent_data, children_field: children}}
        self.dirty.add(n)
        return None

    # --- in ctx.state ---------------------------------------------------------------------

    def head(self) -> str:
        """The description stored under :data:`KEY`."""
        return orjson.dumps(
            {
                "format": FORMAT,
                "latest_time": self.latest_time,
                "full_read_at": self.full_read_at.isoformat(),
                "chunks": len(self.chunks),
                "revision": self.revision,
            }
        ).decode()

    def dirty_chunks(self) -> list[tuple[str, str]]:
        """``(key, value)`` of each chunk changed since it was stored; marks them stored."""
        written = [
            (f"{KEY}:{n}", orjson.dumps(self.chunks[n]).decode()) for n in sorted(self.dirty)
        ]
        self.dirty.clear()
        return written


def _instant(stamp: str) -> datetime:
    """A Square timestamp as an instant (the earliest one possible when it cannot be read, so
    that a damaged kept time never hides a gap)."""
    try:
        moment = parse_time(stamp)
    except (TypeError, ValueError):
        moment = None
    return moment or datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class KeptHead:
    """What :meth:`KeptCatalog.head` stored: enough to decide whether to read the chunks."""

    latest_time: str
    full_read_at: datetime
    chunks: int
    revision: int = 0

    @property
    def version(self) -> str:
        """The kept catalog's :attr:`KeptCatalog.version`, known without reading its chunks."""
        return catalog_version(self.full_read_at, self.revision)

    @classmethod
    def parse(cls, text: str | None) -> KeptHead | None:
        """The stored description, or None when there is none or it cannot be read (another
        format, a damaged value): the catalog is then read in full."""
        if text is None:
            return None
        try:
            head = orjson.loads(text)
            if head.get("format") != FORMAT:
                return None
            at = datetime.fromisoformat(head["full_read_at"])
            latest, chunks = head["latest_time"], head["chunks"]
            revision = head.get("revision", 0)  # absent from heads kept before it existed
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            return None
        if not isinstance(latest, str) or type(chunks) is not int or chunks < 1:
            return None
        if type(revision) is not int or revision < 0 or at.tzinfo is None:
            return None
        return cls(latest, at, chunks, revision)


def catalog_version(full_read_at: datetime, revision: int) -> str:
    """A kept catalog's version: its full read's time and the changes applied since."""
    return f"{full_read_at.isoformat()}+{revision}"


def chunk_objects(text: str | None) -> list[JSONDict] | None:
    """The objects of one stored chunk, or None when it is missing or unreadable."""
    if text is None:
        return None
    try:
        objects = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(objects, list) or not all(
        isinstance(o, dict) and isinstance(o.get("id"), str) for o in objects
    ):
        return None
    return objects
