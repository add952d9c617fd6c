"""An example KEZ plugin distribution, written to be copied."""
