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

import io
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from email.message import Message
from typing import IO, Literal, TypedDict, TypeVar, cast

from smtp_sansio import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_IN_FLIGHT,
    BodyType,
    Capabilities,
    Dsn,
    Envelope,
    LocalProtocolError,
    MessageData,
    OutgoingMessage,
    SecurityError,
    SendResult,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
    TimeoutSpec,
    Unsent,
    envelope_from_bytes,
    envelope_from_message,
)

from ._client import ClientConfig, CredentialsOption
from ._credentials import AskCallback, ClientCertOption, TokenProvider
from ._options import TraceOption

__all__ = [
    "OPTIONS_DOC",
    "READ_SIZE",
    "BatchItem",
    "BatchOutcome",
    "ClientBase",
    "ClientOptions",
    "MessageInput",
    "document_options",
]

_E = TypeVar("_E", bound=BaseException)
_T = TypeVar("_T")

#: A message for ``send_message``: an :class:`email.message.Message`, the message as bytes, a binary
#: file object (read in ``chunk_size`` pieces as it is sent), or an iterable of ``bytes`` chunks.
MessageInput = Message | bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]

#: An entry of ``send_messages``: a Message or bytes (the envelope comes from its headers), or an
#: :class:`~smtp_sansio.OutgoingMessage` with its own envelope, data and options.
BatchItem = Message | bytes | bytearray | memoryview | OutgoingMessage

#: The outcome of one message of ``send_messages``: its :class:`~smtp_sansio.SendResult`; the
#: :class:`~smtp_sansio.ReplyError` that refused it, or the
#: :class:`~smtp_sansio.LocalProtocolError` that kept it from being sent; or
#: :class:`~smtp_sansio.Unsent` when the connection ended before its outcome was known.
BatchOutcome = SendResult | SMTPError | Unsent

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
        pipelining: when the server offers PIPELINING (RFC 2920), write MAIL, the RCPTs and the
            data command without waiting for each reply, and start each message of
            ``send_messages`` right behind the previous one (default ``True``; ``False`` waits for
            every reply).
        chunking: send messages with BDAT (RFC 3030) when the server offers CHUNKING (default
            ``True``): no dot-stuffing, no end-of-data sequence the server could misread, and
            ``body="BINARYMIME"`` possible.  ``False`` always uses DATA.
        chunk_size: the BDAT chunk size in octets, also the most message data per write and the
            size of each read from a file given as a message (default 65536).
        max_in_flight: the most commands awaiting replies while pipelining (default
            :data:`smtp_sansio.DEFAULT_MAX_IN_FLIGHT`); a bound keeps either side from blocking
            on a full socket buffer.
        lmtp: speak LMTP (RFC 2033) rather than SMTP: LHLO, and one reply per recipient after the
            data, reported per recipient.  DATA is used, never BDAT.

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
    pipelining: bool
    chunking: bool
    chunk_size: int
    max_in_flight: int
    lmtp: bool


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
        pipelining: bool = True,
        chunking: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        lmtp: bool = False,
    ) -> None:
        self._config = ClientConfig(
            host=host, port=port, tls=tls, ssl_context=ssl_context, local_hostname=local_hostname,
            sendto_domain=sendto_domain, verb=verb, trace=trace, timeout=timeout, username=username,
            password=password, credentials=credentials, ask=ask, oauth_token=oauth_token,
            client_cert=client_cert, auth_mechanisms=auth_mechanisms, allow_insecure_auth=allow_insecure_auth,
            pipelining=pipelining, chunking=chunking, chunk_size=chunk_size, max_in_flight=max_in_flight,
            lmtp=lmtp,
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

    @property
    def usable(self) -> bool:
        """True while the connection is open and can take another message.

        False before connecting, after :meth:`close` or QUIT, and after any error that ended the
        connection (a 421, a timeout, a protocol error); a refused transaction leaves it True.
        """
        return self._state == "open" and not self._session.closed

    # --- lifecycle ---------------------------------------------------------------------------------

    def _begin_connect(self) -> None:
        # A client connects once: its session, failure memory and credentials belong to that
        # connection.  Reconnecting means a new client.
        if self._state != "new":
            raise LocalProtocolError(f"this SMTPClient is already {self._state}; create a new one")
        self._state = "open"

    def _check_usable(self) -> None:
        if self._state != "open":
            what = f"not connected: call connect() or use '{self._WITH} SMTPClient(...)'"
            if self._state == "closed":
                failure = self._failure
                what = "closed" if failure is None else f"no longer usable after: {_describe(failure)}"
            raise LocalProtocolError(f"this SMTPClient is {what}")

    def _start_message(
        self,
        message: MessageInput,
        sender: str | None,
        recipients: Iterable[str] | None,
        *,
        dsn: Dsn | None = None,
        requiretls: bool = False,
        body: BodyType | None = None,
    ) -> None:
        # Checks the client, makes the envelope and hands the message to the session; the adapter
        # then drives the session until Done.  Nothing is sent if this raises.
        self._check_usable()
        outgoing = self._outgoing(message, sender, recipients, dsn=dsn, requiretls=requiretls, body=body)
        self._session.send_message(
            outgoing.envelope, outgoing.data, dsn=outgoing.dsn, requiretls=outgoing.requiretls,
            body=outgoing.body,
        )

    def _outgoing(
        self,
        message: MessageInput,
        sender: str | None,
        recipients: Iterable[str] | None,
        *,
        dsn: Dsn | None = None,
        requiretls: bool = False,
        body: BodyType | None = None,
    ) -> OutgoingMessage:
        # The envelope and the data of one message, whatever form it was given in.
        data: MessageData
        if isinstance(message, Message):
            envelope, data = envelope_from_message(message, sender=sender, recipients=recipients)
        elif isinstance(message, bytes | bytearray | memoryview):
            envelope, data = envelope_from_bytes(bytes(message), sender=sender, recipients=recipients)
        else:
            data = self._message_chunks(message)
            if sender is None or recipients is None:
                raise LocalProtocolError(
                    f"a message given as {type(message).__name__} is sent as it is read: "
                    "give sender and recipients explicitly"
                )
            if isinstance(recipients, str | bytes):
                raise LocalProtocolError("recipients must be an iterable of addresses, not a single string")
            # The session drops duplicate recipients, as for the other forms.
            envelope = Envelope(sender=sender, recipients=tuple(recipients))
        return OutgoingMessage(envelope=envelope, data=data, dsn=dsn, requiretls=requiretls, body=body)

    def _message_chunks(self, message: object) -> Iterable[bytes]:
        # A binary file is read in chunks as it is sent; any other iterable is its chunks.
        if isinstance(message, io.TextIOBase):
            raise LocalProtocolError("a message file must be opened in binary mode ('rb')")
        read = getattr(message, "read", None)
        if callable(read):
            return _file_chunks(read, self._config.chunk_size)
        if isinstance(message, str) or not isinstance(message, Iterable):
            raise LocalProtocolError(
                "a message must be an email.message.Message, bytes, a binary file or an iterable of "
                f"bytes, not {type(message).__name__}"
            )
        return message

    def _start_messages(self, messages: Iterable[BatchItem]) -> dict[int, LocalProtocolError]:
        # Hands the batch to the session; a message that cannot even be given an envelope is
        # reported in its place (returned by index) instead of stopping the others.
        self._check_usable()
        single = isinstance(messages, Message | bytes | bytearray | memoryview | str)
        if single or not isinstance(messages, Iterable):
            raise LocalProtocolError("messages must be an iterable of messages, not one message")
        outgoing: list[OutgoingMessage] = []
        failed: dict[int, LocalProtocolError] = {}
        for index, item in enumerate(messages):
            if isinstance(item, OutgoingMessage):
                outgoing.append(item)
                continue
            try:
                outgoing.append(self._outgoing(item, None, None))
            except LocalProtocolError as error:
                failed[index] = error
        self._session.send_messages(outgoing)
        return failed

    def _finish_messages(
        self, failed: dict[int, LocalProtocolError], result: object
    ) -> tuple[BatchOutcome, ...]:
        # Merges the session's outcomes with the messages refused before it; a batch that ended the
        # connection ends the client too.
        sent = cast(tuple[BatchOutcome, ...], result)
        rest = iter(sent)
        outcomes = tuple(failed[i] if i in failed else next(rest) for i in range(len(sent) + len(failed)))
        if self._session.closed and self._state != "closed":
            ended = next((o.error for o in outcomes if isinstance(o, Unsent)), None)
            self._fail(ended or LocalProtocolError("the connection ended during send_messages"))
        return outcomes

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


def _file_chunks(read: Callable[[int], object], size: int) -> Iterator[bytes]:
    # A file's content, one read at a time: never more than one chunk of it in memory here.
    while chunk := read(size):
        yield cast(bytes, chunk)
