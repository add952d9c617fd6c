"""Settings shared by the nats transport tests and their fixtures (a unique module name)."""

from __future__ import annotations

TOKEN = "kez-test-token"
SMALL_MAX_PAYLOAD = 4096

# Users with permissions: `sender` may publish to inboxes but not read them,
# `reader` may read them but not publish there (what an auth callout will hand out).
PERMISSIONS_CONFIG = """
authorization {
  users = [
    {user: sender, password: s1, permissions: {publish: {allow: ["kez.inbox.*"]}, subscribe: {deny: ["kez.inbox.*"]}}},
    {user: reader, password: r1, permissions: {publish: {deny: ["kez.inbox.*"]}, subscribe: {allow: ["kez.inbox.*", "_INBOX.>"]}}}
  ]
}
"""
