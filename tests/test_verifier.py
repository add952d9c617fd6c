"""The verification engine: statuses, retries, concurrency, snapshots and history.

The channel here is an in-process test double of the *plugin* interface; the
engine is not network code. Real channels are tested against real local
servers in their own distributions.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

import kez_core
from kez_core.claim import create_claim
from kez_core.encoding import encode
from kez_core.keys import Signer
from kez_core.protocols import ChannelContext, FetchOutcome, ProofCandidate, PublishOutcome
from kez_core.registry import Registry
from kez_core.sigchain import SigchainBuilder
from kez_core.signed import SignedObject
from kez_core.status import Status
from kez_core.timefmt import now
from kez_core.verifier import (
    FetchPolicy,
    RunScope,
    SnapshotStore,
    recheck_offline,
    verify_identity,
    verify_subject,
)


@attrs.define
class MemoryChannel:
    """Proof texts by handle, with switchable failure modes."""

    name: str = "mem"
    aliases: tuple[str, ...] = ()
    options: tuple = ()
    proof_encoding: str = "compact"
    texts: dict[str, list[str]] = attrs.field(factory=dict)
    down: set[str] = attrs.field(factory=set)
    retry_after: float | None = None
    delay: float = 0.0
    calls: dict[str, int] = attrs.field(factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    scopes: list = attrs.field(factory=list)  # ctx.scope of every fetch
    opened: int = 0  # run resources made (one per run scope)
    released: int = 0  # run resources closed by their scope

    def normalize_handle(self, handle: str) -> str:
        return handle.lower()

    def _open_resource(self, scope: RunScope) -> dict:
        self.opened += 1

        async def release() -> None:
            self.released += 1

        scope.on_close(release)
        return {}

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        self.calls[handle] = self.calls.get(handle, 0) + 1
        self.scopes.append(ctx.scope)
        if ctx.scope is not None:
            ctx.scope.get("mem-resource", lambda: self._open_resource(ctx.scope))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if handle == "raises":
                raise RuntimeError("plugin bug")
            if handle == "hangs":
                await asyncio.sleep(3600)
            if handle in self.down:
                return FetchOutcome(
                    reachable=False, reason="mem.example answered 503", retry_after=self.retry_after
                )
            texts = self.texts.get(handle, [])
            return FetchOutcome(
                tuple(ProofCandidate(t, f"mem://{handle}/{i}", now()) for i, t in enumerate(texts)),
                source=f"mem://{handle}",
            )
        finally:
            self.in_flight -= 1

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        self.texts.setdefault(handle, []).append(proof_text)
        return PublishOutcome(f"mem://{handle}")


@pytest.fixture
def channel():
    return MemoryChannel()


@pytest.fixture
def registry(channel):
    class Plugin:
        @kez_core.hookimpl
        def kez_register_channels(self):
            return [channel]

    from kez_core.builtins import bip340, ed25519, encodings

    return Registry(plugins=[ed25519, bip340, encodings, Plugin()], entry_points=False)


FAST = FetchPolicy(timeout=0.5, retries=2, backoff=0.001, max_retry_wait=1.0)


def build(registry, subjects, *, alg="ed25519"):
    primary = Signer.generate(alg, registry)
    builder = SigchainBuilder(registry=registry)
    claims = {}
    for subject in subjects:
        claim = create_claim(primary, subject, registry=registry)
        builder.claim(primary, claim)
        claims[subject] = claim
    return primary, builder, claims


def run(coro):
    return asyncio.run(coro)


def statuses(report):
    return {p.check.subject: p.check.status for p in report.proofs}


def test_every_status_from_one_run(registry, channel):
    primary, builder, claims = build(
        registry,
        [
            "mem:good",
            "mem:missing",
            "mem:tampered",
            "mem:wrongkey",
            "mem:revoked",
            "mem:down",
            "mem:other",
        ],
    )
    channel.texts["good"] = ["hello\n" + encode(claims["mem:good"], "markdown", registry)]
    bad = claims["mem:tampered"]
    channel.texts["tampered"] = [
        encode(
            SignedObject(bad.kind, {**bad.payload, "nonce": "0" * 32}, bad.signature),
            "json",
            registry,
        )
    ]
    mallory = Signer.generate("ed25519", registry)
    channel.texts["wrongkey"] = [
        encode(create_claim(mallory, "mem:wrongkey", registry=registry), "compact", registry)
    ]
    channel.texts["other"] = [encode(claims["mem:good"], "compact", registry), "not a proof at all"]
    channel.down.add("down")
    builder.revoke(primary, claims["mem:revoked"].id, "account sold")

    report = run(verify_identity(builder.state, registry=registry, policy=FAST))
    got = statuses(report)
    assert got == {
        "mem:good": Status.VALID,
        "mem:missing": Status.NOT_FOUND,
        "mem:tampered": Status.INVALID,
        "mem:wrongkey": Status.INVALID,
        "mem:revoked": Status.REVOKED,
        "mem:down": Status.UNREACHABLE,
        "mem:other": Status.NOT_FOUND,
    }
    by_subject = {p.check.subject: p for p in report.proofs}
    assert (
        "revoked at seqno" in by_subject["mem:revoked"].check.reason
        and "account sold" in by_subject["mem:revoked"].check.reason
    )
    assert "revoked" not in channel.calls  # the chain settled it: no request
    assert by_subject["mem:down"].attempts == 3 and channel.calls["down"] == 3
    assert "503" in by_subject["mem:down"].check.reason
    assert "never been a primary" in by_subject["mem:wrongkey"].check.reason
    assert "other subjects" in by_subject["mem:other"].check.reason
    assert by_subject["mem:good"].check.source == "mem://good/0"
    assert not report.ok and report.counts()["valid"] == 1


def test_expired_claim_needs_no_fetch(registry, channel):
    primary = Signer.generate("nostr", registry)
    builder = SigchainBuilder(registry=registry)
    old = create_claim(
        primary,
        "mem:old",
        created_at=now() - timedelta(days=10),
        expires_in=timedelta(days=1),
        registry=registry,
    )
    builder.claim(primary, old)
    report = run(verify_identity(builder.state, registry=registry, policy=FAST))
    assert statuses(report) == {"mem:old": Status.EXPIRED}
    assert channel.calls == {}


def test_long_retry_after_stops_retrying_and_stays_unreachable(registry, channel):
    _, builder, _ = build(registry, ["mem:down"])
    channel.down.add("down")
    channel.retry_after = 3600
    report = run(verify_identity(builder.state, registry=registry, policy=FAST))
    assert statuses(report) == {"mem:down": Status.UNREACHABLE}
    assert channel.calls["down"] == 1


def test_raising_or_hanging_channel_is_unreachable_not_invalid(registry, channel):
    _, builder, _ = build(registry, ["mem:raises", "mem:hangs"])
    policy = FetchPolicy(timeout=0.05, retries=0)
    report = run(verify_identity(builder.state, registry=registry, policy=policy))
    by_subject = {p.check.subject: p.check for p in report.proofs}
    assert (
        by_subject["mem:raises"].status is Status.UNREACHABLE
        and "plugin bug" in by_subject["mem:raises"].reason
    )
    assert by_subject["mem:hangs"].status is Status.UNREACHABLE


def test_missing_channel_plugin_is_unreachable(registry):
    """A claim made where the `nowhere` plugin is installed, checked where it is not: unreachable, not invalid."""
    from kez_core.builtins import bip340, ed25519, encodings
    from kez_core.testing import provider

    elsewhere = Registry(
        plugins=[ed25519, bip340, encodings, provider(channels=[MemoryChannel(name="nowhere")])],
        entry_points=False,
        env={},
    )
    _, builder, _ = build(elsewhere, ["nowhere:alice"])
    report = run(verify_identity(builder.state, registry=registry, policy=FAST))
    assert report.proofs[0].check.status is Status.UNREACHABLE
    assert "no channel plugin" in report.proofs[0].check.reason


def test_fetches_run_concurrently_within_the_per_channel_limit(registry, channel):
    _, builder, claims = build(registry, [f"mem:user{i}" for i in range(60)])
    for subject, claim in claims.items():
        channel.texts[subject[4:]] = [encode(claim, "compact", registry)]
    channel.delay = 0.02
    report = run(
        verify_identity(
            builder.state, registry=registry, policy=FetchPolicy(per_channel=8, concurrency=32)
        )
    )
    assert set(statuses(report).values()) == {Status.VALID}
    assert 1 < channel.max_in_flight <= 8


def test_snapshot_offline_recheck_and_history(registry, channel, tmp_path):
    primary = Signer.generate("ed25519", registry)
    builder = SigchainBuilder(registry=registry)
    soon = create_claim(primary, "mem:soon", expires_in=timedelta(hours=1), registry=registry)
    lasting = create_claim(primary, "mem:lasting", registry=registry)
    builder.claim(primary, soon)
    builder.claim(primary, lasting)
    channel.texts["soon"] = [encode(soon, "compact", registry)]
    channel.texts["lasting"] = [encode(lasting, "markdown", registry)]
    store = SnapshotStore(tmp_path)

    online = run(verify_identity(builder.state, registry=registry, policy=FAST))
    assert online.ok
    path = store.save(online, builder.lines)
    store.record_history(online)
    assert path.is_file()

    channel.texts.clear()  # the proofs disappear from the network; offline still knows what was read
    snapshot = store.latest(builder.identity_id)
    later = recheck_offline(snapshot, registry=registry, at=now() + timedelta(hours=2))
    store.record_history(later)
    assert later.offline
    assert statuses(later) == {"mem:soon": Status.EXPIRED, "mem:lasting": Status.VALID}
    assert channel.calls.get("lasting", 0) == 1  # nothing fetched offline

    history = store.history(builder.identity_id, soon.id)
    assert [h["status"] for h in history] == ["valid", "expired"]
    assert [h["offline"] for h in history] == [False, True]


def test_verify_subject_reports_each_claim_found(registry, channel):
    alice = Signer.generate("ed25519", registry)
    good = create_claim(alice, "mem:alice", registry=registry)
    other = create_claim(alice, "mem:bob", registry=registry)
    channel.texts["alice"] = [
        encode(good, "markdown", registry) + encode(other, "markdown", registry)
    ]
    report = run(verify_subject("mem:Alice", registry=registry, policy=FAST))
    assert report.subject == "mem:alice" and report.status is Status.VALID
    assert [c.primary for c in report.claims] == [alice.key_id]
    channel.down.add("carol")
    assert (
        run(verify_subject("mem:carol", registry=registry, policy=FAST)).status
        is Status.UNREACHABLE
    )
    assert (
        run(verify_subject("mem:dave", registry=registry, policy=FAST)).status is Status.NOT_FOUND
    )


def test_a_broken_block_beside_the_proof_does_not_hide_it(registry, channel):
    """Issue 13 §6: one text (a gist) holding an empty ```kez block, a broken one and the proof."""
    alice = Signer.generate("ed25519", registry)
    good = create_claim(alice, "mem:erin", registry=registry)
    text = "```kez\n```\n\n```kez\nkez:z1:AAAAbroken\n```\n\n" + encode(good, "markdown", registry)
    channel.texts["erin"] = [text]
    report = run(verify_subject("mem:erin", registry=registry, policy=FAST))
    assert report.status is Status.VALID and [c.claim_id for c in report.claims] == [good.id]


# ------------------------------------------------------------------ run scope


def test_one_scope_per_run_shared_by_its_fetches_and_closed_at_the_end(registry, channel):
    _, builder, claims = build(registry, ["mem:a", "mem:b", "mem:c"])
    for subject, claim in claims.items():
        channel.texts[subject[4:]] = [encode(claim, "compact", registry)]
    report = run(verify_identity(builder.state, registry=registry, policy=FAST))
    assert set(statuses(report).values()) == {Status.VALID}
    [scope] = set(channel.scopes)
    assert isinstance(scope, RunScope) and len(channel.scopes) == 3
    assert scope.closed
    assert (channel.opened, channel.released) == (
        1,
        1,
    )  # made once for the run, released at its end

    run(verify_identity(builder.state, registry=registry, policy=FAST))
    assert len(set(channel.scopes)) == 2  # a later run shares nothing with the earlier one
    assert (channel.opened, channel.released) == (2, 2)


def test_scope_closed_when_fetches_fail_or_hang(registry, channel):
    _, builder, _ = build(registry, ["mem:raises", "mem:hangs", "mem:down"])
    channel.down.add("down")
    policy = FetchPolicy(timeout=0.1, retries=0)
    report = run(verify_identity(builder.state, registry=registry, policy=policy))
    assert set(statuses(report).values()) == {Status.UNREACHABLE}
    assert all(scope.closed for scope in channel.scopes)
    assert channel.released == channel.opened == 1


def test_scope_sized_by_the_policy(registry, channel):
    _, builder, _ = build(registry, ["mem:a"])
    run(
        verify_identity(
            builder.state, registry=registry, policy=FetchPolicy(concurrency=64, per_channel=24)
        )
    )
    run(
        verify_identity(
            builder.state, registry=registry, policy=FetchPolicy(concurrency=8, per_channel=24)
        )
    )
    assert [s.concurrency for s in channel.scopes] == [24, 8]


def test_a_callers_scope_is_used_and_left_open(registry, channel):
    _, builder, _ = build(registry, ["mem:a", "mem:b"])

    async def go():
        scope = RunScope()
        ctx = ChannelContext(scope=scope)
        await verify_identity(builder.state, registry=registry, ctx=ctx, policy=FAST)
        await verify_subject("mem:a", registry=registry, ctx=ctx, policy=FAST)
        assert not scope.closed and channel.released == 0
        await scope.aclose()
        return scope

    scope = run(go())
    assert channel.scopes == [scope] * 3
    assert (channel.opened, channel.released) == (1, 1)


def test_verify_subject_has_its_own_scope(registry, channel):
    run(verify_subject("mem:a", registry=registry, policy=FAST))
    [scope] = channel.scopes
    assert scope is not None and scope.closed and channel.released == 1


def test_run_scope_get_lease_and_close():
    closed: list[str] = []

    async def go():
        scope = RunScope(concurrency=0)
        assert scope.concurrency == 1
        made = []
        assert scope.get("k", lambda: made.append(1) or "v") == "v"
        assert scope.get("k", lambda: made.append(1) or "w") == "v"
        assert made == [1]

        counter = iter(range(100))

        def make():
            return f"item{next(counter)}"

        async with scope.lease("pool", make, closed.append) as first:
            async with scope.lease("pool", make, closed.append) as second:
                assert first != second  # held at once: two items
        assert sorted(scope.idle("pool")) == ["item0", "item1"]
        async with scope.lease("pool", make, closed.append) as again:
            assert again in (first, second)  # a free one is reused
            assert len(scope.idle("pool")) == 1
        async with scope.lease("other", make) as other:
            assert other == "item2"  # pools are separate

        async def async_closer():
            closed.append("async")

        def broken():
            raise OSError("already gone")

        scope.on_close(lambda: closed.append("sync"))
        scope.on_close(broken)
        scope.on_close(async_closer)
        await scope.aclose()
        assert closed == [
            "async",
            "sync",
            "item1",
            "item0",
        ]  # last registered first; a failure stops none
        await scope.aclose()  # idempotent
        with pytest.raises(RuntimeError, match="over"):
            scope.get("new", dict)
        with pytest.raises(RuntimeError, match="over"):
            async with scope.lease("pool", make):
                pass
        assert scope.closed

    run(go())
