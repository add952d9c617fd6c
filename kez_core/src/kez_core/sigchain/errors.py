"""`ChainError`: one typed error for every way a sigchain can be wrong."""

from __future__ import annotations

import enum

from ..errors import ExitCode, KezError


class ChainFault(enum.StrEnum):
    """What is wrong with a chain, as a stable machine-readable code."""

    MALFORMED = (
        "malformed"  # the line is not JSON, not a signed link, or a field has the wrong type
    )
    SEQNO = "seqno"  # seqno is not the next number (gap, duplicate, reordering)
    PREV = "prev"  # prev is not the id of the previous link
    TIME = "time"  # created_at goes backwards
    FUTURE = "future"  # created_at is more than MAX_CLOCK_SKEW ahead of the reader's clock
    SIGNATURE = "signature"  # the link's signature does not verify
    SIGNER = "signer"  # the signing key may not sign this op now
    ROTATED_KEY = "rotated_key"  # a rotated-away primary signed a link after its rotation
    ACCEPT = "accept"  # the accept signature of an added key is missing or wrong
    UNKNOWN_OP = "unknown_op"  # op is not one this implementation knows
    BODY = "body"  # the op's body breaks a rule (unknown device, duplicate key, bad claim …)
    EMPTY = "empty"  # there is no link at all
    IDENTITY = "identity"  # copies of different identities were given to one merge


class ChainError(KezError):
    """A sigchain is not valid: names the link (seqno, line number) and what is wrong."""

    exit_code = ExitCode.NOT_VALID
    code = "chain_error"

    def __init__(
        self,
        reason: ChainFault,
        message: str,
        *,
        seqno: int | None = None,
        line: int | None = None,
        link_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if seqno is not None:
            where.append(f"seqno {seqno}")
        if line is not None and line != seqno:
            where.append(f"line {line}")
        prefix = f"sigchain link {', '.join(where)}: " if where else "sigchain: "
        super().__init__(prefix + message, hint=hint)
        self.reason = ChainFault(reason)
        self.detail = message
        self.seqno = seqno
        self.line = line
        self.link_id = link_id

    def to_dict(self) -> dict[str, object]:  # type: ignore[override]
        out: dict[str, object] = dict(super().to_dict())
        out["reason"] = str(self.reason)
        if self.seqno is not None:
            out["seqno"] = self.seqno
        if self.line is not None:
            out["line"] = self.line
        if self.link_id is not None:
            out["link_id"] = self.link_id
        return out


class ChainFileError(ChainError):
    """A chain file or copy given as input that is not a valid chain from its first line
    to its last: bad input (exit 3), naming the file and the line.

    Where a chain is *used* (sealing to a recipient, checking a sender), a copy
    that breaks at some line is refused whole rather than used up to that
    line: a damaged file is a mistake to fix, not a shorter chain.
    """

    exit_code = ExitCode.BAD_INPUT
    code = "damaged_chain"
    origin: str | None = None  # the file or copy named in the message (set by `of`)

    @classmethod
    def of(cls, origin: str, exc: ChainError) -> ChainFileError:
        err = cls(
            exc.reason,
            exc.detail,
            seqno=exc.seqno,
            line=exc.line,
            link_id=exc.link_id,
            hint=exc.hint or f"`kez sigchain verify {origin}` shows every error",
        )
        where = f"line {exc.line}" if exc.line is not None else "the chain"
        if exc.seqno is not None:
            where += f" (link seqno {exc.seqno})"
        err.message = f"{origin}, {where}: {exc.detail}"
        err.args = (err.message,)
        err.origin = origin
        return err

    def to_dict(self) -> dict[str, object]:  # type: ignore[override]
        out = super().to_dict()
        out["file"] = getattr(self, "origin", None)
        return out
