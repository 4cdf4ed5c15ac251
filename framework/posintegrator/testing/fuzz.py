"""Hypothesis strategies for fuzzing what a POS sends a plugin (needs hypothesis: import it from
here).

A plugin reads documents it does not control: webhook bodies, menus, status answers. Whatever
arrives, it must answer with a result or one of the framework's error kinds, never crash with a
``KeyError`` deep in its translation. These strategies make the inputs to prove that:

* :func:`json_values`: any JSON value, with the awkward parts a real POS will one day send
  (unicode, empty and long strings, integers past 64 bits, negative and fractional numbers);
* :func:`mutated`: a real document (a recorded fixture, what a simulator sends) with a few of its
  parts dropped, replaced, retyped, made huge, deeply nested or given an unknown sibling; most of
  the document stays valid, so the translation gets past its first check and the fault lands
  deep inside it;
* :func:`header_values`: header values as the HTTP server decodes them, invalid UTF-8 included;
* :func:`nested_json`: a pathologically deep JSON text, built without recursion.

Draw documents with a fixed seed (``@settings(derandomize=True)``) so a run is repeatable.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

#: A path into a JSON document: object keys and array indexes from the root.
Path = tuple[str | int, ...]
Draw = Callable[[st.SearchStrategy[Any]], Any]

#: Values a parser meets at the edges of what JSON allows, or of what a field usually holds.
AWKWARD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    0.5,
    -0.0,
    1e308,
    -1e308,
    "",
    " ",
    "0",
    "-1",
    "1e999",
    "NaN",
    "Infinity",
    "null",
    "true",
    "\u0000",
    "\ufeff",
    "🍔🍟" * 10,
    "Zürich \u2013 東京 \u2013 القاهرة",
    "2024-02-30T25:61:00Z",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-23:59",
    [],
    {},
    [None],
    {"": None},
)

#: Length of the long strings :func:`mutated` puts into a document.
LONG_STRING_LENGTH = 100_000
#: How deep :func:`mutated` nests a value (well inside orjson's limit of 1024 levels).
NESTING_DEPTH = 200


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value: scalars (with :data:`AWKWARD_VALUES`), arrays and objects of them."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(AWKWARD_VALUES).map(copy.deepcopy),  # a later mutation may change it
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=8), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def header_values(max_size: int = 80) -> st.SearchStrategy[str]:
    """Header values as the host's HTTP server hands them over: any bytes, decoded as UTF-8
    with surrogate escapes (aiohttp's way), so a value may hold lone surrogates that a plain
    ``str.encode()`` refuses."""
    return st.binary(max_size=max_size).map(lambda raw: raw.decode("utf-8", "surrogateescape"))


def paths(document: Any, max_depth: int = 64) -> list[Path]:
    """Every path in ``document``, shallowest first (the root ``()`` first), without recursion.

    Shallow first, so that a failing example shrinks towards a change near the top of the
    document. Values deeper than ``max_depth`` are not entered, so a document that is already
    deeply nested does not make the list explode.
    """
    found: list[Path] = []
    pending: deque[tuple[Path, Any]] = deque([((), document)])
    while pending:
        path, value = pending.popleft()
        found.append(path)
        if len(path) >= max_depth:
            continue
        if isinstance(value, dict):
            pending.extend(((*path, key), child) for key, child in value.items())
        elif isinstance(value, list):
            pending.extend(((*path, index), child) for index, child in enumerate(value))
    return found


def _get(document: Any, path: Path) -> Any:
    for step in path:
        document = document[step]
    return document


def _retyped(value: Any) -> Any:
    """The same information as another JSON type (a number as text, an object as its values)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


def _nest(value: Any, depth: int, in_object: bool) -> Any:
    for _ in range(depth):
        value = {"a": value} if in_object else [value]
    return value


@st.composite
def _replacement(draw: Draw, value: Any) -> Any:
    """A value to put where ``value`` was."""
    kind = draw(st.sampled_from(("random", "awkward", "retype", "long", "nest", "unicode")))
    if kind == "random":
        return draw(json_values())
    if kind == "awkward":
        return copy.deepcopy(draw(st.sampled_from(AWKWARD_VALUES)))
    if kind == "retype":
        return _retyped(value)
    if kind == "long":
        return draw(st.sampled_from(("x", "9", "é", "🍔"))) * LONG_STRING_LENGTH
    if kind == "nest":
        return _nest(value, NESTING_DEPTH, draw(st.booleans()))
    return draw(st.text(min_size=1, max_size=30))


@st.composite
def _mutated_once(draw: Draw, document: Any) -> Any:
    """``document`` (changed in place, or replaced when the root is hit) after one mutation."""
    path = draw(st.sampled_from(paths(document)))
    target = _get(document, path)
    action = draw(st.sampled_from(("drop", "replace", "replace", "add")))
    if action == "add" and isinstance(target, dict):
        target[draw(st.text(max_size=8))] = draw(json_values())
        return document
    if action == "add" and isinstance(target, list):
        target.insert(draw(st.integers(0, len(target))), draw(json_values()))
        return document
    if not path:
        return draw(_replacement(target))
    parent, step = _get(document, path[:-1]), path[-1]
    if action == "drop":
        del parent[step]
    else:
        parent[step] = draw(_replacement(target))
    return document


@st.composite
def mutated(draw: Draw, document: Any, max_mutations: int = 3) -> Any:
    """A deep copy of ``document`` with one to ``max_mutations`` of its parts changed.

    Each change picks a path in the document and drops the value there, replaces it (with a
    random JSON value, an awkward one, the same value as another type, a 100,000-character
    string, the value nested 200 levels deep, or unicode text), or adds an unknown key or array
    element beside it. ``document`` itself is never changed.
    """
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_mutations))):
        result = draw(_mutated_once(result))
    return result


def nested_json(depth: int, *, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    """JSON text nested ``depth`` levels deep (``[[[...]]]`` by default), built without recursion.

    Pass ``opener=b'{"a":'`` and ``closer=b"}"`` for objects.
    """
    return opener * depth + closer * depth
