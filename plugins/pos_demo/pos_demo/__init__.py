"""posintegrator plugin for DemoPOS, a simulated restaurant point-of-sale system.

:mod:`pos_demo.plugin` holds the hook implementations the host loads (entry point ``demo``);
:mod:`pos_demo.translate` maps DemoPOS documents to and from the universal model;
:mod:`pos_demo.client` speaks the DemoPOS HTTP API; :mod:`pos_demo.simulator` is the simulated
POS itself, for demos and end-to-end tests.
"""

__version__ = "0.1.0"
