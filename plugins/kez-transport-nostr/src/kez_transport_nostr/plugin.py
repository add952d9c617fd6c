"""Entry point module of the nostr transport (registers nothing yet)."""
