"""Publishing: write the compact proof to a Mastodon profile with the REST API.

1. `GET /api/v1/accounts/verify_credentials` (Bearer token): the token's
   account must be the handle's user; `source.fields` / `source.note` give
   the current profile as plain text.
2. `GET /api/v2/instance` (no token): `configuration.accounts` gives the
   instance's limits (`max_profile_fields`, `profile_field_value_limit`,
   `max_note_length`, Mastodon 4.6+). Absent or unreadable → Mastodon's
   defaults: 4 fields, 255 characters per field value, 500 for the bio.
3. Where the proof goes:
   - a profile field named `KEZ` when the proof fits the field value limit:
     the `KEZ` field is replaced, or a free slot used; when every slot is
     taken by other fields → `ProfileFullError`. Mastodon replaces all
     fields at once, so every existing field is sent back unchanged.
   - the bio (`note`, the actor's `summary`) otherwise: a compact claim is
     400-500 characters and stock Mastodon cuts field values at 255 without
     an error, which would publish a broken proof. Earlier `kez:z1:` tokens
     in the bio are replaced; the rest of the bio is kept.
4. `PATCH /api/v1/accounts/update_credentials` (form data), then check that
   the account the server returns holds the proof unaltered.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from kez_core.plugin import ChannelContext, PublishOutcome

from ._http import Answer, Unreachable, json_object, new_client, request, transient
from .channel import option
from .errors import (
    MissingTokenError,
    ProfileFullError,
    PublishError,
    TokenRejectedError,
    WrongAccountError,
)

FIELD_NAME = "KEZ"
DEFAULT_MAX_FIELDS = 4  # Account::DEFAULT_FIELDS_SIZE
DEFAULT_FIELD_VALUE_LIMIT = 255  # Account::Field::MAX_CHARACTERS_LOCAL
DEFAULT_NOTE_LIMIT = 500  # Account::NOTE_LENGTH_LIMIT
URL_WEIGHT = 23  # Mastodon counts every URL in the bio as 23 characters
_TOKEN = re.compile(r"[ \t]*kez:z1:[A-Za-z0-9_-]+")
_URL = re.compile(r"https?://\S+")
TOKEN_HINT = (
    "create a token at https://{host}/settings/applications with the scopes read:accounts and "
    "write:accounts, then pass --mastodon-token or set KEZ_MASTODON_TOKEN"
)


def _fail(exc: Unreachable) -> PublishError:
    return PublishError(exc.reason, hint="retry later")


def _server_error(answer: Answer) -> str:
    try:
        body = json_object(answer, "error")
    except Unreachable:
        return ""
    message = body.get("error")
    return f": {message}" if isinstance(message, str) and message else ""


def _check(answer: Answer, what: str, host: str) -> dict[str, Any]:
    """The JSON object of a 200 answer; typed errors for everything else."""
    if answer.status in (401, 403):
        raise TokenRejectedError(
            f"the Mastodon token was rejected by {host} ({answer.status} to {what}{_server_error(answer)})",
            hint=TOKEN_HINT.format(host=host),
        )
    if (problem := transient(answer, what)) is not None:
        raise _fail(problem)
    if answer.status == 422:
        raise PublishError(
            f"{host} refused the profile update (422{_server_error(answer)})",
            hint="check the profile in the instance's settings page",
        )
    if answer.status != 200:
        phrase = httpx.codes.get_reason_phrase(answer.status)
        raise PublishError(
            f"{host} answered {answer.status} {phrase} to {what}{_server_error(answer)}"
        )
    try:
        return json_object(answer, f"answer to {what}")
    except Unreachable as exc:
        raise _fail(exc) from exc


async def publish_proof(user: str, host: str, proof: str, ctx: ChannelContext) -> PublishOutcome:
    token = option(ctx, "mastodon_token")
    if not token:
        raise MissingTokenError(
            f"publishing to ap:{user}@{host} needs a Mastodon access token of that account",
            hint=TOKEN_HINT.format(host=host),
        )
    base = option(ctx, "ap_base_url")
    client = ctx.http_client
    own = client is None
    if own:
        client = new_client(ctx.timeout)
    try:
        return await _publish(client, user, host, proof, str(token), base, ctx.timeout)
    except Unreachable as exc:
        raise _fail(exc) from exc
    except httpx.TimeoutException as exc:
        raise PublishError(
            f"{host} did not answer within {ctx.timeout:g}s", hint="retry later"
        ) from exc
    except httpx.HTTPError as exc:
        raise PublishError(
            f"{host} could not be reached: {exc or type(exc).__name__}", hint="retry later"
        ) from exc
    finally:
        if own:
            await client.aclose()


async def _limits(
    client: httpx.AsyncClient, host: str, base: str | None, timeout: float
) -> tuple[int, int, int]:
    """(max fields, field value limit, bio limit) the instance advertises, or Mastodon's defaults."""
    limits = [DEFAULT_MAX_FIELDS, DEFAULT_FIELD_VALUE_LIMIT, DEFAULT_NOTE_LIMIT]
    try:
        answer = await request(
            client,
            "GET",
            f"https://{host}/api/v2/instance",
            base_url=base,
            timeout=timeout,
            accept="application/json",
        )
        if answer.status != 200:
            return tuple(limits)  # type: ignore[return-value]
        accounts = json_object(answer, "instance").get("configuration", {}).get("accounts", {})
    except (Unreachable, httpx.HTTPError, AttributeError):
        return tuple(limits)  # type: ignore[return-value]
    if isinstance(accounts, dict):
        for i, key in enumerate(
            ("max_profile_fields", "profile_field_value_limit", "max_note_length")
        ):
            value = accounts.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                limits[i] = value
    return tuple(limits)  # type: ignore[return-value]


def _note_length(note: str) -> int:
    return len(_URL.sub("x" * URL_WEIGHT, note))


async def _publish(
    client: httpx.AsyncClient,
    user: str,
    host: str,
    proof: str,
    token: str,
    base: str | None,
    timeout: float,
) -> PublishOutcome:
    auth = {"Authorization": f"Bearer {token}"}
    api = f"https://{host}/api/v1/accounts"
    answer = await request(
        client,
        "GET",
        f"{api}/verify_credentials",
        base_url=base,
        timeout=timeout,
        accept="application/json",
        headers=auth,
    )
    account = _check(answer, "verify_credentials", host)
    names = {
        x.lower() for x in (account.get("acct"), account.get("username")) if isinstance(x, str)
    }
    if not names & {user, f"{user}@{host}"}:
        shown = account.get("acct") if isinstance(account.get("acct"), str) else "another account"
        raise WrongAccountError(
            f"the Mastodon token belongs to @{shown}, not {user}@{host}",
            hint=f"use a token created while logged in as {user}@{host}",
        )
    source = account.get("source")
    if not isinstance(source, dict):
        raise PublishError(
            f"{host} answered verify_credentials without the account's source (plain-text profile)"
        )
    fields = [
        (f["name"], f["value"])
        for f in (source.get("fields") or [])
        if isinstance(f, dict)
        and isinstance(f.get("name"), str)
        and isinstance(f.get("value"), str)
    ]
    note = source.get("note") if isinstance(source.get("note"), str) else ""
    max_fields, value_limit, note_limit = await _limits(client, host, base, timeout)

    if len(proof) <= value_limit:
        data, where = _field_update(fields, proof, max_fields, user, host)
    else:
        data, where = _note_update(note, proof, note_limit, value_limit, user, host)

    answer = await request(
        client,
        "PATCH",
        f"{api}/update_credentials",
        base_url=base,
        timeout=timeout,
        accept="application/json",
        headers=auth,
        data=data,
    )
    updated = _check(answer, "update_credentials", host)
    _confirm(updated, proof, where, host)
    url = updated.get("url") if isinstance(updated.get("url"), str) else account.get("url")
    location = (
        url
        if isinstance(url, str) and urlsplit(url).scheme == "https"
        else f"https://{host}/@{user}"
    )
    return PublishOutcome(location=location, detail=where)


def _field_update(
    fields: list[tuple[str, str]], proof: str, max_fields: int, user: str, host: str
) -> tuple[dict[str, str], str]:
    index = next(
        (i for i, (name, _) in enumerate(fields) if name.strip().lower() == FIELD_NAME.lower()),
        None,
    )
    if index is not None:
        fields[index] = (FIELD_NAME, proof)
    elif len(fields) < max_fields:
        fields.append((FIELD_NAME, proof))
    else:
        taken = ", ".join(repr(name) for name, _ in fields)
        raise ProfileFullError(
            f"all {max_fields} profile fields of {user}@{host} are in use ({taken}); "
            f"there is no slot for the {FIELD_NAME} field",
            hint=f"remove one profile field (or rename one to {FIELD_NAME}) in the profile settings, "
            "then publish again",
        )
    data: dict[str, str] = {}
    for i, (name, value) in enumerate(fields):
        data[f"fields_attributes[{i}][name]"] = name
        data[f"fields_attributes[{i}][value]"] = value
    return data, f"profile field {FIELD_NAME}"


def _note_update(
    note: str, proof: str, note_limit: int, value_limit: int, user: str, host: str
) -> tuple[dict[str, str], str]:
    kept = _TOKEN.sub("", note.replace("\r\n", "\n"))
    kept = re.sub(r"\n{3,}", "\n\n", kept).strip()
    new_note = f"{kept}\n\n{proof}" if kept else proof
    if _note_length(new_note) > note_limit:
        raise ProfileFullError(
            f"the proof ({len(proof)} characters) is longer than a profile field on {host} allows "
            f"({value_limit}), and the bio of {user}@{host} would be {_note_length(new_note)} characters "
            f"with it (limit {note_limit})",
            hint=f"shorten the bio to {max(0, note_limit - len(proof) - 2)} characters or less, then publish again",
        )
    return {"note": new_note}, (
        f"bio (the proof's {len(proof)} characters exceed the {value_limit}-character limit "
        f"of profile fields on {host})"
    )


def _confirm(account: dict[str, Any], proof: str, where: str, host: str) -> None:
    source = account.get("source") if isinstance(account.get("source"), dict) else {}
    if where.startswith("profile field"):
        stored = [
            f.get("value")
            for f in (source.get("fields") or [])
            if isinstance(f, dict) and str(f.get("name", "")).strip().lower() == FIELD_NAME.lower()
        ]
        if proof in stored:
            return
        kept = max((len(v) for v in stored if isinstance(v, str)), default=0)
        raise PublishError(
            f"{host} did not store the proof intact in the {FIELD_NAME} field "
            f"(kept {kept} of {len(proof)} characters); it would not verify",
            hint="the instance limits profile field values more than it advertises; "
            "put the proof in the bio by hand, or ask the admin about the limit",
        )
    note = source.get("note") if isinstance(source.get("note"), str) else ""
    if proof not in note:
        raise PublishError(
            f"{host} did not store the proof intact in the bio; it would not verify",
            hint="check the bio in the profile settings",
        )
