"""Sigchain validation on every core: structure in order here, signatures on a process pool.

Once a link has been parsed and its structure checked against the state,
its signature checks (the link's own, an embedded claim's, an added key's
accept) depend on nothing else. `validate_stream` runs a `ChainValidator`
that defers those checks (`ChainValidator._checks`), sends them in batches
to worker processes, and reduces the answers in order: the first failing
check, in the order the one-core path meets them, gives exactly the
`ChainError` the one-core path raises (same reason, message, seqno, line
and link id). A structural error is reported only when no check before it
failed, since every deferred check was met before it.

Small chains stay on one core: the pool is used only once a chain has
`THRESHOLD` checks (`WARM_THRESHOLD` when the pool is already running;
docs/sigchain.md §11). Below that, the deferred checks
are verified here, in order. `KEZ_WORKERS` sets the number of worker
processes (0 or 1: no pool; unset: one per core when there are two or more).

The pool is created on first use, reused, and shut down at exit. Workers
start with `forkserver` (or `spawn`), never `fork`, so a caller's threads
(asyncio, a server) cannot leave them with a held lock. A batch the pool
cannot run (a worker killed, a plugin's key algorithm that does not pickle)
is verified here instead: the pool only ever makes validation faster.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime

from ..errors import UnknownNameError
from ..protocols import KeyAlgorithm
from ..registry import Registry
from ..timefmt import now
from . import model as m
from .errors import ChainError, ChainFault
from .validate import ChainValidator

# Signature checks a chain must have before the pool is used (docs/sigchain.md §11).
# Starting the pool costs 0.3-0.8 s here, about what two workers save on 16k checks
# (16384 x 62 us / 2): a process that has no pool yet starts one only for a chain
# that long. Once the pool runs, feeding it costs a few ms per batch: one batch's
# worth of checks (~0.25 s of work) is enough.
THRESHOLD = 16384
WARM_THRESHOLD = 4096
# Checks sent to a worker at once: big enough that pickling and the round trip are
# a few per cent of the work, small enough that the workers start early.
BATCH = 4096

Check = tuple[KeyAlgorithm, bytes, bytes, bytes]

__all__ = [
    "BATCH",
    "PooledFeed",
    "THRESHOLD",
    "WARM_THRESHOLD",
    "validate_many",
    "validate_prefix",
    "validate_stream",
    "worker_count",
]


def worker_count() -> int:
    """Worker processes to use: `KEZ_WORKERS`, else one per core (0 when there is one core)."""
    text = os.environ.get("KEZ_WORKERS", "").strip()
    if not text:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return cores if cores and cores > 1 else 0
    if not text.isdigit():
        raise UnknownNameError(
            f"KEZ_WORKERS must be a number of worker processes, not {text[:40]!r}",
            hint="unset it to use every core, or set 0 to validate on one core",
        )
    n = int(text)
    return n if n > 1 else 0


def verify_batch(checks: list[Check]) -> int:
    """In a worker: the index of the first check that fails, or -1."""
    for i, (alg, public, message, sig) in enumerate(checks):
        if not alg.verify(public, message, sig):
            return i
    return -1


# the built-in key algorithms' modules (what unpickling a check imports in a worker)
_PRELOAD = ("kez_core.builtins.ed25519", "kez_core.builtins.bip340")

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            context: multiprocessing.context.BaseContext
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                # the server imports the verify code once; each worker is a fork of it
                context.set_forkserver_preload([__name__, *_PRELOAD])
            else:
                context = multiprocessing.get_context("spawn")
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            _pool_size = workers
        return _pool


@atexit.register
def shutdown_pool() -> None:
    """Stop the worker processes (at exit; also for tests that want a fresh pool)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


class _Batches:
    """Deferred checks, in order: verified here below the threshold, by the pool above it."""

    def __init__(self, validator: ChainValidator, workers: int, threshold: int, batch: int):
        self.validator = validator
        self.workers = workers
        self.threshold = threshold
        self.batch = batch
        self.done = 0  # checks before this index are verified and passed
        self.inflight: deque[tuple[int, list[Check], Future[int] | None]] = deque()
        self.pool: ProcessPoolExecutor | None = None
        self.raised: ChainError | None = None  # the failure of a deferred check, once found

    def _fail_at(self, index: int) -> ChainError:
        return self.validator.deferred_error(index)

    def _collect(self, start: int, checks: list[Check], future: Future[int] | None) -> None:
        """Wait for one batch; raise the one-core path's error if a check in it failed."""
        try:
            first = future.result() if future is not None else verify_batch(checks)
        except Exception:  # a broken pool or an alg that does not pickle: verify here
            first = verify_batch(checks)
        if first >= 0:
            self.raised = self._fail_at(start + first)
            raise self.raised
        self.done = start + len(checks)

    @property
    def trigger(self) -> int:
        """Deferred checks at which `pump` has work: the threshold until the pool is in use."""
        return self.threshold if self.pool is None else self.batch

    def pump(self, final: bool = False) -> None:
        """Send the full batches that are waiting (all of them when `final`)."""
        checks = self.validator._checks
        assert checks is not None
        if self.pool is None and len(checks) >= self.threshold:
            self.pool = _get_pool(self.workers)
        while checks and (final or len(checks) >= self.batch):
            part = checks[: self.batch]
            del checks[: self.batch]
            start = self.done + sum(len(c) for _, c, _ in self.inflight)
            if self.pool is None:  # a small chain: in order, here
                self._collect(start, part, None)
                continue
            try:
                future: Future[int] | None = self.pool.submit(verify_batch, part)
            except Exception:  # the pool is broken or shut down: verify here
                future = None
            self.inflight.append((start, part, future))
            # keep a bounded number of batches in flight (memory stays flat),
            # and stop early when one already answered with a failure
            while self.inflight and (
                len(self.inflight) > 2 * self.workers
                or self.inflight[0][2] is None
                or self.inflight[0][2].done()
            ):
                self._collect(*self.inflight.popleft())

    def drain(self) -> None:
        """Verify everything deferred so far, in order (raises the first failure)."""
        self.pump(final=True)
        while self.inflight:
            self._collect(*self.inflight.popleft())

    def cancel(self) -> None:
        for _, _, future in self.inflight:
            if future is not None:
                future.cancel()
        self.inflight.clear()


def validate_stream(
    lines: Iterable[bytes | str],
    *,
    registry: Registry | None = None,
    clock: Callable[[], datetime] = now,
    workers: int | None = None,
    threshold: int | None = None,
    batch: int = BATCH,
) -> m.ChainState:
    """Validate a whole chain like `ChainValidator.feed` line by line, with the signature
    checks on `workers` processes (default `worker_count()`) once there are `threshold`
    (default THRESHOLD, or WARM_THRESHOLD when the pool already runs).

    Returns the state or raises exactly the ChainError the one-core path raises.
    """
    if workers is None:
        workers = worker_count()
    validator = ChainValidator(registry=registry, clock=clock)
    if workers < 2:  # the one-core path itself
        for line in lines:
            validator.feed(line)
        return validator.result()
    if threshold is None:
        threshold = THRESHOLD if _pool is None else WARM_THRESHOLD
    validator._checks = []
    batches = _Batches(validator, workers, threshold, batch)
    checks = validator._checks
    try:
        try:
            for line in lines:
                validator.feed(line)
                if len(checks) >= batches.trigger:
                    batches.pump()  # raises the first failing check's error, in order
        except Exception as exc:
            if exc is not batches.raised:
                # A fault of this line, or of the line source (a line too long, a read
                # error): every check deferred so far came before it, and the one-core
                # path would have stopped at a failure among them first.
                batches.drain()
            raise
        batches.drain()
    finally:
        batches.cancel()
    return validator.result()


def validate_prefix(
    lines: Sequence[bytes | str],
    *,
    registry: Registry | None = None,
    workers: int | None = None,
    threshold: int | None = None,
    batch: int = BATCH,
) -> tuple[m.ChainState | None, ChainError | None]:
    """The state of the valid prefix and the first fault (None when all is valid), as a
    one-core `ChainValidator` fed line by line leaves them when it stops at the first
    fault (no lines or only blank ones: (None, None), like the validator's state).

    The pooled path has read past a failing signature, so on a fault the
    prefix before the faulty line is rebuilt with `feed_trusted`: its
    signatures were all checked and passed, and the ops either fail before
    changing the state or succeed, so the state equals the one-core one.
    """
    if workers is None:
        workers = worker_count()
    if workers < 2:
        validator = ChainValidator(registry=registry)
        try:
            for line in lines:
                validator.feed(line)
        except ChainError as exc:
            return validator.state, exc
        return validator.state, None
    try:
        state = validate_stream(
            lines, registry=registry, workers=workers, threshold=threshold, batch=batch
        )
    except ChainError as exc:
        if exc.reason == ChainFault.EMPTY:
            return None, None
        if exc.line is None or exc.line <= 1:  # a fault in the first line
            return None, exc
        validator = ChainValidator(registry=registry)
        for line in lines[: exc.line - 1]:
            validator.feed_trusted(line)
        return validator.state, exc
    return state, None


def verify_failures(checks: list[Check]) -> list[int]:
    """In a worker: the indexes of every check that fails (checks of many chains share a batch)."""
    return [
        i
        for i, (alg, public, message, sig) in enumerate(checks)
        if not alg.verify(public, message, sig)
    ]


def validate_many(
    chains: Sequence[Sequence[bytes | str]],
    *,
    registry: Registry | None = None,
    workers: int | None = None,
    threshold: int | None = None,
    batch: int = BATCH,
) -> list[tuple[m.ChainState | None, ChainError | None]]:
    """`validate_prefix` of each chain, with the signature checks of all of them together.

    Many small chains (`kez verify` of many identities, a graph) each stay below
    the threshold, yet together they can fill the pool: each chain's structure is
    checked in order here with its signature checks deferred, and once the
    deferred checks of all chains reach `threshold` they are verified in batches
    on the pool (below it, here). Each chain then gets the one-core verdict: its
    first failing check if any (every check deferred for it came before its
    structural fault), else its structural fault, else its state. Equal, chain by
    chain, to `validate_prefix` (tests/sigchain/test_sigchain_parallel.py).
    """
    if workers is None:
        workers = worker_count()
    if threshold is None:
        threshold = THRESHOLD if _pool is None else WARM_THRESHOLD
    validators: list[ChainValidator] = []
    faults: list[ChainError | None] = []
    checks: list[Check] = []
    owner: list[tuple[int, int]] = []  # global check index -> (chain, its index in that chain)
    for number, lines in enumerate(chains):
        validator = ChainValidator(registry=registry)
        validator._checks = []
        fault = None
        try:
            for line in lines:
                validator.feed(line)
        except ChainError as exc:
            fault = exc
        own = validator._checks
        validator._checks = None
        checks.extend(own)
        owner.extend((number, k) for k in range(len(own)))
        validators.append(validator)
        faults.append(fault)

    failed: list[int] = []  # global indexes of failing checks, ascending
    if workers < 2 or len(checks) < threshold:
        failed = verify_failures(checks)
    else:
        pool = _get_pool(workers)
        parts = [(start, checks[start : start + batch]) for start in range(0, len(checks), batch)]
        futures: list[Future[list[int]] | None] = []
        for _start, part in parts:
            try:
                futures.append(pool.submit(verify_failures, part))
            except Exception:  # the pool is broken or shut down: verify here
                futures.append(None)
        for (start, part), future in zip(parts, futures, strict=True):
            try:
                bad = future.result() if future is not None else verify_failures(part)
            except Exception:  # a broken pool or an alg that does not pickle: verify here
                bad = verify_failures(part)
            failed.extend(start + i for i in bad)

    first_bad: dict[int, int] = {}
    for index in failed:
        number, k = owner[index]
        first_bad.setdefault(number, k)
    out: list[tuple[m.ChainState | None, ChainError | None]] = []
    for number, validator in enumerate(validators):
        bad_k = first_bad.get(number)
        if bad_k is None:
            out.append((validator.state, faults[number]))
            continue
        error = validator.deferred_error(bad_k)
        if error.line is None or error.line <= 1:  # a fault in the first line
            out.append((None, error))
            continue
        # the validator read past the failing signature: rebuild the prefix before it
        # (its signatures all passed; see validate_prefix)
        again = ChainValidator(registry=registry)
        for line in chains[number][: error.line - 1]:
            again.feed_trusted(line)
        out.append((again.state, error))
    return out


class PooledFeed:
    """`validator.feed` line by line with the signature checks on the pool, for a caller
    that acts between lines (kez-server's append: fork evidence, identity checks).

    Pooled only when `expected` links are enough to reach the threshold; otherwise
    `feed` is `validator.feed`. A caller must `drain()` before acting on a link
    (storing it, raising about it): that verifies every check deferred so far and
    raises the first failure, the error the one-core path would have raised
    first. `close()` (always, in a finally) leaves the validator as the one-core
    path leaves it, to be reused.
    """

    def __init__(
        self,
        validator: ChainValidator,
        expected: int,
        *,
        workers: int | None = None,
        threshold: int | None = None,
        batch: int | None = None,
    ) -> None:
        self.validator = validator
        batch = BATCH if batch is None else batch
        if workers is None:
            workers = worker_count()
        if threshold is None:
            threshold = THRESHOLD if _pool is None else WARM_THRESHOLD
        self.batches: _Batches | None = None
        # every link has at least one check: a chain this long reaches the threshold
        if workers >= 2 and expected >= threshold and validator._checks is None:
            validator._checks = []
            validator._where = []
            self.batches = _Batches(validator, workers, threshold, batch)

    def feed(self, line: bytes | str) -> m.Link | None:
        batches = self.batches
        if batches is None:
            return self.validator.feed(line)
        try:
            link = self.validator.feed(line)
        except Exception as exc:
            if exc is not batches.raised:
                batches.drain()  # a deferred check before this line fails first
            raise
        if len(self.validator._checks or ()) >= batches.trigger:
            batches.pump()
        return link

    def drain(self) -> None:
        if self.batches is not None:
            self.batches.drain()

    def close(self) -> None:
        if self.batches is not None:
            self.batches.cancel()
            self.batches = None
            self.validator._checks = None
            self.validator._where = []
