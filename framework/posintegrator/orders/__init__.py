"""The order stream, cloud -> POS: take an order into the durable inbox, then deliver it to the
POS exactly once (attempts, lookups, deadlines)."""
