"""KEZ transport `nats`: envelopes on the core NATS subject `kez.inbox.<routing id>`.

`kez_transport_nats.transport.NatsTransport` is the transport;
`kez_transport_nats.testing` runs a real local `nats-server` for tests.
"""
