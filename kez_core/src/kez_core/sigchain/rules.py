"""The ops: who may sign each, the rules its body must obey, and its effect on the state.

`OpRules` is mixed into `ChainValidator`; every method checks one op's body
against the state before the link and then changes the state. A method
either raises `ChainError` before changing anything, or succeeds.
"""

from __future__ import annotations

import hashlib
import re
import sys
from typing import TYPE_CHECKING, Any

from ..claim import _claim_fields
from ..errors import DecodeError, KezError, UnknownNameError
from ..keys import parse_key_id
from ..signed import PAYLOAD_VERSION, Signature, SignedObject
from . import model as m
from .canon import jcs_trusted
from .errors import ChainError, ChainFault
from .wire import (
    CLAIM_HEAD,
    accept_message,
    envelope,
    is_hex,
    link_time_ok,
    parse_link_time,
    signature_jcs,
)

if TYPE_CHECKING:
    from ..protocols import KeyAlgorithm
    from ..registry import Registry


_SIG_HEX = re.compile(r"[0-9a-f]{128}").fullmatch
_X25519 = re.compile(r"x25519:[0-9a-f]{64}").fullmatch


def _plain_claim(raw: object) -> SignedObject | None:
    """`SignedObject.from_dict(raw)` for the usual shape of an embedded claim (kind `claim`,
    type `kez.claim`, version 1, a 128-hex sig), quickly; None otherwise (from_dict decides)."""
    if type(raw) is not dict or len(raw) != 3:
        return None
    try:
        kind, p, s = raw["kez"], raw["payload"], raw["signature"]
        if kind != "claim" or type(p) is not dict or type(s) is not dict or len(s) != 3:
            return None
        version = p.get("version")
        if p.get("type") != "kez.claim" or type(version) is not int or version != PAYLOAD_VERSION:
            return None
        alg, key, sig = s["alg"], s["key"], s["sig"]
    except KeyError:
        return None
    if type(alg) is not str or type(key) is not str or type(sig) is not str or not _SIG_HEX(sig):
        return None
    return SignedObject("claim", p, Signature(alg, key, sig))


class OpRules:
    """Key helpers and op effects; `ChainValidator` supplies `_fail` and the caches."""

    registry: Registry
    _pub: dict[str, tuple[KeyAlgorithm, bytes]]  # parsed keys that hold a role (pruned on removal)
    _parsed: dict[str, tuple[KeyAlgorithm, bytes]]  # recently parsed normal-form keys (bounded)
    _sig_algs: dict[str, KeyAlgorithm]
    _trusted: bool = False  # ChainValidator.feed_trusted: no signature checks for this link

    def _fail(
        self,
        reason: ChainFault,
        message: str,
        *,
        link_id: str | None = None,
        hint: str | None = None,
    ) -> ChainError:
        """The error for the link being checked (ChainValidator knows its position)."""
        raise NotImplementedError

    def _check_signature(
        self,
        alg: KeyAlgorithm,
        public: bytes,
        message: bytes,
        sig: bytes,
        reason: ChainFault,
        text: str,
    ) -> None:
        """Verify, or defer the check (ChainValidator); raise `_fail(reason, text)` if it fails."""
        raise NotImplementedError

    def _sig_alg(self, name: str) -> KeyAlgorithm | None:
        alg = self._sig_algs.get(name)
        if alg is None:
            try:
                alg = self.registry.key_algorithm_for_signature(name)
            except UnknownNameError:
                return None
            self._sig_algs[name] = alg
        return alg

    def _key(
        self, key: object, what: str, fault: ChainFault = ChainFault.BODY
    ) -> tuple[KeyAlgorithm, bytes]:
        """Parse a key id that must be in normal form; cached while the key holds a role,
        and in a small cache of recently parsed keys (a device removed and added again)."""
        if isinstance(key, str):
            cached = self._pub.get(key) or self._parsed.get(key)
            if cached is not None:
                return cached
        try:
            parsed = parse_key_id(key, self.registry)
        except KezError as exc:
            raise self._fail(fault, f"{what}: {exc.message}") from exc
        if str(parsed) != key:
            raise self._fail(
                fault, f"{what} {str(key)[:80]!r} is not in normal form (write {parsed})"
            )
        result = self.registry.key_algorithm(parsed.alg), parsed.public
        if type(key) is str:
            if len(self._parsed) >= 256:
                self._parsed.clear()
            self._parsed[key] = result
        return result

    def _remember(self, key: str, parsed: tuple[KeyAlgorithm, bytes]) -> None:
        self._pub[key] = parsed

    def _forget(self, key: str) -> None:
        self._pub.pop(key, None)

    def _verify_accept(
        self, body: dict[str, Any], field: str, key: str, seqno: int, prev: str | None, chain: str
    ) -> tuple[KeyAlgorithm, bytes]:
        parsed = self._key(key, f"body.{field}")
        accept = body.get("accept")
        if not is_hex(accept, 128):
            raise self._fail(
                ChainFault.ACCEPT,
                f"body.accept must be the 128-hex signature of {key} over the accept object",
                hint="the added key must sign JCS({type: kez.accept, chain, seqno, prev, key})",
            )
        alg, public = parsed
        if not self._trusted:
            self._check_signature(
                alg,
                public,
                accept_message(chain, seqno, prev, key),
                bytes.fromhex(accept),
                ChainFault.ACCEPT,
                f"the accept signature does not verify for {key} (wrong key, chain, seqno or prev)",
            )
        return parsed

    # ------------------------------------------------------------------ ops

    def _claim_op(
        self,
        state: m.ChainState,
        body: dict[str, Any],
        seqno: int,
        prev: str | None,
        created_at: str,
        signer: str,
        simple: bool,
    ) -> None:
        raw = body["claim"]
        try:
            claim_obj = _plain_claim(raw) or SignedObject.from_dict(raw)
            # read_claim's checks, without building the Claim
            claim_primary, claim_subject, *_ = _claim_fields(claim_obj, self.registry)
        except DecodeError as exc:
            raise self._fail(
                ChainFault.BODY, f"body.claim is not a valid claim: {exc.message}"
            ) from exc
        if claim_primary != state.current_primary:
            raise self._fail(
                ChainFault.BODY,
                f"the claim is made by {claim_primary}, but the primary at this seqno is {state.current_primary}",
                hint="claims in a chain are signed by the identity's current primary key",
            )
        sig = claim_obj.signature
        alg, public = self._pub.get(claim_primary) or self._key(claim_primary, "claim primary")
        if sig.key != claim_primary or self._sig_alg(sig.alg) is not alg:
            raise self._fail(ChainFault.BODY, "the claim's signature is not by its primary key")
        try:
            claim_payload = jcs_trusted(claim_obj.payload, simple)
            claim_canonical = envelope(claim_payload, signature_jcs(sig, simple), CLAIM_HEAD)
        except KezError as exc:
            raise self._fail(ChainFault.BODY, f"body.claim: {exc.message}") from exc
        if not self._trusted:
            self._check_signature(
                alg,
                public,
                claim_payload,
                bytes.fromhex(sig.sig),
                ChainFault.BODY,
                "the embedded claim's signature does not verify",
            )
        claim_id = hashlib.sha256(claim_canonical).hexdigest()
        if claim_id in state.claims:
            raise self._fail(
                ChainFault.BODY,
                f"claim {claim_id} was already added at seqno {state.claims[claim_id].seqno}",
            )
        p = claim_obj.payload
        state.claims[claim_id] = m.ClaimRecord(
            claim_id=claim_id,
            subject=claim_subject,
            primary=state.current_primary,
            added_by=sys.intern(signer),
            seqno=seqno,
            added_at=created_at,
            created_at=p["created_at"],
            expires_at=p.get("expires_at"),
        )

    def _revoke_op(
        self,
        state: m.ChainState,
        body: dict[str, Any],
        seqno: int,
        prev: str | None,
        created_at: str,
        signer: str,
        simple: bool,
    ) -> None:
        claim_id, reason = body["claim_id"], body["reason"]
        if not is_hex(claim_id, 64):
            raise self._fail(ChainFault.BODY, "body.claim_id must be a claim id (64 lowercase hex)")
        if not isinstance(reason, str) or len(reason) > m.MAX_REASON:
            raise self._fail(
                ChainFault.BODY,
                f"body.reason must be a string of at most {m.MAX_REASON} characters",
            )
        record = state.claims.get(claim_id)
        if record is None:
            raise self._fail(
                ChainFault.BODY, f"revokes claim {claim_id}, which no earlier link added"
            )
        if record.revoked:
            raise self._fail(
                ChainFault.BODY,
                f"claim {claim_id} was already revoked at seqno {record.revoked_seqno}",
            )
        record.revoked_seqno = seqno
        record.revoked_at = created_at
        record.revoked_by = sys.intern(signer)
        record.revocation_reason = reason

    def _check_new_key(self, state: m.ChainState, key: object, field: str) -> str:
        if not isinstance(key, str):
            raise self._fail(ChainFault.BODY, f"body.{field} must be a key id")
        role = state.role_of(key)
        if role is not None:
            what = {
                "primary": "the current primary",
                "device": "already a device",
                "recovery": "already a recovery key",
                "retired": "a rotated-away primary (retired keys never get a role again)",
            }[role]
            raise self._fail(ChainFault.BODY, f"body.{field} {key} is {what}")
        return key

    def _add_device_op(
        self,
        state: m.ChainState,
        body: dict[str, Any],
        seqno: int,
        prev: str | None,
        created_at: str,
        signer: str,
        simple: bool,
    ) -> None:
        device = body["device"]
        self._key(device, "body.device")
        self._check_new_key(state, device, "device")
        name = body["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= m.MAX_DEVICE_NAME:
            raise self._fail(
                ChainFault.BODY,
                f"body.name must be a string of 1 to {m.MAX_DEVICE_NAME} characters",
            )
        parsed = self._verify_accept(body, "device", device, seqno, prev, state.identity_id)
        state.devices[device] = name
        self._remember(device, parsed)

    def _remove_device_op(
        self,
        state: m.ChainState,
        body: dict[str, Any],
        seqno: int,
        prev: str | None,
        created_at: str,
        signer: str,
        simple: bool,
    ) -> None:
        device = body["device"]
        if not isinstance(device, str) or device not in state.devices:
            raise self._fail(
                ChainFault.BODY, f"body.device {str(device)[:80]} is not an active device"
            )
        del state.devices[device]
        state.inbox_keys.pop(device, None)
        self._forget(device)

    def _add_recovery_op(
        self,
        state: m.ChainState,
        body: dict[str, Any],
        seqno: int,
        prev: str | None,
        created_at: str,
        signer: str,
        simple: bool,
    ) -> None:
        key = body["key"]
        parsed = self._key(key, "body.key")
        self._check_new_key(state, key, "key")
        state.recovery_keys.add(key)
        self._remember(key, parsed)

    def _rotate_op(
        self,
        state: m.ChainState,
        body: dict[str, Any],
        seqno: int,
        prev: str | None,
        created_at: str,
        signer: str,
        simple: bool,
    ) -> None:
        new = body["new_primary"]
        self._key(new, "body.new_primary")
        if not isinstance(new, str):
            raise self._fail(ChainFault.BODY, "body.new_primary must be a key id")
        if new == state.current_primary:
            raise self._fail(ChainFault.BODY, "body.new_primary is already the primary")
        if new in state.retired:
            raise self._fail(ChainFault.BODY, f"body.new_primary {new} is a rotated-away primary")
        parsed = self._verify_accept(body, "new_primary", new, seqno, prev, state.identity_id)
        old = state.current_primary
        state.retired[old] = m.RetiredKey(old, seqno, created_at, new, signer)
        state.inbox_keys.pop(old, None)
        self._forget(old)
        # The new primary leaves any other role it held (a device or recovery key promoted).
        state.devices.pop(new, None)
        state.recovery_keys.discard(new)
        state.current_primary = new
        self._remember(new, parsed)

    def _add_inbox_op(
        self,
        state: m.ChainState,
        body: dict[str, Any],
        seqno: int,
        prev: str | None,
        created_at: str,
        signer: str,
        simple: bool,
    ) -> None:
        key, device, expires_at = body["key"], body["device"], body["expires_at"]
        if not isinstance(key, str) or not _X25519(key):
            raise self._fail(ChainFault.BODY, "body.key must be x25519:<64 lowercase hex>")
        if not isinstance(device, str) or (
            device != state.current_primary and device not in state.devices
        ):
            raise self._fail(
                ChainFault.BODY,
                f"body.device {str(device)[:80]} is neither the primary nor an active device",
            )
        if not link_time_ok(expires_at):
            try:
                parse_link_time(expires_at, "body.expires_at")
            except DecodeError as exc:
                raise self._fail(ChainFault.BODY, exc.message) from exc
            raise AssertionError("link_time_ok and parse_link_time disagree")  # pragma: no cover
        # both are valid times, one fixed-width form: text order is chronological order
        if expires_at <= created_at:
            raise self._fail(ChainFault.BODY, "body.expires_at is not after the link's created_at")
        state.inbox_keys[device] = m.InboxKey(key, device, expires_at, seqno, signer)


# Every op method takes (self, state, body, seqno, prev, created_at, signer, simple),
# positionally: the validator calls one per link.
APPLY = {
    m.OP_CLAIM: OpRules._claim_op,
    m.OP_REVOKE: OpRules._revoke_op,
    m.OP_ADD_DEVICE: OpRules._add_device_op,
    m.OP_REMOVE_DEVICE: OpRules._remove_device_op,
    m.OP_ADD_RECOVERY: OpRules._add_recovery_op,
    m.OP_ROTATE: OpRules._rotate_op,
    m.OP_ADD_INBOX: OpRules._add_inbox_op,
}

# Who may sign each op, by role. add_inbox: the primary, or the device the body names.
SIGNERS: dict[str, frozenset[str]] = {
    m.OP_CLAIM: frozenset({"primary", "device"}),
    m.OP_REVOKE: frozenset({"primary", "device"}),
    m.OP_ADD_DEVICE: frozenset({"primary"}),
    m.OP_REMOVE_DEVICE: frozenset({"primary"}),
    m.OP_ADD_RECOVERY: frozenset({"primary"}),
    m.OP_ROTATE: frozenset({"primary", "recovery"}),
    m.OP_ADD_INBOX: frozenset({"primary", "device"}),
}


def allowed_to_sign(op: str, role: str | None, signer: str, body: dict[str, Any]) -> bool:
    # ChainValidator._check inlines this test (one call less per link); keep the two alike.
    if role not in SIGNERS[op]:
        return False
    if op == m.OP_ADD_INBOX and role == "device":
        return body.get("device") == signer
    return True


def who_may(op: str) -> str:
    return {
        m.OP_CLAIM: "the primary or an active device",
        m.OP_REVOKE: "the primary or an active device",
        m.OP_ADD_DEVICE: "only the primary",
        m.OP_REMOVE_DEVICE: "only the primary",
        m.OP_ADD_RECOVERY: "only the primary",
        m.OP_ROTATE: "the primary or a recovery key",
        m.OP_ADD_INBOX: "the primary or the device named in body.device",
    }[op]
