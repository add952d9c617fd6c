"""KEZ transport `nostr`: message envelopes as nostr events signed by one-time keys.

`kez_transport_nostr.transport.NostrTransport` is the transport; the wire
form is in `kez_transport_nostr.events`.
"""
