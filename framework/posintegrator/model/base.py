"""Shared building blocks of the universal model: strict base class, ids, money and time types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints


class UniversalModel(BaseModel):
    """Base of every universal model class.

    Unknown fields are refused (a typo in a cloud payload is an error, not silently dropped) and
    values are checked on assignment too, so a plugin cannot put a model into an invalid state.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, str_strip_whitespace=True)


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("outside the range of dates this host handles") from None


#: A timezone-aware instant, normalised to UTC. Naive datetimes are refused.
UtcDateTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: An identifier: non-empty, no surrounding whitespace, no control characters, at most 200
#: characters.
Id = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]

#: ISO 4217 currency code, e.g. ``EUR``.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

#: An amount of money in integer minor units (cents) of the enclosing document's currency.
MinorUnits = Annotated[int, Field(strict=True, ge=0)]

#: A rate in parts per million: 70000 is 7 %, 88750 is 8.875 %, 1000000 is 100 %. Millionths
#: rather than basis points, so every real tax rate and discount is a whole number.
RatePpm = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]

#: The id of a sales channel, as the deployment names it in its settings (``kiosk``, ``web``,
#: ``ubereats``): lower-case letters, digits, ``_``, ``-`` and ``.``, at most 63 characters.
ChannelId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]

#: The channels of a deployment that does not name its own: the four of the first release.
DEFAULT_CHANNELS: tuple[str, ...] = ("kiosk", "web", "delivery", "dine_in")


def utcnow() -> datetime:
    """The current instant as a timezone-aware UTC datetime."""
    return datetime.now(UTC)
