"""Publishing a proof: `com.atproto.repo.putRecord` of `lat.kez.claim/self` via the atproto SDK.

Steps: find the PDS (the `atproto_pds` option, else the read path's
handle → DID → DID document → `#atproto_pds`), log in with
`com.atproto.server.createSession` (identifier = `bluesky_identifier` or the
handle; password = the app password), check the session is the claimed
account, then `putRecord` with a plain dict record:
`{"$type": "lat.kez.claim", "claim": "kez:z1:…", "createdAt": "…"}`.
The SDK sends unknown NSIDs and dict records as they are (no client-side
lexicon validation); `validate` is left unset so the PDS validates only
lexicons it knows.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import httpx
from kez_core.plugin import (
    COMPACT_PREFIX,
    ChannelContext,
    DecodeError,
    PublishOutcome,
    compact_encode,
    decode_any,
)

from ._read import Http, NotFound, Unreachable, resolve_identity
from .channel import COLLECTION, RKEY, option
from .errors import BlueskyCredentialsError, BlueskyPublishError

_PASSWORD_HINT = (
    "pass --bluesky-app-password or set KEZ_BLUESKY_APP_PASSWORD "
    "(create one in Bluesky: Settings → Privacy and security → App passwords)"
)


def compact_claim(proof_text: str) -> str:
    """The compact form `kez:z1:…` of the proof (re-encoded when given in another form)."""
    text = proof_text.strip()
    if text.startswith(COMPACT_PREFIX) and not any(c.isspace() for c in text):
        decode_any(text)  # refuse a damaged token before it is published
        return text
    objects = decode_any(text)
    if len(objects) != 1:
        raise DecodeError(
            f"a bluesky proof holds one claim, the input has {len(objects)}",
            hint="publish one claim at a time",
        )
    return compact_encode(objects[0])


def _created_at() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def _find_pds(normal: str, ctx: ChannelContext) -> tuple[str, str | None]:
    """(PDS base URL, expected DID or None) for the account to write to."""
    override = option(ctx, "atproto_pds")
    if override:
        return override.rstrip("/"), normal if normal.startswith("did:") else None
    own = ctx.http_client is None
    client = httpx.AsyncClient(timeout=ctx.timeout) if own else ctx.http_client
    try:
        identity = await resolve_identity(Http(client, ctx.timeout), normal, ctx)
    except NotFound as exc:
        raise BlueskyPublishError(
            f"cannot publish to bluesky:{normal}: {exc.reason}",
            hint="check the handle, or name the PDS with --atproto-pds",
        ) from None
    except Unreachable as exc:
        raise BlueskyPublishError(
            f"cannot publish to bluesky:{normal}: {exc.reason}", hint="retry later"
        ) from None
    finally:
        if own:
            await client.aclose()
    return identity.pds, identity.did


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


async def publish_proof(normal: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
    password = option(ctx, "bluesky_app_password")
    if not password:
        raise BlueskyCredentialsError(
            f"publishing to bluesky:{normal} needs the account's app password", hint=_PASSWORD_HINT
        )
    identifier = option(ctx, "bluesky_identifier") or normal
    compact = compact_claim(proof_text)
    pds, expected_did = await _find_pds(normal, ctx)

    from atproto import AsyncClient, Session
    from atproto_client.exceptions import (
        BadRequestError,
        NetworkError,
        RateLimitExceededError,
        UnauthorizedError,
    )
    from atproto_client.request import AsyncRequest
    from atproto_core.exceptions import AtProtocolError
    from pydantic import ValidationError

    client = AsyncClient(base_url=pds, request=AsyncRequest(timeout=ctx.timeout))
    step = f"login of {identifier} at {pds}"
    try:
        login_args: dict[str, Any] = {}
        if "fetch_bsky_profile" in inspect.signature(client.login).parameters:
            login_args["fetch_bsky_profile"] = False  # the profile is not needed to write
        await client.login(identifier, password, **login_args)
        session = Session.decode(client.export_session_string())
        if expected_did is not None and session.did != expected_did:
            raise BlueskyCredentialsError(
                f"logged in as {session.handle} ({session.did}), not bluesky:{normal} ({expected_did})",
                hint="use the app password of the claimed account (--bluesky-identifier)",
            )
        if expected_did is None and session.handle.lower() != normal:
            raise BlueskyCredentialsError(
                f"logged in as {session.handle} ({session.did}), not bluesky:{normal}",
                hint="use the app password of the claimed account (--bluesky-identifier)",
            )
        step = f"putRecord {COLLECTION}/{RKEY} at {pds}"
        record = {"$type": COLLECTION, "claim": compact, "createdAt": _created_at()}
        response = await client.com.atproto.repo.put_record(
            {"repo": session.did, "collection": COLLECTION, "rkey": RKEY, "record": record}
        )
    except UnauthorizedError as exc:
        raise BlueskyCredentialsError(
            f"{step} was refused: {_describe(exc)}", hint=_PASSWORD_HINT
        ) from None
    except RateLimitExceededError as exc:
        raise BlueskyPublishError(
            f"{step} was rate limited: {_describe(exc)}", hint="retry later"
        ) from None
    except BadRequestError as exc:
        raise BlueskyPublishError(f"{step} was refused: {_describe(exc)}") from None
    except NetworkError as exc:
        raise BlueskyPublishError(
            f"{step} failed: cannot reach {pds} ({_describe(exc)})", hint="retry later"
        ) from None
    except (AtProtocolError, ValidationError, ValueError) as exc:
        raise BlueskyPublishError(f"{step} failed: {_describe(exc)}", hint="retry later") from None
    finally:
        await client.request.close()
    return PublishOutcome(location=response.uri, detail=f"record cid {response.cid} at {pds}")
