"""The status stream, POS -> cloud: every status event, from webhooks, polling, delivery or an
operator, goes through the forward-only state machine here."""
