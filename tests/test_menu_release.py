"""Freeing a round's menus a piece at a time, and naming shared bodies by their content."""

from __future__ import annotations

import gc
import weakref

from posintegrator.menus.release import release_in_pieces
from posintegrator.model import Menu
from posintegrator.store import MenuBody
from posintegrator.testing import one_product_menu


def test_released_containers_are_emptied_and_what_only_they_held_is_freed() -> None:
    menus = [one_product_menu(f"loc-{n}") for n in range(40)]
    kept = menus[3]
    watched = [weakref.ref(menu) for menu in menus]
    by_location = {menu.location: menu for menu in menus}
    del menus
    listed = list(by_location.values())
    release_in_pieces(by_location, listed)
    assert by_location == {} and listed == []
    gc.collect()
    alive = [ref() for ref in watched if ref() is not None]
    assert alive == [kept], "only what something else holds survives"
    assert isinstance(kept, Menu)


def test_a_body_is_named_by_its_parts_not_only_by_their_bytes_together() -> None:
    # Cut in another place, the same bytes are another body: each location's JSON differs.
    one, other = MenuBody(b'{"a":1,"location":', b"}"), MenuBody(b'{"a":1,', b'"location":}')
    assert one.before + one.after == other.before + other.after
    assert one.digest != other.digest
    assert MenuBody(one.before, one.after).digest == one.digest
    assert one.of("x") == b'{"a":1,"location":"x"}'
