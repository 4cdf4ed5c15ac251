"""DemoPOS: a simulated restaurant POS with its own vendor-style HTTP API.

It mimics what integrations meet in the wild: a native (non-universal) menu format, orders
guarded by Idempotency-Key, kitchen states advancing on timers, a polling change feed,
HMAC-signed webhooks with retries, and state that survives restarts.
"""

from .config import SimulatorConfig
from .server import RunningSimulator, start_simulator
from .webhooks import sign as sign_webhook

__all__ = ["RunningSimulator", "SimulatorConfig", "sign_webhook", "start_simulator"]
