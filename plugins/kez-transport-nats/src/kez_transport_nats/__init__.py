"""KEZ nats transport (work in progress)."""
