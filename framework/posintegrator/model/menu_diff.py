"""Differences between two menu versions, small enough to send instead of the whole menu.

A diff lists, per collection (price lists, taxes, categories, products, modifier groups), the
entities added (whole), removed (by id) and changed (by id, with the top-level fields that
changed and their new values), plus the menu-level fields that changed. Applying the diff of
``a`` to ``b`` on ``a`` gives exactly ``b``, including the order of every list.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from posintegrator.model.base import Id, UniversalModel
from posintegrator.model.menu import Menu

#: The menu's lists of entities with ids, diffed entity by entity.
COLLECTIONS = ("price_lists", "taxes", "categories", "products", "modifier_groups")


class EntityChange(UniversalModel):
    """The top-level fields of one entity that changed, with their new values (as JSON)."""

    id: Id
    fields: dict[str, Any]


class CollectionDiff(UniversalModel):
    """What changed in one list of entities."""

    added: list[dict[str, Any]] = Field(default_factory=list, description="Whole new entities.")
    removed: list[Id] = Field(default_factory=list)
    changed: list[EntityChange] = Field(default_factory=list)
    order: list[Id] | None = Field(
        default=None,
        description="The full id order after the change, when it is not simply the old order "
        "without the removed ids followed by the added ones.",
    )

    @property
    def is_empty(self) -> bool:
        """Whether nothing changed in this list."""
        return not (self.added or self.removed or self.changed or self.order is not None)


class MenuDiff(UniversalModel):
    """The changes from one menu version to another."""

    fields: dict[str, Any] = Field(
        default_factory=dict, description="Menu-level fields that changed, with new values."
    )
    price_lists: CollectionDiff = Field(default_factory=CollectionDiff)
    taxes: CollectionDiff = Field(default_factory=CollectionDiff)
    categories: CollectionDiff = Field(default_factory=CollectionDiff)
    products: CollectionDiff = Field(default_factory=CollectionDiff)
    modifier_groups: CollectionDiff = Field(default_factory=CollectionDiff)

    @property
    def is_empty(self) -> bool:
        """Whether the two menus are the same."""
        return not self.fields and all(self.collection(n).is_empty for n in COLLECTIONS)

    def collection(self, name: str) -> CollectionDiff:
        """The diff of the collection called ``name``."""
        diff: CollectionDiff = getattr(self, name)
        return diff

    def counts(self) -> dict[str, int]:
        """How many entities were added, removed and changed, over all collections."""
        parts = [self.collection(n) for n in COLLECTIONS]
        return {
            "added": sum(len(p.added) for p in parts),
            "removed": sum(len(p.removed) for p in parts),
            "changed": sum(len(p.changed) for p in parts),
        }


def diff_menus(old: Menu, new: Menu) -> MenuDiff:
    """What turns ``old`` into ``new``."""
    return diff_dumped(old.model_dump(mode="json"), new.model_dump(mode="json"))


def diff_dumped(before: dict[str, Any], after: dict[str, Any]) -> MenuDiff:
    """:func:`diff_menus` of two menus already dumped as JSON (``model_dump(mode="json")``)."""
    fields = {
        key: value
        for key, value in after.items()
        if key not in COLLECTIONS and before.get(key) != value
    }
    collections = {name: _diff_collection(before[name], after[name]) for name in COLLECTIONS}
    return MenuDiff(fields=fields, **collections)


def _diff_collection(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> CollectionDiff:
    old = {item["id"]: item for item in before}
    new = {item["id"]: item for item in after}
    removed = [i for i in old if i not in new]
    added = [item for item in after if item["id"] not in old]
    changed = []
    for entity_id, item in new.items():
        previous = old.get(entity_id)
        if previous is None or previous is item or previous == item:  # (often the same JSON)
            continue
        changed.append(
            EntityChange(
                id=entity_id,
                fields={k: v for k, v in item.items() if previous.get(k) != v},
            )
        )
    natural = [i for i in old if i in new] + [item["id"] for item in added]
    final = [item["id"] for item in after]
    return CollectionDiff(
        added=added,
        removed=removed,
        changed=changed,
        order=None if final == natural else final,
    )


def apply_diff(menu: Menu, diff: MenuDiff) -> Menu:
    """``menu`` with ``diff`` applied.

    :raises KeyError: the diff names an entity the menu does not have (it was made for another
        version).
    """
    data = menu.model_dump(mode="json")
    data.update(diff.fields)
    for name in COLLECTIONS:
        change = diff.collection(name)
        items = {item["id"]: item for item in data[name]}
        order = [item["id"] for item in data[name]]
        for entity_id in change.removed:
            del items[entity_id]
            order.remove(entity_id)
        for entity in change.changed:
            items[entity.id] = {**items[entity.id], **entity.fields}
        for item in change.added:
            items[item["id"]] = item
            order.append(item["id"])
        data[name] = [items[i] for i in (change.order if change.order is not None else order)]
    return Menu.model_validate(data)
