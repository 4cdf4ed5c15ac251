"""Operator and cloud actions on an order a venue agent holds: forwarded by the hub, carried out
by the agent (docs/link.md, "Acting on an order an agent holds").

Once an agent has an order, only the agent can take it to its POS, so a cancellation, a retry,
or an operator's finding (found in the POS, or missing from it) asked for at the hub travels to
the agent as a numbered ``action`` message. It is stored in the hub's link outbox in the same
transaction that records the request, so it is neither lost nor sent twice across link cuts and
restarts. The agent carries it out through the very functions a host serving its POS directly
would use, and the outcome comes back as the usual status events. An action the agent cannot
carry out (the order moved on meanwhile) comes back as an ``action_refused`` message: a refused
cancellation reaches the cloud as ``order.cancel_refused``, any other is noted in the order's
history at the hub.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

ActionName = Literal["cancel", "retry", "missing", "found"]


class OrderAction(BaseModel):
    """The body of an ``action`` message (hub -> agent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str = Field(max_length=200)
    action: ActionName
    request: dict[str, Any] = Field(
        description="The action's request as the hub's API took it: a CancelOrder for "
        "``cancel``, a FoundInPos for ``found``, an OperatorAction otherwise."
    )


class ActionRefused(BaseModel):
    """The body of an ``action_refused`` message (agent -> hub)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str = Field(max_length=200)
    action: ActionName
    reason: str = Field(max_length=2000)


def action_message(order_id: str, action: ActionName, request: BaseModel) -> bytes:
    """The body of the ``action`` message forwarding ``request`` for ``order_id``."""
    return orjson.dumps(
        OrderAction(
            order_id=order_id, action=action, request=request.model_dump(mode="json")
        ).model_dump(mode="json")
    )
