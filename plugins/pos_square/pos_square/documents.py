"""Square documents read through pydantic models at the plugin's boundary: webhook
notifications and the ``Order`` documents status is read from.

A document the plugin cannot read fails here with a :class:`~posintegrator.errors.
PermanentError` naming the place and the reason in Square's terms (``data.object.order_updated.
version: Input should be a valid integer``), instead of as a ``KeyError`` later on. Fields the
plugin does not read are ignored. Catalog objects are not read this way: a catalog has tens of
thousands of them and validating each through pydantic would double the cost of a menu sync
(see :mod:`pos_square.catalog`, which checks what it reads as it reads it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from posintegrator.documents import read_document
from posintegrator.documents import unreadable as unreadable_document
from posintegrator.model import Id
from posintegrator.model.base import UtcDateTime

#: The largest integer JSON tools carry exactly (orjson, the host's stores).
MAX_INT = 2**63 - 1

ModelT = TypeVar("ModelT", bound="Document")


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp of Square (``...Z`` or with an offset); None stays None.

    :raises ValueError: for text that is not such a timestamp.
    """
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _square_time(value: Any) -> Any:
    """Square's timestamps as :func:`parse_time` reads them (no offset: UTC); others as given."""
    return parse_time(value) if isinstance(value, str) else value


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


#: A Square timestamp, as a UTC instant.
SquareTime = Annotated[UtcDateTime, BeforeValidator(_square_time)]
#: An id Square may leave empty (``""``) or out.
OptionalId = Annotated[Id | None, BeforeValidator(_empty_is_none)]
Int64 = Annotated[int, Field(ge=-MAX_INT - 1, le=MAX_INT)]


class Document(BaseModel):
    """Base of the Square documents: unknown fields ignored, text stripped like the model's."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


# --- webhook notifications ----------------------------------------------------------------------


class Envelope(Document):
    """What every notification carries, whatever its type."""

    event_id: Id
    type: str | None = None
    created_at: SquareTime | None = None


class FulfillmentUpdate(Document):
    new_state: str | None = None


class OrderChange(Document):
    """The ``order_created``/``order_updated``/``order_fulfillment_updated`` of an order
    notification."""

    order_id: OptionalId = None
    version: Int64 | None = None
    location_id: OptionalId = None
    state: str | None = None
    updated_at: SquareTime | None = None
    fulfillment_update: list[FulfillmentUpdate] | None = None


class OrderObject(Document):
    order_created: OrderChange | None = None
    order_updated: OrderChange | None = None
    order_fulfillment_updated: OrderChange | None = None


class OrderData(Document):
    id: OptionalId = None
    object: OrderObject


class OrderNotification(Envelope):
    """An ``order.created``, ``order.updated`` or ``order.fulfillment.updated`` notification."""

    data: OrderData


# --- orders (BatchRetrieveOrders) ---------------------------------------------------------------


class Fulfillment(Document):
    type: str | None = None
    state: str | None = None


class SquareOrder(Document):
    """The parts of a Square ``Order`` its status is read from."""

    #: Short enough for the status event id ``<id>:v<version>`` to be an :data:`Id`.
    id: Annotated[Id, Field(max_length=200 - len(f":v{-MAX_INT - 1}"))]
    state: str | None = None
    reference_id: OptionalId = None
    version: Int64 = 0
    updated_at: SquareTime | None = None
    fulfillments: list[Fulfillment] | None = None

    def pickup(self) -> tuple[int, Fulfillment] | None:
        """The order's PICKUP fulfillment (else its first one) and its index, if it has one."""
        fulfillments = self.fulfillments or []
        for index, fulfillment in enumerate(fulfillments):
            if fulfillment.type == "PICKUP":
                return index, fulfillment
        return (0, fulfillments[0]) if fulfillments else None


# --- reading --------------------------------------------------------------------------------------


def read(model: type[ModelT], document: Any, what: str) -> ModelT:
    """``document`` read as ``model`` (see :func:`posintegrator.documents.read_document`).

    :raises PermanentError: naming the first problems' places in the document and why.
    """
    return read_document(model, document, f"Square {what}")


def unreadable(what: str, exc: ValidationError) -> str:
    """A one-line message naming where the Square document is wrong and why."""
    return unreadable_document(f"Square {what}", exc)
