"""What runs the streams: the host that puts everything together, the scheduler and its jobs,
POS connections with their health, circuit breaker and call limits, and orderly shutdown."""
