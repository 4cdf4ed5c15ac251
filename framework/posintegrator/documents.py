"""Reading what a POS sends through pydantic models, with errors people can act on.

Plugins read each POS document (a webhook, a menu, an order) through a model at their boundary;
a document that does not fit fails there with a :class:`~posintegrator.errors.PermanentError`
that names the place in the POS's own terms and the reason (``unreadable Square order.updated
notification: data.object.order_updated.version: Input should be a valid integer (got 'x')``)
instead of as a ``KeyError`` deep inside a translation.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from posintegrator.errors import PermanentError
from posintegrator.settings import error_path

#: How much of a reason an error message quotes (a reason may repeat a huge value).
REASON_MAX = 200
#: The longest refused value an error message quotes.
QUOTED_VALUE_MAX = 40

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_document(model: type[ModelT], document: Any, what: str) -> ModelT:
    """``document`` read as ``model``.

    :param what: what the document is, with the POS's name, for the error (``DemoPOS menu of
        'downtown'``).
    :raises PermanentError: naming the first problems' places in the document and why.
    """
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise PermanentError(unreadable(what, exc)) from None


def unreadable(what: str, exc: ValidationError, limit: int = 3) -> str:
    """A one-line message naming where the document is wrong and why (the first ``limit``)."""
    errors = exc.errors(include_url=False)
    problems = "; ".join(
        f"{error_path(tuple(error['loc'])) or 'the document'}: {error_reason(error)}"
        for error in errors[:limit]
    )
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return f"unreadable {what}: {problems}{more}"


def error_reason(error: Any) -> str:
    """The reason of one pydantic error, without its "Value error, " prefix, kept short, with
    the value it refused when that is a short scalar."""
    cause = (error.get("ctx") or {}).get("error")
    text = str(cause) if error["type"] == "value_error" and cause else str(error["msg"])
    if len(text) > REASON_MAX:
        text = text[:REASON_MAX] + "..."
    shown = short_repr(error.get("input"))
    if shown is not None:
        text += f" (got {shown})"
    return text


def short_repr(value: Any) -> str | None:
    """``repr(value)`` of a scalar when it is short enough to quote in a message, else None
    (a huge integer is not even turned into text: that alone may take long or fail)."""
    if isinstance(value, int) and not -(10**QUOTED_VALUE_MAX) < value < 10**QUOTED_VALUE_MAX:
        return None
    if not isinstance(value, str | int | float) or len(shown := repr(value)) > QUOTED_VALUE_MAX:
        return None
    return shown
