"""Snapshots of verification runs, offline re-checks, and each claim's status history.

A snapshot keeps the chain (its canonical lines) and every proof text that
was read, with where and when. Re-checking it offline re-validates the
chain and re-judges the stored texts at a new time, so expiry moves on but
nothing is fetched. Every check (online or offline) appends one line per
claim to the identity's history file, so "when did this proof break?" has
an answer.

    $KEZ_HOME/snapshots/<alg>-<hex>/<YYYYMMDDTHHMMSSZ>-<n>.json
    $KEZ_HOME/history/<alg>-<hex>.jsonl
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from ..errors import StoreError
from ..keyfiles import private_dir
from ..keystore import atomic_write
from ..protocols import FetchOutcome, ProofCandidate
from ..registry import Registry, default_registry
from ..sigchain import merge_copies
from ..status import to_json
from ..timefmt import format_time, now, parse_time
from .engine import IdentityReport, ProofReport
from .judge import judge_record

SNAPSHOT_VERSION = 1


def safe_name(identity_id: str) -> str:
    """`ed25519:ab…` → `ed25519-ab…` (a file name on every platform)."""
    return identity_id.replace(":", "-")


@attrs.frozen
class Snapshot:
    path: Path
    data: dict[str, Any]

    @property
    def identity_id(self) -> str:
        identity: str = self.data["identity_id"]
        return identity

    @property
    def taken_at(self) -> str:
        taken: str = self.data["taken_at"]
        return taken


class SnapshotStore:
    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def _dir(self, identity_id: str) -> Path:
        return self.home / "snapshots" / safe_name(identity_id)

    def save(self, report: IdentityReport, chain_lines: Iterable[bytes]) -> Path:
        data = {
            "version": SNAPSHOT_VERSION,
            "identity_id": report.identity_id,
            "taken_at": format_time(report.checked_at),
            "chain": [line.decode("utf-8").rstrip("\n") for line in chain_lines],
            "proofs": [
                {
                    "claim_id": p.check.claim_id,
                    "subject": p.check.subject,
                    "channel": p.channel,
                    "reachable": p.reachable,
                    "reason": p.check.reason if p.reachable is False else "",
                    "source": p.check.source,
                    "candidates": [
                        {
                            "text": c.text,
                            "source": c.source,
                            "fetched_at": format_time(c.fetched_at),
                        }
                        for c in p.candidates
                    ],
                }
                for p in report.proofs
            ],
            "results": to_json(report),
        }
        folder = private_dir(self._dir(report.identity_id))  # 0700 whatever the umask
        stamp = report.checked_at.strftime("%Y%m%dT%H%M%SZ")
        n = 0
        while (folder / f"{stamp}-{n}.json").exists():
            n += 1
        path = folder / f"{stamp}-{n}.json"
        atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"), 0o644)
        return path

    def _snapshots(self, identity_id: str) -> list[Snapshot]:
        """Readable snapshots of an identity, newest first (damaged ones are skipped)."""
        folder = self._dir(identity_id)
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(
            (p for p in folder.glob("*.json") if not p.name.startswith(".")), reverse=True
        ):
            try:
                data = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("version") == SNAPSHOT_VERSION:
                out.append(Snapshot(path, data))
        return out

    def latest(self, identity_id: str) -> Snapshot | None:
        snapshots = self._snapshots(identity_id)
        return snapshots[0] if snapshots else None

    def latest_readings(self, identity_id: str) -> Snapshot | None:
        """The newest snapshot, with each claim's proof taken from the newest run that read it.

        A run in which a channel was unreachable still becomes a snapshot (it
        is history), but re-checking offline should use what was last
        actually read, so for each claim the newest reachable reading wins.
        """
        snapshots = self._snapshots(identity_id)
        if not snapshots:
            return None
        newest = snapshots[0]
        readings: dict[str, dict[str, Any]] = {}
        for snap in snapshots:
            for proof in snap.data.get("proofs", []):
                cid = proof.get("claim_id")
                if cid and cid not in readings and proof.get("reachable"):
                    readings[cid] = proof
        proofs = [readings.get(p.get("claim_id"), p) for p in newest.data.get("proofs", [])]
        return Snapshot(newest.path, {**newest.data, "proofs": proofs})

    def _history_path(self, identity_id: str) -> Path:
        return self.home / "history" / f"{safe_name(identity_id)}.jsonl"

    def record_history(self, report: IdentityReport) -> None:
        path = self._history_path(report.identity_id)
        private_dir(path.parent)
        lines = "".join(
            json.dumps(
                {
                    "checked_at": format_time(report.checked_at),
                    "claim_id": p.check.claim_id,
                    "subject": p.check.subject,
                    "status": p.check.status.value,
                    "reason": p.check.reason,
                    "offline": report.offline,
                },
                ensure_ascii=False,
            )
            + "\n"
            for p in report.proofs
        )
        # One write with O_APPEND: concurrent checks interleave whole lines, never bytes.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines.encode("utf-8"))
        finally:
            os.close(fd)

    def history(self, identity_id: str, claim_id: str | None = None) -> list[dict[str, Any]]:
        path = self._history_path(identity_id)
        if not path.is_file():
            return []
        out = []
        with path.open("r", encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash is skipped
                if claim_id is None or entry.get("claim_id") == claim_id:
                    out.append(entry)
        return out


def recheck_offline(
    snapshot: Snapshot, *, registry: Registry | None = None, at: datetime | None = None
) -> IdentityReport:
    """Re-validate the stored chain and re-judge the stored proof texts, fetching nothing."""
    registry = registry or default_registry()
    at = at or now()
    data = snapshot.data
    merged = merge_copies(
        [[line.encode("utf-8") for line in data.get("chain", [])]], registry=registry
    )
    if merged.state is None:
        raise StoreError(
            f"snapshot {snapshot.path} holds no valid chain", hint="take a new one online"
        )
    state = merged.state
    stored: dict[str, dict[str, Any]] = {
        p["claim_id"]: p for p in data.get("proofs", []) if p.get("claim_id")
    }
    proofs = []
    for record in state.claims.values():
        entry = stored.get(record.claim_id)
        outcome = None
        candidates: tuple[ProofCandidate, ...] = ()
        if entry is not None and entry.get("reachable") is not None:
            candidates = tuple(
                ProofCandidate(c["text"], c["source"], parse_time(c["fetched_at"]))
                for c in entry.get("candidates", [])
            )
            outcome = FetchOutcome(
                candidates,
                bool(entry["reachable"]),
                entry.get("reason", ""),
                entry.get("source", ""),
            )
        check = judge_record(state, record, outcome, at=at, fork=merged.fork, registry=registry)
        if outcome is None and check.status.value == "valid":
            check = attrs.evolve(
                check, reason=check.reason + " (no proof was read in this snapshot)"
            )
        proofs.append(
            ProofReport(
                check,
                record.subject.partition(":")[0],
                0,
                entry.get("reachable") if entry else None,
                candidates,
            )
        )
    return IdentityReport(
        identity_id=state.identity_id,
        current_primary=state.current_primary,
        chain_status=merged.status,
        chain_reason=f"offline re-check of the snapshot taken {snapshot.taken_at}",
        head=state.head,
        length=state.length,
        checked_at=at,
        offline=True,
        devices=dict(state.devices),
        recovery_keys=tuple(sorted(state.recovery_keys)),
        proofs=tuple(proofs),
    )
