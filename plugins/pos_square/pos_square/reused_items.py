"""What the last translation made of each item, reused when nothing it depends on changed.

A product depends on its item, the item's variations, the location, and the rest of the
catalog (taxes, categories, modifier lists and their modifiers, images, option values, ...:
the *context*). So while the context objects equal those of the last translation, an item
whose object and variations equal those it was made from makes the same product: the one made
last time is reused, the same object, which the host then recognises without checking it
again. What the item does to the rest of the menu (the modifier groups, taxes and text lists it
uses, the variations it left out) is done again in catalog order, so the menu equals a fresh
translation's.

Objects are compared by value, identity first: after an incremental read every unchanged
object is the very object the last translation read (the kept catalog replaces a changed
object, see :meth:`pos_square.kept_catalog.KeptCatalog.apply`), so the comparison costs next
to nothing; after a full read of a catalog that did not change (the daily one) the objects are
new but equal, and comparing them still costs far less than translating them again.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from posintegrator.model import LeftOut, ModifierGroup, Product

if TYPE_CHECKING:
    from pos_square.catalog import LastTranslation

JSONDict = dict[str, Any]
SortKey = tuple[int, int, str, str]

#: Object types an item's product is made from directly (everything else is context).
ITEM_TYPES = frozenset({"ITEM", "ITEM_VARIATION"})


@dataclass(frozen=True)
class MadeItem:
    """One item as the last translation made it.

    :param item: the ITEM object it was made from.
    :param variations: the ITEM_VARIATION objects it was made from, in order.
    :param product: the product (None: not on the menu here).
    :param sort_key: where the product goes in the menu.
    :param unpriced: what the item left out for its variations without a price.
    """

    item: JSONDict
    variations: tuple[JSONDict, ...]
    product: Product | None
    sort_key: SortKey
    unpriced: tuple[LeftOut, ...]

    def made_from(self, item: JSONDict, variations: Sequence[JSONDict]) -> bool:
        """Whether it was made from objects equal to these (the same ones, mostly)."""
        return (self.item is item or self.item == item) and self.variations == tuple(variations)


@dataclass(frozen=True)
class MadeGroup:
    """What the last translation made of a modifier list as one item applies it.

    :param group_id: the modifier group's id (None: no group, e.g. nothing shown here).
    :param group: the group (None when ``group_id`` is).
    :param hidden: the list's modifiers hidden from online ordering, each with what leaving
        it out reports, in the list's order.
    """

    group_id: str | None
    group: ModifierGroup | None
    hidden: tuple[tuple[str, LeftOut], ...]


@dataclass
class PlaceItems:
    """The items and groups made for one place (a Square location and its currency and time
    zone) and the context objects they were made with."""

    context: tuple[JSONDict, ...]
    items: dict[str, MadeItem]
    groups: dict[Hashable, MadeGroup] = field(default_factory=dict)

    def reusable_with(self, context: tuple[JSONDict, ...]) -> PlaceItems | None:
        """These, if ``context`` equals the objects they were made with (element by element,
        identity first); else None."""
        return self if context == self.context else None


@dataclass
class ItemMemo:
    """A connection's items as its last translation made them, per place.

    Kept by the caller between translations of one catalog; a translation reads it and, when
    it succeeds, replaces what it holds. ``last`` is the whole last translation, which a
    patch (:mod:`pos_square.menu_patches`) changes in place.
    """

    places: dict[Hashable, PlaceItems] = field(default_factory=dict)
    last: LastTranslation | None = None
