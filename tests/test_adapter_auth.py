"""Authentication through the blocking adapter, against real servers on loopback.

The peer is aiosmtpd, run in a thread by :func:`running_auth_smtpd` below: besides its own PLAIN and
LOGIN it gets XOAUTH2, OAUTHBEARER and EXTERNAL from this file's :class:`AuthHandler`, and a TLS
context that may ask for a client certificate.  The server records what it received (every byte
after TLS is decrypted, each AUTH attempt as it decoded it, the peer certificate and authenticated
identity of every message), so each test checks the server's side, not only the client's.  For the
mechanisms aiosmtpd lacks (CRAM-MD5, SCRAM) the private Postfix of postfix.py is the peer.

Every connection is made by :func:`send`, the one function here that calls an adapter: running the
file against the asyncio or trio adapter means parametrising that function only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import secrets
import socket
import ssl
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword
from postfix import queue_id_of
from servers import LOOPBACK, SERVER_NAME, CertBundle

from smtp_sansio import (
    DEFAULT_MECHANISMS,
    AuthenticationError,
    LocalProtocolError,
    RemoteProtocolError,
    SecurityError,
    SendResult,
)
from smtp_sansio.adapters._netrc import CredentialsError
from smtp_sansio.adapters.sync import SMTPClient

USERS = {"alice": "alice-Pa55-w0rd", "bob": "bob-0ther-Secret"}
OAUTH_USER = "alice@example.org"
# The client's options common to every test: short timeouts, so a client and a server waiting for
# each other fail a test quickly instead of hanging it.
CLIENT: dict[str, Any] = {"local_hostname": "client.test", "timeout": 20}


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def new_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = f"rcpt-{uuid.uuid4().hex[:12]}@example.net"
    msg["Subject"] = "authenticated"
    msg.set_content("Sent after authenticating.\n")
    return msg


# --- the one call of the adapter ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """What :func:`send` returns: the result, and what the client knew about the connection."""

    result: SendResult
    authenticated: str | None
    offered: tuple[str, ...]


def send(*, message: EmailMessage | None = None, seen: list[Any] | None = None, **options: Any) -> Sent:
    """Connect with ``options`` (those of SMTPClient), send one message and quit.

    ``seen``, if given, receives the client object before it connects, so that a test can look at
    it after a failure too.
    """
    client = SMTPClient(**{**CLIENT, **options})
    if seen is not None:
        seen.append(client)
    with client:
        result = client.send_message(message if message is not None else new_message())
        return Sent(result=result, authenticated=client.authenticated,
                    offered=tuple(client.capabilities.auth_mechanisms))


# --- an aiosmtpd server with more mechanisms, client certificates and records -----------------------


@dataclass(slots=True)
class Attempt:
    """One AUTH exchange, as the server decoded it."""

    mechanism: str
    identity: str | None = None  # the user, the authzid, or the certificate's e-mail address
    secret: str | None = None  # the password or the token received
    initial: bytes | None = None  # the decoded initial response, for the custom mechanisms
    fields: dict[str, str] = field(default_factory=dict)  # the key=value pairs of the OAuth responses
    error_answer: bytes | None = None  # the client's answer to an error challenge
    accepted: bool = False


@dataclass(frozen=True, slots=True)
class Received:
    """One message, with who sent it."""

    content: bytes
    auth: tuple[str, str] | None  # (mechanism, identity) the connection authenticated as, if any
    peer: str | None  # the e-mail address of the verified client certificate, if one was presented


def cert_identity(peer: dict[str, Any] | None) -> str | None:
    if not peer:
        return None
    return next((value for kind, value in peer.get("subjectAltName", ()) if kind == "email"), "?")


class AuthHandler:
    """aiosmtpd handler: PLAIN and LOGIN (aiosmtpd's own) checked against ``users``, plus XOAUTH2,
    OAUTHBEARER and EXTERNAL as ``auth_MECH`` hooks.  A token is good if it is in ``tokens``
    (token to user); EXTERNAL accepts any verified client certificate whose address is in
    ``external`` (all of them if ``external`` is None).  A refused token gets the error challenge
    of RFC 7628 section 3.2.2 and then 535.

    (aiosmtpd takes every attribute whose name starts with ``auth_`` for a mechanism: none other
    may have such a name.)
    """

    ERROR: ClassVar[dict[str, str]] = {"status": "invalid_token", "scope": "https://mail.example/"}

    def __init__(self, users: dict[str, str]) -> None:
        self.users = dict(users)
        self.tokens: dict[str, str] = {}
        self.external: set[str] | None = None
        self.attempts: list[Attempt] = []
        self.messages: list[Received] = []

    # aiosmtpd's authenticator, for its own PLAIN and LOGIN
    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        ok = self.users.get(login) == password
        self.attempts.append(Attempt(mechanism, identity=login, secret=password, accepted=ok))
        return AuthResult(success=ok, handled=False, auth_data=(mechanism, login) if ok else None)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        initial = await _initial_response(server, args)
        if initial is None:
            return AuthResult(success=False, handled=True)
        # user=USER ^A auth=Bearer TOKEN ^A ^A
        pairs = dict(part.split("=", 1) for part in initial.decode().split("\x01") if "=" in part)
        attempt = Attempt("XOAUTH2", identity=pairs.get("user"), initial=initial, fields=pairs,
                          secret=pairs.get("auth", "").removeprefix("Bearer "))
        return await self._check_token(server, attempt)

    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> AuthResult:
        initial = await _initial_response(server, args)
        if initial is None:
            return AuthResult(success=False, handled=True)
        # gs2-header ^A host=... ^A port=... ^A auth=Bearer TOKEN ^A ^A   (RFC 7628 section 3.1)
        gs2, _, rest = initial.decode().partition("\x01")
        authzid = next((part[2:] for part in gs2.split(",") if part.startswith("a=")), None)
        pairs = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
        attempt = Attempt("OAUTHBEARER", identity=authzid, initial=initial, fields=pairs,
                          secret=pairs.get("auth", "").removeprefix("Bearer "))
        return await self._check_token(server, attempt)

    async def auth_EXTERNAL(self, server: Any, args: list[str]) -> AuthResult:
        initial = await _initial_response(server, args)
        if initial is None:
            return AuthResult(success=False, handled=True)
        identity = cert_identity(server.transport.get_extra_info("peercert"))
        ok = identity is not None and (self.external is None or identity in self.external)
        self.attempts.append(Attempt("EXTERNAL", identity=identity, initial=initial, accepted=ok))
        return AuthResult(success=ok, handled=False, auth_data=("EXTERNAL", identity) if ok else None)

    async def _check_token(self, server: Any, attempt: Attempt) -> AuthResult:
        self.attempts.append(attempt)
        user = self.tokens.get(attempt.secret or "")
        if user is not None and attempt.identity in (user, None):
            attempt.accepted = True
            return AuthResult(success=True, auth_data=(attempt.mechanism, user))
        answer = await server.challenge_auth(json.dumps(self.ERROR).encode())
        if answer is MISSING:  # the client cancelled with "*": aiosmtpd has answered 501
            return AuthResult(success=False, handled=True)
        attempt.error_answer = answer
        return AuthResult(success=False, handled=False, message="535 5.7.8 invalid token")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        peer = cert_identity(server.transport.get_extra_info("peercert"))
        content = bytes(envelope.original_content)
        self.messages.append(Received(content=content, auth=session.auth_data, peer=peer))
        return "250 2.0.0 queued"


async def _initial_response(server: Any, args: list[str]) -> bytes | None:
    # The initial response on the AUTH line, or, without one, the answer to an empty challenge
    # (RFC 4954 section 4).  None when the client cancelled or sent bad base64 (answered already).
    if len(args) == 1:
        answer = await server.challenge_auth(b"")
        return None if answer is MISSING else answer
    if args[1] == "=":
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 cannot decode base64")
        return None


class AuthServer:
    """A running :func:`running_auth_smtpd`: its address, handler and records."""

    def __init__(self, port: int, handler: AuthHandler) -> None:
        self.host = LOOPBACK
        self.port = port
        self.handler = handler
        self.transcript: list[bytes] = []  # every chunk received, decrypted after TLS
        self.connections = 0

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def attempts(self) -> list[Attempt]:
        return self.handler.attempts

    @property
    def lines(self) -> list[bytes]:
        return b"".join(self.transcript).splitlines()

    def commands(self) -> list[str]:
        """The upper-cased first word of every non-empty line received."""
        return [line.split(b" ", 1)[0].decode("ascii", "replace").upper() for line in self.lines if line]

    def connections_made(self) -> int:
        """How many connections clients made, certain to count one that is still being accepted.

        A connection of our own is made and greeted first: the server accepts in order, so by the
        time it greets this one it has seen every connection made before.
        """
        with socket.create_connection((self.host, self.port), timeout=10) as probe:
            probe.recv(1024)
        return self.connections - 1


class _RecordingSMTP(SMTP):
    def __init__(self, handler: Any, *, record: AuthServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._record = record

    def connection_made(self, transport: Any) -> None:
        if self._original_transport is None:  # not the TLS layer of a STARTTLS
            self._record.connections += 1
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._record.transcript.append(bytes(data))
        super().data_received(data)


@contextlib.contextmanager
def running_auth_smtpd(
    certs: CertBundle,
    *,
    starttls: bool = True,
    client_certs: str | None = None,
    auth_require_tls: bool = True,
    exclude: tuple[str, ...] = (),
    port: int = 0,
    tls_maximum: ssl.TLSVersion | None = None,
) -> Iterator[AuthServer]:
    """aiosmtpd on 127.0.0.1 in a thread, with :class:`AuthHandler`, for a ``with`` block.

    Args:
        certs: the test certificates.
        starttls: offer STARTTLS (AUTH is offered after it only, unless ``auth_require_tls`` is off).
        client_certs: ``"optional"`` or ``"required"`` to ask for a client certificate issued by
            the test CA.
        auth_require_tls: aiosmtpd's option: AUTH only after STARTTLS.
        exclude: mechanisms not to offer.
        port: the port to listen on; 0 for one the kernel chooses.
        tls_maximum: the highest TLS version to accept.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, port))
        listener.listen(16)
    except OSError:
        listener.close()
        raise
    handler = AuthHandler(USERS)
    server = AuthServer(listener.getsockname()[1], handler)
    kwargs: dict[str, Any] = {
        "server_hostname": SERVER_NAME,
        "ready_timeout": 10.0,
        "auth_require_tls": auth_require_tls,
        "auth_exclude_mechanism": list(exclude),
        "authenticator": handler.authenticate,
    }
    if starttls:
        context = certs.server_context()
        if client_certs is not None:
            context.verify_mode = {"optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}[client_certs]
            certs.ca.configure_trust(context)
        if tls_maximum is not None:
            context.maximum_version = tls_maximum
        kwargs["tls_context"] = context

    class BoundController(Controller):
        def factory(self) -> Any:
            return _RecordingSMTP(self.handler, record=server, **self.SMTP_kwargs)

        def _create_server(self) -> Any:
            return self.loop.create_server(self._factory_invoker, sock=listener, ssl=self.ssl_context)

    controller = BoundController(handler, hostname=LOOPBACK, port=server.port, **kwargs)
    try:
        controller.start()
        # The controller's readiness probe connected once, was greeted, and left.
        server.connections = 0
        server.transcript.clear()
        yield server
    finally:
        with contextlib.suppress(AssertionError):
            controller.stop()
        listener.close()


@pytest.fixture
def auth_smtpd(certs: CertBundle) -> Iterator[Callable[..., AuthServer]]:
    """Start :func:`running_auth_smtpd` servers (same options); all are stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> AuthServer:
            return stack.enter_context(running_auth_smtpd(certs, **options))

        yield start


def over_tls(server: AuthServer, certs: CertBundle) -> dict[str, Any]:
    """The options that reach ``server`` over verified STARTTLS."""
    return {"host": server.host, "port": server.port, "ssl_context": certs.client_context()}


# --- OAuth 2 bearer tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mechanisms", "expected"),
    [(None, "OAUTHBEARER"), (["XOAUTH2"], "XOAUTH2"), (["OAUTHBEARER"], "OAUTHBEARER")],
)
def test_a_token_provider_is_called_once_per_connection(auth_smtpd, certs, mechanisms, expected):
    server = auth_smtpd()
    issued: list[str] = []

    def provider() -> str:
        token = f"ya29.fresh-{len(issued) + 1}-{secrets.token_urlsafe(12)}"
        issued.append(token)
        server.handler.tokens[token] = OAUTH_USER  # valid from now on, like a real token
        return token

    for _ in range(2):
        sent = send(**over_tls(server, certs), username=OAUTH_USER, oauth_token=provider,
                    auth_mechanisms=mechanisms)
        assert sent.authenticated == expected
    assert len(issued) == 2 and issued[0] != issued[1]
    # Each connection carried the token fetched for it, and nothing else was tried.
    assert [(a.mechanism, a.identity, a.secret, a.accepted) for a in server.attempts] == [
        (expected, OAUTH_USER, token, True) for token in issued
    ]
    assert [message.auth for message in server.messages] == [(expected, OAUTH_USER)] * 2


def test_oauthbearer_names_the_server_and_port_it_was_sent_to(auth_smtpd, certs):
    server = auth_smtpd()
    server.handler.tokens["tok-for-this-server"] = OAUTH_USER
    send(**over_tls(server, certs), username=OAUTH_USER, oauth_token="tok-for-this-server",
         auth_mechanisms=["OAUTHBEARER"])
    [attempt] = server.attempts
    assert attempt.identity == OAUTH_USER  # gs2 header a=
    assert attempt.fields == {
        "host": LOOPBACK, "port": str(server.port), "auth": "Bearer tok-for-this-server"
    }
    assert attempt.initial.startswith(f"n,a={OAUTH_USER},\x01".encode())
    assert attempt.initial.endswith(b"\x01\x01")


@pytest.mark.parametrize(("mechanism", "answer"), [("XOAUTH2", b""), ("OAUTHBEARER", b"\x01")])
def test_a_refused_token_goes_through_the_error_challenge(auth_smtpd, certs, mechanism, answer):
    server = auth_smtpd()
    server.handler.tokens["the-good-token"] = OAUTH_USER
    with pytest.raises(AuthenticationError, match=f"refused the credentials of {OAUTH_USER} with {mechanism}"
                       ) as info:
        send(**over_tls(server, certs), username=OAUTH_USER, oauth_token="an-expired-token",
             auth_mechanisms=[mechanism])
    [attempt] = server.attempts
    assert (attempt.secret, attempt.accepted) == ("an-expired-token", False)
    # The client answered the JSON challenge as its mechanism says (RFC 7628 section 3.2.3: ^A;
    # XOAUTH2: an empty line), the server then said 535, and the client reports its JSON.
    assert attempt.error_answer == answer
    assert info.value.reply is not None and info.value.reply.code == 535
    assert '"status": "invalid_token"' in str(info.value)
    commands = server.commands()
    assert commands.count("AUTH") == 1 and "MAIL" not in commands and commands[-1] == "QUIT"
    assert server.messages == []


def test_a_token_too_long_for_the_auth_line_follows_an_empty_challenge(auth_smtpd, certs):
    # Microsoft's tokens run to well over a thousand characters: with one, the AUTH line would pass
    # 512 octets, so the initial response goes after the server's empty challenge (RFC 4954 4).
    token = secrets.token_urlsafe(450)  # 600 characters; aiosmtpd reads lines of up to 1000 octets
    server = auth_smtpd()
    server.handler.tokens[token] = OAUTH_USER
    sent = send(**over_tls(server, certs), username=OAUTH_USER, oauth_token=token,
                auth_mechanisms=["OAUTHBEARER"])
    assert sent.authenticated == "OAUTHBEARER"
    assert b"AUTH OAUTHBEARER" in server.lines  # alone on its line
    [attempt] = server.attempts
    assert attempt.secret == token and attempt.accepted
    assert all(len(line) <= 1000 for line in server.lines)


# --- TLS client certificates and EXTERNAL ---------------------------------------------------------------


@pytest.fixture
def client_certs(certs, tmp_path) -> SimpleNamespace:
    """Client certificates of the test CA for alice and bob: each as one PEM with the key, and as
    separate certificate and key files; key-holding files 0600."""
    files = SimpleNamespace()
    for name in ("alice", "bob"):
        leaf = certs.ca.issue_cert(f"{name}@example.org")
        both, cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(both))
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        both.chmod(0o600)
        key.chmod(0o600)
        setattr(files, name, SimpleNamespace(pem=both, cert=cert, key=key))
    return files


@pytest.mark.parametrize("form", ["one PEM", "pair", "table"])
def test_the_client_certificate_reaches_a_server_that_requires_one(auth_smtpd, certs, client_certs, form):
    server = auth_smtpd(client_certs="required")
    alice, bob = client_certs.alice, client_certs.bob
    other_port = 1 if server.port != 1 else 2
    option = {
        "one PEM": str(alice.pem),
        "pair": (alice.cert, str(alice.key)),
        # The seed's rows, key first; the first row for this host and port wins.
        "table": [
            ("other.example", None, bob.key, bob.cert),
            (LOOPBACK, other_port, bob.key, bob.cert),
            (LOOPBACK, server.port, str(alice.key), str(alice.cert)),
            (LOOPBACK, None, bob.key, bob.cert),
        ],
    }[form]
    sent = send(**over_tls(server, certs), client_cert=option)
    assert sent.authenticated is None
    [received] = server.messages
    assert received.peer == "alice@example.org"
    assert received.auth is None
    assert "AUTH" not in server.commands()  # a certificate alone is not a SASL exchange


def test_a_client_certificate_table_without_a_matching_row_presents_none(auth_smtpd, certs, client_certs):
    server = auth_smtpd(client_certs="optional")
    alice = client_certs.alice
    table = [
        ("other.example", None, alice.key, alice.cert),
        (LOOPBACK, 1 if server.port != 1 else 2, alice.key, alice.cert),
        ("localhost", server.port, alice.key, alice.cert),  # names are compared, never resolved
    ]
    send(**over_tls(server, certs), client_cert=table)
    [received] = server.messages
    assert received.peer is None


@pytest.mark.parametrize(
    ("version", "error", "words"),
    [
        # TLS 1.2: the server checks the certificate during the handshake, which fails.
        (ssl.TLSVersion.TLSv1_2, SecurityError, "handshake"),
        # TLS 1.3: the client's handshake is over before the server checks; asyncio then closes
        # without sending the alert, so all the client can see is the end of the connection.
        (ssl.TLSVersion.TLSv1_3, RemoteProtocolError, "closed the connection"),
    ],
    ids=["TLS 1.2", "TLS 1.3"],
)
def test_a_server_that_requires_a_certificate_refuses_a_client_without_one(auth_smtpd, certs, version, error,
                                                                          words):
    server = auth_smtpd(client_certs="required", tls_maximum=version)
    with pytest.raises(error, match=words):
        send(**over_tls(server, certs))
    assert "MAIL" not in server.commands()
    assert server.messages == []


def test_external_authenticates_with_the_client_certificate(auth_smtpd, certs, client_certs):
    server = auth_smtpd(client_certs="optional")
    sent = send(**over_tls(server, certs), client_cert=client_certs.alice.pem, auth_mechanisms=["EXTERNAL"])
    assert sent.authenticated == "EXTERNAL"
    assert b"AUTH EXTERNAL =" in server.lines  # RFC 4422 appendix A: an empty authzid
    [attempt] = server.attempts
    assert (attempt.mechanism, attempt.identity, attempt.initial, attempt.accepted) == (
        "EXTERNAL", "alice@example.org", b"", True
    )
    [received] = server.messages
    assert received.auth == ("EXTERNAL", "alice@example.org")
    assert received.peer == "alice@example.org"


def test_external_refused_for_that_certificate(auth_smtpd, certs, client_certs):
    server = auth_smtpd(client_certs="optional")
    server.handler.external = {"alice@example.org"}
    with pytest.raises(AuthenticationError, match="refused the credentials of the client certificate"):
        send(**over_tls(server, certs), client_cert=client_certs.bob.pem, auth_mechanisms=["EXTERNAL"])
    [attempt] = server.attempts
    assert (attempt.identity, attempt.accepted) == ("bob@example.org", False)
    assert "MAIL" not in server.commands()


def test_a_client_certificate_sends_no_auth_unless_external_is_named(auth_smtpd, certs, client_certs):
    # A certificate is often for the server's own checks (a relay allowed by fingerprint): without
    # auth_mechanisms naming EXTERNAL, the client does not start an AUTH nobody asked for.
    server = auth_smtpd(client_certs="optional")
    sent = send(**over_tls(server, certs), client_cert=client_certs.alice.pem)
    assert "EXTERNAL" in sent.offered
    assert sent.authenticated is None
    assert "AUTH" not in server.commands()
    assert server.messages[0].peer == "alice@example.org"


# --- never in plaintext, unless allowed ----------------------------------------------------------------


@pytest.mark.parametrize("tls", ["none", "opportunistic"])
def test_no_credentials_over_plaintext(auth_smtpd, tls):
    # The server offers AUTH without TLS and no STARTTLS: the client must refuse, before any AUTH.
    server = auth_smtpd(starttls=False, auth_require_tls=False)
    seen: list[Any] = []
    with pytest.raises(SecurityError, match=r"refusing to send credentials .* over plaintext"):
        send(host=server.host, port=server.port, tls=tls, username="alice", password=USERS["alice"],
             seen=seen)
    assert "PLAIN" in seen[0].capabilities.auth_mechanisms  # it was offered
    assert server.commands() == ["EHLO", "QUIT"]
    assert server.attempts == []
    assert USERS["alice"].encode() not in b"".join(server.transcript)


def test_no_credentials_over_unverified_tls(auth_smtpd):
    server = auth_smtpd()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(SecurityError, match="not verified"):
        send(host=server.host, port=server.port, ssl_context=context, username="alice",
             password=USERS["alice"])
    # The transcript after STARTTLS is decrypted: no AUTH was in it either.
    assert server.commands() == ["EHLO", "STARTTLS", "EHLO", "QUIT"]
    assert server.attempts == []


@pytest.mark.parametrize("tls", ["none", "opportunistic"])
def test_allow_insecure_auth_sends_them_in_plaintext(auth_smtpd, tls):
    server = auth_smtpd(starttls=False, auth_require_tls=False)
    sent = send(host=server.host, port=server.port, tls=tls, username="alice", password=USERS["alice"],
                auth_mechanisms=["PLAIN"], allow_insecure_auth=True)
    assert sent.authenticated == "PLAIN"
    assert f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + USERS['alice'])}".encode() in server.lines
    assert server.messages[0].auth == ("PLAIN", "alice")


# --- where the credentials come from -----------------------------------------------------------------


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def submission_smtpd(certs) -> Iterator[AuthServer]:
    """The server on the port the services database calls "submission" (587), when it is free."""
    port = socket.getservbyname("submission", "tcp")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_auth_smtpd(certs, port=port))
        except PermissionError:
            pytest.skip(f"binding port {port} needs privileges")
        except OSError as exc:
            pytest.skip(f"port {port} is not free on {LOOPBACK}: {exc.strerror}")
        yield server


@pytest.mark.parametrize("client_port", ["submission", 587])
@pytest.mark.parametrize("source", ["table", "netrc"])
def test_credentials_matched_by_port_number_or_service_name(submission_smtpd, certs, tmp_path, source,
                                                           client_port):
    server = submission_smtpd
    assert server.port == 587
    if source == "table":
        credentials: Any = [(LOOPBACK, "smtp", "bob", USERS["bob"]),
                            ("localhost", "submission", "bob", USERS["bob"]),
                            (LOOPBACK, "submission" if client_port == 587 else 587, "alice", USERS["alice"])]
    else:
        credentials = write_private(tmp_path / "authinfo", (
            f"machine {LOOPBACK} port smtp login bob password {USERS['bob']}\n"
            f"machine {LOOPBACK} port submission login alice password {USERS['alice']}\n"
            f"default login bob password {USERS['bob']}\n"
        ))
    sent = send(host=LOOPBACK, port=client_port, ssl_context=certs.client_context(), credentials=credentials)
    assert sent.authenticated == "PLAIN"  # the strongest of what aiosmtpd offers
    assert [(a.identity, a.secret, a.accepted) for a in server.attempts] == [("alice", USERS["alice"], True)]


@pytest.mark.parametrize(
    ("entry", "asked"),
    [
        ("login alice", ["password"]),
        (f"password {USERS['alice']}", ["username"]),
        ("", ["username", "password"]),
        (f"login alice password {USERS['alice']}", []),
    ],
    ids=["password missing", "login missing", "both missing", "nothing missing"],
)
def test_ask_is_asked_for_exactly_what_is_missing_before_connecting(auth_smtpd, certs, tmp_path, entry,
                                                                    asked):
    server = auth_smtpd()
    netrc = write_private(tmp_path / "netrc", f"machine {LOOPBACK} port {server.port} {entry}\n")
    questions: list[tuple[str, str, int, int]] = []

    def ask(what: str, host: str, port: int) -> str:
        questions.append((what, host, port, server.connections))
        return {"username": "alice", "password": USERS["alice"]}[what]

    send(**over_tls(server, certs), credentials=netrc, ask=ask)
    # Asked with the host and port connected to, and before any connection was made.
    assert questions == [(what, LOOPBACK, server.port, 0) for what in asked]
    assert server.messages[0].auth == ("PLAIN", "alice")


def test_a_netrc_others_can_read_is_refused_before_connecting(auth_smtpd, certs, tmp_path):
    server = auth_smtpd()
    netrc = write_private(tmp_path / "netrc", f"machine {LOOPBACK} login alice password {USERS['alice']}\n",
                          mode=0o644)
    with pytest.raises(CredentialsError, match="accessible to the group or others") as info:
        send(**over_tls(server, certs), credentials=str(netrc))
    assert isinstance(info.value, LocalProtocolError)
    assert USERS["alice"] not in str(info.value)
    assert server.connections_made() == 0


def test_ask_giving_up_is_refused_before_connecting(auth_smtpd, certs):
    server = auth_smtpd()
    with pytest.raises(CredentialsError, match="no password for alice"):
        send(**over_tls(server, certs), username="alice", ask=lambda what, host, port: None)
    assert server.connections_made() == 0


# --- no secret anywhere -------------------------------------------------------------------------------


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


def exposed(run: Callable[..., Sent], trace_mode: str, caplog, capsys,
            **options: Any) -> tuple[str, str, Any]:
    """Run ``run(**options)`` with a trace, and gather everything its user could get to see.

    Returns:
        (all of it as one text, the trace alone, the exception raised or None)
    """
    caplog.set_level(logging.DEBUG)  # every logger, every level
    own = logging.Logger(f"leak-check-{uuid.uuid4().hex}", logging.DEBUG)  # noqa: LOG001 - a private logger
    collector = _Collector()
    own.addHandler(collector)
    seen: list[Any] = []
    error: BaseException | None = None
    shown: list[str] = []
    try:
        sent = run(trace=True if trace_mode == "trace=True" else own, seen=seen, **options)
    except Exception as exc:
        error = exc
        shown += [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.args)]
        reply = getattr(exc, "reply", None)
        shown += [str(reply), repr(reply)]
    else:
        shown += [repr(sent), repr(sent.result), str(sent.result.reply)]
    for client in seen:
        # Its repr, and the repr of everything it holds (a dataclass there would show its fields).
        shown += [repr(client), repr(client.capabilities), repr(client.authenticated),
                  repr(getattr(client, "__dict__", {}))]
    # The client's own logging (aiosmtpd's, "mail.log", is the server's and not ours to judge).
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [record for record in caplog.records if not record.name.startswith("mail.log")]
    logged = [formatter.format(record) for record in records] + collector.texts
    out, err = capsys.readouterr()
    trace = "\n".join(logged)
    return "\n".join([*shown, trace, out, err]), trace, error


def secrets_of(user: str, password: str | None = None, token: str | None = None, *,
               host: str = LOOPBACK, port: int = 0) -> dict[str, str]:
    """Every form of a secret that must never be shown, by name."""
    forms: dict[str, str] = {}
    if password is not None:
        forms |= {
            "password": password,
            "base64 of the password": b64(password),
            "base64 of the PLAIN response": b64(f"\0{user}\0{password}"),
        }
    if token is not None:
        forms |= {
            "token": token,
            "base64 of the token": b64(token),
            "base64 of the XOAUTH2 response": b64(f"user={user}\x01auth=Bearer {token}\x01\x01"),
            "base64 of the OAUTHBEARER response":
                b64(f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"),
        }
    return forms


def assert_nothing_shown(text: str, *secret_forms: dict[str, str]) -> None:
    for forms in secret_forms:
        for name, secret in forms.items():
            assert secret not in text, f"the {name} was shown"


@pytest.mark.parametrize("trace_mode", ["trace=True", "trace=logger"])
@pytest.mark.parametrize("right", [True, False], ids=["accepted", "refused"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"])
def test_no_secret_is_shown_aiosmtpd(auth_smtpd, certs, caplog, capsys, mechanism, right, trace_mode):
    server = auth_smtpd()
    if mechanism in ("PLAIN", "LOGIN"):
        user = "alice"
        password = USERS["alice"] if right else "a-Wrong-pa55word"
        forms = secrets_of(user, password)
        credentials: dict[str, Any] = {"username": user, "password": password}
        wire_form = "base64 of the PLAIN response" if mechanism == "PLAIN" else "base64 of the password"
        on_the_wire = forms[wire_form]
    else:
        user, token = OAUTH_USER, f"ya29.{secrets.token_urlsafe(24)}"
        if right:
            server.handler.tokens[token] = user
        forms = secrets_of(user, token=token, port=server.port)
        credentials = {"username": user, "oauth_token": lambda: token}
        on_the_wire = forms[f"base64 of the {mechanism} response"]

    text, trace, error = exposed(send, trace_mode, caplog, capsys, **over_tls(server, certs),
                                 auth_mechanisms=[mechanism], **credentials)

    # What was searched for really went to the server, and the trace really covered the exchange.
    assert on_the_wire.encode() in b"".join(server.transcript)
    assert f"C: AUTH {mechanism}" in trace
    assert [a.accepted for a in server.attempts] == [right]
    assert isinstance(error, AuthenticationError) is not right
    assert_nothing_shown(text, forms)


@pytest.mark.postfix
@pytest.mark.parametrize("trace_mode", ["trace=True", "trace=logger"])
@pytest.mark.parametrize("right", [True, False], ids=["accepted", "refused"])
@pytest.mark.parametrize("mechanism", DEFAULT_MECHANISMS)
def test_no_secret_is_shown_postfix(postfix, certs, caplog, capsys, mechanism, right, trace_mode):
    password = postfix.users["alice"] if right else "a-Wrong-pa55word"
    since = postfix.log_position()
    text, trace, error = exposed(send, trace_mode, caplog, capsys, host=postfix.host,
                                 port=postfix.submission_port, ssl_context=certs.client_context(),
                                 username="alice", password=password, auth_mechanisms=[mechanism])
    assert f"C: AUTH {mechanism}" in trace
    if right:
        assert error is None
        queue_id = queue_id_of(text)
        postfix.wait_for_log(rf": {queue_id}: client=.*, sasl_method={re.escape(mechanism)}, "
                             rf"sasl_username=alice@{re.escape(postfix.realm)}$")
    else:
        assert isinstance(error, AuthenticationError)
        postfix.wait_for_log(rf"SASL {re.escape(mechanism)} authentication failed", since=since)
    assert_nothing_shown(text, secrets_of("alice", password), secrets_of("alice", postfix.users["alice"]))
