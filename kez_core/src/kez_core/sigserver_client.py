"""Client of kez-server: the sigchain store and the handle registry (docs/spec.md, "Server API").

A kez_core service, so a library caller reads and pushes chains under the
same rules as `kez` (the CLI only parses flags and renders the results).

A server holds copies, not truth: every chain read from one is validated and
merged with the other copies like any file (`merge_copies`), so a server
can withhold links or show a fork, never forge one. Servers come from
`--sig-server URL` (repeatable) and `KEZ_SIG_SERVERS` (URLs separated by
commas or spaces). Network trouble is reported per server and never turns
into "invalid".
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ExitCode, KezError, UsageError

if TYPE_CHECKING:
    import httpx

    from .chat.peers import HandleAnswer
    from .keys import Signer
    from .signed import SignedObject

SERVERS_ENV = "KEZ_SIG_SERVERS"
HANDLE_SERVER_ENV = "KEZ_HANDLE_SERVER"
MAX_CHAIN_BYTES = 256 * 1024 * 1024  # ~300k links; a server sending more is refused
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,31}\Z")
_HOST = re.compile(r"^[a-z0-9.-]+(:[0-9]{1,5})?\Z")


class SigServerError(KezError):
    """A kez-server could not be reached or answered something unusable."""

    exit_code = ExitCode.NETWORK
    code = "server_unreachable"


class HandleNotFound(KezError):
    """The handle server answered: no such handle."""

    exit_code = ExitCode.NOT_VALID
    code = "not_found"


class RegistrationRefused(KezError):
    """The handle server refused a registration (taken handle, bad signature, ...)."""

    exit_code = ExitCode.BAD_INPUT
    code = "registration_refused"


def configured_servers(flags: Iterable[str] = ()) -> list[str]:
    """Base URLs from the flags, then `KEZ_SIG_SERVERS`; checked, without trailing `/`, unique."""
    urls: list[str] = []
    for raw in [*flags, *re.split(r"[\s,]+", os.environ.get(SERVERS_ENV, ""))]:
        if not raw:
            continue
        url = check_url(raw, "--sig-server")
        if url not in urls:
            urls.append(url)
    return urls


def check_url(raw: str, flag: str) -> str:
    """`raw` as a base URL without trailing `/`; UsageError naming `flag` when it is not http(s)."""
    url = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise UsageError(
            f"{flag} {raw!r} is not an http(s) URL", hint="e.g. https://sig.example.org"
        )
    return url


def chain_url(base: str, identity_id: str) -> str:
    """Where server `base` keeps the chain of `identity_id`."""
    alg, _, hexkey = identity_id.partition(":")
    return f"{base}/v1/sigchains/{alg}/{hexkey}"


def valid_handle(handle: str) -> bool:
    """3–32 of `a-z0-9_-`, starting with a letter or digit (the server's rule 6, reserved names aside)."""
    return bool(_HANDLE.match(handle))


def registration(
    signer: Signer, handle: str, server: str, identity: str | None = None
) -> SignedObject:
    """The signed `handle_registration` (`kez.chat.handle_registration`) of `handle` on `server`, made now.

    `identity` is the identity id of the signer's chain. It differs from the
    signer's key after a rotation; the server then checks its copy of the
    chain and points the handle at the identity, which rotations do not change.
    """
    from .signed import sign
    from .timefmt import format_time, now

    payload: dict[str, Any] = {
        "handle": handle,
        "primary": signer.key_id,
        "server": server,
        "created_at": format_time(now()),
    }
    if identity is not None:
        payload["identity"] = identity
    return sign("handle_registration", payload, signer, namespace="chat")


def split_handle(target: str) -> tuple[str, str] | None:
    """(handle, server) for `handle@server`, else None."""
    handle, at, server = target.partition("@")
    if not at or not valid_handle(handle) or not _HOST.match(server.lower()) or "." not in server:
        return None
    return handle, server.lower()


def handle_base_url(server: str, override: str | None) -> str:
    """Where `handle@server` is looked up: `https://server`, or the override (tests, proxies)."""
    override = override or os.environ.get(HANDLE_SERVER_ENV)
    return check_url(override, "--handle-server") if override else f"https://{server}"


@attrs.frozen
class ServerCopy:
    """One server's answer for one chain."""

    server: str
    lines: list[bytes] | None  # None: not there (404) or not read (see error)
    error: str | None = None


@attrs.frozen
class PushResult:
    """One server's answer to a push: `outcome` is "ok", "fork", "refused" or "unreachable"."""

    server: str
    outcome: str  # "ok", "fork", "refused", "unreachable"
    message: str
    appended: int = 0
    head_seqno: int | None = None
    link_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The result as `kez sigchain publish --json` shows it."""
        data = attrs.asdict(self)
        data["link_ids"] = list(self.link_ids)
        return data


def new_client(timeout: float, *, follow_redirects: bool = True) -> httpx.AsyncClient:
    """An HTTP client for kez-servers (httpx is imported only when one is needed), with the
    process's one SSL context (kez_core.tls)."""
    import httpx

    from .tls import ssl_context

    return httpx.AsyncClient(
        timeout=timeout,
        headers={"user-agent": "kez-python"},
        follow_redirects=follow_redirects,
        verify=ssl_context(),
    )


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("error")
        return f"{body['message'][:300]}{f' ({code})' if isinstance(code, str) else ''}"
    return f"HTTP {response.status_code}"


def _network_text(base: str, exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return f"{base} timed out"
    return f"{base} could not be reached ({type(exc).__name__})"


def _lines(body: bytes) -> list[bytes]:
    from .sigchain import iter_file_lines

    return list(iter_file_lines(io.BytesIO(body)))


async def fetch_chain(client: httpx.AsyncClient, url: str, base: str) -> ServerCopy:
    """The copy of a chain at `url` on server `base` (never raises for network trouble)."""
    import httpx

    try:
        async with client.stream(
            "GET", url, headers={"accept": "application/x-ndjson"}
        ) as response:
            if response.status_code == 404:
                return ServerCopy(base, None)
            if response.status_code != 200:
                await response.aread()
                return ServerCopy(base, None, f"{base} answered {_error_text(response)}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_CHAIN_BYTES:
                    return ServerCopy(
                        base, None, f"{base} sent more than {MAX_CHAIN_BYTES} bytes; ignored"
                    )
    except httpx.HTTPError as exc:
        return ServerCopy(base, None, _network_text(base, exc))
    try:
        return ServerCopy(base, _lines(bytes(body)))
    except KezError as exc:
        return ServerCopy(base, None, f"{base} sent an unreadable chain: {exc.message}")


async def fetch_chains(sources: Sequence[tuple[str, str]], timeout: float) -> list[ServerCopy]:
    """The chains at each (URL, server base), fetched at once over one client."""
    import asyncio

    if not sources:
        return []
    async with new_client(timeout) as client:
        return list(
            await asyncio.gather(*(fetch_chain(client, url, base) for url, base in sources))
        )


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def fetch_url(url: str, timeout: float) -> ServerCopy:
    """A chain from a full URL (a handle's `sigchain_url`)."""
    return (await fetch_chains([(url, _origin(url))], timeout))[0]


PUSH_BATCH_BYTES = 4 * 1024 * 1024  # per request: under the server's default 8 MiB body cap


def _batches(lines: Sequence[bytes], limit: int | None = None) -> list[bytes]:
    """The chain as request bodies of at most `limit` bytes (a single longer line goes alone)."""
    limit = PUSH_BATCH_BYTES if limit is None else limit
    bodies: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        line = line if line.endswith(b"\n") else line + b"\n"
        if current and size + len(line) > limit:
            bodies.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        bodies.append(b"".join(current))
    return bodies


async def push_chain(
    client: httpx.AsyncClient, base: str, identity_id: str, lines: Sequence[bytes]
) -> PushResult:
    """POST the whole chain, in order, in bodies under the server's cap.

    The server stores what extends its copy and treats links it holds as
    no-ops, so pushing again is harmless; the first batch that is not
    accepted ends the push with its outcome.
    """
    appended = 0
    result = PushResult(base, "ok", "already up to date")
    for body in _batches(lines):
        result = await _post_links(client, base, identity_id, body)
        if result.outcome != "ok":
            return result
        appended += result.appended
    message = f"stored {appended} new link(s)" if appended else "already up to date"
    return PushResult(base, "ok", message, appended, result.head_seqno)


async def _post_links(
    client: httpx.AsyncClient, base: str, identity_id: str, body: bytes
) -> PushResult:
    import httpx

    try:
        response = await client.post(
            chain_url(base, identity_id),
            content=body,
            headers={"content-type": "application/x-ndjson"},
        )
    except httpx.HTTPError as exc:
        return PushResult(base, "unreachable", _network_text(base, exc))
    if response.status_code == 200:
        try:
            data = response.json()
            appended, head = int(data.get("appended", 0)), data.get("head_seqno")
        except (ValueError, TypeError, AttributeError):
            return PushResult(
                base, "unreachable", f"{base} answered 200 with a body that is not the server API"
            )
        message = f"stored {appended} new link(s)" if appended else "already up to date"
        return PushResult(base, "ok", message, appended, head if isinstance(head, int) else None)
    if response.status_code == 409:
        ids: tuple[str, ...] = ()
        try:
            data = response.json()
            code = data.get("error")
            if code in ("chain_changed", "busy"):  # a race on the server, not a fork: retry
                return PushResult(base, "unreachable", f"{base} answered {_error_text(response)}")
            found = data.get("link_ids") or [data.get("stored_id"), data.get("conflicting_id")]
            ids = tuple(str(i) for i in found if isinstance(i, str))
        except (ValueError, AttributeError):
            pass
        return PushResult(base, "fork", _error_text(response), link_ids=ids)
    if response.status_code == 429 or response.status_code >= 500:
        retry = response.headers.get("retry-after")
        later = f"; retry after {retry} s" if retry else "; retry later"
        return PushResult(base, "unreachable", f"{base} answered {_error_text(response)}{later}")
    return PushResult(base, "refused", f"{base} refused the chain: {_error_text(response)}")


async def push_all(
    servers: Sequence[str], identity_id: str, lines: Sequence[bytes], timeout: float
) -> list[PushResult]:
    """Push the chain to every server at once; one result per server, in order (never raises for network trouble)."""
    import asyncio

    async with new_client(timeout) as client:
        return list(
            await asyncio.gather(*(push_chain(client, s, identity_id, lines) for s in servers))
        )


async def get_json(client: httpx.AsyncClient, url: str, what: str) -> dict[str, Any] | None:
    """GET a JSON object; None on 404; SigServerError on anything else unusable."""
    import httpx

    try:
        response = await client.get(url, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise SigServerError(
            f"{what}: {_network_text(url, exc)}", hint="check the URL, or retry later"
        ) from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise SigServerError(f"{what}: {url} answered {_error_text(response)}")
    try:
        data = response.json()
    except ValueError as exc:
        raise SigServerError(
            f"{what}: {url} did not answer JSON", hint="is this a kez-server?"
        ) from exc
    if not isinstance(data, dict):
        raise SigServerError(
            f"{what}: {url} answered JSON that is not an object", hint="is this a kez-server?"
        )
    return data


async def lookup_handle(base: str, handle: str, server: str, timeout: float) -> dict[str, Any]:
    """`GET /v1/u/{handle}`, checked: the answer must be about `handle@server`."""
    async with new_client(timeout) as client:
        data = await get_json(client, f"{base}/v1/u/{handle}", f"looking up {handle}@{server}")
    if data is None:
        raise HandleNotFound(
            f"{handle}@{server} is not registered",
            hint=f"check the spelling, or ask {server}'s operator",
        )
    expected = f"{handle}@{server}"
    if data.get("fqhn") != expected or not isinstance(data.get("primary"), str):
        raise SigServerError(
            f"{base} answered for {data.get('fqhn')!r}, not {expected!r}",
            hint="the handle server is misconfigured, or --handle-server points at the wrong server",
        )
    return data


async def register_handle(base: str, envelope: dict[str, Any], timeout: float) -> dict[str, Any]:
    """`POST /v1/register`; typed errors with the server's own message."""
    import httpx

    async with new_client(timeout) as client:
        try:
            response = await client.post(f"{base}/v1/register", json=envelope)
        except httpx.HTTPError as exc:
            raise SigServerError(
                _network_text(base, exc), hint="check --server, or retry later"
            ) from exc
    if response.status_code in (200, 201):
        try:
            data = dict(response.json())
        except (ValueError, TypeError) as exc:
            raise SigServerError(f"{base} accepted the registration but answered no JSON") from exc
        data["moved"] = response.status_code == 200  # 200: an existing handle moved to this key
        return data
    message = _error_text(response)
    if response.status_code == 409:
        raise RegistrationRefused(
            f"registration refused: {message}",
            hint="pick another handle, or this key is registered already",
        )
    if response.status_code == 429 or response.status_code >= 500:
        raise SigServerError(f"{base} answered {message}", hint="retry later")
    raise RegistrationRefused(f"registration refused: {message}")


async def server_name(base: str, timeout: float) -> str:
    """The domain a server registers handles under (from `GET /v1/healthz`)."""
    async with new_client(timeout) as client:
        data = await get_json(client, f"{base}/v1/healthz", "asking the server its name")
    name = (data or {}).get("server")
    if not isinstance(name, str) or not name:
        raise SigServerError(
            f"{base}/v1/healthz does not name the server",
            hint="is this a kez-server? use --server-name",
        )
    return name


async def fetch_server_copies(
    servers: Sequence[str],
    identity_id: str,
    timeout: float,
    *,
    extra_urls: Sequence[str] = (),
    on_unreachable: Callable[[str], None] | None = None,
) -> tuple[list[list[bytes]], list[dict[str, Any]]]:
    """Every server's copy of a chain (and of `extra_urls`), plus one note per source.

    A note says `read` (with the number of links), `not_found` or
    `unreachable` (with the reason, also passed to `on_unreachable`, which
    the CLI prints on stderr): a server that fails is left out, never
    counted against the chain.
    """
    sources = [(chain_url(base, identity_id), base) for base in servers]
    sources += [
        (url, _origin(url)) for url in extra_urls if url.startswith(("http://", "https://"))
    ]
    copies: list[list[bytes]] = []
    notes: list[dict[str, Any]] = []
    for copy in await fetch_chains(sources, timeout):
        if copy.lines:
            copies.append(copy.lines)
            notes.append({"server": copy.server, "status": "read", "links": len(copy.lines)})
        elif copy.error is None:
            notes.append({"server": copy.server, "status": "not_found", "links": 0})
        else:
            notes.append(
                {"server": copy.server, "status": "unreachable", "links": 0, "reason": copy.error}
            )
            if on_unreachable is not None:
                on_unreachable(f"{copy.error} (its copy is left out)")
    return copies, notes


def server_copies(
    servers: Sequence[str],
    identity_id: str,
    timeout: float,
    *,
    extra_urls: Sequence[str] = (),
    on_unreachable: Callable[[str], None] | None = None,
) -> tuple[list[list[bytes]], list[dict[str, Any]]]:
    """`fetch_server_copies` for synchronous callers (runs its own event loop)."""
    import asyncio

    return asyncio.run(
        fetch_server_copies(
            servers, identity_id, timeout, extra_urls=extra_urls, on_unreachable=on_unreachable
        )
    )


@attrs.frozen
class ServerDirectory:
    """The kez-server client as the messaging service's `HandleDirectory` (kez_core.chat.peers).

    The service decides what to trust (pins, chain checks); this only asks a
    handle's server for its registration and chain copies, as `kez verify`
    does: at `https://<server>`, or at `override` (`--handle-server` /
    `KEZ_HANDLE_SERVER`, for local servers and proxies).
    """

    override: str | None = None
    timeout: float = 10.0

    def parse(self, text: str) -> tuple[str, str] | None:
        """(handle, server) when `text` is `handle@server`, else None."""
        return split_handle(text)

    async def lookup(self, handle: str, server: str) -> HandleAnswer:
        """The registration of `handle@server` and every chain copy found for it."""
        from .chat.peers import HandleAnswer

        base = handle_base_url(server, self.override)
        info = await lookup_handle(base, handle, server, self.timeout)
        identity = str(info.get("identity") or info["primary"])
        urls = [(chain_url(base, identity), base)]
        sigchain_url = info.get("sigchain_url")
        if isinstance(sigchain_url, str) and sigchain_url.startswith(("http://", "https://")):
            urls.append((sigchain_url, base))
        copies = await fetch_chains(urls, self.timeout)
        lines = [c.lines for c in copies if c.lines]
        if not lines:
            errors = [c.error for c in copies if c.error]
            if errors:
                raise SigServerError(errors[0], hint="retry later")
        return HandleAnswer(info, lines)
