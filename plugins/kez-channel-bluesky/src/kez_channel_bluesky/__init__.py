"""KEZ channel: proofs as lat.kez.claim records in a Bluesky (atproto) repo."""
