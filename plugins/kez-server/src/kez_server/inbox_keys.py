"""The inbox keys of an identity's stored chain, and the routing ids a message may still use.

Both the NATS auth callout (which inboxes a client may read) and the nostr
listener (which routing ids to watch for pushes) need the same answer, from
the chain stored here: every `add_inbox` of a key the identity still holds
(its primary or an active device), usable until 7 days after it expires
(a message sent just before expiry may arrive that late).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

import attrs
from kez_core.messaging import routing_id
from kez_core.messaging.replay import MAX_AGE, MAX_AHEAD
from kez_core.registry import Registry
from kez_core.sigchain import ChainValidator
from kez_core.sigchain.model import OP_ADD_INBOX, ChainState
from kez_core.timefmt import parse_time

from .chains import PAGE
from .db import Store

CACHE_SIZE = 1024


@attrs.frozen
class InboxHistory:
    """A stored chain's head, state and every `add_inbox` as (inbox key, device, expires_at)."""

    head: str
    state: ChainState
    inbox: tuple[tuple[str, str, str], ...]

    def routing_ids(self, at: datetime) -> tuple[str, ...]:
        """Routing ids of the inbox keys a message may still arrive for at `at`, in chain order."""
        holders = {self.state.current_primary, *self.state.devices}
        routes: list[str] = []
        for inbox_key, device, expires_at in self.inbox:
            usable = parse_time(expires_at) + MAX_AGE + MAX_AHEAD > at
            if device in holders and usable:
                route = routing_id(inbox_key)
                if route not in routes:
                    routes.append(route)
        return tuple(routes)


class InboxHistories:
    """`InboxHistory` of stored chains, cached by head id (thread-safe)."""

    def __init__(self, store: Store, registry: Registry, size: int = CACHE_SIZE) -> None:
        self.store = store
        self.registry = registry
        self.size = size
        self._cache: OrderedDict[str, InboxHistory] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, identity: str) -> InboxHistory | None:
        """The history of the chain stored for `identity`, None when none is stored."""
        head = self.store.head(identity)
        if head is None:
            return None
        with self._lock:
            cached = self._cache.get(identity)
        if cached is not None and cached.head == head[1]:
            return cached
        validator = ChainValidator(registry=self.registry)
        inbox: list[tuple[str, str, str]] = []
        after = 0
        while True:
            rows = self.store.chain_lines(identity, after, PAGE)
            if not rows:
                break
            for seqno, line in rows:
                link = validator.feed_trusted(line)  # stored links were validated on append
                if link is not None and link.op == OP_ADD_INBOX:
                    body = link.body
                    inbox.append((body["key"], body["device"], body["expires_at"]))
                after = seqno
        history = InboxHistory(validator.result().head, validator.result(), tuple(inbox))
        with self._lock:
            self._cache[identity] = history
            self._cache.move_to_end(identity)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return history
