"""Reading Square's catalog for menu syncs: in full, or only what changed since the last read.

The catalog read last is kept in ``ctx.state`` (:mod:`pos_square.kept_catalog`). A sync asks
SearchCatalogObjects for the objects changed since then (``begin_time``, deleted ones included)
and applies them; it reads the whole catalog instead when nothing is kept, when the last full
read is older than ``full_catalog_read_hours``, and when the changes cannot be trusted (a deleted
object, a gap in time, an answer it cannot read). A failed incremental read drops the kept
catalog, so the next sync reads everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pos_square.catalog import MENU_OBJECT_TYPES
from pos_square.client import SquareClient
from pos_square.kept_catalog import (
    KEY,
    NESTED_TYPES,
    KeptCatalog,
    KeptHead,
    chunk_objects,
)
from posintegrator.context import ConnectionContext
from posintegrator.errors import PermanentError, PosError, RetryableError

JSONDict = dict[str, Any]

#: Objects per SearchCatalogObjects page (Square's maximum).
SEARCH_LIMIT = 1000


@dataclass(frozen=True)
class CatalogRead:
    """The outcome of :func:`read_catalog`.

    :param version: names the catalog's objects (:attr:`KeptCatalog.version`).
    :param objects: the top-level objects; None when they are those of the ``known`` version.
    :param kept: the catalog as now kept, to give the next read (None: not changed).
    """

    version: str
    objects: list[JSONDict] | None
    kept: KeptCatalog | None = None


async def read_catalog(
    ctx: ConnectionContext,
    client: SquareClient,
    full_every: timedelta,
    known: str | None = None,
    in_memory: KeptCatalog | None = None,
) -> CatalogRead:
    """The catalog's top-level objects as Square has them now, read as cheaply as possible.

    :param known: the version of the objects the caller already holds (its translation of
        them): when nothing changed since, the kept catalog is not even loaded.
    :param in_memory: the kept catalog as the last read gave it: used instead of loading it
        from the state when it is still the stored version. Its unchanged objects are then
        the very objects of the last read (which makes :mod:`pos_square.reused_items` cheap).
    """
    now = datetime.now(UTC)
    head = KeptHead.parse(await ctx.state.get(KEY))
    if head is not None and now - head.full_read_at < full_every:
        try:
            changed, latest_time = await _search(client, begin_time=head.latest_time)
        except PosError:
            await ctx.state.delete(KEY)  # read everything next time
            raise
        if not changed and known == head.version and latest_time == head.latest_time:
            return CatalogRead(known, None, in_memory)
        kept = in_memory if _is_stored(in_memory, head) else await _load(ctx, head)
        if kept is not None:
            untrusted = kept.apply(changed, latest_time)
            if untrusted is None:
                await _save(ctx, kept)
                return CatalogRead(kept.version, kept.objects(), kept)
            ctx.log.info("Square catalog read in full: {}", untrusted)
    objects, latest_time = await _search(client, begin_time=None)
    kept = KeptCatalog.of(objects, latest_time, now)
    await ctx.state.delete(KEY)  # until every chunk is stored: a crash leaves none kept
    await _save(ctx, kept)
    return CatalogRead(kept.version, objects, kept)


def _is_stored(kept: KeptCatalog | None, head: KeptHead) -> bool:
    """Whether ``kept`` is the catalog the stored ``head`` describes (a save that failed, or
    a change applied only partly, left it ahead: it is then loaded again)."""
    return (
        kept is not None
        and not kept.dirty
        and kept.version == head.version
        and kept.latest_time == head.latest_time
        and len(kept.chunks) == head.chunks
    )


async def _search(client: SquareClient, *, begin_time: str | None) -> tuple[list[JSONDict], str]:
    """Every page of a SearchCatalogObjects of the menu's types (with ``begin_time``: changed
    objects only, deleted ones and nested types included) and the first page's ``latest_time``
    (a change made while later pages are read is then read again next time).
    """
    body: JSONDict = {"object_types": list(MENU_OBJECT_TYPES), "limit": SEARCH_LIMIT}
    if begin_time is not None:
        body["object_types"] = [*MENU_OBJECT_TYPES, *NESTED_TYPES]
        body["begin_time"] = begin_time
        body["include_deleted_objects"] = True
    objects: list[JSONDict] = []
    latest_time: str | None = None
    seen: set[str] = set()
    while True:
        page = await client.search_catalog(body)
        page_objects, cursor = _page(page)
        if latest_time is None:
            latest_time = page.get("latest_time")
            if not isinstance(latest_time, str):
                raise PermanentError("unreadable Square SearchCatalogObjects page: no latest_time")
        objects.extend(page_objects)
        if cursor is None:
            return objects, latest_time
        if cursor in seen:
            raise RetryableError("Square SearchCatalogObjects returned the same cursor twice")
        seen.add(cursor)
        body = {**body, "cursor": cursor}


def _page(page: Any) -> tuple[list[JSONDict], str | None]:
    what = "unreadable Square SearchCatalogObjects page"
    objects, cursor = page.get("objects") or [], page.get("cursor") or None
    if not isinstance(objects, list) or not all(
        isinstance(o, dict) and isinstance(o.get("id"), str) for o in objects
    ):
        raise PermanentError(f"{what}: objects: expected a list of catalog objects")
    if cursor is not None and not isinstance(cursor, str):
        raise PermanentError(f"{what}: cursor: expected a string")
    return objects, cursor


async def _load(ctx: ConnectionContext, head: KeptHead) -> KeptCatalog | None:
    """The kept catalog, or None when a chunk is missing or damaged."""
    chunks = []
    for n in range(head.chunks):
        objects = chunk_objects(await ctx.state.get(f"{KEY}:{n}"))
        if objects is None:
            ctx.log.warning("the kept Square catalog is damaged (chunk {}): reading it all", n)
            return None
        chunks.append(objects)
    return KeptCatalog(chunks, head.latest_time, head.full_read_at, head.revision)


async def _save(ctx: ConnectionContext, kept: KeptCatalog) -> None:
    """Store the changed chunks, then the description naming them. A crash in between leaves
    changed chunks under the older ``latest_time`` (or a new chunk not yet counted): the next
    read asks for those changes again, and applying them again changes nothing."""
    for key, value in kept.dirty_chunks():
        await ctx.state.set(key, value)
    await ctx.state.set(KEY, kept.head())
