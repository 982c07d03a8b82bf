"""A blocking adapter: :mod:`socket` and :mod:`ssl` driving a :class:`~smtp_sansio.Session`.

The adapter makes no protocol decision.  It opens the connection, then performs whatever the
session asks (write, read, TLS handshake, close) with the timeout the session attaches to each
request, and turns what the operating system reports into the project's exceptions::

    from email.message import EmailMessage
    from smtp_sansio.adapters.sync import SMTPClient, send_message

    send_message(msg, host="mail.example.org")          # one message, one connection

    with SMTPClient("mail.example.org") as client:       # many messages, one connection
        for msg in messages:
            client.send_message(msg)

Defaults: the server is ``host``, else ``$SMTPSERVER``, else ``localhost``; the port depends on the
TLS mode (587 for ``"starttls"``, 465 for ``"implicit"``, 25 otherwise); TLS is required and the
certificate is verified against ``host`` with :func:`ssl.create_default_context`.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from email.message import Message
from types import TracebackType
from typing import TypeVar, cast

from smtp_sansio import (
    Capabilities,
    Close,
    Done,
    LocalProtocolError,
    Read,
    SecurityError,
    SendResult,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
    StartTLS,
    TimeoutSpec,
    Write,
    envelope_from_bytes,
    envelope_from_message,
)

from ._client import ClientConfig, CredentialsOption
from ._credentials import AskCallback, ClientCertOption, TokenProvider
from ._options import TraceOption

__all__ = ["SMTPClient", "send_message"]

_E = TypeVar("_E", bound=BaseException)

# How much to ask the kernel for per read; the session bounds what it buffers, not this.
_READ_SIZE = 65536
_LOOPBACK = "127.0.0.1"


class SMTPClient:
    """One SMTP connection, for one or many messages.

    Use it as a context manager: entering connects, reads the greeting, says EHLO and negotiates
    TLS; leaving sends QUIT and closes the socket (always, even when an exception propagates).

    After any error that ends the connection (every error except a refused transaction, i.e. a
    :class:`~smtp_sansio.ReplyError` from :meth:`send_message`), the client cannot be used again:
    each later call raises :class:`~smtp_sansio.LocalProtocolError` naming the original error.

    Args:
        host: the server; default ``$SMTPSERVER``, else ``"localhost"``.  The certificate is
            verified against this name, even when it is an IP address.
        port: a number or a service name (``"submission"``); default by ``tls``: 587 for
            ``"starttls"``, 465 for ``"implicit"``, 25 for ``"opportunistic"`` and ``"none"``.
        tls: ``"starttls"`` (TLS required, the default), ``"implicit"`` (TLS from the first byte),
            ``"opportunistic"`` (STARTTLS when offered, else plaintext) or ``"none"``.
        ssl_context: the TLS context; default :func:`ssl.create_default_context`.  Whether it
            verifies the chain and host name is passed to the session.
        local_hostname: the EHLO/HELO name; default :func:`socket.getfqdn` when it is a valid
            domain with a dot, else the address literal of the local end (``[192.0.2.1]``).
        sendto_domain: a domain appended to recipients that have none (``bob`` becomes
            ``bob@DOMAIN``).
        verb: send VERB after the handshake (its failure is ignored).
        trace: ``True`` to log every protocol line at INFO to the ``smtp_sansio.trace`` logger, or
            a :class:`logging.Logger` to log to.
        timeout: seconds for every phase, a mapping of phase to seconds, or ``None`` for the
            RFC 5321 defaults (see :func:`smtp_sansio.resolve_timeouts`).
        username: the user to authenticate as (with ``password`` or ``oauth_token``).
        password: the password.  Never put it on a command line; see :doc:`/authentication`.
        credentials: the seed's table of ``(host, port, user, password)`` rows, matched by the
            host and port connected to (a ``None`` user or password is asked for with ``ask``), or
            the path of a netrc/authinfo file (``machine HOST port PORT login USER password PASS``),
            refused when others can read it.
        ask: ``ask(what, host, port)`` returns a missing ``"username"`` or ``"password"``.
        oauth_token: an OAuth 2 access token, or a function returning a fresh one, called for
            every connection (XOAUTH2, OAUTHBEARER).
        client_cert: a TLS client certificate: a PEM file with the key, a ``(certfile, keyfile)``
            pair, or the seed's table of ``(host, port, keyfile, certfile)`` rows.  It is loaded into
            ``ssl_context``.
        auth_mechanisms: SASL mechanisms in order of preference (default: strongest first;
            :data:`smtp_sansio.SEED_MECHANISMS` is Emacs' order).
        allow_insecure_auth: allow credentials over plaintext or unverified TLS (off by default).

    Raises:
        LocalProtocolError: an option is invalid (``CredentialsError`` for credentials).
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | str | None = None,
        *,
        tls: str = "starttls",
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        sendto_domain: str | None = None,
        verb: bool = False,
        trace: TraceOption = False,
        timeout: TimeoutSpec = None,
        username: str | None = None,
        password: str | None = None,
        credentials: CredentialsOption = None,
        ask: AskCallback | None = None,
        oauth_token: TokenProvider | None = None,
        client_cert: ClientCertOption = None,
        auth_mechanisms: Sequence[str] | None = None,
        allow_insecure_auth: bool = False,
    ) -> None:
        self._config = ClientConfig(
            host=host, port=port, tls=tls, ssl_context=ssl_context, local_hostname=local_hostname,
            sendto_domain=sendto_domain, verb=verb, trace=trace, timeout=timeout, username=username,
            password=password, credentials=credentials, ask=ask, oauth_token=oauth_token,
            client_cert=client_cert, auth_mechanisms=auth_mechanisms, allow_insecure_auth=allow_insecure_auth,
        )
        self._options = self._config.server
        # Replaced on connect(), when the local address (a possible EHLO name) is known.
        self._session = self._config.new_session(_LOOPBACK, None)
        self._sock: socket.socket | None = None
        self._state = "new"  # -> "open" -> "closed"
        self._failure: BaseException | None = None

    @property
    def host(self) -> str:
        """The server's host name or address."""
        return self._options.host

    @property
    def port(self) -> int:
        """The server's TCP port."""
        return self._options.port

    @property
    def authenticated(self) -> str | None:
        """The SASL mechanism this connection authenticated with, or ``None``."""
        return self._session.authenticated

    @property
    def capabilities(self) -> Capabilities:
        """What the server announced in its last EHLO reply."""
        return self._session.capabilities

    def __enter__(self) -> SMTPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Every message's outcome has already been reported by send_message, so a failing QUIT
        # (a server that hangs up first, say) is not worth an exception here.
        try:
            if self._state == "open":
                self.quit()
        except SMTPError:
            pass
        finally:
            self.close()

    def connect(self) -> None:
        """Connect, read the greeting, say EHLO, negotiate TLS and send VERB, as configured.

        Raises:
            SMTPConnectError: the server could not be reached.
            SMTPTimeoutError: a phase took too long; the connection is closed.
            SecurityError: TLS was required and could not be established, or the certificate was
                not accepted.
            AuthenticationError: the server refused the credentials, or offers no usable mechanism.
            CredentialsError: the credentials could not be found, read or completed.
            SMTPError: any other failure of the handshake (a 421 or 554 greeting, ...).
            LocalProtocolError: the client was already connected or closed.
        """
        if self._state != "new":
            raise LocalProtocolError(f"this SMTPClient is already {self._state}; create a new one")
        self._state = "open"
        host, port = self._options.host, self._options.port
        timeout = self._config.timeouts["connect"]
        try:
            # Before connecting: asking for a password must not keep a server waiting.
            credentials = self._config.connection_credentials()
        except BaseException as exc:
            self._fail(exc)
            raise
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError:
            error = SMTPTimeoutError(f"connecting to {host}:{port} timed out", phase="connect")
            raise self._fail(error) from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise self._fail(SMTPConnectError(f"cannot connect to {host}:{port}: {reason}")) from exc
        self._sock = sock
        self._session = self._config.new_session(sock.getsockname()[0], credentials)
        if self._options.tls == "implicit":
            # RFC 8314 section 3.3: TLS starts on connect; the handshake counts as connecting.
            self._sock = self._handshake(sock, timeout, "connect")
        # On failure the socket is closed before the exception leaves: used as a context manager, a
        # failed connect() never reaches __exit__.
        self._drive()

    def send_message(
        self,
        message: Message | bytes,
        *,
        sender: str | None = None,
        recipients: list[str] | tuple[str, ...] | None = None,
    ) -> SendResult:
        """Send one message over this connection.

        Args:
            message: an :class:`email.message.Message` (Bcc fields are not transmitted), or the
                message as bytes (its Bcc fields are removed too).
            sender: the envelope sender; default the Sender or From header.
            recipients: the envelope recipients; default every To, Cc and Bcc address.

        Returns:
            The accepted recipients, the refused ones with their replies, and the final reply.

        Raises:
            LocalProtocolError: the message or an address cannot be sent (nothing was sent), or
                the client is not connected or no longer usable.
            ReplyError: the server refused the transaction (every recipient, the sender or the
                data); the connection stays usable.
            SMTPError: any other failure; the connection is closed.
        """
        if self._state != "open":
            what = "not connected: call connect() or use 'with SMTPClient(...)'"
            if self._state == "closed":
                what = "closed" if self._failure is None else f"no longer usable after: {self._failure}"
            raise LocalProtocolError(f"this SMTPClient is {what}")
        if isinstance(message, Message):
            envelope, data = envelope_from_message(message, sender=sender, recipients=recipients)
        else:
            envelope, data = envelope_from_bytes(message, sender=sender, recipients=recipients)
        self._session.send_message(envelope, data)
        return cast(SendResult, self._drive())

    def quit(self) -> None:
        """Send QUIT, read the reply and close the connection.

        Does nothing if the connection is already closed.

        Raises:
            SMTPError: the server did not answer QUIT properly; the connection is closed anyway.
        """
        if self._state != "open":
            self.close()
            return
        try:
            self._session.quit()
            self._drive()
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection without QUIT; the client cannot be used any more."""
        if self._state != "closed" and not self._session.closed:
            self._session.abort()
        self._state = "closed"
        self._close_socket()

    # --- the loop ------------------------------------------------------------------------------------

    def _drive(self) -> object:
        # Perform the session's requests until it reports the operation done.
        try:
            return self._perform_requests()
        except BaseException as exc:
            if isinstance(exc, SMTPError) and not self._session.closed:
                raise  # a refused transaction: the session has reset it and stays usable
            # Anything else (including an interrupt in the middle of a read) ends the connection:
            # its state is unknown, so it must never be reused.
            if self._state != "closed":
                self._fail(exc)
            raise

    def _perform_requests(self) -> object:
        session = self._session
        while True:
            request = session.next_request()
            if isinstance(request, Write):
                self._write(request)
            elif isinstance(request, Read):
                session.receive_data(self._read(request))
            elif isinstance(request, StartTLS):
                self._sock = self._handshake(self._require_socket(), request.timeout, request.phase)
                session.tls_established(verified=self._options.tls_verified)
            elif isinstance(request, Close):
                self._close_socket()
            elif isinstance(request, Done):
                return request.result

    def _write(self, request: Write) -> None:
        sock = self._require_socket()
        try:
            _set_timeout(sock, request.timeout)
            sock.sendall(request.data)
        except TimeoutError:
            raise self._timed_out(request.phase) from None
        except ssl.SSLError as exc:
            raise self._fail(SecurityError(f"TLS failure with {self.host}: {_ssl_reason(exc)}")) from exc
        except OSError:
            # The server hung up.  Whatever it said before doing so is still readable, and the
            # next read reports the end of the connection to the session, which words the error.
            pass

    def _read(self, request: Read) -> bytes:
        sock = self._require_socket()
        try:
            _set_timeout(sock, request.timeout)
            return sock.recv(_READ_SIZE)
        except TimeoutError:
            raise self._timed_out(request.phase) from None
        except ssl.SSLError as exc:
            raise self._fail(SecurityError(f"TLS failure with {self.host}: {_ssl_reason(exc)}")) from exc
        except OSError:
            return b""  # reset by the peer: to the session, the connection has ended

    def _handshake(self, sock: socket.socket, timeout: float | None, phase: str) -> socket.socket:
        host = self._options.host
        try:
            sock.settimeout(timeout)
            # The certificate is checked against the configured name, never the address connected
            # to (RFC 6125; a DNS answer is not authenticated).
            return self._options.ssl_context.wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            raise self._timed_out(phase) from None
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or _ssl_reason(exc)
            raise self._fail(SecurityError(f"certificate of {host} not accepted: {reason}")) from exc
        except ssl.SSLError as exc:
            raise self._fail(SecurityError(f"TLS handshake with {host} failed: {_ssl_reason(exc)}")) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or "connection closed"
            raise self._fail(SecurityError(f"TLS handshake with {host} failed: {reason}")) from exc

    # --- failure -------------------------------------------------------------------------------------

    def _require_socket(self) -> socket.socket:
        if self._sock is None:
            # The session asked for I/O after a Close: a bug in the core, not in the caller.
            raise self._fail(LocalProtocolError("the session asked for I/O on a closed connection"))
        return self._sock

    def _timed_out(self, phase: str) -> SMTPTimeoutError:
        return self._fail(SMTPTimeoutError(f"{self.host}:{self.port} timed out during {phase}", phase=phase))

    def _fail(self, exc: _E) -> _E:
        # The connection is over: close it for good and remember why, for later calls.
        self._failure = exc
        self._state = "closed"
        if not self._session.closed:
            self._session.abort()
        self._close_socket()
        return exc

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def send_message(
    message: Message | bytes,
    *,
    sender: str | None = None,
    recipients: list[str] | tuple[str, ...] | None = None,
    host: str | None = None,
    port: int | str | None = None,
    tls: str = "starttls",
    ssl_context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    sendto_domain: str | None = None,
    verb: bool = False,
    trace: TraceOption = False,
    timeout: TimeoutSpec = None,
    username: str | None = None,
    password: str | None = None,
    credentials: CredentialsOption = None,
    ask: AskCallback | None = None,
    oauth_token: TokenProvider | None = None,
    client_cert: ClientCertOption = None,
    auth_mechanisms: Sequence[str] | None = None,
    allow_insecure_auth: bool = False,
) -> SendResult:
    """Connect, send one message, and quit.

    Args:
        message: an :class:`email.message.Message` or the message as bytes.
        sender: the envelope sender; default the Sender or From header.
        recipients: the envelope recipients; default every To, Cc and Bcc address.
        host: see :class:`SMTPClient`.
        port: see :class:`SMTPClient`.
        tls: see :class:`SMTPClient`.
        ssl_context: see :class:`SMTPClient`.
        local_hostname: see :class:`SMTPClient`.
        sendto_domain: see :class:`SMTPClient`.
        verb: see :class:`SMTPClient`.
        trace: see :class:`SMTPClient`.
        timeout: see :class:`SMTPClient`.
        username: see :class:`SMTPClient`.
        password: see :class:`SMTPClient`.
        credentials: see :class:`SMTPClient`.
        ask: see :class:`SMTPClient`.
        oauth_token: see :class:`SMTPClient`.
        client_cert: see :class:`SMTPClient`.
        auth_mechanisms: see :class:`SMTPClient`.
        allow_insecure_auth: see :class:`SMTPClient`.

    Returns:
        The accepted and refused recipients and the server's final reply.

    Raises:
        SMTPError: see :meth:`SMTPClient.connect` and :meth:`SMTPClient.send_message`.
    """
    client = SMTPClient(
        host,
        port,
        tls=tls,
        ssl_context=ssl_context,
        local_hostname=local_hostname,
        sendto_domain=sendto_domain,
        verb=verb,
        trace=trace,
        timeout=timeout,
        username=username,
        password=password,
        credentials=credentials,
        ask=ask,
        oauth_token=oauth_token,
        client_cert=client_cert,
        auth_mechanisms=auth_mechanisms,
        allow_insecure_auth=allow_insecure_auth,
    )
    with client:
        return client.send_message(message, sender=sender, recipients=recipients)


def _set_timeout(sock: socket.socket, timeout: float | None) -> None:
    # settimeout() costs a system call each time; most requests repeat the previous timeout.
    if sock.gettimeout() != timeout:
        sock.settimeout(timeout)


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc)
