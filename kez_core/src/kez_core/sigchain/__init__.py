"""Sigchains: the append-only, signed history of one identity (DESIGN §4, docs/sigchain.md).

Modules, one job each:

- `model`       Link, ChainState and its records, op names
- `errors`      ChainError / ChainFault
- `canon`       strict line parsing; JCS without re-walking parsed values
- `wire`        one line → link object, JCS(payload), JCS(object), times
- `rules`       per op: who may sign, body rules, effect on the state
- `validate`    ChainValidator (streaming, position and signatures), validate_lines, iter_links
- `ops`         SigchainBuilder (checked), make_link / accept_signature (raw)
- `claimstatus` claim statuses from a chain (valid, revoked, expired, superseded, fork)
- `merge`       merge_copies: prefixes, forks, identities; merge_many / prevalidated:
                many identities' chains with their signatures on the pool together
- `io`          files: streaming read, atomic write/append, canonical export
"""

from __future__ import annotations

from .claimstatus import claim_statuses, status_of_claim, status_of_record
from .errors import ChainError, ChainFault, ChainFileError
from .io import (
    append_links,
    canonical_lines,
    continue_chain,
    export_chain,
    iter_file_lines,
    load_chain,
    read_chain,
    read_chain_lines,
    write_chain,
)
from .merge import (
    ChainVerdict,
    CopyReport,
    Fork,
    MergeResult,
    chain_verdict,
    merge_copies,
    merge_many,
    prevalidated,
)
from .model import OPS, ChainState, ClaimRecord, InboxKey, Link, RetiredKey
from .ops import SigchainBuilder, accept_signature, make_link
from .validate import ChainValidator, accept_message, iter_links, validate_lines

__all__ = [
    "OPS",
    "ChainError",
    "ChainFault",
    "ChainFileError",
    "ChainState",
    "ChainValidator",
    "ChainVerdict",
    "ClaimRecord",
    "CopyReport",
    "Fork",
    "InboxKey",
    "Link",
    "MergeResult",
    "RetiredKey",
    "SigchainBuilder",
    "accept_message",
    "accept_signature",
    "append_links",
    "canonical_lines",
    "chain_verdict",
    "continue_chain",
    "claim_statuses",
    "export_chain",
    "iter_file_lines",
    "iter_links",
    "load_chain",
    "make_link",
    "merge_copies",
    "merge_many",
    "prevalidated",
    "read_chain",
    "read_chain_lines",
    "status_of_claim",
    "status_of_record",
    "validate_lines",
    "write_chain",
]
