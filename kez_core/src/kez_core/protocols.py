"""What the registration hooks return: one Protocol per extension point.

Plugins return plain objects (usually attrs classes) that satisfy these
Protocols; the `Registry` checks each one on load with `check_*`, so a
plugin that forgets a method is reported by name instead of failing later
in the middle of a verification.

Hooks are synchronous; methods that do I/O are `async`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from .signed import SignedObject
    from .verifier.scope import RunScope


# ---------------------------------------------------------------- key algorithms


@runtime_checkable
class KeyAlgorithm(Protocol):
    """A signature scheme and the key-id prefix it owns.

    `name` is the key-id prefix (`ed25519` in `ed25519:<hex>`); `signature_alg`
    is the value of `signature.alg` in signed objects. Secrets and public keys
    cross this interface as raw bytes; text forms go through `parse_public`,
    `format_public`, `import_secret` and `export_secret`.
    """

    # Data members are read-only properties: implementations are frozen attrs
    # classes (or plain class attributes), which a settable member would refuse.
    @property
    def name(self) -> str:
        """The key-id prefix it owns (`ed25519`)."""

    @property
    def signature_alg(self) -> str:
        """The `signature.alg` value it signs and verifies."""

    @property
    def secret_formats(self) -> Sequence[str]:
        """Forms `export_secret` accepts, e.g. `("hex", "nsec")`."""

    def generate_secret(self) -> bytes:
        """A new random secret key."""

    def public_from_secret(self, secret: bytes) -> bytes:
        """Derive the public key bytes used in the key id."""

    def sign(self, secret: bytes, message: bytes) -> bytes:
        """Sign `message` (JCS bytes; the scheme hashes as it defines)."""

    def verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        """True when `signature` is valid for `message` under `public`; never raises for bad input."""

    def parse_public(self, text: str) -> bytes:
        """Public key from its text forms (hex; npub for nostr). Raises KeyFormatError."""

    def format_public(self, public: bytes) -> str:
        """The hex part of the key id."""

    def secret_to_pem(self, secret: bytes, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted when a passphrase is given."""

    def secret_from_pem(self, pem: bytes, passphrase: bytes | None) -> bytes | None:
        """The secret from PKCS#8 PEM, or None when the PEM holds another key type."""

    def export_secret(self, secret: bytes, form: str) -> str:
        """Text form of a secret (`hex`, and scheme-specific forms such as `nsec`)."""

    def import_secret(self, text: str) -> bytes | None:
        """A secret from one of its text forms, or None when the text is not ours."""


# --------------------------------------------------------------------- encodings


@runtime_checkable
class Encoding(Protocol):
    """A text form of signed objects (`json`, `compact`, `markdown`, `dns`, …).

    `detect` must be cheap and must not raise: auto-detection asks every
    encoding in `priority` order (lower first) and decodes with the first
    that says yes.
    """

    @property
    def name(self) -> str:
        """The encoding's name (`compact`)."""

    @property
    def priority(self) -> int:
        """Auto-detection order: lower is asked first."""

    def encode(self, obj: SignedObject) -> str:
        """The object in this form."""

    def decode(self, text: str) -> list[SignedObject]:
        """Every object found in `text` (markdown may hold several). Raises DecodeError."""

    def detect(self, text: str) -> bool:
        """Whether `text` looks like this encoding."""


# ----------------------------------------------------------------------- channels


@attrs.frozen
class ProofCandidate:
    """Text found where a channel keeps proofs, with where and when it was read."""

    text: str
    source: str  # URL or record address that was read
    fetched_at: datetime


@attrs.frozen
class FetchOutcome:
    """The answer of a channel to "what proofs does this handle publish?".

    `reachable` False means the channel could not be asked (network, 5xx,
    rate limit): callers report `unreachable`, never `invalid`.
    """

    candidates: tuple[ProofCandidate, ...] = ()
    reachable: bool = True
    reason: str = ""
    source: str = ""
    retry_after: float | None = None


@attrs.frozen
class PublishOutcome:
    """Where a published proof can now be read."""

    location: str
    detail: str = ""


def _flag_of(option: PluginOption) -> str:
    return "--" + option.name.replace("_", "-")


def _env_of(option: PluginOption) -> str:
    return "KEZ_" + option.name.upper()


@attrs.frozen(kw_only=True)
class PluginOption:
    """A typed setting a plugin declares once: its CLI flag, `KEZ_*` variable, default, type and help.

    As in tox 4's `add_config`, the host does the flag / environment / default
    handling once (docs/cli.md: flag, else variable, else default) and the
    plugin reads a typed value back with `ctx.get(OPTION)`, instead of
    parsing `ctx.options[name]` itself. Options are scoped per plugin kind:
    a command accepts the flags of the kind it uses (channel flags on `kez
    verify` and `kez claim publish`, transport flags on `kez message`).

    `flag` and `env` default to `--<name with dashes>` and `KEZ_<NAME>`.
    `parse` turns the text of a flag or variable into the value (a URL
    check, a duration); without it `of_type` does (`str`, `int`, `float`,
    `bool`). A `multiple` option (a relay list) takes the flag several times
    or a comma-separated variable and reads as a tuple. `secret` options
    (tokens, passwords) are never printed.
    """

    name: str  # key in PluginContext.options, e.g. "github_api"
    help: str
    flag: str = attrs.field(default=attrs.Factory(_flag_of, takes_self=True))
    env: str = attrs.field(default=attrs.Factory(_env_of, takes_self=True))
    default: Any = None
    of_type: type = str
    parse: Callable[[str], Any] | None = attrs.field(default=None, eq=False, repr=False)
    multiple: bool = False
    secret: bool = False

    def convert(self, raw: Any) -> Any:
        """`raw` (text from a flag or variable, or a value a caller set) as this option's type.

        Text goes through `parse` (else `of_type`); a value already of the
        type is kept. A malformed value is a `ChannelConfigError` naming the
        flag and the variable, never a traceback.
        """
        if raw is None:
            return None
        if self.multiple and not isinstance(raw, str):
            return tuple(self._one(item) for item in raw)
        if self.multiple:
            return tuple(self._one(item.strip()) for item in raw.split(",") if item.strip())
        return self._one(raw)

    def _one(self, raw: Any) -> Any:
        from .errors import ChannelConfigError, KezError

        if not isinstance(raw, str):
            return raw  # set in code (tests, library callers): already typed
        try:
            if self.parse is not None:
                return self.parse(raw)
            if self.of_type is bool:
                text = raw.strip().lower()
                if text in ("1", "true", "yes", "on"):
                    return True
                if text in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError("expected true/false, yes/no, on/off or 1/0")
            return self.of_type(raw)
        except KezError:
            raise
        except (ValueError, TypeError) as exc:
            raise ChannelConfigError(
                f"{self.flag} / {self.env}: {raw[:80]!r} is not valid: {exc}", hint=self.help
            ) from exc


ChannelOption = (
    PluginOption  # the name before issue 16; kept so existing plugins keep working (deprecated)
)


@attrs.frozen
class PluginContext:
    """Settings handed to plugin I/O: option values, the timeout, a shared client, the run scope.

    `options` holds the values of the declared `PluginOption`s by name,
    filled by the caller from flags, `KEZ_*` variables and defaults; read
    them typed with `ctx.get(OPTION)`. `scope`, when set, is the current
    verification run's `kez_core.verifier.RunScope`: channels may keep
    clients, connections and caches there for the rest of the run, and the
    engine closes them when the run ends. Without one (a single fetch, a
    publish) a plugin opens and closes what it needs within the call.
    """

    options: dict[str, Any] = attrs.field(factory=dict)
    timeout: float = 10.0
    http_client: Any = None  # an httpx.AsyncClient when the caller shares one
    scope: RunScope | None = attrs.field(default=None, eq=False, repr=False)

    def get(self, option: PluginOption) -> Any:
        """The typed value of `option`: what the caller set, else its default (None when it has none)."""
        raw = self.options.get(option.name)
        if raw is None or (isinstance(raw, str) and not raw.strip() and not option.multiple):
            raw = option.default
        return option.convert(raw)


ChannelContext = PluginContext  # the name before issue 16; kept so transports and older plugins keep working (deprecated)


@runtime_checkable
class Channel(Protocol):
    """A place where an account proves it belongs to an identity (`github`, `dns`, …).

    `name` is the subject prefix; `aliases` are other prefixes that mean the
    same channel (`mastodon` for `ap`). `proof_encoding` names the encoding
    `kez claim publish` writes the proof in (`compact`, `markdown`, `dns`, or
    one a plugin registers); it must be registered where the channel is used.
    """

    @property
    def name(self) -> str:
        """The subject prefix (`github`)."""

    @property
    def aliases(self) -> Sequence[str]:
        """Other prefixes that mean the same channel (may be empty)."""

    @property
    def options(self) -> Sequence[ChannelOption]:
        """Settings it reads from `ChannelContext.options` (may be empty)."""

    @property
    def proof_encoding(self) -> str:
        """The encoding `kez claim publish` writes the proof in."""

    def normalize_handle(self, handle: str) -> str:
        """The handle in normal form (lowercase host, no `@`, …). Raises DecodeError."""

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        """Read the published proof texts of `handle` (no credentials needed)."""

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        """Publish `proof_text` with the account's credentials from `ctx`."""


# --------------------------------------------------------------------- transports


@runtime_checkable
class Transport(Protocol):
    """A way to move encrypted envelopes to an inbox (`nats`, `nostr`, `http`).

    A transport moves envelope texts (`kez:e1:…`, ASCII bytes; see
    `kez_core.messaging`) to a routing id (64 lowercase hex, from the inbox
    key) and never looks inside them. `max_envelope` is the largest envelope
    one `send` carries (a nostr event's content is capped, a NATS server has
    a max payload); senders choose message sizes that fit.
    """

    @property
    def name(self) -> str:
        """The transport's name (`nats`)."""

    @property
    def options(self) -> Sequence[ChannelOption]:
        """Settings it reads from `ChannelContext.options` (may be empty)."""

    @property
    def max_envelope(self) -> int:
        """The largest envelope, in bytes, one `send` carries."""

    async def send(self, routing_id: str, envelope: bytes, ctx: ChannelContext) -> None:
        """Deliver one envelope to the inbox named by `routing_id`.

        Returns once the server has it (a NATS flush, a relay's OK); raises
        `kez_core.errors.TransportError` when no server took it, and
        `EnvelopeTooLarge` above `max_envelope`.
        """

    def subscribe(
        self, routing_id: str, ctx: ChannelContext
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """An async context manager; inside it, envelopes for `routing_id` as they come.

        Entering returns once the subscription is live: every envelope sent
        after that arrives (and, where the server stores them, earlier ones
        may too; the replay store drops repeats). Leaving closes it.
        """


PROTOCOLS: dict[str, type] = {
    "key_algorithm": KeyAlgorithm,
    "encoding": Encoding,
    "channel": Channel,
    "transport": Transport,
}


def protocol_members(protocol: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(attributes, methods) a Protocol requires, read from the class itself.

    Derived rather than listed by hand, so a member added to a Protocol is
    checked on load at once (Python 3.13's `typing.get_protocol_members`
    gives the same set, without the split).
    """
    attributes: list[str] = []
    methods: list[str] = []
    for klass in reversed(protocol.__mro__):
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        for name in klass.__dict__.get("__annotations__", {}):
            if not name.startswith("_") and name not in attributes:
                attributes.append(name)
        for name, value in klass.__dict__.items():
            if name.startswith("_"):
                continue
            # a read-only property is a data member: a plain attribute satisfies it
            if isinstance(value, property) and name not in attributes:
                attributes.append(name)
            elif callable(value) and name not in methods:
                methods.append(name)
    return tuple(attributes), tuple(methods)


_REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    kind: protocol_members(protocol) for kind, protocol in PROTOCOLS.items()
}


def missing_members(kind: str, obj: object) -> list[str]:
    """Names the object lacks to be a valid `kind` (empty when it conforms)."""
    attributes, callables = _REQUIRED[kind]
    missing = [a for a in attributes if not hasattr(obj, a)]
    missing += [c for c in callables if not callable(getattr(obj, c, None))]
    name = getattr(obj, "name", None)
    if "name" not in missing and (not isinstance(name, str) or not name):
        missing.append("name (a non-empty str)")
    return missing
