"""The verification engine: check every claimed proof of an identity (DESIGN.md §5).

- `fetching`  bounded concurrency, per-channel limits, timeouts, retries with backoff
- `judge`     one status per claim from the chain and the proof texts read
- `engine`    verify an identity (chain + proofs) or a single subject
- `snapshots` save what was read and re-check it offline; keep each claim's status history
- `scope`     what the fetches of one run share (clients, connections, caches), closed at its end
- `service`   `Verifier`: what `kez verify` does (targets, handles, servers, snapshots) for any caller
"""

from __future__ import annotations

from .engine import IdentityReport, ProofReport, SubjectReport, verify_identity, verify_subject
from .fetching import FetchPolicy
from .judge import judge_record
from .scope import RunScope
from .service import TargetReport, Verifier
from .snapshots import Snapshot, SnapshotStore, recheck_offline

__all__ = [
    "FetchPolicy",
    "IdentityReport",
    "ProofReport",
    "RunScope",
    "Snapshot",
    "SnapshotStore",
    "SubjectReport",
    "TargetReport",
    "Verifier",
    "judge_record",
    "recheck_offline",
    "verify_identity",
    "verify_subject",
]
