"""posintegrator plugin for Square, the cloud point-of-sale system.

:mod:`pos_square.plugin` holds the hook implementations the host loads (entry point ``square``);
:mod:`pos_square.translate` maps Square catalog objects and orders to and from the universal
model; :mod:`pos_square.client` speaks Square's REST API; :mod:`pos_square.webhooks` verifies and
reads Square's webhook notifications.
"""

__version__ = "0.1.0"
