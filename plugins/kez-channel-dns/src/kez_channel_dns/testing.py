"""A real DNS server on 127.0.0.1 for tests and benchmarks of the dns channel.

`running_server()` starts an authoritative server speaking the DNS wire
protocol over UDP and TCP on one free port, in a background thread::

    from kez_channel_dns.testing import running_server

    with running_server() as server:
        server.seed_proof("example.org", claim)          # TXT at _kez.example.org
        ctx = ChannelContext(options=server.ctx_options(), timeout=3)
        outcome = await DnsChannel().fetch("example.org", ctx)

Queries are parsed and answered with dnslib: TXT records you seed, NOERROR
with no data for other types at a seeded name (and for empty non-terminals),
NXDOMAIN for unknown names. A UDP answer larger than 512 bytes (or than the
EDNS payload the query offers) is sent truncated (TC set, question kept), so
clients retry over TCP as with any real server.

RFC 2136 UPDATE messages are parsed with dnspython, which verifies their
TSIG signature against the server's keys. A bad signature is answered
NOTAUTH with TSIG error BADSIG (an unknown key BADKEY, a clock skew BADTIME),
unsigned as RFC 8945 §5.3.2 says; an unsigned update is REFUSED unless
`allow_unsigned_updates` is set. Accepted updates are applied to the
served records atomically (prerequisites included) and answered NOERROR,
TSIG-signed with the request's key.

Faults: `servfail` / `drop` (persistent), `fail_next(n, rcode)`,
`drop_next(n)`, `malformed_next(n)` (one-shot, in order), and `latency`
(seconds added before every answer).

dnslib is a test dependency (the workspace dev group); this module is only
imported by test suites and benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = ["DnsTestServer", "free_port", "running_server", "split_txt"]

TXT_STRING_MAX = 255
UDP_PLAIN_MAX = 512  # RFC 1035: UDP answers without EDNS
DEFAULT_TTL = 3600
_RCODES = {
    "NOERROR": 0,
    "FORMERR": 1,
    "SERVFAIL": 2,
    "NXDOMAIN": 3,
    "NOTIMP": 4,
    "REFUSED": 5,
    "YXDOMAIN": 6,
    "YXRRSET": 7,
    "NXRRSET": 8,
    "NOTAUTH": 9,
    "NOTZONE": 10,
}
_OPCODE_QUERY = 0
_OPCODE_UPDATE = 5


def _owner(name: str) -> str:
    """A name as the server indexes it: lowercase, no final dot."""
    return name.strip().rstrip(".").lower()


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def split_txt(text: str | bytes) -> list[bytes]:
    """Split text into TXT character-strings of at most 255 bytes (as a zone signer would)."""
    data = _as_bytes(text)
    return [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]


def _record(strings: str | bytes | Sequence[str | bytes]) -> tuple[bytes, ...]:
    """One TXT record's character-strings; a single str/bytes is split at 255 bytes."""
    if isinstance(strings, str | bytes | bytearray):
        return tuple(split_txt(strings))
    parts = tuple(_as_bytes(s) for s in strings)
    if not parts:
        raise ValueError("a TXT record holds at least one character-string")
    for part in parts:
        if len(part) > TXT_STRING_MAX:
            raise ValueError(
                f"a TXT character-string is at most {TXT_STRING_MAX} bytes, got {len(part)}"
            )
    return parts


class DnsTestServer:
    """State and fault toggles of one running test DNS server (see `running_server`)."""

    def __init__(
        self,
        latency: float = 0.0,
        *,
        tsig_name: str = "kez-test-key.",
        tsig_algorithm: str = "hmac-sha256",
        tsig_secret: str | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.latency = latency
        self.servfail = False  # answer every message SERVFAIL
        self.drop = False  # answer nothing (clients time out)
        self.allow_unsigned_updates = False
        # Zones updates may target; empty = the server is authoritative for every name.
        self.zones: set[str] = set()
        self.queries: list[tuple[str, str, str]] = []  # (udp|tcp, name, type) of every query
        self.updates: list[dict[str, Any]] = []  # what each accepted update changed
        self.tsig_name = tsig_name if tsig_name.endswith(".") else tsig_name + "."
        self.tsig_algorithm = tsig_algorithm
        self.tsig_secret = tsig_secret or base64.b64encode(secrets.token_bytes(32)).decode()
        self._keys: dict[str, tuple[str, str]] = {
            self.tsig_name.lower(): (tsig_algorithm, self.tsig_secret)
        }
        self._records: dict[str, list[tuple[bytes, ...]]] = {}
        self._faults: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._clients: set[asyncio.Task[Any]] = set()  # one per TCP connection

    # ------------------------------------------------------------ addresses

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`: the value of the channel's dns_server option."""
        return f"{self.host}:{self.port}"

    def ctx_options(self, *, update: bool = False) -> dict[str, Any]:
        """ChannelContext.options pointing the dns channel at this server.

        With `update=True` the RFC 2136 settings are included too (this
        server as update server and its TSIG key), so `publish` sends a
        dynamic update instead of printing the zone-file line.
        """
        options: dict[str, Any] = {"dns_server": self.address}
        if update:
            options |= {
                "dns_update_server": self.address,
                "dns_tsig_name": self.tsig_name,
                "dns_tsig_secret": self.tsig_secret,
                "dns_tsig_algorithm": self.tsig_algorithm,
            }
        return options

    def add_tsig_key(
        self, name: str, secret: str | None = None, algorithm: str = "hmac-sha256"
    ) -> str:
        """Accept updates signed with another key; returns its base64 secret."""
        secret = secret or base64.b64encode(secrets.token_bytes(32)).decode()
        with self._lock:
            self._keys[_owner(name) + "."] = (algorithm, secret)
        return secret

    # ------------------------------------------------------------ records

    def set_txt(self, name: str, strings: str | bytes | Sequence[str | bytes]) -> None:
        """Replace the TXT RRset at owner `name` with one record of these character-strings.

        A list gives the strings as they go on the wire (each ≤ 255 bytes);
        a single str/bytes is split into 255-byte strings.
        """
        with self._lock:
            self._records[_owner(name)] = [_record(strings)]

    def add_txt(self, name: str, strings: str | bytes | Sequence[str | bytes]) -> None:
        """Add one more TXT record at owner `name` (see `set_txt` for `strings`)."""
        record = _record(strings)
        with self._lock:
            records = self._records.setdefault(_owner(name), [])
            if record not in records:
                records.append(record)

    def clear(self, name: str | None = None) -> None:
        """Remove the TXT records at `name` (every record when `name` is None)."""
        with self._lock:
            if name is None:
                self._records.clear()
            else:
                self._records.pop(_owner(name), None)

    def txt(self, name: str) -> list[list[bytes]]:
        """The TXT records served at `name`, each as its list of character-strings."""
        with self._lock:
            return [list(r) for r in self._records.get(_owner(name), ())]

    def seed_proof(self, domain: str, proof: Any, *, replace: bool = False) -> None:
        """Publish a proof for `dns:<domain>`: a TXT record at `_kez.<domain>`.

        `proof` is a signed object (written in compact form) or text, split
        into ≤255-byte character-strings. Other records there are kept
        unless `replace` is true.
        """
        if not isinstance(proof, str | bytes):
            from kez_core.plugin import compact_encode

            proof = compact_encode(proof)
        name = f"_kez.{_owner(domain)}"
        (self.set_txt if replace else self.add_txt)(name, proof)

    # ------------------------------------------------------------ faults

    def fail_next(self, n: int = 1, rcode: str | int = "SERVFAIL") -> None:
        """Answer the next `n` messages with this rcode (SERVFAIL, REFUSED, …) and nothing else."""
        code = _RCODES[rcode.upper()] if isinstance(rcode, str) else int(rcode)
        with self._lock:
            self._faults.extend([("rcode", code)] * n)

    def drop_next(self, n: int = 1) -> None:
        """Do not answer the next `n` messages."""
        with self._lock:
            self._faults.extend([("drop", None)] * n)

    def malformed_next(self, n: int = 1) -> None:
        """Answer the next `n` messages with a reply whose body is cut short (bad wire format)."""
        with self._lock:
            self._faults.extend([("malformed", None)] * n)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self.servfail = False
        self.drop = False

    def _next_fault(self) -> tuple[str, Any] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()

        self._thread = threading.Thread(target=run, name="kez-dns-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test DNS server did not start within 10 s")
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(50):  # UDP and TCP must share one free port
            udp, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, 0), family=socket.AF_INET
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(self._tcp_client, self.host, port)
            except OSError as exc:
                udp.close()
                last = exc
                continue
            self._udp, self._tcp, self.port = udp, tcp, port
            return
        raise OSError(f"no free port for both UDP and TCP on {self.host}: {last}")

    async def _close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # Closing a connection ends its reader loop (EOF); cancelling it instead
        # would make asyncio's stream callback log the CancelledError.
        for writer in list(self._writers):
            writer.close()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=2)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ transports

    async def _answer_udp(
        self, wire: bytes, addr: Any, transport: asyncio.DatagramTransport
    ) -> None:
        reply = await self._handle(wire, "udp")
        if reply is not None and not transport.is_closing():
            transport.sendto(reply, addr)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        me = asyncio.current_task()
        if me is not None:
            self._clients.add(me)
        lock = asyncio.Lock()

        async def answer(wire: bytes) -> None:
            reply = await self._handle(wire, "tcp")
            if reply is None:
                return
            async with lock:
                writer.write(struct.pack("!H", len(reply)) + reply)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                self._spawn(answer(await reader.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            if me is not None:
                self._clients.discard(me)

    # ------------------------------------------------------------ messages

    async def _handle(self, wire: bytes, transport: str) -> bytes | None:
        """The reply to one message, or None to send nothing."""
        fault = self._next_fault()
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if len(wire) < 12 or self.drop or (fault and fault[0] == "drop"):
            return None
        msg_id, flags = struct.unpack("!HH", wire[:4])
        if flags & 0x8000:  # a response: never answer those
            return None
        opcode = (flags >> 11) & 0xF
        if fault and fault[0] == "malformed":
            # Header promises one question and one answer; the body stops short.
            head = struct.pack("!HHHHHH", msg_id, 0x8000 | (opcode << 11) | 0x0400, 1, 1, 0, 0)
            return head + b"\x04_kez\x07exa"
        if fault and fault[0] == "rcode":
            return self._error(wire, fault[1])
        if self.servfail:
            return self._error(wire, _RCODES["SERVFAIL"])
        try:
            if opcode == _OPCODE_QUERY:
                return self._query(wire, transport)
            if opcode == _OPCODE_UPDATE:
                return self._update(wire)
        except Exception:  # noqa: BLE001 - a server answers SERVFAIL, it does not crash
            return self._error(wire, _RCODES["SERVFAIL"])
        return self._error(wire, _RCODES["NOTIMP"])

    def _error(self, wire: bytes, rcode: int) -> bytes:
        """A header-only answer with `rcode`, echoing the question when it can be read."""
        from dnslib import DNSHeader, DNSRecord

        msg_id, flags = struct.unpack("!HH", wire[:4])
        opcode = (flags >> 11) & 0xF
        try:
            request = DNSRecord.parse(wire)
            questions = list(request.questions) if opcode == _OPCODE_QUERY else []
        except Exception:  # noqa: BLE001 - unreadable question: answer without it
            questions = []
        header = DNSHeader(id=msg_id, qr=1, opcode=opcode, aa=1, rd=(flags >> 8) & 1, rcode=rcode)
        if opcode == _OPCODE_UPDATE:
            # dnslib cannot write an UPDATE zone section; a bare header is a valid answer.
            return struct.pack("!HHHHHH", msg_id, 0x8000 | (opcode << 11) | rcode, 0, 0, 0, 0)
        return DNSRecord(header, questions=questions).pack()

    def _query(self, wire: bytes, transport: str) -> bytes:
        from dnslib import EDNS0, QTYPE, RCODE, RR, TXT, DNSHeader, DNSRecord

        try:
            request = DNSRecord.parse(wire)
        except Exception:  # noqa: BLE001 - garbage in: FORMERR out
            return self._error(wire, _RCODES["FORMERR"])
        if len(request.questions) != 1:
            return self._error(wire, _RCODES["FORMERR"])
        question = request.q
        name = _owner(str(question.qname))
        qtype = question.qtype
        with self._lock:
            self.queries.append((transport, name, QTYPE.get(qtype, str(qtype))))
            records = list(self._records.get(name, ()))
            exists = bool(records) or any(k.endswith("." + name) for k in self._records)

        def reply(truncated: bool = False) -> DNSRecord:
            header = DNSHeader(
                id=request.header.id, qr=1, aa=1, ra=0, tc=int(truncated), rd=request.header.rd
            )
            return DNSRecord(header, questions=[question])

        answer = reply()
        if not exists:
            answer.header.rcode = RCODE.NXDOMAIN
        elif qtype in (QTYPE.TXT, QTYPE.ANY):
            for strings in records:
                answer.add_answer(
                    RR(question.qname, QTYPE.TXT, ttl=DEFAULT_TTL, rdata=TXT(list(strings)))
                )
        opt = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
        limit = max(UDP_PLAIN_MAX, opt[0].rclass) if opt else UDP_PLAIN_MAX
        if opt:
            answer.add_ar(EDNS0(udp_len=1232))
        data = answer.pack()
        if transport == "udp" and len(data) > limit:
            short = reply(truncated=True)
            if opt:
                short.add_ar(EDNS0(udp_len=1232))
            data = short.pack()
        return data

    # ------------------------------------------------------------ RFC 2136

    def _keyring(self) -> dict[Any, Any]:
        import dns.name
        import dns.tsig

        with self._lock:
            keys = dict(self._keys)
        return {
            dns.name.from_text(name): dns.tsig.Key(name, secret, algorithm)
            for name, (algorithm, secret) in keys.items()
        }

    def _tsig_refusal(self, wire: bytes, tsig_error: int) -> bytes:
        """NOTAUTH with an unsigned TSIG RR carrying `tsig_error` (RFC 8945 §5.3.2)."""
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        from dns.rdtypes.ANY.TSIG import TSIG

        query = dns.message.from_wire(wire, keyring=False)  # read, do not verify
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.NOTAUTH)
        out = response.to_wire()
        assert query.tsig is not None
        signed = query.tsig[0]
        rdata = TSIG(
            dns.rdataclass.ANY,
            dns.rdatatype.TSIG,
            signed.algorithm,
            int(time.time()),
            signed.fudge,
            b"",
            query.id,
            tsig_error,
            b"",
        )
        rd_wire = rdata.to_wire()
        record = (
            query.tsig.name.to_wire()
            + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rd_wire))
            + rd_wire
        )
        arcount = struct.unpack("!H", out[10:12])[0] + 1
        return out[:10] + struct.pack("!H", arcount) + out[12:] + record

    def _update(self, wire: bytes) -> bytes:
        import dns.exception
        import dns.message
        import dns.rcode
        import dns.tsig

        try:
            message = dns.message.from_wire(wire, keyring=self._keyring())
        except dns.message.UnknownTSIGKey:
            return self._tsig_refusal(wire, dns.rcode.BADKEY)
        except dns.tsig.BadSignature:
            return self._tsig_refusal(wire, dns.rcode.BADSIG)
        except dns.tsig.BadTime:
            return self._tsig_refusal(wire, dns.rcode.BADTIME)
        except (dns.tsig.BadKey, dns.tsig.BadAlgorithm):
            return self._tsig_refusal(wire, dns.rcode.BADKEY)
        except dns.exception.DNSException:
            return self._error(wire, _RCODES["FORMERR"])
        response = dns.message.make_response(message)  # signed with the request's key, if any
        if not message.had_tsig and not self.allow_unsigned_updates:
            rcode = dns.rcode.REFUSED
        else:
            rcode = self._apply_update(message)
        response.set_rcode(rcode)
        return response.to_wire()

    def _apply_update(self, message: Any) -> int:
        """Check zone and prerequisites, then apply every update RR, all or nothing."""
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype

        zone_section = message.sections[0]
        if len(zone_section) != 1:
            return dns.rcode.FORMERR
        zone = zone_section[0].name
        zone_text = _owner(zone.to_text())
        with self._lock:
            zones = set(self.zones)
            current = {k: list(v) for k, v in self._records.items()}
        if zones and zone_text not in {_owner(z) for z in zones}:
            return dns.rcode.NOTAUTH

        def in_use(name: str) -> bool:
            return bool(current.get(name)) or any(k.endswith("." + name) for k in current)

        for rrset in message.sections[1]:  # prerequisites, RFC 2136 §2.4
            name = _owner(rrset.name.to_text())
            if not rrset.name.is_subdomain(zone):
                return dns.rcode.NOTZONE
            txt = rrset.rdtype == dns.rdatatype.TXT
            if rrset.deleting == dns.rdataclass.ANY:
                if rrset.rdtype == dns.rdatatype.ANY:
                    if not in_use(name):
                        return dns.rcode.NXDOMAIN
                elif not (txt and current.get(name)):
                    return dns.rcode.NXRRSET
            elif rrset.deleting == dns.rdataclass.NONE:
                if rrset.rdtype == dns.rdatatype.ANY:
                    if in_use(name):
                        return dns.rcode.YXDOMAIN
                elif txt and current.get(name):
                    return dns.rcode.YXRRSET
            else:
                wanted = {tuple(rd.strings) for rd in rrset} if txt else None
                if wanted is None or wanted != set(current.get(name, ())):
                    return dns.rcode.NXRRSET

        changes: list[tuple[str, str, list[list[bytes]]]] = []
        for rrset in message.sections[2]:  # updates, RFC 2136 §3.4.2
            name = _owner(rrset.name.to_text())
            if not rrset.name.is_subdomain(zone):
                return dns.rcode.NOTZONE
            if rrset.rdtype not in (dns.rdatatype.TXT, dns.rdatatype.ANY):
                return dns.rcode.NOTIMP  # this server stores TXT records only
            if rrset.deleting == dns.rdataclass.ANY:
                current.pop(name, None)
                changes.append(("delete-rrset", name, []))
            elif rrset.deleting == dns.rdataclass.NONE:
                gone = [tuple(rd.strings) for rd in rrset]
                current[name] = [r for r in current.get(name, []) if r not in gone]
                changes.append(("delete", name, [list(r) for r in gone]))
            else:
                if rrset.rdtype != dns.rdatatype.TXT:
                    return dns.rcode.FORMERR
                records = current.setdefault(name, [])
                for rd in rrset:
                    record = tuple(rd.strings)
                    if record not in records:
                        records.append(record)
                changes.append(("add", name, [list(rd.strings) for rd in rrset]))
        with self._lock:
            self._records = {k: v for k, v in current.items() if v}
            self.updates.append({"zone": zone_text, "changes": changes})
        return dns.rcode.NOERROR


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsTestServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.server._spawn(self.server._answer_udp(data, addr, self.transport))

    def error_received(self, exc: Exception) -> None:  # ICMP errors from clients that left
        pass


@contextlib.contextmanager
def running_server(
    latency: float = 0.0,
    *,
    records: Iterable[tuple[str, str | bytes | Sequence[str | bytes]]] = (),
    tsig_name: str = "kez-test-key.",
    tsig_algorithm: str = "hmac-sha256",
) -> Iterator[DnsTestServer]:
    """Run a DNS server on 127.0.0.1 (UDP and TCP, one free port) for the duration of the block.

    `latency` adds that many seconds before every answer. `records` seeds
    TXT records as (owner name, strings) pairs. The server accepts RFC 2136
    updates signed with its TSIG key (`server.tsig_name`,
    `server.tsig_secret`, `server.tsig_algorithm`).
    """
    server = DnsTestServer(latency, tsig_name=tsig_name, tsig_algorithm=tsig_algorithm)
    for name, strings in records:
        server.add_txt(name, strings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    """A UDP/TCP port on 127.0.0.1 that nothing listens on right now (for "server down" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return udp.getsockname()[1]
