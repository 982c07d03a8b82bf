"""What the blocking, asyncio and trio clients share: options, lifecycle, envelope, error wording.

An adapter's ``SMTPClient`` is :class:`ClientBase` plus a loop that performs the session's requests
with one kind of I/O.  Everything here happens without I/O and without awaiting, so the three
adapters can share it as it is:

* the constructor, which checks every option once (:class:`~._client.ClientConfig`), and the
  documentation of the options (:data:`OPTIONS_DOC`, :class:`ClientOptions`);
* the lifecycle: a client is ``"new"``, then ``"open"`` once :meth:`connect` starts, then
  ``"closed"`` for good; a client that failed remembers why and says so when used again;
* the message to envelope step (:meth:`ClientBase._start_message`);
* the wording of the errors an adapter raises for what its I/O reports (refused connection, timeout,
  TLS failure).

Closing is synchronous in every adapter (a socket's ``close()``, an asyncio transport's ``abort()``),
so a failure, a timeout or a cancellation can always close the connection before the exception
leaves the client, even where awaiting is no longer possible.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from email.message import Message
from typing import Literal, TypedDict, TypeVar

from smtp_sansio import (
    Capabilities,
    LocalProtocolError,
    SecurityError,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
    TimeoutSpec,
    envelope_from_bytes,
    envelope_from_message,
)

from ._client import ClientConfig, CredentialsOption
from ._credentials import AskCallback, ClientCertOption, TokenProvider
from ._options import TraceOption

__all__ = ["OPTIONS_DOC", "READ_SIZE", "ClientBase", "ClientOptions", "document_options"]

_E = TypeVar("_E", bound=BaseException)
_T = TypeVar("_T")

#: How much to ask for per read; the session bounds what it buffers, not this.
READ_SIZE = 65536
_LOOPBACK = "127.0.0.1"

#: The options every adapter's ``SMTPClient`` takes, documented once for the three of them.
OPTIONS_DOC = """
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


def document_options(obj: _T) -> _T:
    """Append :data:`OPTIONS_DOC` to the docstring of an adapter's ``SMTPClient``."""
    obj.__doc__ = (obj.__doc__ or "").rstrip() + "\n" + OPTIONS_DOC
    return obj


class ClientOptions(TypedDict, total=False):
    """The keyword options of ``SMTPClient``, as the one-shot ``send_message`` functions take them."""

    host: str | None
    port: int | str | None
    tls: str
    ssl_context: ssl.SSLContext | None
    local_hostname: str | None
    sendto_domain: str | None
    verb: bool
    trace: TraceOption
    timeout: TimeoutSpec
    username: str | None
    password: str | None
    credentials: CredentialsOption
    ask: AskCallback | None
    oauth_token: TokenProvider | None
    client_cert: ClientCertOption
    auth_mechanisms: Sequence[str] | None
    allow_insecure_auth: bool


class ClientBase:
    """The part of every adapter's ``SMTPClient`` that performs no I/O.

    Subclasses implement :meth:`_close_transport` (synchronous: it must close the connection at
    once) and the I/O loop; they call the ``_`` methods below at the points the blocking adapter
    shows.
    """

    #: How the class is entered, for error messages: ``"with"`` or ``"async with"``.
    _WITH = "with"

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
        # Replaced on connect, when the local address (a possible EHLO name) is known.
        self._session = self._config.new_session(_LOOPBACK, None)
        self._state: Literal["new", "open", "closed"] = "new"
        self._failure: BaseException | None = None
        self._setup()

    def _setup(self) -> None:
        """Initialise the adapter's own attributes (the transport, a lock)."""

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

    # --- lifecycle ---------------------------------------------------------------------------------

    def _begin_connect(self) -> None:
        # A client connects once: its session, failure memory and credentials belong to that
        # connection.  Reconnecting means a new client.
        if self._state != "new":
            raise LocalProtocolError(f"this SMTPClient is already {self._state}; create a new one")
        self._state = "open"

    def _start_message(
        self, message: Message | bytes, sender: str | None, recipients: list[str] | tuple[str, ...] | None
    ) -> None:
        # Checks the client, makes the envelope and hands the message to the session; the adapter
        # then drives the session until Done.  Nothing is sent if this raises.
        if self._state != "open":
            what = f"not connected: call connect() or use '{self._WITH} SMTPClient(...)'"
            if self._state == "closed":
                failure = self._failure
                what = "closed" if failure is None else f"no longer usable after: {_describe(failure)}"
            raise LocalProtocolError(f"this SMTPClient is {what}")
        if isinstance(message, Message):
            envelope, data = envelope_from_message(message, sender=sender, recipients=recipients)
        else:
            envelope, data = envelope_from_bytes(message, sender=sender, recipients=recipients)
        self._session.send_message(envelope, data)

    def _after_error(self, exc: BaseException) -> None:
        # Called with whatever interrupted the loop.  A refused transaction leaves the session usable
        # (it has been reset); anything else -- an interrupt or a cancellation in the middle of a
        # read included -- ends the connection, whose state is then unknown.
        if isinstance(exc, SMTPError) and not self._session.closed:
            return
        if self._state != "closed":
            self._fail(exc)

    def _fail(self, exc: _E) -> _E:
        # The connection is over: close it for good and remember why, for later calls.
        self._failure = exc
        self._state = "closed"
        if not self._session.closed:
            self._session.abort()
        self._close_transport()
        return exc

    def _mark_closed(self) -> None:
        # close(): no QUIT, no failure to remember.
        if self._state != "closed" and not self._session.closed:
            self._session.abort()
        self._state = "closed"
        self._close_transport()

    def _close_transport(self) -> None:
        raise NotImplementedError

    # --- errors, worded the same by every adapter --------------------------------------------------

    def _timed_out(self, phase: str) -> SMTPTimeoutError:
        return self._fail(SMTPTimeoutError(f"{self.host}:{self.port} timed out during {phase}", phase=phase))

    def _connect_timed_out(self) -> SMTPTimeoutError:
        error = SMTPTimeoutError(f"connecting to {self.host}:{self.port} timed out", phase="connect")
        return self._fail(error)

    def _connect_error(self, exc: OSError) -> SMTPConnectError:
        return self._fail(SMTPConnectError(f"cannot connect to {self.host}:{self.port}: {_os_reason(exc)}"))

    def _tls_error(self, exc: ssl.SSLError) -> SecurityError:
        # A TLS failure once the connection is established (a bad record, an alert).
        return self._fail(SecurityError(f"TLS failure with {self.host}: {_ssl_reason(exc)}"))

    def _handshake_error(self, exc: BaseException) -> SecurityError:
        host = self.host
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or _ssl_reason(exc)
            return self._fail(SecurityError(f"certificate of {host} not accepted: {reason}"))
        if isinstance(exc, ssl.SSLError):
            return self._fail(SecurityError(f"TLS handshake with {host} failed: {_ssl_reason(exc)}"))
        reason = _os_reason(exc) if isinstance(exc, OSError) else str(exc)
        return self._fail(SecurityError(f"TLS handshake with {host} failed: {reason or 'connection closed'}"))

    def _no_connection(self) -> LocalProtocolError:
        # The session asked for I/O after a Close: a bug in the core, not in the caller.
        return self._fail(LocalProtocolError("the session asked for I/O on a closed connection"))

    def _closed_meanwhile(self) -> LocalProtocolError:
        # Another task (or thread) called close() while this one was waiting for the server.
        return LocalProtocolError("this SMTPClient was closed by close() during the operation")


def _describe(exc: BaseException) -> str:
    # A cancellation or an interrupt has no message of its own.
    return str(exc) or type(exc).__name__


def _os_reason(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    # trio reports a failed connection as one OSError caused by a group of the attempts' errors.
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = {_os_reason(sub) for sub in cause.exceptions if isinstance(sub, OSError)}
        if len(reasons) == 1:
            return reasons.pop()
    return str(exc)


def _ssl_reason(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc)
