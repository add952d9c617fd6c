"""KEZ channel: proofs in a fediverse (ActivityPub/Mastodon) profile."""
