"""`kez profile …`: publish your profile (name, about, picture) and read other people's.

Thin over `kez_core.profile.service`: the picture is resized, scrambled
under a new picture key (unless `--public-picture`) and uploaded with the
signed profile to your handle's kez-server; `show` fetches a peer's profile,
checks it against their chain and opens the picture when you hold its key.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from kez_core.errors import KezError, StoreError
from kez_core.keystore import Keystore
from kez_core.registry import default_registry
from kez_core.sigserver_client import UsageError, handle_base_url, split_handle

from .. import passphrase
from ..channel_options import CONTEXT_SETTINGS
from ..options import HandleServerOpt, IdentityOpt, JsonOpt, TimeoutOpt
from ..output import State, emit_json, note, show_line, warn


def _target(text: str) -> tuple[str, str]:
    parts = split_handle(text.strip().lower())
    if parts is None:
        raise UsageError(f"{text!r} is not handle@server", hint="e.g. alice@example.org")
    return parts


def _write(path: Path, data: bytes) -> None:
    try:
        path.expanduser().write_bytes(data)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror}") from None


ViaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--via",
        help="Transport(s) for the new picture key: nats, nostr, http (default: every configured one).",
    ),
]


def set_(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Option("--name", help="Display name (at most 100 characters).")
    ] = None,
    about: Annotated[
        str | None, typer.Option("--about", help="About text (at most 2000 characters).")
    ] = None,
    picture: Annotated[
        Path | None,
        typer.Option(
            "--picture", help="Picture file (PNG, JPEG, …); resized to 256x256.", dir_okay=False
        ),
    ] = None,
    public_picture: Annotated[
        bool,
        typer.Option(
            "--public-picture", help="Publish the picture as it is (no visual encryption)."
        ),
    ] = False,
    handle: Annotated[
        str | None,
        typer.Option("--handle", help="Your handle@server (remembered after the first `set`)."),
    ] = None,
    handle_server: HandleServerOpt = None,
    nostr_relay: Annotated[
        list[str] | None,
        typer.Option(
            "--nostr-relay", help="Also publish a kind 0 event here (nostr identities; repeatable)."
        ),
    ] = None,
    via: ViaOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Sign and publish your profile on your handle's kez-server (and nostr, with --nostr-relay).

    Name, about and picture you leave out stay as last published. A new
    picture gets a new picture key: contacts need it (a `profile_key`
    message) to see the face; everyone else sees noise. It is sent to every
    contact and to your other devices through the transports, as `kez message
    send` sends (--via and each transport's flags, e.g. --inbox-server URL).
    """
    from kez_core.profile import service
    from kez_core.profile.keys import ProfileKey, ProfileKeyStore
    from kez_core.profile.signed_profile import read_profile

    State.json_mode = json_
    store = Keystore(registry=default_registry())
    record = store.get(identity)
    identity_id = record.identity_id or record.key_id
    own = service.OwnProfileStore(store.home, identity_id)
    last = own.load()
    if handle is not None:
        handle_name, server = _target(handle)
        base = handle_base_url(server, handle_server)
    elif last is not None:
        handle_name, base = last.handle, (handle_server or last.base)
    else:
        raise UsageError("which handle? give --handle handle@server the first time")
    if public_picture and picture is None:
        raise UsageError("--public-picture goes with --picture")
    if nostr_relay and record.alg != "nostr":
        raise UsageError("--nostr-relay needs a nostr identity (its key signs the kind 0 event)")
    data = None
    if picture is not None:
        try:
            data = picture.expanduser().read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read {picture}: {exc.strerror}") from None
    signer = store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))
    routes = None
    if picture is not None and not public_picture:  # checked before anything is published
        from ..key_sharing import key_routes

        routes = key_routes(ctx.args, store, via or [], timeout, record, signer)
    elif ctx.args:
        raise UsageError(
            f"unexpected argument {ctx.args[0]!r}",
            hint="transport flags send a new picture key: they go with --picture (not --public-picture)",
        )
    pub = service.make_publication(
        signer,
        identity_id,
        base,
        handle_name,
        name=name if name is not None else (last.name if last else ""),
        about=about if about is not None else (last.about if last else ""),
        picture=data,
        public=public_picture,
        keep=last,
    )
    asyncio.run(service.publish(base, handle_name, signer, pub, device=True, timeout=timeout))
    own.save(handle_name, base, pub)
    body = pub.key_body(identity_id)
    if body is not None:  # your own views (and `preview`) open your picture
        ProfileKeyStore(store.home).put(ProfileKey(identity_id, pub.key, body["picture_sha256"]))
    shares = None
    if (
        body is not None and routes is not None
    ):  # a new picture: its new key goes to contacts and own devices
        shares = _share_key(store, record, signer, body, routes, handle_server, timeout)
    profile = read_profile(pub.profile)
    relays = []
    if nostr_relay:
        relays = asyncio.run(_kind0(store.registry, signer.secret, profile, nostr_relay, timeout))
    result = {
        "handle": handle_name,
        "server": base,
        **profile.to_json(),
        "id": pub.profile.id,
        "scrambled": pub.key is not None,
        "nostr": relays,
        "key_shares": [share.to_json() for share in shares] if shares is not None else None,
    }
    if json_:
        emit_json(result)
        return
    show_line(("published", "green bold"), " ", (f"{handle_name} on {base}", "bold"))
    for key in ("name", "about", "picture", "picture_sha256", "updated_at"):
        if result.get(key) is not None:
            show_line(f"  {key:<15} ", str(result[key]))
    for relay in relays:
        show_line(f"  kind 0          {relay['relay']}: {relay['message']}")
    if pub.key is not None and picture is not None:
        note(
            "the picture is scrambled; contacts see it once they receive its key (a profile_key message)"
        )
    if shares == []:
        note(
            "the new key went to nobody: no contacts, and no other device of yours with an inbox key"
        )
    elif shares:
        from ..key_sharing import report

        report(shares)


def _messaging(store: Keystore, record, signer, handle_server: str | None, timeout: float):
    """The messaging service of this identity, with the signer already unlocked (one prompt)."""
    from kez_core.chat import MessagingService

    from kez_core.sigserver_client import ServerDirectory

    return MessagingService(
        store,
        record,
        passphrase.provider(f"identity {record.name!r}"),
        directory=ServerDirectory(handle_server, timeout),
        signer=signer,
    )


def _share_key(
    store: Keystore,
    record,
    signer,
    body: dict,
    routes: list,
    handle_server: str | None,
    timeout: float,
) -> list:
    """Send the new picture key to every contact and own other device (kez_core.profile.sharing)."""
    service = _messaging(store, record, signer, handle_server, timeout)
    try:
        return asyncio.run(service.share_profile_key(body, routes))
    finally:
        service.close()


async def _kind0(registry, secret: bytes, profile, relays: list[str], timeout: float) -> list[dict]:
    """Publish the kind 0 event through the nostr channel plugin (its `publish_event`)."""
    from kez_core.errors import KezError
    from kez_core.profile.service import kind0_event

    try:
        publish_event = getattr(registry.channel("nostr"), "publish_event", None)
    except KezError:
        publish_event = None
    if publish_event is None:
        raise UsageError(
            "--nostr-relay needs a nostr channel plugin that publishes events "
            "(pip install kez-channel-nostr; see `kez plugins`)"
        )
    event = kind0_event(secret, profile)
    replies = await publish_event(event, relays, timeout)
    return [
        {"relay": r.url, "accepted": r.accepted, "message": r.message, "id": event["id"]}
        for r in replies
    ]


def share_key(
    ctx: typer.Context,
    via: ViaOpt = None,
    handle_server: HandleServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Send the key of your current picture again, to every contact and your other devices.

    For when a `kez profile set --picture` could not reach someone: the same
    key again (receiving it twice changes nothing), not a new one.
    """
    from kez_core.profile.sharing import current_key_body

    from ..key_sharing import key_routes, report

    State.json_mode = json_
    store = Keystore(registry=default_registry())
    record = store.get(identity)
    signer = store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))
    routes = key_routes(ctx.args, store, via or [], timeout, record, signer)
    service = _messaging(store, record, signer, handle_server, timeout)
    try:
        body = current_key_body(service)
        if body is None:
            raise StoreError(
                "this device has published no scrambled picture",
                hint="kez profile set --picture FILE",
            )
        shares = asyncio.run(service.share_profile_key(body, routes))
    finally:
        service.close()
    if json_:
        emit_json({"key_shares": [share.to_json() for share in shares]})
        return
    if not shares:
        note(
            "nobody to send the key to: no contacts, and no other device of yours with an inbox key"
        )
    report(shares)


def show(
    target: Annotated[str, typer.Argument(help="handle@server, e.g. alice@example.org.")],
    save_picture: Annotated[
        Path | None,
        typer.Option(
            "--save-picture", help="Write the picture (as contacts see it) to this PNG file."
        ),
    ] = None,
    save_noise: Annotated[
        bool,
        typer.Option(
            "--save-noise",
            help="With --save-picture: write the scrambled picture when you hold no key.",
        ),
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Fetch again even if the cached copy is fresh (6 h).")
    ] = False,
    handle_server: HandleServerOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show a person's profile, checked against their sigchain; open their picture if you hold its key."""
    from kez_core.keystore import default_home
    from kez_core.profile import service

    State.json_mode = json_
    handle, server = _target(target)
    base = handle_base_url(server, handle_server)
    peer = asyncio.run(
        service.read_peer_profile(
            default_home(), base, handle, server, refresh=refresh, timeout=timeout
        )
    )
    saved = None
    if save_picture is not None:
        if peer.plain_png is not None:
            _write(save_picture, peer.plain_png)
            saved = str(save_picture)
        elif peer.published_png is not None and save_noise:
            _write(save_picture, peer.published_png)
            saved = str(save_picture)
        elif peer.published_png is None:
            raise KezError(f"{handle}@{server} has no picture to save")
    if json_:
        emit_json({**peer.to_json(), "saved": saved})
        return
    p = peer.profile
    show_line((f"{handle}@{server}", "bold"), "  ", ("valid", "green"), f" (signed by {p.signer})")
    show_line("  name            ", p.name)
    show_line("  about           ", p.about, multiline=True)
    show_line("  updated_at      ", str(peer.to_json()["updated_at"]))
    if p.picture is None:
        show_line("  picture         none")
    elif not peer.scrambled:
        show_line("  picture         public: ", p.picture)
    elif peer.key_held:
        show_line("  picture         scrambled; opened with the key you hold")
    else:
        show_line(
            "  picture         scrambled; you hold no key for it (not a contact, or no profile_key yet)"
        )
        if save_picture is not None and not save_noise:
            warn(
                "nothing saved: without the key the picture is noise; add --save-noise to save it anyway"
            )
    if saved:
        note(f"picture written to {saved}")
    if peer.from_cache:
        note(f"from the cache (fetched {peer.fetched_at}); --refresh fetches again")


def preview(
    output: Annotated[Path, typer.Option("--output", "-o", help="The PNG to write.")] = Path(
        "profile-preview.png"
    ),
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Write what the world sees next to what contacts see, as one side-by-side PNG."""
    from kez_core.profile import service

    State.json_mode = json_
    store = Keystore(registry=default_registry())
    record = store.get(identity)
    last = service.OwnProfileStore(store.home, record.identity_id or record.key_id).load()
    if last is None or last.published_png is None or last.plain_png is None:
        raise StoreError(
            "you have published no picture from this device", hint="kez profile set --picture FILE"
        )
    _write(output, service.side_by_side(last.published_png, last.plain_png))
    if json_:
        emit_json({"output": str(output), "scrambled": last.key is not None})
    else:
        show_line(
            ("written", "green bold"),
            f" {output}: left what the world sees, right what contacts see",
        )


def register(main_app: typer.Typer) -> None:
    """Add `kez profile` to a freshly built root app (a new group each time, as every group)."""
    app = typer.Typer(
        help="Publish your profile and picture; show other people's.", no_args_is_help=True
    )
    app.command("set", context_settings=CONTEXT_SETTINGS)(set_)
    app.command("share-key", context_settings=CONTEXT_SETTINGS)(share_key)
    app.command("show")(show)
    app.command("preview")(preview)
    main_app.add_typer(app, name="profile")
