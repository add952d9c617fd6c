"""The tables, as SQLAlchemy Core objects (the migrations in `migrations/` create them).

Every name starts with `kez_`, so the server can share a PostgreSQL database
with other applications. Links and fork evidence are stored as the
canonical bytes of the link (JCS, without the newline): what `GET` serves is
exactly what was validated.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per stored link. The primary key (identity, seqno) is what makes
# appends safe under concurrency: of two writers inserting the same seqno,
# the database lets exactly one commit.
links = sa.Table(
    "kez_links",
    metadata,
    sa.Column("identity", sa.String(200), nullable=False),
    sa.Column("seqno", sa.BigInteger, nullable=False),
    sa.Column("link_id", sa.String(64), nullable=False),
    sa.Column("line", sa.LargeBinary, nullable=False),
    sa.Column("stored_at", sa.String(20), nullable=False),
    sa.PrimaryKeyConstraint("identity", "seqno", name="kez_links_pkey"),
)

# A validly signed link that conflicts with a stored link at the same seqno:
# kept so that a server cannot be used to hide a fork.
forks = sa.Table(
    "kez_forks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("identity", sa.String(200), nullable=False),
    sa.Column("seqno", sa.BigInteger, nullable=False),
    sa.Column("stored_id", sa.String(64), nullable=False),
    sa.Column("link_id", sa.String(64), nullable=False),
    sa.Column("line", sa.LargeBinary, nullable=False),
    sa.Column("first_seen", sa.String(20), nullable=False),
    sa.UniqueConstraint("identity", "link_id", name="kez_forks_identity_link_key"),
)

# Registered handles. Unique on the handle, on the primary key, and on the
# id of the registration envelope (a replayed envelope is refused).
# `identity` is the identity id of the handle's chain (NULL: the primary is
# the identity id, as in registrations before migration 0002): it stays
# when the owner rotates and registers the new primary for the same handle.
handles = sa.Table(
    "kez_handles",
    metadata,
    sa.Column("handle", sa.String(32), primary_key=True),
    sa.Column("primary_key", sa.String(200), nullable=False),
    sa.Column("identity", sa.String(200), nullable=True),
    sa.Column("envelope_id", sa.String(64), nullable=False),
    sa.Column("envelope", sa.LargeBinary, nullable=False),
    sa.Column("registered_at", sa.String(20), nullable=False),
    sa.UniqueConstraint("primary_key", name="kez_handles_primary_key_key"),
    sa.UniqueConstraint("envelope_id", name="kez_handles_envelope_id_key"),
)

VERSION_TABLE = "kez_alembic_version"

# The HTTP inbox: opaque envelopes waiting for a handle's owner (schema 0003).
# `seq` is increasing per server and never reused (AUTOINCREMENT on SQLite,
# an identity column on PostgreSQL), so a reader's cursor stays meaningful
# after deletes and purges. `route` is the routing id the sender named
# (optional, 64 hex) so a reader can follow one inbox key; `received_unix`
# drives the 7-day purge.
messages = sa.Table(
    "kez_messages",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("handle", sa.String(32), nullable=False),
    sa.Column("route", sa.String(64), nullable=True),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("received_at", sa.String(20), nullable=False),
    sa.Column("received_unix", sa.BigInteger, nullable=False),
    sa.Index("kez_messages_handle_seq", "handle", "seq"),
    sa.Index("kez_messages_received", "received_unix"),
    sqlite_autoincrement=True,
)


# Web Push subscriptions (migration 0004): one row per (handle, endpoint), so
# one browser can take pushes for several handles. The endpoint is matched by
# its SHA-256 (`endpoint_hash`): endpoints are long URLs, and an index on the
# hash stays small on every database. p256dh and auth are the browser's keys
# (base64url), stored as given although pushes carry no payload.
push_subscriptions = sa.Table(
    "kez_push_subscriptions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("handle", sa.String(32), nullable=False, index=True),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("endpoint_hash", sa.String(64), nullable=False, index=True),
    sa.Column("p256dh", sa.String(100), nullable=False),
    sa.Column("auth", sa.String(40), nullable=False),
    sa.Column("created_at", sa.String(20), nullable=False),
    sa.UniqueConstraint(
        "handle", "endpoint_hash", name="kez_push_subscriptions_handle_endpoint_key"
    ),
)


# Profiles (migration 0005): one row per handle, holding the signed profile
# object (its JCS bytes, as validated) and the published picture PNG. Either
# may be absent: a client uploads the picture, then the profile naming its
# SHA-256; readers check that hash, so the server cannot swap pictures.
profiles = sa.Table(
    "kez_profiles",
    metadata,
    sa.Column("handle", sa.String(32), primary_key=True),
    sa.Column("profile", sa.LargeBinary, nullable=True),
    sa.Column("profile_id", sa.String(64), nullable=True),
    sa.Column("updated_at", sa.String(20), nullable=True),
    sa.Column("picture", sa.LargeBinary, nullable=True),
    sa.Column("picture_sha256", sa.String(64), nullable=True),
    sa.Column("stored_at", sa.String(20), nullable=False),
)
