"""`X-KEZ-Auth`: how a handle's owner proves a request to its server inbox (spec section 11).

The header is `<unix ts>:<sig hex>` (signed by the handle's current
primary) or `<ts>:<key id>:<sig hex>` (signed by a current device key of
the handle's chain). The signature covers the ASCII bytes

    METHOD \\n PATH \\n BOUND \\n TS

where BOUND is the request's cursor or bound value in normal form
(`since=<n>` for reads, `through=<n>` for a delete): a captured header
cannot page through history, delete more, or be used after the skew
window. Every key algorithm signs with its own rule (Ed25519 the bytes,
BIP-340 their SHA-256), which is what `Signer.sign` and the registry's
`verify` already do. Client (`sign_inbox_request`) and server
(`verify_inbox_auth`) share this module, so the bytes cannot drift apart.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Collection

import attrs

from ..errors import ExitCode, KezError, KeyFormatError
from ..keys import Signer, parse_key_id
from ..registry import Registry, default_registry

HEADER = "X-KEZ-Auth"
MAX_SKEW = 60  # seconds either way
_TS = re.compile(r"^[0-9]{1,12}\Z")
_SIG = re.compile(r"^[0-9a-f]{2,512}\Z")


class InboxAuthError(KezError):
    """An `X-KEZ-Auth` header is missing, malformed, stale, from the future or signed by the
    wrong key (or for another method, path or cursor). `reason` is the stable word."""

    exit_code = ExitCode.NOT_VALID
    code = "unauthorized"

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "reason": self.reason}


@attrs.frozen
class InboxAuth:
    """A parsed header: the time, the signing key id (None: the primary) and the signature."""

    ts: int
    key: str | None
    sig: bytes


def signed_bytes(method: str, path: str, bound: str, ts: int) -> bytes:
    """The exact bytes a header signs."""
    return f"{method.upper()}\n{path}\n{bound}\n{ts}".encode()


def sign_inbox_request(
    signer: Signer,
    method: str,
    path: str,
    bound: str,
    ts: int | None = None,
    *,
    device: bool = False,
) -> str:
    """The header value for one request; `device=True` names the key (a device key signs)."""
    ts = int(time.time()) if ts is None else ts
    sig = signer.sign(signed_bytes(method, path, bound, ts)).hex()
    return f"{ts}:{signer.key_id}:{sig}" if device else f"{ts}:{sig}"


def parse_inbox_auth(header: str | None) -> InboxAuth:
    """Split a header value (on the first and the last colon: key ids hold colons)."""
    if header is None or not header.strip():
        raise InboxAuthError(
            f"the {HEADER} header is missing",
            reason="missing",
            hint=f"sign the request: {HEADER}: <unix ts>:<sig hex> (docs/spec.md, section 11)",
        )
    text = header.strip()
    ts_text, sep, rest = text.partition(":")
    key_text, _, sig_text = rest.rpartition(":")
    if not sep or not _TS.match(ts_text) or not _SIG.match(sig_text) or len(sig_text) % 2:
        raise InboxAuthError(
            f"the {HEADER} header is not <unix ts>:<sig hex> or <unix ts>:<key id>:<sig hex>",
            reason="malformed",
        )
    if key_text == "" and ":" in rest:
        raise InboxAuthError(f"the {HEADER} header names an empty key id", reason="malformed")
    return InboxAuth(int(ts_text), key_text or None, bytes.fromhex(sig_text))


class VerifiedSignatures:
    """A bounded memory of signatures that held: (key id, signed bytes, signature).

    Whether a signature holds is a pure function of those three, so a
    remembered "it holds" never goes stale; what can change (the clock, the
    handle's current keys) is not remembered here and `verify_inbox_auth`
    checks it on every request before it looks here. A client that polls
    its inbox with one header for the minute it is valid (or a server
    answering many readers that do) skips the Ed25519/BIP-340 verification,
    which was a quarter of a GET's server time. Only signatures that held
    are kept (a flood of bad ones cannot evict the good ones through this
    door), the least recently used go first, and a lock makes it safe from
    any thread.
    """

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("a VerifiedSignatures holds at least one entry")
        self.size = size
        self._held: OrderedDict[tuple[str, bytes, bytes], None] = OrderedDict()
        # (header, method, path, bound) -> (ts, key named?, signing key) of headers that passed:
        # the same header for the same request is not even parsed again (see `recall`)
        self._headers: OrderedDict[tuple[str, str, str, str], tuple[int, bool, str]] = OrderedDict()
        self._lock = threading.Lock()

    def recall(
        self, header: str, method: str, path: str, bound: str
    ) -> tuple[int, bool, str] | None:
        """(ts, whether the header names its key, the key that signed) of a header that passed
        for this very request before, else None. The caller still judges the time and the keys."""
        entry = (header, method, path, bound)
        with self._lock:
            found = self._headers.get(entry)
            if found is not None:
                self._headers.move_to_end(entry)
            return found

    def note(
        self, header: str, method: str, path: str, bound: str, passed: tuple[int, bool, str]
    ) -> None:
        """Remember a header that passed every check for this request (for `recall`)."""
        entry = (header, method, path, bound)
        with self._lock:
            self._headers[entry] = passed
            self._headers.move_to_end(entry)
            while len(self._headers) > self.size:
                self._headers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._held)

    def holds(self, key: str, message: bytes, sig: bytes) -> bool:
        """True when this exact signature was seen to hold before (and is still remembered)."""
        entry = (key, message, sig)
        with self._lock:
            if entry in self._held:
                self._held.move_to_end(entry)
                return True
        return False

    def add(self, key: str, message: bytes, sig: bytes) -> None:
        """Remember a signature that was verified and held."""
        with self._lock:
            self._held[(key, message, sig)] = None
            self._held.move_to_end((key, message, sig))
            while len(self._held) > self.size:
                self._held.popitem(last=False)


def verify_inbox_auth(
    header: str | None,
    *,
    method: str,
    path: str,
    bound: str,
    primary: str,
    devices: Collection[str] = (),
    now: float | None = None,
    registry: Registry | None = None,
    verified: VerifiedSignatures | None = None,
) -> str:
    """The key id that signed the request; InboxAuthError unless the header holds.

    `primary` is the handle's current primary, `devices` its chain's current
    device keys. Checked in this order: form, time (±`MAX_SKEW` s), signer
    allowed, signature over (method, path, bound, ts). With `verified`, a
    signature that held before is not verified again, and a header that
    passed for this very request is not parsed again; the time window and
    whether its key is current are judged every time, and anything but a
    pass goes through every check, so refusals say what they said before.
    """
    clock = time.time() if now is None else now
    if verified is not None and header is not None:
        passed = verified.recall(header, method, path, bound)
        if passed is not None:
            ts, named, signer = passed
            if -MAX_SKEW <= ts - clock <= MAX_SKEW and (
                signer == primary or (named and signer in devices)
            ):
                return signer
            # anything else goes through every check below, which says what is wrong
    auth = parse_inbox_auth(header)
    skew = auth.ts - clock
    if skew < -MAX_SKEW:
        raise InboxAuthError(
            f"the {HEADER} header is {int(-skew)} s old; at most {MAX_SKEW} s are accepted",
            reason="stale",
            hint="sign each request afresh (and check your clock)",
        )
    if skew > MAX_SKEW:
        raise InboxAuthError(
            f"the {HEADER} header is dated {int(skew)} s in the future; at most {MAX_SKEW} s are accepted",
            reason="future",
            hint="check your clock",
        )
    key = primary if auth.key is None else auth.key
    if key != primary and key not in devices:
        raise InboxAuthError(
            "the key in the header is neither the handle's current primary nor one of its current devices",
            reason="wrong_signer",
        )
    message = signed_bytes(method, path, bound, auth.ts)
    if verified is not None and verified.holds(key, message, auth.sig):
        verified.note(header, method, path, bound, (auth.ts, auth.key is not None, key))  # type: ignore[arg-type]
        return key
    registry = registry or default_registry()
    try:
        parsed = parse_key_id(key, registry)
        alg = registry.key_algorithm(parsed.alg)
    except (KeyFormatError, KezError) as exc:
        raise InboxAuthError(
            f"the key in the header is unusable: {exc.message}", reason="wrong_signer"
        ) from exc
    if not alg.verify(parsed.public, message, auth.sig):
        raise InboxAuthError(
            "the signature does not hold for this request: wrong key, or signed for another "
            "method, path or cursor",
            reason="bad_signature",
            hint=f"sign {method.upper()}\\n{path}\\n{bound}\\n<ts> with the handle's primary or a device key",
        )
    if verified is not None:
        verified.add(key, message, auth.sig)
        # header is a str here: parse_inbox_auth refused a missing one
        verified.note(header, method, path, bound, (auth.ts, auth.key is not None, key))  # type: ignore[arg-type]
    return key
