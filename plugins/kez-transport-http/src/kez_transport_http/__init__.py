"""KEZ transport `http`: envelopes through a kez-server's HTTP inbox.

`kez_transport_http.transport.HttpTransport` is the transport; the server
side is `kez-server` (docs/spec.md section 11, "Inbox").
"""
