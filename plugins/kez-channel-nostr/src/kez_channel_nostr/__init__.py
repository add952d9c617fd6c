"""KEZ channel: proofs as nostr kind-30078 events."""
