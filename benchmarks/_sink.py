"""A fast SMTP sink that counts round trips, run in a child process.

It speaks just enough SMTP for a client to send mail: EHLO (advertising PIPELINING, 8BITMIME and
CHUNKING), HELO, MAIL, RCPT, DATA and the message data up to the lone dot, BDAT (RFC 3030: each
chunk's octets counted off, the message ending with the chunk marked LAST), RSET, NOOP and QUIT,
with the sequence checks of RFC 5321 section 4.1.4 (503 out of order) and RFC 2920 section 3.1 (554
for DATA or BDAT with no recipient).  Everything it receives is discarded, and it never holds more
than one read of it.

Round trips.  The sink counts the client's *bursts*: everything the client sends between two
moments at which the sink has written a reply.  A burst starts with the first read after a reply
and ends with the next reply.  A client that waits for the reply to each command makes one burst
per command; a client that pipelines MAIL, every RCPT and DATA (RFC 2920) makes one burst for the
group.  Bursts whose first line is EHLO, HELO, NOOP or QUIT belong to the session, not to a
message, and are counted apart; the others (MAIL, RCPT, DATA, RSET and message data) are the
transaction's.

The loop is a plain :mod:`selectors` loop on non-blocking sockets, replies are queued per read and
written at once, and sockets have ``TCP_NODELAY`` set: the sink should cost the client as little
time as possible.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["SESSION_VERBS", "serve_sink"]

SERVER_NAME = b"sink.bench.test"

#: The commands whose bursts belong to the session rather than to a message.
SESSION_VERBS = frozenset({b"EHLO", b"HELO", b"NOOP", b"QUIT"})

_GREETING = b"220 " + SERVER_NAME + b" ESMTP benchmark sink\r\n"
_EHLO = b"250-" + SERVER_NAME + b"\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
_HELO = b"250 " + SERVER_NAME + b"\r\n"
_OK = b"250 2.0.0 Ok\r\n"
_MAIL_OK = b"250 2.1.0 Ok\r\n"
_RCPT_OK = b"250 2.1.5 Ok\r\n"
_DATA_GO = b"354 End data with <CR><LF>.<CR><LF>\r\n"
_QUEUED = b"250 2.0.0 Ok: queued\r\n"
_CHUNK_OK = b"250 2.0.0 Ok: chunk received\r\n"
_BYE = b"221 2.0.0 Bye\r\n"
_NESTED_MAIL = b"503 5.5.1 Error: nested MAIL command\r\n"
_NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
_NO_RCPT = b"554 5.5.1 Error: no valid recipients\r\n"
_SYNTAX = b"501 5.5.4 Syntax error in parameters\r\n"
_UNKNOWN = b"500 5.5.2 Error: command not recognized\r\n"
_TOO_LONG = b"500 5.5.2 Error: line too long\r\n"

# RFC 5321 section 4.5.3.1.4 allows 512 octets per command line; this sink is generous (SMTPUTF8
# addresses, many parameters) but bounded, so that garbage cannot grow its buffer without end.
_MAX_LINE = 4096
_READ_SIZE = 262144


class _Client:
    """One client connection: its buffers, its SMTP state and its counters."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.in_data = False
        self.bdat_left = 0  # octets of the current BDAT chunk still to read
        self.bdat_last = False
        self.data_fresh = False  # in DATA, nothing read yet: ".\r\n" alone ends an empty message
        self.has_mail = False
        self.rcpts = 0
        self.replied = True  # the greeting counts as a reply: the first read starts a burst
        self.burst_unclassified = False
        self.closing = False
        self.stats = {
            "transaction_bursts": 0,
            "session_bursts": 0,
            "messages": 0,
            "recipients": 0,
            "bytes_received": 0,
            "reads": 0,
        }

    def received(self, data: bytes) -> bytes:
        """Take one read's bytes; return the replies to write (possibly several, pipelined)."""
        self.stats["reads"] += 1
        self.stats["bytes_received"] += len(data)
        if self.replied:
            self.replied = False
            self.burst_unclassified = True
        self.inbuf += data
        replies = bytearray()
        while not self.closing:
            if self.bdat_left:
                reply = self._chunk_step()
            else:
                reply = self._data_step() if self.in_data else self._command_step()
            if reply is None:
                break
            replies += reply
        if replies:
            self.replied = True
        return bytes(replies)

    def _classify(self, verb: bytes | None) -> None:
        # The first thing a burst carries decides whose it is (see the module docstring).
        if self.burst_unclassified:
            self.burst_unclassified = False
            key = "session_bursts" if verb in SESSION_VERBS else "transaction_bursts"
            self.stats[key] += 1

    def _data_step(self) -> bytes | None:
        buf = self.inbuf
        if self.data_fresh:
            if len(buf) < 3 and b".\r\n".startswith(buf):
                return None  # maybe the start of an empty message's lone dot
            self._classify(None)
            if buf.startswith(b".\r\n"):
                del buf[:3]
                return self._end_of_data()
            self.data_fresh = False
        # RFC 5321 section 4.1.1.4: the data ends with CRLF "." CRLF.
        end = buf.find(b"\r\n.\r\n")
        if end < 0:
            # Keep only what could be the start of the terminator: memory stays bounded.
            del buf[: max(0, len(buf) - 4)]
            return None
        del buf[: end + 5]
        return self._end_of_data()

    def _chunk_step(self) -> bytes | None:
        buf = self.inbuf
        taken = min(len(buf), self.bdat_left)
        if taken:
            self._classify(None)  # chunk data in a new burst is the transaction's
        del buf[:taken]
        self.bdat_left -= taken
        if self.bdat_left:
            return None
        return self._end_of_data() if self.bdat_last else _CHUNK_OK

    def _end_of_data(self) -> bytes:
        self.stats["messages"] += 1
        self.stats["recipients"] += self.rcpts
        self.in_data = False
        self._reset()
        return _QUEUED

    def _reset(self) -> None:
        self.has_mail = False
        self.rcpts = 0

    def _command_step(self) -> bytes | None:
        buf = self.inbuf
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > _MAX_LINE:
                self.closing = True
                return _TOO_LONG
            return None
        line = bytes(buf[:end])
        del buf[: end + 2]
        verb = line[:4].upper()
        self._classify(verb)
        upper = line.upper()
        if verb == b"MAIL":
            if self.has_mail:
                return _NESTED_MAIL
            if not upper.startswith(b"MAIL FROM:"):
                return _SYNTAX
            self.has_mail = True
            return _MAIL_OK
        if verb == b"RCPT":
            if not self.has_mail:
                return _NEED_MAIL
            if not upper.startswith(b"RCPT TO:"):
                return _SYNTAX
            self.rcpts += 1
            return _RCPT_OK
        if verb == b"DATA" and len(line) == 4:
            if not self.has_mail:
                return _NEED_MAIL
            if not self.rcpts:
                return _NO_RCPT
            self.in_data = True
            self.data_fresh = True
            return _DATA_GO
        if verb == b"BDAT":
            words = line.split()
            last = len(words) == 3 and words[2].upper() == b"LAST"
            if len(words) not in (2, 3) or not words[1].isdigit() or (len(words) == 3 and not last):
                return _SYNTAX
            if not self.has_mail:
                return _NEED_MAIL
            if not self.rcpts:
                return _NO_RCPT
            self.bdat_left, self.bdat_last = int(words[1]), last
            if not self.bdat_left:
                return self._end_of_data() if last else _CHUNK_OK
            return b""  # the reply comes once the chunk is read
        if verb == b"EHLO":
            self._reset()
            return _EHLO
        if verb == b"HELO":
            self._reset()
            return _HELO
        if verb in (b"RSET", b"NOOP"):
            if verb == b"RSET":
                self._reset()
            return _OK
        if verb == b"QUIT":
            self.closing = True
            return _BYE
        return _UNKNOWN


def _send_some(client: _Client) -> None:
    try:
        sent = client.sock.send(client.outbuf)
    except BlockingIOError:
        return
    del client.outbuf[:sent]


def serve_sink(control: Connection) -> None:
    """Run the sink until ``control`` is closed by the parent.

    Sends ``("ready", port)`` on ``control`` once listening on 127.0.0.1, then one statistics
    dictionary per client connection when it ends.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    selector.register(control, selectors.EVENT_READ, "control")
    clients: dict[socket.socket, _Client] = {}
    control.send(("ready", listener.getsockname()[1]))

    def finish(client: _Client) -> None:
        selector.unregister(client.sock)
        del clients[client.sock]
        client.sock.close()
        # The parent may have gone (interrupted): then the control pipe reports end of file next.
        with contextlib.suppress(OSError):
            control.send(dict(client.stats))

    def update_interest(client: _Client) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
        selector.modify(client.sock, events, client)

    try:
        while True:
            for key, mask in selector.select():
                data: Any = key.data
                if data == "control":
                    return  # the parent closed its end (or sent anything): stop
                if data is None:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    client = _Client(sock)
                    clients[sock] = client
                    client.outbuf += _GREETING
                    selector.register(sock, selectors.EVENT_READ, client)
                    _send_some(client)
                    update_interest(client)
                    continue
                client = data
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = client.sock.recv(_READ_SIZE)
                    except BlockingIOError:
                        chunk = None
                    except OSError:
                        chunk = b""
                    if chunk == b"":
                        finish(client)
                        continue
                    if chunk:
                        client.outbuf += client.received(chunk)
                if client.outbuf:
                    try:
                        _send_some(client)
                    except OSError:
                        finish(client)
                        continue
                if client.closing and not client.outbuf:
                    finish(client)
                    continue
                update_interest(client)
    finally:
        for sock in list(clients):
            sock.close()
        selector.close()
        listener.close()
