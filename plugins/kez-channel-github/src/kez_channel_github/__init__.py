"""KEZ channel: proofs in a GitHub user's public gists."""
