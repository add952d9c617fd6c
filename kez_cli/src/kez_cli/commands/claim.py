"""`kez claim …`: create, verify and decode signed claims offline; publish and revoke them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kez_core.claim import check_claim, create_claim
from kez_core.encoding import decode_any, decode_candidates, detect
from kez_core.errors import ExitCode, KezError
from kez_core.keystore import Keystore
from kez_core.registry import default_registry
from kez_core.status import ClaimCheck, Status, to_json
from kez_core.timefmt import now, parse_duration

from .. import passphrase
from ..io import read_input, write_output
from ..options import IdentityOpt, JsonOpt
from ..output import State, emit_json, note, show_line


_STYLE = {
    Status.VALID: "green",
    Status.EXPIRED: "yellow",
    Status.REVOKED: "yellow",
    Status.SUPERSEDED: "yellow",
    Status.UNREACHABLE: "magenta",
    Status.NOT_FOUND: "magenta",
}


def create(
    subject: Annotated[
        str,
        typer.Argument(
            help="What you claim, as channel:handle (github:alice, dns:example.org, …)."
        ),
    ],
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Validity from now: 90d, 12h, 2w, 1y. Default: never."),
    ] = None,
    form: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="json, compact, markdown, dns (or a plugin's encoding)."
        ),
    ] = "compact",
    identity: IdentityOpt = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Sign a claim that SUBJECT is you, and print it encoded."""
    State.json_mode = json_
    registry = default_registry()
    encoding = registry.encoding(form)  # unknown format fails before the passphrase prompt
    lifetime = parse_duration(expires) if expires else None
    store = Keystore(registry=registry)
    record = store.get(identity)
    signer = store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))
    claim = create_claim(signer, subject, expires_in=lifetime, registry=registry)
    text = encoding.encode(claim)
    if json_:
        emit_json(
            {"claim_id": claim.id, "format": form, "encoded": text, "object": claim.to_dict()}
        )
    else:
        write_output(text, output)


def _result_dict(check: ClaimCheck, encoding: str | None) -> dict[str, Any]:
    data = to_json(check)
    data["encoding"] = encoding
    return data


def verify(
    source: Annotated[
        str | None,
        typer.Argument(help="FILE holding the claim, or - for stdin (default: stdin when piped)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Verify a claim offline (any encoding, auto-detected). Exit 0 only when every candidate is valid.

    Each ```kez block and each compact token in prose is checked on its own,
    so a broken one is reported beside a valid one instead of hiding it.
    """
    State.json_mode = json_
    registry = default_registry()
    text = read_input(source)
    encoding = detect(text, registry)
    try:
        candidates = decode_candidates(text, registry)
    except KezError as exc:
        if not json_:
            raise
        emit_json(
            {
                "status": "invalid",
                "reason": exc.message,
                "error": exc.code,
                "primary": None,
                "subject": None,
                "claim_id": None,
                "claims": [],
                "candidates": [],
            }
        )
        raise typer.Exit(exc.exit_code) from exc
    decoded = [c for c in candidates if c.obj is not None]
    if not decoded:  # nothing readable at all: the input is bad, as before
        first = candidates[0].error
        assert first is not None
        if json_:
            emit_json(
                {
                    "status": "invalid",
                    "reason": first.message,
                    "error": first.code,
                    "primary": None,
                    "subject": None,
                    "claim_id": None,
                    "claims": [],
                    "candidates": [_broken_dict(c) for c in candidates],
                }
            )
            raise typer.Exit(first.exit_code)
        raise first
    at = now()
    checks = {
        id(c): check_claim(c.obj, registry=registry, at=at, source=source or "-") for c in decoded
    }
    ok = len(decoded) == len(candidates) and all(check.ok for check in checks.values())
    if json_:  # the JSON shapes are built only here: text mode does not pay for cattrs
        results = [
            {"candidate": c.where, **_result_dict(checks[id(c)], encoding)}
            if c.obj is not None
            else _broken_dict(c)
            for c in candidates
        ]
        claims = [_result_dict(checks[id(c)], encoding) for c in decoded]
        first = claims[0]
        overall = (
            first if len(candidates) == 1 else {**first, "status": "valid" if ok else "invalid"}
        )
        emit_json({**overall, "claims": claims, "candidates": results})
    else:
        for c in candidates:
            if c.obj is None:
                show_line(("invalid", "red bold"), f"  {c.where}: {c.error}")
                continue
            check = checks[id(c)]
            style = _STYLE.get(check.status, "red")
            show_line(
                (check.status.value, f"{style} bold"), f"  {check.subject or '?'}  ({check.reason})"
            )
            if check.claim_id:
                show_line((f"  claim id {check.claim_id}", "dim"))
    if not ok:
        raise typer.Exit(ExitCode.NOT_VALID)


def _broken_dict(candidate: Any) -> dict[str, Any]:
    error = candidate.error
    return {
        "candidate": candidate.where,
        "status": "invalid",
        "reason": error.message,
        "error": error.code,
        "primary": None,
        "subject": None,
        "claim_id": None,
    }


def decode(
    source: Annotated[
        str | None,
        typer.Argument(help="FILE holding the claim, or - for stdin (default: stdin when piped)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Show what a claim says (no verification; use `kez claim verify`)."""
    State.json_mode = json_
    registry = default_registry()
    text = read_input(source)
    encoding = detect(text, registry)
    objects = decode_any(text, registry)
    docs = [{"encoding": encoding, "id": obj.id, **obj.to_dict()} for obj in objects]
    if json_:
        emit_json(docs[0] if len(docs) == 1 else docs)
        return
    for obj in objects:
        show_line(
            ("kind", "bold"),
            f"       {obj.kind}   ",
            (f"(encoding: {encoding or 'embedded compact'})", "dim"),
        )
        show_line(("id", "bold"), f"         {obj.id}")
        for key, value in obj.payload.items():
            if key in ("type", "version"):
                continue
            show_line((f"{key:<10}", "bold"), f" {value}")
        show_line(
            ("signed by", "bold"), f"  {obj.signature.key} ", (f"({obj.signature.alg})", "dim")
        )


def publish(
    ctx: typer.Context,
    tokens: Annotated[
        list[str], typer.Argument(help="SUBJECT (channel:handle), then any channel flags.")
    ],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Validity of a new claim: 90d, 1y, …")
    ] = None,
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Publish a claim on its channel (reusing a valid one from the sigchain) and add it to the sigchain."""
    import asyncio

    from ..channel_options import CHANNEL, make_context, split_channel_args
    from kez_core.publishing import publish_claim

    State.json_mode = json_
    registry = default_registry()
    positional, channel_args = split_channel_args([*tokens, *ctx.args], registry, CHANNEL)
    if len(positional) != 1:
        raise KezError(
            "give exactly one SUBJECT to publish", hint="e.g. kez claim publish github:alice"
        )
    store = Keystore(registry=registry)
    record = store.get(identity)
    signer = store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))
    channel_ctx = make_context(channel_args, registry, timeout=30.0, kind=CHANNEL)
    done = asyncio.run(
        publish_claim(
            store,
            record.name,
            signer,
            positional[0],
            channel_ctx,
            registry=registry,
            expires_in=parse_duration(expires) if expires else None,
        )
    )
    subject, claim_id, reused, seqno = done.subject, done.claim_id, done.reused, done.seqno
    result = done.to_json()
    if json_:
        emit_json(result)
    else:
        show_line(("published", "green bold"), f"  {subject}  {done.location}")
        if done.detail:
            show_line(done.detail, multiline=True)
        show_line(
            (
                f"  claim {claim_id}{' (reused from the sigchain)' if reused else f', added at seqno {seqno}'}",
                "dim",
            )
        )


def revoke(
    target: Annotated[
        str,
        typer.Argument(help="A claim id (8+ hex digits of it) or a subject such as github:alice."),
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, in words (kept in the chain, public).")
    ] = "",
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Revoke a claim in your sigchain, by claim id or subject; then republish the chain.

    A subject revokes every claim on it that is not revoked yet. Every copy
    of a revoked claim verifies as `revoked` once verifiers have the chain.
    """
    from kez_core.revocation import revoke_claims

    State.json_mode = json_
    store = Keystore(registry=default_registry())
    record = store.get(identity)
    done = revoke_claims(
        store,
        record.name,
        target,
        reason=reason,
        registry=store.registry,
        signer=lambda: store.signer(record.name, passphrase.provider(f"identity {record.name!r}")),
    )
    if json_:
        emit_json(done.to_json())
        return
    for claim in done.claims:
        show_line(
            ("revoked", "yellow bold"),
            f"  {claim.subject}  ",
            (f"claim {claim.claim_id}, seqno {claim.seqno}", "dim"),
        )
    note(done.hint)


def register_publish(app_: typer.Typer) -> None:
    from ..channel_options import CONTEXT_SETTINGS

    app_.command("publish", context_settings=CONTEXT_SETTINGS)(publish)


def register(main_app: typer.Typer) -> None:
    """Add `kez claim` to a freshly built root app (a new group each time: `build_app`
    runs once per in-process `main()`, and a shared group would collect duplicates)."""
    app = typer.Typer(
        help="Create, verify, decode, publish and revoke signed claims.", no_args_is_help=True
    )
    app.command("create")(create)
    app.command("verify")(verify)
    app.command("decode")(decode)
    register_publish(app)
    app.command("revoke")(revoke)
    main_app.add_typer(app, name="claim")
