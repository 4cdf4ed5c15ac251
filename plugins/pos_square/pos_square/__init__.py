"""posintegrator plugin for Square, the cloud point-of-sale system.

:mod:`pos_square.plugin` holds the hook implementations the host loads (entry point ``square``);
:mod:`pos_square.catalog` turns Square's catalog into the universal menu;
:mod:`pos_square.orders` maps orders, payments and cancellations to Square;
:mod:`pos_square.translate` maps Square's order states back to statuses;
:mod:`pos_square.documents` reads the notifications and orders Square sends;
:mod:`pos_square.client` speaks Square's REST API; :mod:`pos_square.webhooks` verifies and reads
Square's webhook notifications.
"""

__version__ = "0.1.0"
