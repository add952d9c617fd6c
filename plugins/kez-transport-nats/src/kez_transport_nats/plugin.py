"""Entry point module of the nats transport (registers nothing yet)."""
