"""A scripted ESMTP/LMTP server model for the session tests, and a driver that connects the two.

:class:`FakeServer` parses what the client writes -- command lines, DATA content up to the final
".", BDAT payloads by their octet count -- and answers each command at once, by simple rules on the
addresses: a sender starting ``bad`` is refused (550), a recipient starting ``refuse-`` gets 550,
``later-`` 450, and in LMTP ``lmtpfail-`` is accepted by RCPT but refused after the data.  It
records every message it accepted and checks the client never breaks the protocol (a command in the
middle of DATA content, a BDAT after a DATA, ...).

:func:`drive` performs a session's requests against it, handing the replies back in pieces chosen by
a ``split`` function, and checks that the client never has more than ``max_in_flight`` commands
waiting for their replies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from smtp_sansio import Close, Done, Read, Session, StartTLS, Write


@dataclass
class Received:
    sender: str
    recipients: list[str]
    content: bytes
    parameters: str
    verb: str  # "DATA" or "BDAT"


@dataclass
class FakeServer:
    extensions: tuple[str, ...] = ("PIPELINING", "CHUNKING", "8BITMIME", "SIZE 1000000", "DSN")
    lmtp: bool = False
    fail_chunk: int | None = None  # refuse the BDAT chunk with this number (from 1, per connection)
    close_on_mail: int | None = None  # answer the n-th MAIL (from 1) with 421 and stop
    out: bytearray = field(default_factory=bytearray)
    reply_ends: list[int] = field(default_factory=list)  # offset in ``out`` after each reply
    received: list[Received] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # every command line, in order
    _buffer: bytearray = field(default_factory=bytearray)
    _mode: str = "command"
    _bdat_left: int = 0
    _bdat_last: bool = False
    _bdat_failed: bool = False
    _sender: str | None = None
    _parameters: str = ""
    _recipients: list[str] = field(default_factory=list)
    _content: bytearray = field(default_factory=bytearray)
    _chunks: int = 0
    _mails: int = 0
    closed: bool = False
    delivered: int = 0  # octets of ``out`` the client has been given

    def __post_init__(self) -> None:
        self._reply(b"220 fake.example ESMTP")

    def _reply(self, *lines: bytes) -> None:
        for i, line in enumerate(lines):
            self.out += line[:3] + (b"-" if i < len(lines) - 1 else b" ") + line[4:] + b"\r\n"
        self.reply_ends.append(len(self.out))

    def feed(self, data: bytes) -> None:
        assert not self.closed, f"the client wrote {data[:60]!r} after the server closed"
        self._buffer += data
        while self._buffer and not self.closed:
            if self._mode == "data":
                end = (b"\r\n" + bytes(self._buffer)).find(b"\r\n.\r\n")
                if end < 0:
                    return
                # ``end`` counts the CRLF put in front: the content is everything before the
                # line holding the dot, its own last CRLF included.
                content = bytes(self._buffer[:end])
                del self._buffer[: end + 3]
                self._end_of_data(re.sub(rb"(?m)^\.", b"", content), "DATA")  # un-stuff (RFC 5321 4.5.2)
                continue
            if self._mode == "bdat":
                take = min(self._bdat_left, len(self._buffer))
                self._content += self._buffer[:take]
                del self._buffer[:take]
                self._bdat_left -= take
                if self._bdat_left:
                    return
                self._mode = "command"
                self._chunk_done()
                continue
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            assert b"\r" not in line and b"\n" not in line
            self.lines.append(line)
            self._command(line)

    def _command(self, line: bytes) -> None:
        verb = line.split(b" ", 1)[0].upper()
        if verb in (b"EHLO", b"LHLO"):
            assert (verb == b"LHLO") == self.lmtp, f"{verb!r} to an {'LMTP' if self.lmtp else 'SMTP'} server"
            self._reply(b"250 fake.example", *[b"250 " + e.encode() for e in self.extensions])
        elif verb == b"MAIL":
            self._mails += 1
            if self._mails == self.close_on_mail:
                self._reply(b"421 4.3.2 going down")
                self.closed = True
                return
            match = re.fullmatch(rb"MAIL FROM:<([^>]*)>(.*)", line)
            assert match is not None and self._sender is None, line
            if match.group(1).startswith(b"bad"):
                self._reply(b"550 5.1.8 bad sender")
                return
            self._sender, self._parameters = match.group(1).decode(), match.group(2).decode()
            self._reply(b"250 2.1.0 ok")
        elif verb == b"RCPT":
            match = re.fullmatch(rb"RCPT TO:<([^>]*)>.*", line)
            assert match is not None, line
            address = match.group(1)
            if self._sender is None:
                self._reply(b"503 5.5.1 need MAIL")
            elif address.startswith(b"refuse-"):
                self._reply(b"550 5.1.1 no such user")
            elif address.startswith(b"later-"):
                self._reply(b"450 4.2.1 try later")
            else:
                self._recipients.append(address.decode())
                self._reply(b"250 2.1.5 ok")
        elif verb == b"DATA":
            if self._sender is None or not self._recipients:
                self._reply(b"554 5.5.1 no valid recipients")
            else:
                self._mode = "data"
                self._reply(b"354 go ahead")
        elif verb == b"BDAT":
            match = re.fullmatch(rb"BDAT (\d+)( LAST)?", line)
            assert match is not None, line
            self._mode, self._bdat_left, self._bdat_last = "bdat", int(match.group(1)), bool(match.group(2))
            if not self._bdat_left:
                self._mode = "command"
                self._chunk_done()
        elif verb == b"RSET":
            self._reset()
            self._reply(b"250 2.0.0 reset")
        elif verb == b"QUIT":
            self._reply(b"221 2.0.0 bye")
            self.closed = True
        else:
            self._reply(b"502 5.5.2 unknown")

    def _chunk_done(self) -> None:
        self._chunks += 1
        if self._chunks == self.fail_chunk:
            self._bdat_failed = True
        if self._sender is None or not self._recipients or self._bdat_failed:
            self._reply(b"554 5.5.0 chunk refused")
            if self._bdat_last:
                self._reset()
            return
        if self._bdat_last:
            self._end_of_data(bytes(self._content), "BDAT")
        else:
            self._reply(b"250 2.0.0 chunk ok")

    def _end_of_data(self, content: bytes, verb: str) -> None:
        self._mode = "command"
        if self._sender is None or not self._recipients:
            self._reply(b"554 5.5.1 no transaction")
            self._reset()
            return
        delivered = [r for r in self._recipients if not (self.lmtp and r.startswith("lmtpfail-"))]
        if delivered:
            self.received.append(Received(self._sender, delivered, content, self._parameters, verb))
        if self.lmtp:
            for recipient in self._recipients:
                if recipient.startswith("lmtpfail-"):
                    self._reply(b"552 5.2.2 mailbox full")
                else:
                    self._reply(b"250 2.1.5 delivered to " + recipient.encode())
        else:
            self._reply(b"250 2.0.0 queued as Q%d" % len(self.received))
        self._reset()

    def _reset(self) -> None:
        self._sender, self._parameters, self._recipients = None, "", []
        self._content = bytearray()
        self._bdat_failed = False


Split = Callable[[bytes], int]  # how many of the pending reply bytes the next Read gets


def whole(pending: bytes) -> int:
    return len(pending)


def bytewise(pending: bytes) -> int:
    return 1


@dataclass
class Run:
    result: object
    writes: list[bytes]
    max_waiting: int


def drive(
    session: Session, server: FakeServer, split: Split = whole, *, max_in_flight: int | None = None
) -> Run:
    """Perform the session's requests against ``server`` until Done; return what happened."""
    writes: list[bytes] = []
    max_waiting = 0
    while True:
        request = session.next_request()
        if isinstance(request, Write):
            writes.append(request.data)
            server.feed(request.data)
            # Replies the server has produced but the client has not been given yet, one per
            # command: the commands in flight.
            waiting = sum(1 for end in server.reply_ends if end > server.delivered)
            max_waiting = max(max_waiting, waiting)
            if max_in_flight is not None:
                assert waiting <= max_in_flight, f"{waiting} commands in flight, bound {max_in_flight}"
        elif isinstance(request, Read):
            pending = bytes(server.out[server.delivered :])
            if not pending:
                assert server.closed, "the client waits for a reply the server does not owe (deadlock)"
                session.receive_data(b"")
                continue
            size = max(1, min(len(pending), split(pending)))
            session.receive_data(pending[:size])
            server.delivered += size
        elif isinstance(request, StartTLS):  # pragma: no cover - the tests use no TLS
            session.tls_established(verified=True)
        elif isinstance(request, Close):
            continue
        else:
            assert isinstance(request, Done)
            return Run(request.result, writes, max_waiting)


def handshake(server: FakeServer, **options: object) -> Session:
    """A session whose greeting and EHLO (or LHLO) went through against ``server``."""
    session = Session(server_hostname="fake.example", local_hostname="client.example", tls="none", **options)
    assert drive(session, server).result is None
    return session
