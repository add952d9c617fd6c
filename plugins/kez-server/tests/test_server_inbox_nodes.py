"""Live delivery across two server nodes on one PostgreSQL database (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from inbox_helpers import post, read_events, register
from kez_server.testing import running_server
from server_helpers import new_database


@pytest.fixture(scope="module")
def nodes(pg_cluster):
    url = new_database(pg_cluster)
    with running_server(db=url) as a, running_server(db=url) as b:
        # a long keepalive: only a NOTIFY can deliver within the test's time
        a.app.state.inbox.keepalive = b.app.state.inbox.keepalive = 60
        yield a, b


def test_a_message_posted_to_one_node_reaches_a_live_reader_on_the_other(nodes):
    a, b = nodes
    with httpx.Client(base_url=a.url) as ca, httpx.Client(base_url=b.url) as cb:
        signer, handle = register(ca)

        async def run():
            reader = asyncio.create_task(read_events(b.url, signer, handle, 0, want=2, timeout=8))
            await asyncio.sleep(0.5)  # the reader on b is idle, waiting
            first = (await asyncio.to_thread(post, ca, handle)).json()["seq"]
            await asyncio.sleep(0.2)
            second = (await asyncio.to_thread(post, ca, handle)).json()["seq"]
            return await reader, [first, second]

        events, seqs = asyncio.run(run())
        assert [e["seq"] for e in events] == seqs
        # and the node that stored them serves them too
        assert (
            len(
                asyncio.run(
                    read_events(cb.base_url.__str__(), signer, handle, 0, want=2, timeout=5)
                )
            )
            == 2
        )
