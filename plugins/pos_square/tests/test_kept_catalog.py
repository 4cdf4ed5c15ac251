"""The kept catalog: changes applied in place, and every case where they cannot be trusted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pos_square.kept_catalog import CHUNK_OBJECTS, KeptCatalog, KeptHead, chunk_objects

T0 = "2026-11-30T10:00:00.000Z"
T1 = "2026-11-30T10:05:00.000Z"
AT = datetime(2026, 11, 30, 10, tzinfo=UTC)


def item(item_id: str, version: int, *variations: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "ITEM",
        "id": item_id,
        "version": version,
        "item_data": {"name": item_id, "variations": list(variations)},
    }


def variation(variation_id: str, item_id: str, version: int, amount: int) -> dict[str, Any]:
    return {
        "type": "ITEM_VARIATION",
        "id": variation_id,
        "version": version,
        "item_variation_data": {"item_id": item_id, "price_money": {"amount": amount}},
    }


def kept() -> KeptCatalog:
    catalog = KeptCatalog.of(
        [item("I1", 1, variation("V1", "I1", 1, 500)), {"type": "TAX", "id": "T", "version": 1}],
        T0,
        AT,
    )
    catalog.dirty_chunks()  # stored
    return catalog


def test_a_changed_variation_replaces_the_one_in_its_item() -> None:
    catalog = kept()
    assert catalog.apply([variation("V1", "I1", 2, 650)], T1) is None
    (stored,) = catalog.dirty_chunks()
    nested = catalog.objects()[0]["item_data"]["variations"]
    assert [v["item_variation_data"]["price_money"]["amount"] for v in nested] == [650]
    assert catalog.latest_time == T1
    assert "650" in stored[1]


def test_new_objects_are_added_and_a_full_chunk_starts_a_new_one() -> None:
    catalog = KeptCatalog.of([{"type": "TAX", "id": f"T{n}"} for n in range(CHUNK_OBJECTS)], T0, AT)
    catalog.dirty_chunks()
    assert catalog.apply([{"type": "CATEGORY", "id": "C-new", "version": 3}], T1) is None
    assert [len(chunk) for chunk in catalog.chunks] == [CHUNK_OBJECTS, 1]
    assert [key for key, _ in catalog.dirty_chunks()] == ["square_catalog:1"]


def test_an_object_at_its_kept_version_changes_nothing() -> None:
    catalog = kept()
    same = item("I1", 1, variation("V1", "I1", 1, 500))
    assert catalog.apply([same, variation("V1", "I1", 1, 500)], T1) is None
    assert catalog.dirty_chunks() == []


@pytest.mark.parametrize(
    ("changed", "latest_time", "reason"),
    [
        ([{**item("I1", 2), "is_deleted": True}], T1, "ITEM I1 was deleted"),
        ([variation("V9", "I-unknown", 2, 1)], T1, "which is not kept"),
        ([{"type": "ITEM"}], T1, "without an id"),
        ([], "2026-11-30T09:00:00.000Z", "is before the kept"),
        ([], "not a time", "is before the kept"),
    ],
)
def test_changes_that_cannot_be_trusted_ask_for_a_full_read(
    changed: list[dict[str, Any]], latest_time: str, reason: str
) -> None:
    untrusted = kept().apply(changed, latest_time)
    assert untrusted is not None
    assert reason in untrusted


def test_what_is_stored_reads_back_and_damage_reads_as_nothing_kept() -> None:
    catalog = kept()
    head = KeptHead.parse(catalog.head())
    assert head == KeptHead(T0, AT, 1)
    for damaged in (None, "", "{", '{"format": 99}', '{"format": 1, "chunks": 1}', "[]"):
        assert KeptHead.parse(damaged) is None
    assert chunk_objects('[{"id": "A", "type": "TAX"}]') == [{"id": "A", "type": "TAX"}]
    for damaged in (None, "{", '{"id": "A"}', '[{"type": "TAX"}]', "[1]"):
        assert chunk_objects(damaged) is None
