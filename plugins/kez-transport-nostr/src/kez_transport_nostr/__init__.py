"""KEZ nostr transport (work in progress)."""
