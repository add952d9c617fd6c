"""KEZ channel: proofs as nostr kind-30078 events (NIP-78, tag ["d","kez"]).

`kez_channel_nostr.channel.NostrChannel` is the channel; `kez_channel_nostr.testing`
runs a real local relay (`nostr-relay`) for tests and benchmarks.
"""
