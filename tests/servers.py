"""Real servers on loopback for the adapter tests, and the certificates they present.

Three things live here, each usable as a context manager and as a pytest fixture (load this module
with ``pytest_plugins = ["servers"]``; pytest puts this directory on ``sys.path``):

* :class:`CertBundle` -- a trusted test CA with a certificate for ``localhost``, ``127.0.0.1`` and
  ``::1``; an unrelated ("untrusted") CA with the same names; and a trusted certificate for the wrong
  name (``wrong.example``).
* :func:`running_smtpd` -- aiosmtpd in a thread on 127.0.0.1, recording every envelope it receives
  and every byte the client sent, with STARTTLS, implicit TLS, VERB, recipient refusal and a 421 to
  MAIL available as options.
* :class:`ScriptedServer` -- a raw socket server that plays a script of canned replies, for servers
  that break the rules on purpose.  It records every line it receives, so a test can check what the
  client did *not* send.

Every server listens on 127.0.0.1 only, on a port the kernel chose, and is stopped (listening
socket closed, thread joined) when its ``with`` block or fixture ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ESMTP_RULES",
    "LOOPBACK",
    "SERVER_NAME",
    "CertBundle",
    "Output",
    "ReceivedMessage",
    "RecordingHandler",
    "Rule",
    "SMTPServer",
    "ScriptedServer",
    "certs",
    "ehlo_reply",
    "make_certs",
    "running_smtpd",
    "scripted_server",
    "smtpd_factory",
]

LOOPBACK = "127.0.0.1"
SERVER_NAME = "mx.test"

# --- certificates ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CertBundle:
    """Test certificates made in memory with trustme.

    Attributes:
        ca: the CA the clients of the tests trust.
        server: issued by ``ca`` for ``localhost``, ``127.0.0.1`` and ``::1``.
        untrusted_ca: a CA nobody trusts.
        untrusted_server: issued by ``untrusted_ca`` for the same names as ``server``.
        wrong_host: issued by ``ca`` for ``wrong.example`` only.
    """

    ca: Any
    server: Any
    untrusted_ca: Any
    untrusted_server: Any
    wrong_host: Any

    def server_context(self, cert: Any = None) -> ssl.SSLContext:
        """A server-side context presenting ``cert`` (default: :attr:`server`)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.server).configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts :attr:`ca` and nothing else."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context

    def write_ca(self, path: Path) -> Path:
        """Write :attr:`ca`'s certificate as PEM to ``path`` and return the path."""
        self.ca.cert_pem.write_to_path(str(path))
        return path


def make_certs() -> CertBundle:
    """Create a fresh :class:`CertBundle`."""
    import trustme

    ca = trustme.CA(organization_name="smtp-sansio test CA")
    untrusted = trustme.CA(organization_name="smtp-sansio untrusted CA")
    names = ("localhost", "127.0.0.1", "::1")
    return CertBundle(
        ca=ca,
        server=ca.issue_cert(*names),
        untrusted_ca=untrusted,
        untrusted_server=untrusted.issue_cert(*names),
        wrong_host=ca.issue_cert("wrong.example"),
    )


@pytest.fixture(scope="session")
def certs() -> CertBundle:
    """The test certificates, made once per test session."""
    return make_certs()


# --- aiosmtpd ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMessage:
    """One message as aiosmtpd received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]
    rcpt_options: tuple[str, ...]
    content: bytes


class RecordingHandler:
    """An aiosmtpd handler that keeps every message and refuses some recipients.

    Recipients whose local part starts with ``refuse`` get ``550 5.1.1``; with ``later``,
    ``450 4.2.1``.  With ``mail_421``, MAIL is answered ``421 4.3.2`` and the connection closed.
    """

    def __init__(self, *, mail_421: bool = False) -> None:
        self.messages: list[ReceivedMessage] = []
        self.mail_421 = mail_421

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mail_421:
            # Hang up right after aiosmtpd has written the reply (it writes before yielding).
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 service shutting down"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 sender ok"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        local = address.rpartition("@")[0].lower() if "@" in address else address.lower()
        if local.startswith("refuse"):
            return f"550 5.1.1 <{address}>: recipient unknown"
        if local.startswith("later"):
            return f"450 4.2.1 <{address}>: mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 recipient ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(envelope.rcpt_options),
                content=bytes(envelope.original_content),
            )
        )
        return f"250 2.0.0 queued as {len(self.messages)}"


@dataclass(kw_only=True)
class SMTPServer:
    """A running aiosmtpd server.

    Attributes:
        host: the address it listens on.
        port: its port.
        handler: the :class:`RecordingHandler` with the messages received.
        transcript: every chunk the clients sent, decrypted after TLS, in order.
    """

    host: str
    port: int
    handler: RecordingHandler
    transcript: list[bytes] = field(default_factory=list)

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The messages received so far."""
        return self.handler.messages

    @property
    def lines(self) -> list[bytes]:
        """Every line the clients sent (commands and message data), without line endings."""
        return b"".join(self.transcript).splitlines()

    def commands(self) -> list[str]:
        """The upper-cased first word of every line the clients sent."""
        return [line.split(b" ", 1)[0].decode("ascii", "replace").upper() for line in self.lines if line]


def _smtp_classes() -> tuple[type[Any], type[Any]]:
    from aiosmtpd.smtp import SMTP

    class RecordingSMTP(SMTP):  # type: ignore[misc]
        def __init__(self, handler: Any, *, transcript: list[bytes], **kwargs: Any) -> None:
            super().__init__(handler, **kwargs)
            self._transcript = transcript

        def data_received(self, data: bytes) -> None:
            # Called with the decrypted bytes after STARTTLS and with implicit TLS too.
            self._transcript.append(bytes(data))
            super().data_received(data)

    class VerbSMTP(RecordingSMTP):
        async def smtp_VERB(self, arg: str | None) -> None:
            await self.push("250 2.0.0 verbose mode")

    return RecordingSMTP, VerbSMTP


@contextlib.contextmanager
def running_smtpd(
    *,
    certs: CertBundle | None = None,
    starttls: bool = False,
    require_starttls: bool = False,
    implicit_tls: bool = False,
    verb: bool = False,
    mail_421: bool = False,
    server_cert: Any = None,
    backlog: int = 16,
) -> Iterator[SMTPServer]:
    """Run aiosmtpd on 127.0.0.1 in a thread for the duration of a ``with`` block.

    Args:
        certs: the certificates; needed for any TLS option.
        starttls: offer STARTTLS.
        require_starttls: refuse everything but EHLO/NOOP/QUIT before STARTTLS (implies it).
        implicit_tls: TLS from the first byte.
        verb: accept VERB (otherwise it is answered 500).
        mail_421: answer MAIL with 421 and hang up.
        server_cert: the certificate to present (default ``certs.server``).
        backlog: how many connections may wait to be accepted (raise it for many at once).

    Yields:
        The running server.
    """
    from aiosmtpd.controller import Controller

    recording_smtp, verb_smtp = _smtp_classes()
    smtp_class = verb_smtp if verb else recording_smtp
    handler = RecordingHandler(mail_421=mail_421)
    transcript: list[bytes] = []
    kwargs: dict[str, Any] = {"server_hostname": SERVER_NAME, "ready_timeout": 10.0}
    if starttls or require_starttls or implicit_tls:
        if certs is None:
            raise ValueError("TLS options need certs")
        context = certs.server_context(server_cert)
        if implicit_tls:
            kwargs["ssl_context"] = context
        else:
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = require_starttls

    # Bound before the controller starts, so the port is ours: no window in which another process
    # could take a port found free, and no reliance on port=0 support in the controller.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, 0))
    listener.listen(backlog)
    port = listener.getsockname()[1]

    class BoundController(Controller):  # type: ignore[misc]
        def factory(self) -> Any:
            return smtp_class(self.handler, transcript=transcript, **self.SMTP_kwargs)

        def _create_server(self) -> Any:
            return self.loop.create_server(self._factory_invoker, sock=listener, ssl=self.ssl_context)

    controller = BoundController(handler, hostname=LOOPBACK, port=port, **kwargs)
    try:
        controller.start()
        # The controller's own readiness probe connected once and sent nothing; forget it.
        transcript.clear()
        yield SMTPServer(host=LOOPBACK, port=port, handler=handler, transcript=transcript)
    finally:
        with contextlib.suppress(AssertionError):
            controller.stop()
        listener.close()


@pytest.fixture
def smtpd_factory(certs: CertBundle) -> Iterator[Callable[..., SMTPServer]]:
    """Start aiosmtpd servers with :func:`running_smtpd` options; all are stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> SMTPServer:
            options.setdefault("certs", certs)
            return stack.enter_context(running_smtpd(**options))

        yield start


# --- the scripted hostile server --------------------------------------------------------------------

#: What a server sends: fixed bytes, or a function returning chunks sent one after another (which
#: may go on forever: sending stops when the client hangs up or the server is stopped).
Output = bytes | Callable[[], Iterable[bytes]]

# How often a blocked server thread looks whether it should stop.
_POLL = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """What the scripted server does with a line starting with ``prefix`` (case-insensitive).

    Attributes:
        prefix: the start of the line, e.g. ``b"EHLO"``.
        reply: what to send back.
        then: ``None`` to go on; ``"starttls"`` to run a TLS server handshake; ``"close"`` to hang
            up; ``"silent"`` to read and record without ever answering again; ``"data"`` to read
            message data up to the lone dot, record it and answer ``data_reply``.
        once: the rule applies to the first matching line only, later ones fall through to the
            next rule.
        data_reply: the answer to the end of the data, for ``then="data"``.
    """

    prefix: bytes
    reply: Output = b""
    then: str | None = None
    once: bool = False
    data_reply: bytes = b"250 2.0.0 accepted\r\n"


def ehlo_reply(*keywords: str, name: str = SERVER_NAME) -> bytes:
    """An EHLO reply announcing ``keywords``."""
    lines = [name, *keywords]
    return b"".join(
        f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode("ascii") for i, line in enumerate(lines)
    )


#: Rules of a plain, well-behaved ESMTP server, to append after a script's own rules.
ESMTP_RULES: tuple[Rule, ...] = (
    Rule(prefix=b"EHLO", reply=ehlo_reply("8BITMIME")),
    Rule(prefix=b"HELO", reply=b"250 mx.test\r\n"),
    Rule(prefix=b"MAIL", reply=b"250 2.1.0 ok\r\n"),
    Rule(prefix=b"RCPT", reply=b"250 2.1.5 ok\r\n"),
    Rule(prefix=b"DATA", reply=b"354 go ahead\r\n", then="data"),
    Rule(prefix=b"RSET", reply=b"250 2.0.0 ok\r\n"),
    Rule(prefix=b"NOOP", reply=b"250 2.0.0 ok\r\n"),
)

_QUIT_RULE = Rule(prefix=b"QUIT", reply=b"221 2.0.0 bye\r\n", then="close")


class _Stopped(Exception):
    """The server is being stopped, or the client went away."""


class ScriptedServer:
    """A raw-socket server on 127.0.0.1 that follows a script, one connection at a time.

    On each connection it sends ``greeting`` (unless ``None``: then it stays silent), then answers
    each line with the first applicable :class:`Rule` of ``rules``; QUIT, if no rule matches it, is
    answered 221 and the connection closed; any other unmatched line gets ``unmatched``.

    Attributes:
        host: the address it listens on.
        port: its port.
        lines: every line received on any connection (without CRLF), message data excepted.
        messages: the message data received after ``then="data"`` rules, dot-stuffing kept.
        connections: how many connections were accepted.
        errors: exceptions the server thread met (a failed TLS handshake, ...), for diagnosis.
    """

    def __init__(
        self,
        *,
        greeting: Output | None = b"220 mx.test ESMTP scripted\r\n",
        greeting_then: str | None = None,
        rules: Sequence[Rule] = (),
        unmatched: bytes = b"500 5.5.2 command not recognized\r\n",
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.greeting = greeting
        self.greeting_then = greeting_then
        self.rules = (*rules, _QUIT_RULE)
        self.unmatched = unmatched
        self.tls_context = tls_context
        self.host = LOOPBACK
        self.lines: list[bytes] = []
        self.messages: list[bytes] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(8)
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name=f"scripted-smtp-{self.port}", daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving in a thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: close the listening socket and wait for the thread; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._listener.close()
        if self._thread.is_alive():  # pragma: no cover - a bug in this module
            raise RuntimeError("the scripted server thread did not stop")

    def lines_after(self, prefix: bytes) -> list[bytes]:
        """The lines received after the first one starting with ``prefix`` (case-insensitive)."""
        for index, line in enumerate(self.lines):
            if line.upper().startswith(prefix.upper()):
                return self.lines[index + 1 :]
        raise AssertionError(f"no line starting with {prefix!r} was received: {self.lines!r}")

    def received(self, prefix: bytes) -> bool:
        """Whether any line received starts with ``prefix`` (case-insensitive)."""
        return any(line.upper().startswith(prefix.upper()) for line in self.lines)

    # --- the thread ---------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                self._converse(_Conn(conn, self._stop))
            except _Stopped:
                pass
            except Exception as exc:  # a test server must survive any client
                self.errors.append(exc)

    def _converse(self, conn: _Conn) -> None:
        used: set[int] = set()
        try:
            if self.greeting is None:
                self._silence(conn)
            conn.send(self.greeting)
            if self._after(conn, self.greeting_then, None):
                return
            while True:
                line = conn.read_line()
                if line is None:
                    return
                self.lines.append(line)
                rule = self._match(line, used)
                if rule is None:
                    conn.send(self.unmatched)
                    continue
                conn.send(rule.reply)
                if self._after(conn, rule.then, rule):
                    return
        finally:
            conn.close()

    def _match(self, line: bytes, used: set[int]) -> Rule | None:
        upper = line.upper()
        for index, rule in enumerate(self.rules):
            if index in used or not upper.startswith(rule.prefix.upper()):
                continue
            if rule.once:
                used.add(index)
            return rule
        return None

    def _after(self, conn: _Conn, then: str | None, rule: Rule | None) -> bool:
        # Performs the action after a reply; True when the conversation is over.
        if then is None:
            return False
        if then == "close":
            return True
        if then == "silent":
            self._silence(conn)
        if then == "starttls":
            if self.tls_context is None:
                raise ValueError("then='starttls' needs tls_context")
            conn.start_tls(self.tls_context)
            return False
        if then == "data":
            self.messages.append(conn.read_data())
            conn.send(rule.data_reply if rule else b"250 ok\r\n")
            return False
        raise ValueError(f"unknown action {then!r}")

    def _silence(self, conn: _Conn) -> None:
        # Never answer again, but keep recording until the client leaves or the server stops.
        while (line := conn.read_line()) is not None:
            self.lines.append(line)
        raise _Stopped


class _Conn:
    # One accepted connection, with reads and writes that give up when the server is stopped.

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.buffer = b""
        sock.settimeout(_POLL)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _recv(self) -> bytes:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return b""

    def read_line(self) -> bytes | None:
        """The next line without its line ending, or None at EOF."""
        while b"\n" not in self.buffer:
            data = self._recv()
            if not data:
                return None
            self.buffer += data
            if len(self.buffer) > 1 << 20:
                raise _Stopped  # a client sending an endless line: give up on it
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.removesuffix(b"\r")

    def read_data(self) -> bytes:
        """Message data up to and excluding the CRLF.CRLF that ends it."""
        while True:
            end = self.buffer.find(b"\r\n.\r\n")
            if self.buffer.startswith(b".\r\n"):
                self.buffer = self.buffer[3:]
                return b""
            if end >= 0:
                data, self.buffer = self.buffer[: end + 2], self.buffer[end + 5 :]
                return data
            data = self._recv()
            if not data:
                raise _Stopped
            self.buffer += data

    def send(self, output: Output) -> None:
        chunks: Iterable[bytes] = [output] if isinstance(output, bytes) else output()
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                if self.stop.is_set():
                    raise _Stopped
                try:
                    sent = self.sock.send(view)
                except TimeoutError:
                    continue
                except OSError:
                    raise _Stopped from None  # the client hung up
                view = view[sent:]

    def start_tls(self, context: ssl.SSLContext) -> None:
        if self.buffer:
            raise _Stopped  # the client sent plaintext after STARTTLS: not a TLS client
        tls = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        self.sock = tls
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                tls.do_handshake()
                return
            except TimeoutError:
                continue


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Start :class:`ScriptedServer` instances (same arguments); all are stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> ScriptedServer:
            return stack.enter_context(ScriptedServer(**options))

        yield start
