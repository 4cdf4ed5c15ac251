"""The cloud side: the events the host sends, their Standard Webhooks signatures, their signed
delivery from the outbox, and a receiver that checks them (for the demo and tests)."""
