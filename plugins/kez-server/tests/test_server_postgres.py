"""Several server processes on one PostgreSQL database; migrations; database URLs.

Two servers (separate apps, engines and validator caches: what two
processes behind a load balancer have) share one database created for this
module on the session's pgserver cluster.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import pytest
import sqlalchemy as sa
from kez_core.keys import Signer
from kez_server.config import ConfigError
from kez_server.db import Store, database_url
from kez_server.testing import running_server
from server_helpers import (
    NDJSON,
    body,
    chain,
    extend,
    fork_of,
    head_revision,
    identity_path,
    new_database,
    new_handle,
    registration,
)


@pytest.fixture(scope="module")
def pg_url(pg_cluster):
    return new_database(pg_cluster)


@pytest.fixture(scope="module")
def nodes(pg_url):
    with running_server(db=pg_url) as a, running_server(db=pg_url) as b:
        yield a, b


def test_two_nodes_share_handles(nodes):
    a, b = nodes
    signer, handle = Signer.generate("nostr"), new_handle()
    assert httpx.post(a.url + "/v1/register", json=registration(signer, handle)).status_code == 201
    found = httpx.get(b.url + f"/v1/u/{handle}")
    assert found.status_code == 200 and found.json()["primary"] == signer.key_id
    # the other node refuses the same handle
    again = httpx.post(
        b.url + "/v1/register", json=registration(Signer.generate("ed25519"), handle)
    )
    assert again.status_code == 409 and again.json()["error"] == "handle_taken"


def test_two_nodes_share_chains(nodes):
    a, b = nodes
    signer, builder = chain(3)
    path = identity_path(signer.key_id)
    assert (
        httpx.post(a.url + path, content=body(builder.lines), headers=NDJSON).json()["appended"]
        == 3
    )
    extend(builder, signer)
    # node b has never seen this chain: it rebuilds the state from the database
    tail = httpx.post(b.url + path, content=builder.lines[3], headers=NDJSON)
    assert tail.status_code == 200 and tail.json()["head_seqno"] == 4, tail.text
    extend(builder, signer)
    # node a's cached state is stale (head moved on b): it must notice
    assert (
        httpx.post(a.url + path, content=builder.lines[4], headers=NDJSON).json()["head_seqno"] == 5
    )
    assert httpx.get(a.url + path).content == httpx.get(b.url + path).content == body(builder.lines)


def test_race_across_nodes(nodes):
    a, b = nodes
    for _round in range(3):
        signer, builder = chain(2)
        path = identity_path(signer.key_id)
        httpx.post(a.url + path, content=body(builder.lines), headers=NDJSON)
        branches = []
        for _ in range(4):
            branch = fork_of(builder, 2)
            extend(branch, signer)
            branches.append(branch)
        barrier = threading.Barrier(len(branches))
        statuses: list[int] = []
        codes: list[str] = []  # fork (arrived after the winner) or chain_changed (lost the insert)

        def run(
            i: int,
            path: str,
            line: bytes,
            barrier: threading.Barrier,
            statuses: list[int],
            codes: list[str],
        ) -> None:
            base = (a, b)[i % 2].url
            with httpx.Client(base_url=base, timeout=60) as http:
                http.get("/v1/healthz")
                barrier.wait()
                response = http.post(path, content=line, headers=NDJSON)
                statuses.append(response.status_code)
                if response.status_code == 409:
                    codes.append(response.json()["error"])

        threads = [
            threading.Thread(
                target=run, args=(i, path, body(branch.lines), barrier, statuses, codes)
            )
            for i, branch in enumerate(branches)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [200, 409, 409, 409]
        stored = httpx.get(b.url + path).content
        assert stored.count(b"\n") == 3
        assert set(codes) <= {"fork", "chain_changed"}
        assert len(httpx.get(a.url + path + "/forks").json()["forks"]) == codes.count("fork")


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_concurrent_first_migrations(pg_cluster, tmp_path, kind):
    """Processes starting together on an empty database migrate it once, all succeed."""
    url = new_database(pg_cluster) if kind == "postgresql" else str(tmp_path / "race.db")
    code = "import sys; from kez_server.db import Store; s = Store(sys.argv[1]); s.migrate(); print(s.revision())"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == head_revision()
    store = Store(url)
    try:
        assert store.revision() == head_revision()
        with store.engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
        assert {"kez_links", "kez_forks", "kez_handles", "kez_alembic_version"} <= names
    finally:
        store.close()


def test_migrations_in_threads(tmp_path):
    """Two apps in one process (as in tests) migrate one after the other."""
    url = str(tmp_path / "threads.db")
    errors: list[BaseException] = []

    def migrate() -> None:
        store = Store(url)
        try:
            store.migrate()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []


def test_database_urls(tmp_path):
    assert database_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert database_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert database_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    assert database_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    assert database_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
    for bad in ("", ":memory:", "sqlite://", "mysql://h/db"):
        with pytest.raises(ConfigError):
            database_url(bad)


def test_sqlite_migrations_are_idempotent(tmp_path):
    store = Store(str(tmp_path / "m.db"))
    try:
        assert store.revision() is None
        store.migrate()
        store.migrate()
        assert store.revision() == head_revision()
    finally:
        store.close()


def test_sqlite_migrations_commit_once(tmp_path):
    """All migrations and the version update are one write transaction: a second
    process never sees a half-migrated schema (alembic would commit per migration
    on SQLite, which it assumes has no transactional DDL)."""
    store = Store(str(tmp_path / "once.db"))
    commits: list[object] = []
    sa.event.listen(store.engine, "commit", commits.append)
    try:
        store.migrate()
        assert store.revision() == head_revision()
        assert len(commits) == 1
    finally:
        store.close()


def test_sqlite_wal_switch_waits_for_a_locked_file(tmp_path):
    """Switching a fresh file to WAL is a lock upgrade, for which SQLite skips the
    busy handler: the connect hook retries instead of failing at once."""
    import sqlite3

    path = tmp_path / "wal.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    timer = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    timer.start()
    store = Store(str(path))
    try:
        store.ping()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        timer.join()
        holder.close()
        store.close()
