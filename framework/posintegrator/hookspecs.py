"""The contract between the host and POS plugins.

Two kinds of hooks:

* **Per-POS hooks** (prefix ``pos_``) are called on exactly the one plugin bound to a
  connection, with that connection's :class:`~posintegrator.context.ConnectionContext`. A POS
  plugin implements the ones its :class:`~posintegrator.hooktypes.Capabilities` promise.
* **Broadcast hooks** (prefix ``posintegrator_``) go to every loaded plugin; any plugin may
  implement them to extend or observe the host.

Hooks that talk to a POS may be ``async def``: the host awaits what they return. Per-POS hooks
report POS failures with the errors in :mod:`posintegrator.errors` (``RetryableError``,
``PermanentError``, ``AmbiguousError``, ``AuthError``); anything else is treated as a bug in the
plugin, logged with its name, and retried.

Every hook is documented in ``docs/hooks.md``; a test fails when one is missing there.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from posintegrator.context import ConnectionContext
    from posintegrator.hooktypes import (
        CancelResult,
        Capabilities,
        FoundOrder,
        InboundWebhook,
        SharedMenu,
        SubmitResult,
        TrackedOrder,
        WebhookResult,
    )
    from posintegrator.model import Menu, Order, OrderStatus, StatusEvent

PROJECT = "posintegrator"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------------
# Plugin description (per-POS, called once at start-up)
# ---------------------------------------------------------------------------------------------


@hookspec
def pos_settings_model() -> type[BaseModel]:
    """Declare the pydantic model of this plugin's per-connection settings.

    Called at start-up and by ``posintegrator config check``. The host validates each
    connection's ``settings`` table against it and reports errors with their path in the file
    (``connections[1].settings.base_url: invalid URL``). Use ``SecretStr`` for credentials.

    :returns: a ``pydantic.BaseModel`` subclass.
    """
    raise NotImplementedError


@hookspec
def pos_capabilities() -> Capabilities:
    """Declare what this plugin can do.

    Called at start-up. The host refuses a configuration the plugin cannot serve (status by
    polling when the plugin cannot poll) and, at the API, an order it cannot carry (an order
    type, a payment mode or an optional part of the order, ``order_features``, it does not
    list); it chooses how to recover ambiguous submissions from ``order_lookup`` and
    ``idempotent_submit``, and whether an order the POS has can be cancelled from
    ``order_cancel``.

    :returns: the plugin's :class:`~posintegrator.hooktypes.Capabilities`.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Menu stream: POS -> cloud (per-POS)
# ---------------------------------------------------------------------------------------------


@hookspec
def pos_fetch_menu(ctx: ConnectionContext, location: str) -> Awaitable[Menu]:
    """Fetch the current menu of one location and translate it into the universal model.

    Called by the scheduler on every menu sync of the connection, and when a webhook says the
    menu changed. The host validates, transforms, hashes and publishes the result; return the full
    menu, not a delta. What of the POS's menu the plugin leaves out (it cannot be translated)
    goes into ``menu.left_out`` with the reason: the host reports it as menu report warnings.

    :param ctx: the connection being synced.
    :param location: one of ``ctx.locations``.
    :returns: the location's :class:`~posintegrator.model.Menu`.
    :raises RetryableError: the POS is unreachable; the last published menu stays live.
    :raises AuthError: the credentials were refused; the connection's health says so.
    """
    raise NotImplementedError


@hookspec
def pos_fetch_menus(ctx: ConnectionContext, locations: list[str]) -> Awaitable[list[SharedMenu]]:
    """Fetch the current menus of several locations of the connection at once (optional).

    For a POS that keeps one catalog for many locations (Square): read the catalog once and
    derive each location's menu from it, instead of once per location in
    :func:`pos_fetch_menu`. When a plugin implements this hook the host calls it, not
    ``pos_fetch_menu``, for its menu syncs: a sync round and a "menu changed" webhook cost one
    call for all the locations due. Locations whose menus are the same can share one
    :class:`~posintegrator.hooktypes.SharedMenu`, so the host checks and hashes it once;
    return full menus, not deltas. A plugin may keep what it read in ``ctx.state`` to read only
    what changed next time, provided the menus it returns equal those of a full read. When it
    knows nothing changed it may return the very same :class:`~posintegrator.hooktypes.SharedMenu`
    objects as last time: the host then skips checking and hashing them again. A plugin never
    changes a menu after returning it.

    :param ctx: the connection being synced.
    :param locations: some of ``ctx.locations``, each once.
    :returns: menus covering every location asked for, each location in one of them.
    :raises RetryableError: the POS is unreachable; the last published menus stay live.
    :raises AuthError: the credentials were refused; the connection's health says so.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Order stream: cloud -> POS (per-POS)
# ---------------------------------------------------------------------------------------------


@hookspec
def pos_submit_order(
    ctx: ConnectionContext, order: Order, idempotency_key: str
) -> Awaitable[SubmitResult]:
    """Send one order to the POS.

    Called by the delivery engine, at most once at a time per order. ``idempotency_key`` is
    derived from the order id and stays the same on every retry of the order: pass it to the POS
    (as its idempotency key or external reference) so a resend cannot create a second order.
    Store ``order.id`` in the POS as the order's reference so :func:`pos_find_order` can find it.

    :param ctx: the connection serving ``order.location``.
    :param order: the validated universal order.
    :param idempotency_key: the stable key for this order.
    :returns: the POS's id for the order and its status there.
    :raises PermanentError: the POS refused the order (sold out, unknown item); the cloud is told.
    :raises RetryableError: the POS did not take the order; it will be sent again later.
    :raises AmbiguousError: the request may or may not have created the order.
    :raises AuthError: the credentials were refused.
    """
    raise NotImplementedError


@hookspec
def pos_find_order(
    ctx: ConnectionContext, order_id: str, location: str
) -> Awaitable[FoundOrder | None]:
    """Look an order up in the POS by our reference.

    Called before resending an order whose last submission had an unknown outcome (a timeout, a
    crash of the host mid-request), so an order is never created twice.

    :param ctx: the connection serving ``location``.
    :param order_id: our (the cloud's) order id, stored in the POS as its reference.
    :param location: the order's location.
    :returns: the POS's order, or None when the POS certainly does not have it.
    :raises RetryableError: the POS could not answer now.
    :raises NeedsAttentionError: the POS's data cannot settle it (several of its orders fit
        ours, none carrying our reference): the order is parked for a person.
    """
    raise NotImplementedError


@hookspec
def pos_cancel_order(
    ctx: ConnectionContext, order_id: str, pos_order_id: str | None, location: str, reason: str
) -> Awaitable[CancelResult]:
    """Cancel (or void) an order the POS has, if the POS still allows it.

    Called by the delivery engine when a cancellation was asked for an order the POS has
    (``POST /v1/orders/{order_id}/cancel``), on plugins whose capabilities say
    ``order_cancel``. Answer honestly: ``CancelResult(cancelled=True)`` when the POS cancelled
    the order (or it already was cancelled: the call must be safe to repeat, as it is retried
    after an unknown outcome), ``CancelResult(cancelled=False, reason=...)`` when the POS
    refuses, typically because the kitchen has started on it. The host turns the answer into a
    CANCELLED status or an ``order.cancel_refused`` event for the cloud.

    :param ctx: the connection serving ``location``.
    :param order_id: our (the cloud's) order id, the POS's reference of the order.
    :param pos_order_id: the POS's id of the order, when the host knows it.
    :param location: the order's location.
    :param reason: why the order is cancelled, for the POS's staff.
    :returns: whether the POS cancelled the order.
    :raises RetryableError: the POS could not be reached; the cancellation is tried again later.
    :raises AmbiguousError: the outcome is unknown; the cancellation is tried again later.
    :raises PermanentError: the POS refused for a reason retrying will not change (the same as
        ``cancelled=False`` with the error's reason).
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Status stream: POS -> cloud (per-POS)
# ---------------------------------------------------------------------------------------------


@hookspec
def pos_poll_status(
    ctx: ConnectionContext, orders: list[TrackedOrder]
) -> Awaitable[list[StatusEvent]]:
    """Ask the POS for status changes of orders in flight.

    Called periodically for connections whose status arrives by polling. Return events for any
    order whose status may have changed; the host's state machine drops repeats and stale ones,
    so returning the current status again is harmless. What the call writes to ``ctx.state`` (a
    feed's cursor) is stored once the host has stored the events it returned.

    :param ctx: the connection.
    :param orders: the orders of this connection that are accepted but not final.
    :returns: status events in the order the POS produced them.
    """
    raise NotImplementedError


@hookspec
def pos_parse_webhook(ctx: ConnectionContext, request: InboundWebhook) -> Awaitable[WebhookResult]:
    """Verify and read one inbound webhook the POS sent to the host.

    Called when a request arrives at ``ctx.webhook_url``. Verify its signature first (in constant
    time) and raise :class:`~posintegrator.errors.WebhookRejected` if it does not hold; the host
    answers with that status and changes nothing.

    :param ctx: the connection the webhook URL belongs to.
    :param request: the raw request.
    :returns: the status events and menu-change notices it carries.
    :raises WebhookRejected: the signature, timestamp or content is invalid.
    """
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Broadcast hooks: any plugin may implement these
# ---------------------------------------------------------------------------------------------


@hookspec
def posintegrator_transform_menu(
    menu: Menu, location: str, connection: str
) -> Awaitable[None] | None:
    """Adjust a freshly fetched menu before it is validated and published.

    Called on every plugin that implements it, one after the other, each seeing the changes of
    the previous. Change ``menu`` in place (hide a product, add a markup to a price list); the
    host validates the result, so a transform cannot publish a broken menu.

    :param menu: the fetched menu, to change in place.
    :param location: the location id.
    :param connection: the connection's name.
    """


@hookspec
def posintegrator_order_status_changed(
    order_id: str, old: OrderStatus, new: OrderStatus, event: StatusEvent
) -> Awaitable[None] | None:
    """Observe an order's status change, after it has been stored.

    Called on every plugin that implements it. Errors are logged and otherwise ignored: an
    observer cannot stop or undo a status change.

    :param order_id: our (the cloud's) order id.
    :param old: the status before.
    :param new: the status now.
    :param event: the event that caused the change.
    """


@hookspec
def posintegrator_connection_alert(
    connection: str, kind: str, message: str
) -> Awaitable[None] | None:
    """Hear that a person should look at a connection (page someone, post to a chat).

    Called on every plugin that implements it, once when the problem starts: ``auth_failed``
    when the POS refuses the connection's credentials, ``circuit_open`` when calls to the POS
    are paused after repeated failures, ``stream_stuck`` when events to the cloud about the
    connection's orders or menus have waited longer than ``cloud.stuck_after_seconds``. Errors
    are logged and otherwise ignored.

    :param connection: the connection's name.
    :param kind: ``auth_failed``, ``circuit_open`` or ``stream_stuck``.
    :param message: what happened and what to do, for a person.
    """
