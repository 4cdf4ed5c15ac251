"""The link between a hub and its venue agents, for local and hybrid deployments (docs/link.md):
pairing, authentication, numbered and acknowledged messages that survive drops and crashes, the
hub's side (routing orders to agents, taking their statuses and menus) and the agent's side."""
