"""kez-server on loopback: requests/s and p50/p99 of lookups, chains, the inbox, and live delivery.

The server runs in its own process, started as users start it (`kez-server`:
uvicorn, one process, SQLite in a temporary folder, or PostgreSQL from
pgserver with `--db postgresql`). The load comes from this process:
CONCURRENCY keep-alive HTTP/1.1 connections, each sending its next request
as soon as the answer to the last one is in, for SECONDS per endpoint after
a one-second warm-up. The load side is a minimal pure-Python HTTP/1.1
client on asyncio streams (httpx spends ~0.3 ms of CPU per request, which on
two cores shared with the server would measure the client). A bare Starlette
hello-world under the same uvicorn settings, in its own process, is measured
in the same run; every endpoint is printed as a ratio of it, with the
server's CPU per request.

- lookup: `GET /v1/u/{handle}` over HANDLES registered handles, at random
- chain GET: `GET /v1/sigchains/ed25519/{hex}` over CHAINS chains of 10 links
- chain append: `POST` of one new claim link to the connection's own chain
  (the tail push a client makes after `kez sigchain add`); links are signed
  before the clock starts
- inbox POST: `POST /v1/messages` of one 1 KiB-bucket envelope to one of
  the handles at random (not one of the READERS when HANDLES > READERS, so
  the GET phase reads 5 envelopes however fast the POSTs went)
- inbox GET: `GET /v1/inbox/{handle}?since=0` with a signed `X-KEZ-Auth`
  (signed before the clock starts; valid 60 s) over READERS handles that
  hold 5 envelopes each
- live delivery: LIVE readers hold `GET /v1/inbox/{handle}/live` open
  (Server-Sent Events); envelopes are posted to them one at a time and the
  time from the POST being sent to the event reaching its reader is
  measured (p50, p99)

The limits are off for the load (`--write-burst 0`, `--message-burst 0`,
no per-client quotas): all of it comes from one address.

Targets on this 2-core machine, SQLite: lookups >= 1,000/s with p99 < 50 ms
(issue #6); inbox POST >= 25 % of the hello-world rate, inbox GET >= 40 %,
both p99 < 50 ms, live delivery p99 < 20 ms (issue #11).

Run: uv run python benchmarks/server.py [--seconds 5] [--concurrency 32] [--db sqlite|postgresql]
     [--handles 1000] [--chains 200] [--appends-per-client 400] [--readers 200] [--live 20]
     [--live-messages 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from kez_core.claim import create_claim
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import sign_inbox_request
from kez_core.sigchain import SigchainBuilder
from kez_core.signed import sign
from kez_core.timefmt import format_time, now

SERVER_NAME = "bench.example"
NDJSON = "application/x-ndjson"

HELLO = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"hello": "world"})

app = Starlette(routes=[Route("/", hello)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            proxy_headers=True, server_header=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ticks(pid: int) -> int:
    """utime + stime of a process in clock ticks (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])


def wait_up(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


# ------------------------------------------------------------ load client


class Connection:
    """One keep-alive HTTP/1.1 connection: request → (status, body). Content-Length only."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(
        self, method: str, path: str, body: bytes = b"", ctype: str = "", extra: str = ""
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n{extra}"
        if body or method == "POST":
            head += f"content-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = None
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"{method} {path}: no content-length in the answer")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(
    port: int, concurrency: int, seconds: float, make_request, *, warmup: float = 1.0
) -> tuple[int, list[float], dict[int, int]]:
    """Run `concurrency` clients; returns (requests in the timed window, latencies, statuses)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    t0 = start + warmup
    t1 = t0 + seconds

    async def client(i: int) -> None:
        conn = Connection("127.0.0.1", port)
        await conn.open()
        try:
            n = 0
            while True:
                req = make_request(i, n)
                if req is None:
                    return
                n += 1
                sent = time.perf_counter()
                if sent >= t1:
                    return
                status, _body = await conn.request(*req)
                done = time.perf_counter()
                if sent >= t0:
                    latencies.append(done - sent)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return len(latencies), latencies, statuses


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")


# ------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--handles", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--appends-per-client", type=int, default=400)
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--live", type=int, default=20)
    parser.add_argument("--live-messages", type=int, default=300)
    args = parser.parse_args()
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    with tempfile.TemporaryDirectory(prefix="kez-bench-") as tmp:
        cluster = None
        if args.db == "postgresql":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pgserver
            cluster = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
            db = cluster.get_uri()
        else:
            db = str(Path(tmp) / "kez.db")
        procs: list[subprocess.Popen] = []
        try:
            hello_port, kez_port = free_port(), free_port()
            hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hello_port)])
            procs.append(hello)
            env = {k: v for k, v in os.environ.items() if not k.startswith("KEZ_SERVER_")}
            kez = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kez_server",
                    "--bind",
                    f"127.0.0.1:{kez_port}",
                    "--db",
                    db,
                    "--server",
                    SERVER_NAME,
                    "--write-burst",
                    "0",
                    "--message-burst",
                    "0",
                    "--vapid-key",  # PostgreSQL's default is ./kez-vapid.pem: not in the caller's folder
                    str(Path(tmp) / "vapid.pem"),
                    # all load comes from one address: no per-client quota either
                    "--client-links-per-hour",
                    "0",
                    "--client-bytes-per-hour",
                    "0",
                    "--log-level",
                    "warning",
                ],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            procs.append(kez)
            base = f"http://127.0.0.1:{kez_port}"
            wait_up(f"http://127.0.0.1:{hello_port}/", hello)
            wait_up(base + "/v1/healthz", kez)
            results = run(args, base, hello, hello_port, kez, kez_port, hz)
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if cluster is not None:
                cluster.cleanup()
    report(args, results)


def run(args, base, hello, hello_port, kez, kez_port, hz) -> dict[str, dict]:
    rng = random.Random(7)
    print(
        f"seeding {args.handles} handles, {args.chains} chains of 10 links, "
        f"{args.concurrency} x {args.appends_per_client} links to append ...",
        file=sys.stderr,
    )
    handles: list[str] = []
    signers: list[Signer] = []
    chain_paths: list[str] = []
    appenders: list[tuple[str, list[bytes]]] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(args.handles):
            signer = Signer.generate("ed25519")
            handle = f"user{i}"
            payload = {
                "handle": handle,
                "primary": signer.key_id,
                "server": SERVER_NAME,
                "created_at": format_time(now()),
            }
            envelope = sign("handle_registration", payload, signer, namespace="chat").to_dict()
            assert http.post("/v1/register", json=envelope).status_code == 201
            handles.append(handle)
            signers.append(signer)
        readers = list(range(min(args.readers, len(handles))))
        for i in readers:
            for _ in range(5):
                body = {"to": handles[i], "envelope": inbox_envelope()}
                assert http.post("/v1/messages", json=body).status_code == 201
        for i in range(args.chains):
            signer = Signer.generate("ed25519")
            builder = SigchainBuilder()
            for j in range(10):
                builder.claim(signer, create_claim(signer, f"dns:c{i}-{j}.example.org"))
            path = "/v1/sigchains/ed25519/" + signer.key_id.split(":", 1)[1]
            assert (
                http.post(
                    path, content=b"".join(builder.lines), headers={"content-type": NDJSON}
                ).status_code
                == 200
            )
            chain_paths.append(path)
        for i in range(args.concurrency):
            signer = Signer.generate("ed25519")
            builder = SigchainBuilder()
            builder.claim(signer, create_claim(signer, f"dns:a{i}.example.org"))
            path = "/v1/sigchains/ed25519/" + signer.key_id.split(":", 1)[1]
            assert (
                http.post(
                    path, content=builder.lines[0], headers={"content-type": NDJSON}
                ).status_code
                == 200
            )
            for j in range(args.appends_per_client):
                builder.claim(signer, create_claim(signer, f"dns:a{i}-{j}.example.org"))
            appenders.append((path, builder.lines[1:]))

    def hello_req(_i: int, _n: int):
        return ("GET", "/")

    def lookup_req(_i: int, _n: int):
        return ("GET", f"/v1/u/{handles[rng.randrange(len(handles))]}")

    def chain_req(_i: int, _n: int):
        return ("GET", chain_paths[rng.randrange(len(chain_paths))])

    def append_req(i: int, n: int):
        path, lines = appenders[i]
        if n >= len(lines):
            return None
        return ("POST", path, lines[n], NDJSON)

    # POSTs go to the handles that are not GET readers (when there are any), so that a
    # reader's inbox holds its 5 envelopes however many POSTs the server took before
    targets = handles[len(readers) :] or handles
    posts = [
        json.dumps(
            {"to": targets[rng.randrange(len(targets))], "envelope": inbox_envelope()}
        ).encode()
        for _ in range(2000)
    ]

    def post_req(_i: int, _n: int):
        return ("POST", "/v1/messages", posts[rng.randrange(len(posts))], "application/json")

    gets: list[tuple[str, str]] = []

    def get_req(_i: int, _n: int):
        path, header = gets[rng.randrange(len(gets))]
        return ("GET", path + "?since=0", b"", "", header)

    def sign_gets() -> None:  # just before the GET phase: a header is good for 60 s
        gets[:] = [
            (
                f"/v1/inbox/{handles[i]}",
                f"x-kez-auth: {sign_inbox_request(signers[i], 'GET', f'/v1/inbox/{handles[i]}', 'since=0')}\r\n",
            )
            for i in readers
        ]

    results: dict[str, dict] = {}
    plan = [
        ("hello (bare Starlette)", hello, hello_port, hello_req, 200),
        ("handle lookup", kez, kez_port, lookup_req, 200),
        ("chain GET (10 links)", kez, kez_port, chain_req, 200),
        ("chain append (1 link)", kez, kez_port, append_req, 200),
        ("inbox POST", kez, kez_port, post_req, 201),
        ("inbox GET (5 envelopes)", kez, kez_port, get_req, 200),
    ]
    for name, proc, port, make, ok in plan:
        if make is get_req:
            sign_gets()
        cpu0 = ticks(proc.pid)
        wall0 = time.perf_counter()
        count, lat, statuses = asyncio.run(load(port, args.concurrency, args.seconds, make))
        wall = time.perf_counter() - wall0
        cpu = (ticks(proc.pid) - cpu0) / hz
        bad = {s: c for s, c in statuses.items() if s != ok}
        window = min(args.seconds, max(1e-9, wall - 1.0))  # appends may finish early
        results[name] = {
            "rps": count / window,
            "p50": pct(lat, 0.50),
            "p99": pct(lat, 0.99),
            "count": count,
            "errors": bad,
            "cpu_per_req_ms": cpu / max(1, count) * 1000,
        }
        print(f"  {name}: {count} requests", file=sys.stderr)
    picked = [readers[k] for k in range(min(args.live, len(readers)))]
    live = asyncio.run(
        live_delivery(
            base, [(handles[i], signers[i]) for i in picked], args.live_messages, kez_port
        )
    )
    results["live delivery (post -> SSE)"] = live
    print(f"  live delivery: {live['count']} messages", file=sys.stderr)
    return results


def inbox_envelope(bucket: int = 1024) -> str:
    """A well-formed envelope text (enc + tag + one padding bucket of random bytes)."""
    import base64

    raw = os.urandom(32 + bucket + 16)
    return "kez:e1:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def live_delivery(
    base: str, readers: list[tuple[str, Signer]], messages: int, port: int
) -> dict:
    """Post `messages` envelopes one at a time to SSE readers; latency post sent -> event read."""
    arrived: dict[str, asyncio.Future[float]] = {}
    ready = asyncio.Event()
    opened = 0

    # seqs are per server: from the newest one on, only the envelopes posted here arrive
    with httpx.Client(base_url=base) as http:
        first = http.post("/v1/messages", json={"to": readers[0][0], "envelope": inbox_envelope()})
        since = first.json()["seq"]

    async def reader(handle: str, signer: Signer) -> None:
        nonlocal opened
        path = f"/v1/inbox/{handle}/live"
        header = sign_inbox_request(signer, "GET", path, f"since={since}")
        async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=None)) as client:
            async with client.stream(
                "GET", path, params={"since": since}, headers={"x-kez-auth": header}
            ) as answer:
                assert answer.status_code == 200, await answer.aread()
                opened += 1
                if opened == len(readers):
                    ready.set()
                async for line in answer.aiter_lines():
                    if line.startswith("data:"):
                        envelope = json.loads(line[5:])["envelope"]
                        waiter = arrived.get(envelope)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(time.perf_counter())

    tasks = [asyncio.create_task(reader(h, s)) for h, s in readers]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.5)
    conn = Connection("127.0.0.1", port)
    await conn.open()
    latencies: list[float] = []
    rng = random.Random(11)
    try:
        for _ in range(messages):
            handle = readers[rng.randrange(len(readers))][0]
            envelope = inbox_envelope()
            arrived[envelope] = asyncio.get_running_loop().create_future()
            body = json.dumps({"to": handle, "envelope": envelope}).encode()
            sent = time.perf_counter()
            status, _ = await conn.request("POST", "/v1/messages", body, "application/json")
            assert status == 201, status
            got = await asyncio.wait_for(arrived[envelope], 10)
            latencies.append(got - sent)
            await asyncio.sleep(0.005)
    finally:
        conn.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "rps": float("nan"),
        "p50": pct(latencies, 0.50),
        "p99": pct(latencies, 0.99),
        "count": len(latencies),
        "errors": {},
        "cpu_per_req_ms": float("nan"),
    }


def report(args, results: dict[str, dict]) -> None:
    hello = results["hello (bare Starlette)"]["rps"]
    print(
        f"kez-server on {args.db}: {args.concurrency} keep-alive clients, {args.seconds:g} s per endpoint, "
        f"server and load in separate processes ({os.cpu_count()} cores)"
    )
    print(
        f"{'endpoint':<30}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs hello':>10}{'srv CPU/req':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:<30}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['rps'] / hello:>9.2f}x"
            f"{r['cpu_per_req_ms']:>10.2f} ms" + (f"  errors {r['errors']}" if r["errors"] else "")
        )
    lookup = results["handle lookup"]
    ok = lookup["rps"] >= 1000 and lookup["p99"] < 50 and not lookup["errors"]
    print(
        f"target: lookups >= 1,000/s with p99 < 50 ms: {'met' if ok else 'NOT met'} "
        f"({lookup['rps']:.0f}/s, p99 {lookup['p99']:.1f} ms)"
    )
    for name, share in (("inbox POST", 0.25), ("inbox GET (5 envelopes)", 0.40)):
        r = results[name]
        ok = r["rps"] >= share * hello and r["p99"] < 50 and not r["errors"]
        print(
            f"target: {name} >= {share:.0%} of hello with p99 < 50 ms: {'met' if ok else 'NOT met'} "
            f"({r['rps'] / hello:.0%}, p99 {r['p99']:.1f} ms)"
        )
    live = results["live delivery (post -> SSE)"]
    print(
        f"target: live delivery p99 < 20 ms: {'met' if live['p99'] < 20 else 'NOT met'} "
        f"(p50 {live['p50']:.1f} ms, p99 {live['p99']:.1f} ms)"
    )
    print(
        json.dumps(
            {
                k: {m: round(v, 3) if isinstance(v, float) else v for m, v in r.items()}
                for k, r in results.items()
            }
        )
    )


if __name__ == "__main__":
    main()
