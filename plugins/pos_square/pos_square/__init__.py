"""posintegrator plugin for Square, the cloud point-of-sale system.

:mod:`pos_square.plugin` holds the hook implementations the host loads (entry point ``square``);
:mod:`pos_square.catalog` turns Square's catalog into the universal menu;
:mod:`pos_square.translate` maps orders to Square and Square's order states back;
:mod:`pos_square.documents` reads the notifications and orders Square sends;
:mod:`pos_square.client` speaks Square's REST API; :mod:`pos_square.webhooks` verifies and reads
Square's webhook notifications.
"""

__version__ = "0.1.0"
