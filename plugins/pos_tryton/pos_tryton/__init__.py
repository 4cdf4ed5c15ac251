"""posintegrator plugin for Tryton's point of sale (module ``sale_point``), over JSON-RPC.

:mod:`pos_tryton.plugin` holds the hook implementations the host loads (entry point ``tryton``);
:mod:`pos_tryton.client` speaks Tryton's JSON-RPC (sessions, errors) and :mod:`pos_tryton.wire`
its JSON encoding of decimals and dates; :mod:`pos_tryton.translate` maps products, sales and
states to and from the universal model; :mod:`pos_tryton.sales` runs an order's life in Tryton
(create, mark, pay) and :mod:`pos_tryton.reconcile` decides, after an unknown outcome, which
sale is ours. :mod:`pos_tryton.testing` starts a real, seeded Tryton server for tests.

The plugin imports nothing of Tryton: it only talks to a Tryton server over HTTP.
"""

__version__ = "0.1.0"
