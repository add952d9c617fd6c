"""KEZ channel: proofs in DNS TXT records at _kez.<domain>."""
