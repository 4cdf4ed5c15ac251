"""Validate Square API requests and responses against Square's published OpenAPI spec.

The spec (OpenAPI 3.0, ``Square-Version`` 2025-08-20) is kept beside this module, in
``square_spec/api.json`` (a copy of the project's reference material, see its README); the
environment variable ``SQUARE_OPENAPI_SPEC`` points elsewhere.

How the OpenAPI 3.0 schemas are checked: every ``components/schemas`` entry is converted once to
a JSON Schema (draft 4, whose ``$ref`` ignores sibling keywords exactly as OpenAPI 3.0 demands);
``nullable: true`` becomes ``"null"`` in ``type``/``enum``; ``format`` (only ``int64`` here) and the
``x-*``/doc keywords are dropped. A :class:`jsonschema.Draft4Validator` is compiled per operation
and direction and cached, so validating every request of a test run is cheap.

Strictness (``strict=True``): Square's schemas never say ``additionalProperties: false``, so a
typo'd field name (``"quantitty"``) would pass a plain schema check and be silently ignored by
Square. In strict mode every object schema that declares ``properties`` and no
``additionalProperties`` refuses undeclared properties, at any depth. Strict is the default for
requests (a request with an unknown field fails) and off by default for responses (pass
``strict=True`` to check that a test double invents no fields).

Only ``200`` responses are described by the spec. Square answers errors with the same response
object carrying ``errors`` (every ``*Response`` schema has an ``errors`` array of ``Error``), so a
non-2xx body is validated against the operation's response schema and must carry a non-empty
``errors`` list.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

SPEC_ENV = "SQUARE_OPENAPI_SPEC"
REPO_ROOT = Path(__file__).resolve().parents[3]
#: The copy of Square's spec these tests use unless ``SQUARE_OPENAPI_SPEC`` says otherwise.
SPEC_COPY = Path(__file__).resolve().parent / "square_spec" / "api.json"

_KEPT_KEYWORDS = (
    "type",
    "enum",
    "required",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "maxItems",
    "minItems",
    "uniqueItems",
    "pattern",
)
_REF_PREFIX = "#/components/schemas/"

# Schemas the spec references but does not define (2025-08-20: CatalogModifierToggleOverrideType,
# used by CatalogItemModifierListInfo.allow_quantities and friends). Values from the
# descriptions of the referring properties; any other dangling reference accepts anything.
_MISSING_SCHEMAS: dict[str, dict[str, Any]] = {
    "CatalogModifierToggleOverrideType": {"type": "string", "enum": ["YES", "NO", "NOT_SET"]},
}


def default_spec_path() -> Path:
    """``$SQUARE_OPENAPI_SPEC``, else the copy in ``square_spec/api.json``."""
    override = os.environ.get(SPEC_ENV)
    return Path(override) if override else SPEC_COPY


@dataclass(frozen=True)
class Problem:
    """One way an instance breaks its schema.

    :param path: JSON path of the offending value (``$.order.line_items[0].quantity``).
    :param reason: human-readable reason.
    :param kind: ``type``, ``required``, ``unknown``, ``enum``, ``too_long``, ``too_short``,
        ``too_low``, ``too_high``, ``pattern``, ``operation`` or ``other``.
    :param expected: for ``type`` problems, the expected JSON type.
    """

    path: str
    reason: str
    kind: str = "other"
    expected: str | None = None

    @property
    def field(self) -> str:
        """The path in Square's ``field`` notation (no leading ``$.``)."""
        return self.path.removeprefix("$").removeprefix(".")


class SpecViolation(AssertionError):
    """A request or response does not follow Square's OpenAPI spec.

    An :class:`AssertionError`, so pytest shows it as a failed check.
    """

    def __init__(self, operation: str, direction: str, problems: list[Problem]) -> None:
        self.operation = operation
        self.direction = direction
        self.problems = problems
        first = problems[0]
        more = (
            f" (and {len(problems) - 1} more: "
            + "; ".join(f"{p.path}: {p.reason}" for p in problems[1:4])
            + ")"
            if len(problems) > 1
            else ""
        )
        super().__init__(f"{operation} {direction}: {first.path}: {first.reason}{more}")

    @property
    def path(self) -> str:
        """JSON path of the first problem."""
        return self.problems[0].path

    @property
    def reason(self) -> str:
        """Reason of the first problem."""
        return self.problems[0].reason


@dataclass(frozen=True)
class Operation:
    """One operation of the spec."""

    method: str
    path_template: str
    operation_id: str
    request_schema: str | None
    request_required: bool
    response_schema: str | None
    query_params: Mapping[str, Mapping[str, Any]]
    required_query: frozenset[str]
    path_params: tuple[str, ...]
    regex: re.Pattern[str] = field(compare=False)


def _convert(node: Any, *, strict: bool) -> Any:
    """An OpenAPI 3.0 schema node as a draft-4 JSON Schema node."""
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        # OpenAPI 3.0: siblings of $ref (nullable, description...) are ignored.
        return {"$ref": "#/definitions/" + ref.removeprefix(_REF_PREFIX)}
    out: dict[str, Any] = {k: node[k] for k in _KEPT_KEYWORDS if k in node}
    if "items" in node:
        out["items"] = _convert(node["items"], strict=strict)
    props = node.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: _convert(v, strict=strict) for k, v in props.items()}
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        out["additionalProperties"] = (
            extra if isinstance(extra, bool) else _convert(extra, strict=strict)
        )
    elif strict and isinstance(props, dict) and props:
        out["additionalProperties"] = False
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


_TYPE_NAMES = {
    "string": "EXPECTED_STRING",
    "integer": "EXPECTED_INTEGER",
    "number": "EXPECTED_FLOAT",
    "boolean": "EXPECTED_BOOLEAN",
    "object": "EXPECTED_OBJECT",
    "array": "EXPECTED_ARRAY",
}


def square_error_code(problem: Problem) -> str:
    """The Square ``ErrorCode`` that Square answers for this kind of problem."""
    if problem.kind == "type":
        return _TYPE_NAMES.get(problem.expected or "", "INCORRECT_TYPE")
    return {
        "required": "MISSING_REQUIRED_PARAMETER",
        "unknown": "UNKNOWN_BODY_PARAMETER",
        "unknown_query": "UNKNOWN_QUERY_PARAMETER",
        "enum": "INVALID_ENUM_VALUE",
        "too_long": "VALUE_TOO_LONG",
        "too_short": "VALUE_TOO_SHORT",
        "too_low": "VALUE_TOO_LOW",
        "too_high": "VALUE_TOO_HIGH",
        "pattern": "VALUE_REGEX_MISMATCH",
        "array_too_long": "ARRAY_LENGTH_TOO_LONG",
        "body": "EXPECTED_JSON_BODY",
    }.get(problem.kind, "INVALID_VALUE")


def _path_str(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _did_you_mean(key: str, declared: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(declared), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _problems(errors: Iterable[ValidationError]) -> list[Problem]:
    found: list[Problem] = []
    for error in errors:
        where = _path_str(error.absolute_path)
        schema = error.schema if isinstance(error.schema, dict) else {}
        name = schema.get("title")
        in_schema = f" (schema {name})" if name else ""
        validator = error.validator
        if validator == "additionalProperties" and isinstance(error.instance, dict):
            declared = set(schema.get("properties", {}))
            for key in sorted(set(error.instance) - declared):
                found.append(
                    Problem(
                        f"{where}.{key}",
                        f"unknown property {key!r}, not declared{in_schema}"
                        + _did_you_mean(key, declared),
                        "unknown",
                    )
                )
            continue
        if validator == "required":
            present = error.instance if isinstance(error.instance, dict) else {}
            for missing in error.validator_value:
                if missing not in present:
                    found.append(
                        Problem(
                            f"{where}.{missing}",
                            f"required property missing{in_schema}",
                            "required",
                        )
                    )
            continue
        kind = {
            "type": "type",
            "enum": "enum",
            "maxLength": "too_long",
            "minLength": "too_short",
            "minimum": "too_low",
            "maximum": "too_high",
            "pattern": "pattern",
            "maxItems": "array_too_long",
        }.get(str(validator), "other")
        expected = error.validator_value if kind == "type" else None
        if isinstance(expected, list):
            expected = next((t for t in expected if t != "null"), None)
        reason = error.message
        if kind == "enum":
            reason = f"{error.instance!r} is not a valid value{in_schema}"
        found.append(Problem(where, reason, kind, expected))
    found.sort(key=lambda p: p.path)
    return found


class SquareSpec:
    """Square's OpenAPI spec, with compiled validators per operation (use :meth:`load`)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.schemas: dict[str, Any] = document["components"]["schemas"]
        self._definitions: dict[bool, dict[str, Any]] = {}
        self._validators: dict[tuple[str, bool], Draft4Validator] = {}
        self.operations: list[Operation] = []
        self._by_id: dict[str, Operation] = {}
        for template, item in document["paths"].items():
            for method, op in item.items():
                if method.startswith("x-") or not isinstance(op, dict):
                    continue
                operation = self._operation(method.upper(), template, op)
                self.operations.append(operation)
                self._by_id[operation.operation_id] = operation
        # Literal paths win over templated ones (/v2/orders/search vs /v2/orders/{order_id}).
        self.operations.sort(key=lambda o: (len(o.path_params), o.path_template))
        refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(self.schemas)))
        self.dangling_refs: frozenset[str] = frozenset(refs - set(self.schemas))
        self.error_codes: frozenset[str] = frozenset(self.schemas["ErrorCode"]["enum"])
        self.generic_error_codes: frozenset[str] = frozenset(
            document["info"].get("x-square-generic-error-codes", ())
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> SquareSpec:
        """The spec at ``path`` (default :func:`default_spec_path`), parsed once per process."""
        return _load(str(Path(path) if path is not None else default_spec_path()))

    @staticmethod
    def _operation(method: str, template: str, op: dict[str, Any]) -> Operation:
        def ref_name(schema: dict[str, Any] | None) -> str | None:
            if not schema or "$ref" not in schema:
                return None
            return str(schema["$ref"]).removeprefix(_REF_PREFIX)

        body = op.get("requestBody") or {}
        body_schema = body.get("content", {}).get("application/json", {}).get("schema")
        ok = op.get("responses", {}).get("200", {})
        response_schema = ok.get("content", {}).get("application/json", {}).get("schema")
        query = {p["name"]: p for p in op.get("parameters", ()) if p.get("in") == "query"}
        path_params = tuple(re.findall(r"{(\w+)}", template))
        pattern = re.sub(r"{\w+}", r"([^/]+)", template)
        return Operation(
            method=method,
            path_template=template,
            operation_id=op.get("operationId", f"{method} {template}"),
            request_schema=ref_name(body_schema),
            request_required=bool(body.get("required")),
            response_schema=ref_name(response_schema),
            query_params=query,
            required_query=frozenset(n for n, p in query.items() if p.get("required")),
            path_params=path_params,
            regex=re.compile(f"^{pattern}$"),
        )

    # -- lookup -------------------------------------------------------------------------

    def operation(self, method: str, path: str) -> Operation:
        """The operation for ``method`` and a concrete path or a path template."""
        method = method.upper()
        path = path.split("?", 1)[0]
        for op in self.operations:
            if op.method != method:
                continue
            if op.path_template == path or op.regex.match(path):
                return op
        raise SpecViolation(
            f"{method} {path}",
            "request",
            [Problem("$", "no such operation in Square's API spec", "operation")],
        )

    def operation_by_id(self, operation_id: str) -> Operation:
        """The operation with this ``operationId``."""
        return self._by_id[operation_id]

    def path_params(self, op: Operation, path: str) -> dict[str, str]:
        """The path parameters of a concrete path."""
        match = op.regex.match(path.split("?", 1)[0])
        return dict(zip(op.path_params, match.groups(), strict=True)) if match else {}

    # -- validators ---------------------------------------------------------------------

    def _defs(self, strict: bool) -> dict[str, Any]:
        if strict not in self._definitions:
            converted = {}
            for name, schema in self.schemas.items():
                node = _convert(schema, strict=strict)
                if isinstance(node, dict) and "$ref" not in node:
                    node["title"] = name
                converted[name] = node
            for name in self.dangling_refs:
                converted[name] = dict(_MISSING_SCHEMAS.get(name, {}), title=name)
            self._definitions[strict] = converted
        return self._definitions[strict]

    def validator(self, schema_name: str, *, strict: bool) -> Draft4Validator:
        """A compiled, cached validator for ``components/schemas/<schema_name>``."""
        key = (schema_name, strict)
        cached = self._validators.get(key)
        if cached is None:
            if schema_name not in self.schemas:
                raise KeyError(f"no schema {schema_name!r} in the Square spec")
            root = {"$ref": f"#/definitions/{schema_name}", "definitions": self._defs(strict)}
            cached = self._validators[key] = Draft4Validator(root)
        return cached

    def schema_problems(
        self, schema_name: str, instance: Any, *, strict: bool = True
    ) -> list[Problem]:
        """Every way ``instance`` breaks ``components/schemas/<schema_name>``."""
        return _problems(self.validator(schema_name, strict=strict).iter_errors(instance))

    def validate_schema(
        self, schema_name: str, instance: Any, *, strict: bool = True, context: str | None = None
    ) -> None:
        """Raise :class:`SpecViolation` unless ``instance`` follows the named schema."""
        problems = self.schema_problems(schema_name, instance, strict=strict)
        if problems:
            raise SpecViolation(context or schema_name, "payload", problems)

    # -- requests and responses ---------------------------------------------------------

    def request_problems(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, Any] | None = None,
        *,
        strict: bool = True,
    ) -> tuple[Operation, list[Problem]]:
        """The operation and the problems of a request (an empty list when it is valid).

        :param body: the parsed JSON body, or ``None`` when there is none.
        :param query: query parameters (values as sent: strings, or lists of strings).
        :raises SpecViolation: when no operation matches.
        """
        op = self.operation(method, path)
        problems: list[Problem] = []
        for name, raw in (query or {}).items():
            param = op.query_params.get(name)
            if param is None:
                problems.append(
                    Problem(f"query.{name}", "unknown query parameter", "unknown_query")
                )
                continue
            values = raw if isinstance(raw, list) else [raw]
            schema = param.get("schema", {})
            for value in values:
                problems.extend(self._query_value(name, str(value), schema))
        for name in sorted(op.required_query - set(query or {})):
            problems.append(
                Problem(f"query.{name}", "required query parameter missing", "required")
            )
        if op.request_schema is None:
            if body not in (None, {}):
                problems.append(Problem("$", "this operation takes no request body", "body"))
        elif body is None:
            if op.request_required:
                problems.append(Problem("$", "a JSON request body is required", "body"))
        else:
            problems.extend(self.schema_problems(op.request_schema, body, strict=strict))
        return op, problems

    def _query_value(self, name: str, value: str, schema: Mapping[str, Any]) -> list[Problem]:
        kind = schema.get("type", "string")
        where = f"query.{name}"
        if kind == "integer" and not re.fullmatch(r"-?\d+", value):
            return [Problem(where, f"{value!r} is not an integer", "type", "integer")]
        if kind == "boolean" and value not in ("true", "false"):
            return [Problem(where, f"{value!r} is not a boolean", "type", "boolean")]
        if "$ref" in schema:
            target = self.schemas.get(str(schema["$ref"]).removeprefix(_REF_PREFIX), {})
            if "enum" in target and value not in target["enum"]:
                return [Problem(where, f"{value!r} is not a valid value", "enum")]
        if "enum" in schema and value not in schema["enum"]:
            return [Problem(where, f"{value!r} is not a valid value", "enum")]
        return []

    def validate_request(
        self,
        method: str,
        path_template_or_path: str,
        body: Any,
        query: Mapping[str, Any] | None = None,
        *,
        strict: bool = True,
    ) -> Operation:
        """Raise :class:`SpecViolation` unless the request follows the spec.

        :param strict: refuse properties the schemas do not declare (default for requests).
        :returns: the matched operation.
        """
        op, problems = self.request_problems(
            method, path_template_or_path, body, query, strict=strict
        )
        if problems:
            raise SpecViolation(op.operation_id, "request", problems)
        return op

    def response_problems(
        self, method: str, path: str, status: int, body: Any, *, strict: bool = False
    ) -> tuple[Operation, list[Problem]]:
        """The operation and the problems of a response (see :meth:`validate_response`)."""
        op = self.operation(method, path)
        problems: list[Problem] = []
        if op.response_schema is None:
            return op, problems
        if not isinstance(body, dict):
            return op, [Problem("$", "the response body is not a JSON object", "body")]
        problems.extend(self.schema_problems(op.response_schema, body, strict=strict))
        if status >= 300:
            errors = body.get("errors")
            if not errors:
                problems.append(
                    Problem("$.errors", f"a {status} response must carry `errors`", "required")
                )
        return op, problems

    def validate_response(
        self, method: str, path: str, status: int, body: Any, *, strict: bool = False
    ) -> Operation:
        """Raise :class:`SpecViolation` unless the response follows the spec.

        Error responses (status >= 300) are checked against the same response schema and must
        carry a non-empty ``errors`` list (see the module docstring).
        """
        op, problems = self.response_problems(method, path, status, body, strict=strict)
        if problems:
            raise SpecViolation(op.operation_id, f"response {status}", problems)
        return op


@functools.cache
def _load(path: str) -> SquareSpec:
    try:
        with open(path, "rb") as handle:
            return SquareSpec(json.load(handle))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Square's OpenAPI spec is not at {path}: these tests check every request and "
            f"response against it. Unset {SPEC_ENV} to use the copy in tests/square_spec, or "
            "point it at the file."
        ) from None
