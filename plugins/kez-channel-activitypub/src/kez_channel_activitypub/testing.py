"""A local Mastodon-shaped server for tests and benchmarks (Starlette under uvicorn).

It speaks the request and response shapes of a real Mastodon instance, as
documented at docs.joinmastodon.org, so the channel cannot tell it from one:

- `GET /.well-known/webfinger?resource=acct:user@host` → JRD (`subject`,
  `aliases`, `links` with `rel: self`, `type: application/activity+json`),
  `application/jrd+json`; 400 without `resource`, 404 for an unknown user or
  another domain.
- `GET /users/<username>` with `Accept: application/activity+json` (or the
  ActivityStreams ld+json type) → the actor as Mastodon serializes it
  (`@context`, `id`, `type: Person`, `preferredUsername`, `name`, `summary`
  (HTML), `url`, `inbox`, `outbox`, `attachment` of `PropertyValue` with HTML
  values, `publicKey`, …); other Accept values get an HTML page; with signed
  fetch required, 401 `{"error": "Request not signed"}`.
- `GET /api/v1/accounts/verify_credentials` (Bearer token) → CredentialAccount
  (`fields` as HTML, `source.fields` and `source.note` as plain text).
- `PATCH /api/v1/accounts/update_credentials` (form data, JSON or query
  parameters; `fields_attributes[i][name|value]`, `note`, `display_name`) →
  CredentialAccount. All fields are replaced at once; more than
  `max_fields` → 422; values are cut to `field_value_limit` characters
  without an error (what Mastodon does: `Account::Field#sanitize`); a bio
  over `note_limit` → 422. Values are rendered to HTML like Mastodon does
  (URLs become `<a>` with `<span class="invisible">` parts, the rest is
  escaped text; the bio gets `<p>` and `<br />`). 401 for a bad token, 403
  for a token without the `write`/`write:accounts` scope.
- `GET /api/v2/instance` → the Instance entity with
  `configuration.accounts.{max_profile_fields, profile_field_value_limit,
  max_note_length, …}` (Mastodon 4.6+; `advertise=False` leaves them out
  like older versions).

The server answers for whatever host the `Host` header names (the channel's
`ap_base_url` keeps the handle's host there), so one server is every
instance. Seeded values (`set_fields`, `set_summary`, …) are stored as given,
like an account whose instance allows longer values; only values written
through `update_credentials` are limited.

Usage::

    from kez_channel_activitypub.testing import running_server

    with running_server(latency=0.0) as server:
        server.add_account("alice", token="secret")
        server.set_fields("alice", [("Website", "https://example.org"), ("KEZ", compact)])
        ctx = ChannelContext(options=server.ctx_options(), timeout=5)
        outcome = asyncio.run(ActivityPubChannel().fetch(f"alice@{server.domain}", ctx))

Faults: `fail_next(n, status, headers=…)`, `malform_next(n)`,
`delay_next(n, seconds)` (each optionally only for paths starting with
`path`), `require_signed_fetch()`, `set_actor_host(user, host)`.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from ._html import html_to_text

__all__ = ["MastodonServer", "render_field_value", "render_note", "running_server"]

DEFAULT_DOMAIN = "mastodon.example"
AS_CONTEXT: list[Any] = [
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/v1",
    {
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "toot": "http://joinmastodon.org/ns#",
        "featured": {"@id": "toot:featured", "@type": "@id"},
        "featuredTags": {"@id": "toot:featuredTags", "@type": "@id"},
        "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
        "movedTo": {"@id": "as:movedTo", "@type": "@id"},
        "schema": "http://schema.org#",
        "PropertyValue": "schema:PropertyValue",
        "value": "schema:value",
        "discoverable": "toot:discoverable",
        "suspended": "toot:suspended",
        "memorial": "toot:memorial",
        "indexable": "toot:indexable",
        "attributionDomains": {"@id": "toot:attributionDomains", "@type": "@id"},
    },
]
ACTIVITY_JSON = "application/activity+json; charset=utf-8"
JRD_JSON = "application/jrd+json; charset=utf-8"
API_JSON = "application/json; charset=utf-8"
MALFORMED = b'{"subject": "acct:truncated", "links": [{"rel": '

# ------------------------------------------------------------------ rendering

_URL = re.compile(r"https?://[^\s<>\"']+")
_URL_PREFIX = re.compile(r"^(https?://(www\.)?)")


def _trim_url(url: str) -> str:
    while url and url[-1] in ".,;:!?'\"":
        url = url[:-1]
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1]
    return url


def _shortened_link(url: str, rel: str) -> str:
    """Mastodon's TextFormatter.shortened_link: the URL split over three spans."""
    prefix = _URL_PREFIX.match(url)
    prefix_text = prefix.group(1) if prefix else ""
    rest = url[len(prefix_text) :]
    display, suffix = rest[:30], rest[30:]
    cutoff = "ellipsis" if len(rest) > 30 else ""
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="{rel}" translate="no">'
        f'<span class="invisible">{html.escape(prefix_text)}</span>'
        f'<span class="{cutoff}">{html.escape(display)}</span>'
        f'<span class="invisible">{html.escape(suffix)}</span></a>'
    )


def _linkify(text: str, rel: str) -> str:
    out: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        url = _trim_url(match.group(0))
        out.append(html.escape(text[position : match.start()], quote=False))
        out.append(_shortened_link(url, rel))
        position = match.start() + len(url)
    out.append(html.escape(text[position:], quote=False))
    return "".join(out)


def render_field_value(text: str) -> str:
    """A profile field value as Mastodon renders it: links wrapped, everything else escaped."""
    return _linkify(text, "nofollow noopener noreferrer me")


def render_note(text: str) -> str:
    """A bio as Mastodon renders it: `<p>` per paragraph, `<br />` per line break, links wrapped."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        return ""
    paragraphs = re.split(r"\n{2,}", text)
    return "".join(
        "<p>"
        + "<br />".join(_linkify(line, "nofollow noopener noreferrer") for line in p.split("\n"))
        + "</p>"
        for p in paragraphs
    )


def _countable(note: str) -> int:
    return len(_URL.sub("x" * 23, note))


# ---------------------------------------------------------------------- state


@attrs.define
class Field:
    name: str
    value: str  # plain text (source)
    html: str  # rendered value
    verified_at: str | None = None


@attrs.define
class Account:
    id: str
    username: str
    tokens: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    display_name: str = ""
    note: str = ""  # plain text (source.note)
    note_html: str = ""
    fields: list[Field] = attrs.field(factory=list)
    actor_host: str | None = None
    created_at: str = "2024-01-01T00:00:00.000Z"


@attrs.define
class Fault:
    kind: str  # "status", "malformed", "delay"
    count: int
    status: int = 503
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes | None = None
    seconds: float = 0.0
    path: str | None = None


_KEY_PEM: str | None = None
_KEY_LOCK = threading.Lock()


def _public_key_pem() -> str:
    """One RSA key per process (Mastodon has one per account; a fake can share it)."""
    global _KEY_PEM
    with _KEY_LOCK:
        if _KEY_PEM is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _KEY_PEM = (
                key.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            )
        return _KEY_PEM


class MastodonServer:
    """State and endpoints of the fake instance; get one from `running_server()`."""

    def __init__(self, latency: float = 0.0, domain: str = DEFAULT_DOMAIN) -> None:
        self.latency = latency
        self.domain = domain  # the host to use in handles (any host works)
        self.base_url = ""  # http://127.0.0.1:<port>, set once the server listens
        self._lock = threading.Lock()
        self._new_state()
        self.app = self._build_app()

    def _new_state(self) -> None:
        self.requests: list[tuple[str, str, str]] = []  # (method, Host header, path with query)
        self.max_fields = 4
        self.field_value_limit = 255
        self.field_name_limit = 255
        self.note_limit = 500
        self.advertise_limits = True
        self.signed_fetch = False
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, str] = {}
        self._faults: list[Fault] = []
        self._split: dict[str, str] = {}  # LOCAL_DOMAIN -> WEB_DOMAIN
        self._next_id = 109_000_000_000_000_001

    def reset(self) -> None:
        """Back to the state of a new server (no accounts, tokens, faults or recorded requests,
        Mastodon's limits, unsigned fetch allowed) at the same URL: one running server can
        serve many tests in turn, each as if it had started its own."""
        with self._lock:
            self._new_state()

    # ------------------------------------------------------------ seeding

    def add_account(
        self,
        user: str,
        token: str | None = None,
        *,
        scopes: Sequence[str] = ("read", "write"),
        display_name: str | None = None,
    ) -> None:
        """Create the account `user` (case kept for display); `token` authorizes the API."""
        with self._lock:
            key = user.lower()
            if key not in self._accounts:
                self._accounts[key] = Account(
                    id=str(self._next_id), username=user, display_name=display_name or user
                )
                self._next_id += 1
            if token is not None:
                self._accounts[key].tokens[token] = tuple(scopes)
                self._tokens[token] = key

    def _account(self, user: str) -> Account:
        account = self._accounts.get(user.lower())
        if account is None:
            raise KeyError(f"no account {user!r}: call add_account first")
        return account

    def set_fields(self, user: str, fields: Iterable[tuple[str, str]]) -> None:
        """Profile fields from plain text, rendered to HTML like Mastodon does."""
        with self._lock:
            self._account(user).fields = [Field(n, v, render_field_value(v)) for n, v in fields]

    def set_fields_html(self, user: str, fields: Iterable[tuple[str, str]]) -> None:
        """Profile fields whose values are served as this exact HTML (as another server renders them)."""
        with self._lock:
            self._account(user).fields = [Field(n, html_to_text(h), h) for n, h in fields]

    def set_summary(self, user: str, summary_html: str) -> None:
        """The actor's `summary` (and the API's `note`) as this exact HTML."""
        with self._lock:
            account = self._account(user)
            account.note_html = summary_html
            account.note = html_to_text(summary_html)

    def set_note(self, user: str, text: str) -> None:
        """The bio from plain text, rendered like Mastodon (`<p>`, `<br />`, links)."""
        with self._lock:
            account = self._account(user)
            account.note = text
            account.note_html = render_note(text)

    def seed_proof(self, user: str, proof: str, *, where: str = "field") -> None:
        """Put a proof where the channel reads it: the `KEZ` field (`where="field"`) or the bio (`"summary"`)."""
        if where == "summary":
            self.set_note(user, proof)
            return
        with self._lock:
            account = self._account(user)
        others = [(f.name, f.value) for f in account.fields if f.name.strip().lower() != "kez"]
        self.set_fields(user, [*others, ("KEZ", proof)])

    def fields(self, user: str) -> list[tuple[str, str]]:
        """The stored (name, plain value) pairs."""
        with self._lock:
            return [(f.name, f.value) for f in self._account(user).fields]

    def note(self, user: str) -> str:
        with self._lock:
            return self._account(user).note

    def set_limits(
        self,
        *,
        max_fields: int | None = None,
        field_value_limit: int | None = None,
        note_limit: int | None = None,
        advertise: bool | None = None,
    ) -> None:
        """Instance limits (Mastodon: 4 fields, 255 characters per value, 500 for the bio)."""
        with self._lock:
            if max_fields is not None:
                self.max_fields = max_fields
            if field_value_limit is not None:
                self.field_value_limit = field_value_limit
            if note_limit is not None:
                self.note_limit = note_limit
            if advertise is not None:
                self.advertise_limits = advertise

    def set_actor_host(self, user: str, host: str | None) -> None:
        """Make WebFinger name an actor URL on `host` (None: the host asked)."""
        with self._lock:
            self._account(user).actor_host = host

    def set_split_domain(self, local_domain: str, web_domain: str) -> None:
        """Mastodon's LOCAL_DOMAIN/WEB_DOMAIN setup: handles are user@local_domain, the server is web_domain.

        WebFinger at `local_domain` redirects (301) to `web_domain`, which
        answers with `subject: acct:user@local_domain` and actor URLs on
        `web_domain`.
        """
        with self._lock:
            self._split[local_domain.lower()] = web_domain.lower()

    def require_signed_fetch(self, enabled: bool = True) -> None:
        """Answer unsigned actor requests with 401 (Mastodon's authorized fetch mode)."""
        self.signed_fetch = enabled

    # ------------------------------------------------------------- faults

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        path: str | None = None,
    ) -> None:
        """The next `count` requests (to paths starting with `path`) get `status` with `headers`."""
        with self._lock:
            self._faults.append(
                Fault("status", count, status, dict(headers or {}), body, path=path)
            )

    def malform_next(self, count: int = 1, *, path: str | None = None) -> None:
        """The next `count` requests get 200 with a truncated JSON body."""
        with self._lock:
            self._faults.append(Fault("malformed", count, path=path))

    def delay_next(self, count: int, seconds: float, *, path: str | None = None) -> None:
        """The next `count` requests wait `seconds` (beyond `latency`) before answering."""
        with self._lock:
            self._faults.append(Fault("delay", count, seconds=seconds, path=path))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.count > 0 and (fault.path is None or path.startswith(fault.path)):
                    fault.count -= 1
                    return fault
            self._faults = [f for f in self._faults if f.count > 0]
        return None

    # -------------------------------------------------------------- options

    def ctx_options(self, token: str | None = None) -> dict[str, Any]:
        """`ChannelContext.options` pointing the ap channel at this server (with a token to publish)."""
        options: dict[str, Any] = {"ap_base_url": self.base_url}
        if token is not None:
            options["mastodon_token"] = token
        return options

    # ------------------------------------------------------------ documents

    def _urls(self, host: str, account: Account) -> dict[str, str]:
        actor_host = account.actor_host or host
        actor = f"https://{actor_host}/users/{account.username}"
        return {
            "actor": actor,
            "profile": f"https://{actor_host}/@{account.username}",
            "inbox": f"{actor}/inbox",
            "outbox": f"{actor}/outbox",
            "followers": f"{actor}/followers",
            "following": f"{actor}/following",
            "featured": f"{actor}/collections/featured",
            "tags": f"{actor}/collections/tags",
            "shared_inbox": f"https://{actor_host}/inbox",
        }

    def _jrd(self, host: str, account: Account, domain: str) -> dict[str, Any]:
        urls = self._urls(host, account)
        return {
            "subject": f"acct:{account.username}@{domain}",
            "aliases": [urls["profile"], urls["actor"]],
            "links": [
                {
                    "rel": "http://webfinger.net/rel/profile-page",
                    "type": "text/html",
                    "href": urls["profile"],
                },
                {"rel": "self", "type": "application/activity+json", "href": urls["actor"]},
                {
                    "rel": "http://ostatus.org/schema/1.0/subscribe",
                    "template": f"https://{host}/authorize_interaction?uri={{uri}}",
                },
            ],
        }

    def _actor(self, host: str, account: Account) -> dict[str, Any]:
        urls = self._urls(host, account)
        return {
            "@context": AS_CONTEXT,
            "id": urls["actor"],
            "type": "Person",
            "following": urls["following"],
            "followers": urls["followers"],
            "inbox": urls["inbox"],
            "outbox": urls["outbox"],
            "featured": urls["featured"],
            "featuredTags": urls["tags"],
            "preferredUsername": account.username,
            "name": account.display_name,
            "summary": account.note_html,
            "url": urls["profile"],
            "manuallyApprovesFollowers": False,
            "discoverable": True,
            "indexable": False,
            "published": account.created_at.replace(".000", ""),
            "memorial": False,
            "publicKey": {
                "id": f"{urls['actor']}#main-key",
                "owner": urls["actor"],
                "publicKeyPem": _public_key_pem(),
            },
            "tag": [],
            "attachment": [
                {"type": "PropertyValue", "name": f.name, "value": f.html} for f in account.fields
            ],
            "endpoints": {"sharedInbox": urls["shared_inbox"]},
        }

    def _credential_account(self, host: str, account: Account) -> dict[str, Any]:
        urls = self._urls(host, account)
        return {
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": account.display_name,
            "locked": False,
            "bot": False,
            "discoverable": True,
            "indexable": False,
            "group": False,
            "created_at": account.created_at,
            "note": account.note_html,
            "url": urls["profile"],
            "uri": urls["actor"],
            "avatar": f"https://{host}/avatars/original/missing.png",
            "avatar_static": f"https://{host}/avatars/original/missing.png",
            "header": f"https://{host}/headers/original/missing.png",
            "header_static": f"https://{host}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": 0,
            "last_status_at": None,
            "hide_collections": False,
            "noindex": False,
            "source": {
                "privacy": "public",
                "sensitive": False,
                "language": "",
                "note": account.note,
                "fields": [
                    {"name": f.name, "value": f.value, "verified_at": f.verified_at}
                    for f in account.fields
                ],
                "follow_requests_count": 0,
                "hide_collections": False,
                "discoverable": True,
                "indexable": False,
                "attribution_domains": [],
            },
            "emojis": [],
            "roles": [],
            "fields": [
                {"name": f.name, "value": f.html, "verified_at": f.verified_at}
                for f in account.fields
            ],
            "role": {
                "id": "-99",
                "name": "",
                "permissions": "0",
                "color": "",
                "highlighted": False,
            },
        }

    def _instance(self, host: str) -> dict[str, Any]:
        accounts: dict[str, Any] = {"max_featured_tags": 10, "max_pinned_statuses": 5}
        if self.advertise_limits:
            accounts.update(
                max_display_name_length=30,
                max_note_length=self.note_limit,
                max_profile_fields=self.max_fields,
                profile_field_name_limit=self.field_name_limit,
                profile_field_value_limit=self.field_value_limit,
            )
        return {
            "domain": host,
            "title": "KEZ test instance",
            "version": "4.6.0" if self.advertise_limits else "4.3.0",
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A local stand-in for a Mastodon server.",
            "usage": {"users": {"active_month": len(self._accounts)}},
            "thumbnail": {"url": f"https://{host}/packs/media/images/preview.png"},
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": f"wss://{host}"},
                "accounts": accounts,
                "statuses": {
                    "max_characters": 500,
                    "max_media_attachments": 4,
                    "characters_reserved_per_url": 23,
                },
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "contact": {"email": f"admin@{host}", "account": None},
            "rules": [],
        }

    # --------------------------------------------------------------- the app

    def _build_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        server = self

        def json_response(
            value: Any,
            status: int = 200,
            media_type: str = API_JSON,
            headers: dict[str, str] | None = None,
        ) -> Response:
            return Response(
                json.dumps(value, ensure_ascii=False),
                status_code=status,
                media_type=media_type,
                headers=headers,
            )

        def rate_headers() -> dict[str, str]:
            reset = datetime.fromtimestamp(time.time() + 300, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"
            )
            return {
                "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": "299",
                "X-RateLimit-Reset": reset,
            }

        def request_host(request: Any) -> str:
            return request.headers.get("host", "").rsplit(":", 1)[0].strip("[]").lower()

        def endpoint(handler: Any) -> Any:
            async def wrapped(request: Any) -> Response:
                path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                with server._lock:
                    server.requests.append((request.method, request.headers.get("host", ""), path))
                if server.latency:
                    await asyncio.sleep(server.latency)
                fault = server._take_fault(request.url.path)
                if fault is not None:
                    if fault.kind == "delay":
                        await asyncio.sleep(fault.seconds)
                    elif fault.kind == "malformed":
                        return Response(MALFORMED, status_code=200, media_type=API_JSON)
                    else:
                        body = (
                            fault.body
                            if fault.body is not None
                            else json.dumps(
                                {
                                    "error": "Too many requests"
                                    if fault.status == 429
                                    else "Service Unavailable"
                                }
                            ).encode()
                        )
                        return Response(
                            body,
                            status_code=fault.status,
                            media_type=API_JSON,
                            headers=fault.headers,
                        )
                return await handler(request)

            return wrapped

        def bearer(request: Any, scopes: Sequence[str]) -> tuple[Account | None, Response | None]:
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else ""
            with server._lock:
                key = server._tokens.get(token) if token else None
                account = server._accounts.get(key) if key else None
                granted = account.tokens.get(token, ()) if account else ()
            if account is None:
                return None, json_response(
                    {"error": "The access token is invalid"},
                    401,
                    headers={
                        "WWW-Authenticate": 'Bearer realm="Doorkeeper", error="invalid_token", '
                        'error_description="The access token is invalid"'
                    },
                )
            if not any(s in granted for s in scopes):
                return None, json_response(
                    {"error": "This action is outside the authorized scopes"}, 403
                )
            return account, None

        async def webfinger(request: Any) -> Response:
            resource = request.query_params.get("resource")
            if not resource:
                return json_response({"error": "resource parameter missing"}, 400)
            host = request_host(request)
            with server._lock:
                web_domain = server._split.get(host)
            if web_domain is not None:
                location = f"https://{web_domain}/.well-known/webfinger?{request.url.query}"
                return Response(status_code=301, headers={"Location": location})
            resource = unquote(resource).strip()
            user = domain = None
            if resource.lower().startswith("acct:") or ("@" in resource and "://" not in resource):
                text = resource[5:] if resource.lower().startswith("acct:") else resource
                user, _, domain = text.lstrip("@").rpartition("@")
            elif resource.startswith("https://"):
                parts = urlsplit(resource)
                domain = parts.hostname
                match = re.match(r"^/(?:users/|@)([^/]+)$", parts.path)
                user = match.group(1) if match else None
            domain = (domain or "").lower()
            with server._lock:
                ours = domain == host or server._split.get(domain) == host
                account = server._accounts.get(user.lower()) if user and ours else None
                if account is None:
                    return Response(status_code=404)
                document = server._jrd(host, account, domain)
            return json_response(
                document,
                media_type=JRD_JSON,
                headers={
                    "Vary": "Accept, Accept-Encoding, Origin",
                    "Cache-Control": "max-age=259200, public",
                },
            )

        async def actor(request: Any) -> Response:
            host = request_host(request)
            accept = request.headers.get("accept", "")
            wants_json = "application/activity+json" in accept or (
                "application/ld+json" in accept and "activitystreams" in accept
            )
            with server._lock:
                account = server._accounts.get(request.path_params["username"].lower())
                if account is None:
                    return Response(
                        "<html><body>Not found</body></html>", 404, media_type="text/html"
                    )
                if not wants_json:
                    page = f"<html><body><h1>@{html.escape(account.username)}</h1>{account.note_html}</body></html>"
                    return Response(page, 200, media_type="text/html; charset=utf-8")
                if server.signed_fetch:
                    return json_response(
                        {"error": "Request not signed"}, 401, media_type=ACTIVITY_JSON
                    )
                document = server._actor(host, account)
            return json_response(
                document,
                media_type=ACTIVITY_JSON,
                headers={
                    "Vary": "Accept, Accept-Encoding, Origin",
                    "Cache-Control": "max-age=60, public",
                },
            )

        async def verify_credentials(request: Any) -> Response:
            account, problem = bearer(request, ("read", "read:accounts", "profile"))
            if problem is not None:
                return problem
            with server._lock:
                document = server._credential_account(request_host(request), account)
            return json_response(document, headers=rate_headers())

        async def update_credentials(request: Any) -> Response:
            account, problem = bearer(request, ("write", "write:accounts"))
            if problem is not None:
                return problem
            try:
                params = await _params(request)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
            with server._lock:
                error = server._apply_update(account, params)
                if error:
                    return json_response({"error": f"Validation failed: {error}"}, 422)
                document = server._credential_account(request_host(request), account)
            return json_response(document, headers=rate_headers())

        async def instance(request: Any) -> Response:
            with server._lock:
                document = server._instance(request_host(request))
            return json_response(document)

        return Starlette(
            routes=[
                Route("/.well-known/webfinger", endpoint(webfinger), methods=["GET"]),
                Route("/users/{username}", endpoint(actor), methods=["GET"]),
                Route(
                    "/api/v1/accounts/verify_credentials",
                    endpoint(verify_credentials),
                    methods=["GET"],
                ),
                Route(
                    "/api/v1/accounts/update_credentials",
                    endpoint(update_credentials),
                    methods=["PATCH"],
                ),
                Route("/api/v2/instance", endpoint(instance), methods=["GET"]),
            ]
        )

    def _apply_update(self, account: Account, params: list[tuple[str, Any]]) -> str | None:
        """Apply update_credentials parameters (caller holds the lock); an error text on 422."""
        fields_given = False
        entries: dict[str, dict[str, str]] = {}
        array_entries: list[dict[str, str]] = []
        values: dict[str, Any] = {}
        for key, value in params:
            match = re.match(r"^fields_attributes\[([^\]]*)\]\[(name|value)\]$", key)
            if match:
                fields_given = True
                index, part = match.groups()
                if index == "":
                    if not array_entries or part in array_entries[-1]:
                        array_entries.append({})
                    array_entries[-1][part] = str(value)
                else:
                    entries.setdefault(index, {})[part] = str(value)
            elif key == "fields_attributes":
                fields_given = True
                items = (
                    value.values()
                    if isinstance(value, dict)
                    else value
                    if isinstance(value, list)
                    else []
                )
                for i, item in enumerate(items):
                    if isinstance(item, dict):
                        entries[f"json{i}"] = {
                            k: str(v) for k, v in item.items() if k in ("name", "value")
                        }
            else:
                values[key] = value
        if fields_given:
            given = [*entries.values(), *array_entries]
            kept = [e for e in given if e.get("name", "").strip() or e.get("value", "").strip()]
            if len(kept) > self.max_fields:
                return f"Fields is too long (maximum is {self.max_fields} characters)"
            if any(not e.get("name", "").strip() for e in kept):
                return "Fields name can't be blank"
            previous = {f.value: f.verified_at for f in account.fields}
            new_fields = []
            for entry in kept:
                name = entry.get("name", "").strip()[: self.field_name_limit]
                value = entry.get("value", "").strip()[: self.field_value_limit]
                new_fields.append(
                    Field(name, value, render_field_value(value), previous.get(value))
                )
            account.fields = new_fields
        if "note" in values:
            note = str(values["note"])
            if _countable(note) > self.note_limit:
                return f"Note is too long (maximum is {self.note_limit} characters)"
            account.note = note
            account.note_html = render_note(note)
        if "display_name" in values:
            name = str(values["display_name"])
            if len(name) > 30:
                return "Display name is too long (maximum is 30 characters)"
            account.display_name = name
        return None


async def _params(request: Any) -> list[tuple[str, Any]]:
    """Query string, then the body (urlencoded, multipart or JSON), like Rails merges them."""
    params: list[tuple[str, Any]] = list(parse_qsl(request.url.query, keep_blank_values=True))
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body:
        return params
    if kind == "application/json":
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise ValueError("Error occurred while parsing request parameters") from exc
        if isinstance(value, dict):
            params.extend(value.items())
    elif kind == "application/x-www-form-urlencoded":
        params.extend(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        from email.parser import BytesParser
        from email.policy import HTTP

        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True) or b""
                params.append((str(name), payload.decode("utf-8", "replace")))
    return params


@contextmanager
def running_server(
    latency: float = 0.0, *, domain: str = DEFAULT_DOMAIN
) -> Iterator[MastodonServer]:
    """Start the fake instance on 127.0.0.1 (free port) in a background thread; stop it on exit.

    `latency` seconds are added to every response. The yielded server's
    `ctx_options()` points the channel at it; `domain` is the host to use
    in handles (`alice@mastodon.example`), though any host is answered.
    """
    from kez_core.plugin import serve_asgi

    server = MastodonServer(latency, domain)
    with serve_asgi(
        server.app, name="the ActivityPub test server", backlog=2048, keep_alive=5
    ) as url:
        server.base_url = url
        yield server
