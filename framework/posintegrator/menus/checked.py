"""A fetched menu validated, checked, hashed and encoded: what publishing it needs.

A big menu's products are validated, dumped and encoded one at a time (each call into
pydantic's core or orjson holds the GIL until it returns, so one call over 20,000 variations
would keep the event loop waiting for a tenth of a second or more; many short ones let it in),
and a product unchanged since the last check is not checked again (:class:`ProductMemo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import ValidationError

from posintegrator.menus.canonical import CanonicalMenu, content_hash_of, encoded
from posintegrator.menus.collector import collector_paused
from posintegrator.model import Menu, Product
from posintegrator.model.menu_check import (
    Code,
    Finding,
    Severity,
    check_menu,
    left_out_findings,
)
from posintegrator.settings import error_path
from posintegrator.store import MenuBody


def content_hash(menu: Menu) -> str:
    """A hash of what the menu offers; unchanged when only timestamps move, and the same for
    every location offering the same menu (:meth:`CanonicalMenu.content_hash`)."""
    return content_hash_of(menu.model_dump(mode="json"))


@dataclass
class CheckedMenu:
    """A menu after its checks: what publishing it under one or more locations needs.

    :param menu: the validated menu (of some location; :meth:`menu_of` gives each one's).
    :param findings: what the checks found (errors mean it must not be published).
    :param content_hash: see :func:`content_hash` ("" when the menu failed validation).
    :param dumped: the menu as JSON-ready data.
    :param canonical: its canonical JSON (None when it failed validation).
    """

    menu: Menu
    findings: list[Finding]
    content_hash: str
    dumped: dict[str, Any]
    canonical: CanonicalMenu | None = None
    _body: MenuBody | None = field(default=None, init=False, repr=False)

    @classmethod
    def of(cls, menu: Menu, findings: list[Finding]) -> CheckedMenu:
        """``menu`` (already valid) with its findings, hashed."""
        return cls.hashed(menu, findings, dumped_menu(menu))

    @classmethod
    def hashed(
        cls,
        menu: Menu,
        findings: list[Finding],
        dumped: dict[str, Any],
        products: list[bytes] | None = None,
    ) -> CheckedMenu:
        """``menu`` with its JSON (``dumped``, and its products encoded when known), hashed."""
        canonical = CanonicalMenu.of(dumped, products)
        return cls(menu, findings, canonical.content_hash(), dumped, canonical)

    def menu_of(self, location: str) -> Menu:
        """The menu as ``location``'s (a shallow copy: the entities are shared)."""
        if self.menu.location == location:
            return self.menu
        return self.menu.model_copy(update={"location": location})

    @property
    def made_body(self) -> MenuBody | None:
        """:meth:`shared_body` if it was made already, else None."""
        return self._body

    def shared_body(self) -> MenuBody:
        """The stored and served JSON of the menu, canonical, without its location: made and
        hashed once, and stored once, for every location sharing it (a 20,000-variation menu
        is some 10 MB of JSON, and a chain has hundreds of locations)."""
        if self._body is None:
            body = (self.canonical or CanonicalMenu.of(self.dumped)).body()
            body.digest  # noqa: B018  (worked out here, off the event loop and the store's thread)
            self._body = body
        return self._body


class CheckedProduct(NamedTuple):
    """A product as validated, as JSON-ready data and as canonical JSON."""

    product: Product
    dumped: dict[str, Any]
    encoded: bytes


class ProductMemo:
    """The products checked last round (validated and as JSON), by id: a product equal to one
    of them is neither validated nor dumped again.

    A chain's resync after one price change brings back some 10,000 products, all but one as
    they were; checking each of them again cost more than translating the catalog. Equal values
    validate alike, so reusing the result is exact. The comparison is of the products' JSON,
    never of identity (a transform may have changed a product object in place since), and
    the JSON is needed for the hash and the body anyway. Entries are kept
    for one round after the one that last saw them, so a menu that went away does not stay in
    memory.
    """

    def __init__(self) -> None:
        #: Product id -> each version of it checked (locations with menus of their own may
        #: offer the same product differently).
        self._last: dict[str, list[CheckedProduct]] = {}
        self._now: dict[str, list[CheckedProduct]] = {}
        #: A plugin's product objects (by id(), the object kept so that its id is not reused)
        #: -> what they were checked as.
        self._objects_last: dict[int, tuple[Product, CheckedProduct]] = {}
        self._objects_now: dict[int, tuple[Product, CheckedProduct]] = {}

    def checked_object(self, product: Product) -> CheckedProduct | None:
        """What this very product object was checked as, if it was. Only for objects nobody
        changes once handed out: a plugin's, given by ``pos_fetch_menus`` (its contract), not
        a menu a transform has worked on."""
        entry = self._objects_now.get(id(product)) or self._objects_last.get(id(product))
        if entry is None or entry[0] is not product:
            return None
        self._objects_now[id(product)] = entry
        return entry[1]

    def keep_object(self, product: Product, checked: CheckedProduct) -> None:
        """Remember what a plugin's product object was checked as."""
        self._objects_now[id(product)] = (product, checked)

    def checked(self, dumped: dict[str, Any]) -> CheckedProduct | None:
        """The product checked with this JSON, if there was one."""
        product_id = dumped.get("id")
        if not isinstance(product_id, str):
            return None
        for versions in (self._now.get(product_id), self._last.get(product_id)):
            for entry in versions or ():
                if entry[1] == dumped:
                    self._keep(product_id, entry)
                    return entry
        return None

    def keep(self, checked: CheckedProduct) -> None:
        """Remember a product just checked."""
        self._keep(checked.product.id, checked)

    def _keep(self, product_id: str, entry: CheckedProduct) -> None:
        versions = self._now.setdefault(product_id, [])
        if not any(kept is entry for kept in versions):
            versions.append(entry)

    def end_round(self) -> list[dict[Any, Any]]:
        """Forget what neither this round nor the one before saw; a round that checked nothing
        (the plugin answered with the menus of the last) forgets nothing.

        :returns: what was forgotten, for :func:`~posintegrator.menus.release.release_in_pieces`.
        """
        if not (self._now or self._objects_now):
            return []
        forgotten: list[dict[Any, Any]] = [self._last, self._objects_last]
        self._last, self._now = self._now, {}
        self._objects_last, self._objects_now = self._objects_now, {}
        return forgotten


def check_fetched(
    menu: Menu, memo: ProductMemo | None = None, *, unchanged_objects: bool = False
) -> CheckedMenu:
    """Validate and check a fetched (and transformed) menu; CPU-bound, run in a worker thread.

    What the plugin left out of it (``menu.left_out``) is reported as warnings after the
    checks' findings. A menu whose values fail validation (a transform wrote a bad one) comes
    back with ERROR findings and unhashed.

    :param memo: products checked before; those equal to one of them are not checked again.
    :param unchanged_objects: the menu's product objects are never changed once handed out
        (a plugin's menus from ``pos_fetch_menus``, untransformed): one the memo has seen is
        taken as checked without even comparing its JSON.
    """
    memo = memo if memo is not None else ProductMemo()
    with collector_paused():
        left_out = left_out_findings(menu)
        checked, products, findings = _revalidated(menu, memo, unchanged_objects)
        if checked is None:
            return CheckedMenu(menu, findings + left_out, "", {})
        dumped = checked.model_dump(mode="json", exclude={"products"})
        dumped["products"] = [p.dumped for p in products]
        findings = check_menu(checked) + left_out
        return CheckedMenu.hashed(checked, findings, dumped, [p.encoded for p in products])


def _revalidated(
    menu: Menu, memo: ProductMemo, unchanged_objects: bool
) -> tuple[Menu | None, list[CheckedProduct], list[Finding]]:
    """``Menu.model_validate(menu.model_dump())``, a product at a time, with each product's
    JSON; or the errors."""
    products: list[CheckedProduct] = []
    errors: list[tuple[tuple[Any, ...], str]] = []
    for index, product in enumerate(menu.products):
        known = memo.checked_object(product) if unchanged_objects else None
        if known is None:
            known = memo.checked(product.model_dump(mode="json"))
        if known is None:
            try:
                validated = Product.model_validate(product.model_dump())
            except ValidationError as exc:
                errors.extend((("products", index, *e["loc"]), e["msg"]) for e in exc.errors())
                continue
            dumped = validated.model_dump(mode="json")
            known = CheckedProduct(validated, dumped, encoded(dumped))
            memo.keep(known)
        if unchanged_objects:
            memo.keep_object(product, known)
        products.append(known)
    if not errors:
        try:
            rest = menu.model_dump(exclude={"products"})
            whole = Menu.model_validate({**rest, "products": [p.product for p in products]})
            return whole, products, []
        except ValidationError as exc:
            errors.extend((tuple(e["loc"]), e["msg"]) for e in exc.errors())
    findings = [
        Finding(Severity.ERROR, Code.INVALID_VALUE, error_path(loc), message)
        for loc, message in errors
    ]
    return None, [], findings


def dumped_menu(menu: Menu) -> dict[str, Any]:
    """``menu.model_dump(mode="json")``, a product at a time."""
    dumped = menu.model_dump(mode="json", exclude={"products"})
    dumped["products"] = [product.model_dump(mode="json") for product in menu.products]
    return dumped


def hashed_menu(menu: Menu) -> CheckedMenu:
    """A menu made from a live one (availability applied): hashed, not checked again."""
    with collector_paused():
        return CheckedMenu.of(menu, [])
