"""The documents DemoPOS sends, as pydantic models checked at the plugin's boundary.

Every DemoPOS document (the ``GET /menu`` answer, an events-feed page and its entries, a webhook
body) is read into these models before anything is translated. A document the plugin cannot
read fails there, with the place and the reason in the POS's own terms (``items[2].sizes[0].
prices.instore: Input should be a valid integer``), instead of as a ``KeyError`` deep in the
translation. Fields the plugin does not read are ignored: a newer DemoPOS may send more.

Values are checked with the universal model's own types wherever the two agree (ids, currency,
money in cents, languages, channels, allergens, UTC instants, time slots), so a document that
passes here translates into a valid universal menu, status event or availability change.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from posintegrator.documents import error_reason, read_document
from posintegrator.documents import unreadable as unreadable_document
from posintegrator.model import Allergen, ChannelId, Id, OrderStatus, TimeSlot
from posintegrator.model.base import Currency, UtcDateTime
from posintegrator.model.menu import Language

#: The largest integer JSON tools carry exactly (orjson, the host's stores): counters, sort keys.
MAX_INT = 2**63 - 1
#: Suffix of the single variant a combo gets (DemoPOS combos have one price, no sizes).
COMBO_VARIANT_SUFFIX = ":std"

#: DemoPOS order states and the universal status each one is.
STATES: dict[str, OrderStatus] = {
    "accepted": OrderStatus.ACCEPTED,
    "preparing": OrderStatus.IN_PREPARATION,
    "ready": OrderStatus.READY,
    "picked_up": OrderStatus.COMPLETED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}

Int64 = Annotated[int, Field(ge=-MAX_INT - 1, le=MAX_INT)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
#: Money in integer cents: a float (3.99) is refused, never truncated.
Cents = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]
Prices = dict[Id, Cents]
Texts = dict[Language, str | None]


ModelT = TypeVar("ModelT", bound="Document")


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


#: A reference to another entity that DemoPOS may leave empty (``""`` or null) for "none".
OptionalRef = Annotated[Id | None, BeforeValidator(_empty_is_none)]


class Document(BaseModel):
    """Base of the DemoPOS documents: unknown fields ignored, text stripped like the model's."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class Window(Document):
    """A weekly serving window: ``days`` 0 (Monday) to 6, ``from``/``to`` HH:MM local time."""

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1)
    start: str = Field(alias="from")
    end: str = Field(alias="to")

    @model_validator(mode="after")
    def _is_a_time_slot(self) -> Window:
        """Apply the universal slot's own checks (HH:MM clock times, ``to`` after ``from``)."""
        try:
            self.slot()
        except ValidationError as exc:
            raise ValueError("; ".join(error_reason(error) for error in exc.errors())) from None
        return self

    def slot(self) -> TimeSlot:
        """The window as a universal time slot."""
        return TimeSlot(days=self.days, start=self.start, end=self.end)


class Named(Document):
    """An entity with an id, a name and per-language ``names``/``descriptions``."""

    id: Id
    name: str
    names: Texts | None = None
    descriptions: Texts | None = None


class Sellable(Named):
    """An entity that can be 86'd, served at set hours or only on some channels."""

    available: bool = True
    unavailable_until: UtcDateTime | None = None
    unavailable_reason: str | None = None
    hours: list[Window] | None = None
    channels: list[ChannelId] | None = None
    image: str | None = None


class AllergenDeclaration(Document):
    """``allergens`` of an item or option; codes outside the EU list are refused, not dropped."""

    contains: list[Allergen] = Field(default_factory=list)
    may_contain: list[Allergen] = Field(default_factory=list)


class Labelled(Sellable):
    """An item or option: allergens, dietary ``tags`` and energy."""

    allergens: AllergenDeclaration | None = None
    tags: list[str] | None = None
    kcal: Count | None = None


class PriceLevel(Document):
    id: Id
    name: str
    channels: list[ChannelId] = Field(default_factory=list)


class TaxRate(Document):
    id: Id
    name: str
    rate_bp: int = Field(ge=0, le=10_000, description="Basis points: 700 is 7 %.")
    inclusive: bool = True


class MenuCategory(Sellable):
    parent: OptionalRef = None
    sort: Int64 = 0


class Size(Named):
    prices: Prices


class OptionPriceOverride(Document):
    group: Id
    option: Id
    prices: Prices


class Item(Labelled):
    description: str | None = None
    category: OptionalRef = None
    tax: OptionalRef = None
    sizes: list[Size] = Field(min_length=1)
    modifier_groups: list[Id] = Field(default_factory=list)
    option_prices: list[OptionPriceOverride] = Field(default_factory=list)


class Choice(Document):
    item: Id
    size: OptionalRef = None
    upcharge: Prices = Field(default_factory=dict)


class Slot(Named):
    min: Count
    max: Annotated[int, Field(ge=1, le=MAX_INT)]
    choices: list[Choice]


class Combo(Sellable):
    id: Annotated[Id, Field(max_length=200 - len(COMBO_VARIANT_SUFFIX))]
    description: str | None = None
    category: OptionalRef = None
    prices: Prices
    slots: list[Slot]


class Option(Labelled):
    prices: Prices = Field(default_factory=dict)
    max_qty: Annotated[int, Field(ge=1, le=MAX_INT)] = 1
    default: bool = False
    modifier_groups: list[Id] = Field(default_factory=list)


class OptionGroup(Named):
    min: Count = 0
    max: Count | None = None
    free: Count = 0
    options: list[Option]


class MenuDocument(Document):
    """The ``GET /menu?location=`` answer."""

    currency: Currency
    timezone: str | None = None
    updated_at: UtcDateTime | None = None
    price_levels: list[PriceLevel] = Field(min_length=1)
    taxes: list[TaxRate] = Field(default_factory=list)
    categories: list[MenuCategory] = Field(default_factory=list)
    items: list[Item] = Field(default_factory=list)
    combos: list[Combo] = Field(default_factory=list)
    modifier_groups: list[OptionGroup] = Field(default_factory=list)


class OrderEvent(Document):
    """An events-feed entry, which is also the body of an order webhook."""

    seq: Count
    order_id: Id
    reference: Id
    state: str
    at: UtcDateTime

    @field_validator("state")
    @classmethod
    def _known_state(cls, state: str) -> str:
        """Refuse a state this plugin does not know rather than guess where the order is."""
        if state not in STATES:
            raise ValueError(f"unknown DemoPOS order state {state!r}")
        return state


class EventsPage(Document):
    """A ``GET /events`` answer. Entries stay raw: each is read on its own, so one unreadable
    entry does not hide the others."""

    events: list[Any]
    last_seq: Count
    has_more: bool = False


class AvailabilityEvent(Document):
    """An ``availability`` webhook: an item (or combo) or a group's option 86'd or back."""

    location: Id
    item: Id | None = None
    option: Id | None = None
    group: Id | None = None
    available: StrictBool
    until: UtcDateTime | None = None
    reason: str | None = None
    hours: list[Window] | None = None
    channels: list[ChannelId] | None = None

    @model_validator(mode="after")
    def _names_one_entity(self) -> AvailabilityEvent:
        if (self.item is None) == (self.option is None):
            raise ValueError("an availability webhook names exactly one of 'item' or 'option'")
        if self.option is not None and self.group is None:
            raise ValueError("an option's availability names its 'group'")
        return self


def read(model: type[ModelT], document: Any, what: str) -> ModelT:
    """``document`` read as ``model`` (see :func:`posintegrator.documents.read_document`).

    :raises PermanentError: naming the first problems' places in the document and why.
    """
    return read_document(model, document, f"DemoPOS {what}")


def unreadable(what: str, exc: ValidationError) -> str:
    """A one-line message naming where the DemoPOS document is wrong and why."""
    return unreadable_document(f"DemoPOS {what}", exc)
