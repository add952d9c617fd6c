"""kez_core.chat.receiving: the rules `kez message listen --count` and a UI share."""

from __future__ import annotations

from kez_core.chat.listener import ListenEvent
from kez_core.chat.receiving import counts_as_message
from kez_core.chat.service import Received


def _event(kind: str, file_state: str | None = None) -> ListenEvent:
    file = None if file_state is None else {"state": file_state}
    return ListenEvent("received", "nats", received=Received(kind, None, True, file=file))


def test_a_file_counts_once_when_it_is_done_and_acks_count():
    assert counts_as_message(_event("message"))
    assert counts_as_message(_event("ack"))
    assert not counts_as_message(_event("file_chunk", "receiving"))
    assert counts_as_message(_event("file_chunk", "complete"))
    assert counts_as_message(_event("file_chunk", "corrupt"))
    assert not counts_as_message(
        _event("message", "receiving")
    )  # the file message whose chunks still come
    assert counts_as_message(_event("message", "complete"))


def test_blocked_senders_refusals_and_transport_events_do_not_count():
    assert not counts_as_message(_event("dropped"))
    assert not counts_as_message(ListenEvent("up", "nats", key="k"))
    assert not counts_as_message(ListenEvent("down", "nats", key="k", retry_in=1.0))
    assert not counts_as_message(ListenEvent("refused", "nats", error={"message": "replay"}))
    assert not counts_as_message(ListenEvent("note", text="acks not sent yet"))
