"""The client policy: what to send, in which order, and what each reply means for the user.

:class:`Connection` knows the protocol; :class:`Session` knows what a mail client wants from it, the
way Emacs' ``smtpmail-send-it`` does: read the greeting, introduce itself (EHLO, HELO when EHLO is
not understood), secure the channel (STARTTLS and a fresh EHLO), ask for verbose delivery (VERB),
send each message as one transaction (MAIL, RCPT for every recipient, DATA; pipelined when the
server allows it) and report per recipient, and finally QUIT.

The session performs no I/O.  Each step is written as a generator that yields the requests of
:mod:`._requests` (write, read, TLS handshake, close) and returns its result; the adapter performs
the requests and the session resumes the generator.  Every error is raised by
:meth:`Session.next_request`, after the session has asked for the connection to be closed.  The one
exception is a refused transaction: the session resets it and stays usable for the next message.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ._abnf import FORBIDDEN_CONTROL
from ._auth import Credentials, build_mechanism, choose_mechanism, mechanism_preference, run_exchange
from ._capabilities import Capabilities
from ._commands import REDACTED, Command, Ehlo, Helo, Lhlo, Quit, Starttls, Verb, validate_domain
from ._connection import NEED_DATA, Connection, ConnectionClosed, ReplyReceived
from ._data import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINE_LENGTH, BdatEncoder, DataEncoder, is_positive_int
from ._dsn import Dsn
from ._envelope import Envelope, dedupe_addresses
from ._errors import (
    AuthenticationError,
    LocalProtocolError,
    RemoteProtocolError,
    SecurityError,
    SMTPError,
    TransientReplyError,
)
from ._requests import Close, Done, Read, Request, StartTLS, Write
from ._results import SendResult, TraceDirection, TraceLine
from ._state import Outcome, outcome_of
from ._timeouts import TimeoutSpec, resolve_timeouts
from ._transaction import (
    DEFAULT_MAX_IN_FLIGHT,
    BodyType,
    MessageData,
    OutgoingMessage,
    PreparedMessage,
    TransactionRunner,
    prepare,
    reply_error,
    unsent,
)
from ._transaction import Outcome as MessageOutcome

__all__ = ["TLS_MODES", "Session", "TLSMode"]

#: How the connection is protected.  ``"starttls"``: upgrade with STARTTLS, which is required;
#: ``"implicit"``: the adapter speaks TLS from the first byte (RFC 8314); ``"opportunistic"``: STARTTLS
#: when offered, plaintext otherwise; ``"none"``: never TLS.
TLSMode = Literal["starttls", "implicit", "opportunistic", "none"]
TLS_MODES: tuple[TLSMode, ...] = ("starttls", "implicit", "opportunistic", "none")

_Operation = Generator[Request, None, object]


@dataclass(frozen=True, slots=True)
class _Refused:
    # Returned (not raised) by a transaction the server refused, once the session has reset it: the
    # session stays usable and next_request raises ``error`` without ending it.
    error: SMTPError


_AUTH_VERBS = frozenset({"AUTH", "AUTH-RESPONSE"})
_reply_error = reply_error


class Session:
    """An SMTP client session from greeting to QUIT, without the I/O.

    The handshake starts at construction: drive the session with :meth:`next_request` until it
    returns :class:`~smtp_sansio.Done`.  Then call :meth:`send_message` and drive it again for each
    message (the result is a :class:`~smtp_sansio.SendResult`), and :meth:`quit` at the end.

    Args:
        server_hostname: the name the user configured for the server; TLS certificates are
            verified against it, never against the address connected to.
        local_hostname: the name sent with EHLO/HELO (Emacs' ``smtpmail-local-domain``), a domain
            or an address literal such as ``[192.0.2.1]``.
        tls: see :data:`TLS_MODES`.  The default requires STARTTLS: when the server does not offer
            it or refuses it, nothing but QUIT is sent and :class:`~smtp_sansio.SecurityError` is
            raised.
        tls_verified: with ``tls="implicit"``, whether the adapter verified the certificate chain
            and host name.
        verb: send VERB after the handshake, asking a Sendmail-family server for verbose delivery
            (Emacs' ``smtpmail-debug-verb``); a refusal is ignored.
        sendto_domain: a domain added to every recipient that has none, ``bob`` becoming
            ``bob@DOMAIN`` (Emacs' ``smtpmail-sendto-domain``).
        pipelining: when the server offers PIPELINING (RFC 2920), write MAIL, the RCPTs and DATA
            together, and start each message of :meth:`send_messages` right behind the previous.
        chunking: use BDAT (RFC 3030) when the server offers CHUNKING: nothing dot-stuffed, no
            end-of-data sequence to misread ("SMTP smuggling"), and BODY=BINARYMIME possible.
            Off by default, so existing callers send exactly what they sent before.
        chunk_size: the BDAT chunk size and the most message data per Write (default 64 KiB).
        max_in_flight: the most commands awaiting replies when pipelining (default
            :data:`~smtp_sansio.DEFAULT_MAX_IN_FLIGHT`, 256): neither side can then deadlock on
            a full socket buffer.
        lmtp: speak LMTP (RFC 2033): LHLO, no HELO fallback, one reply per accepted recipient
            after the data, reported per recipient.  BDAT is not used in LMTP.
        timeout: seconds for every phase, a mapping from phase to seconds, or ``None`` for the
            RFC 5321 section 4.5.3.2 defaults (see :func:`~smtp_sansio.resolve_timeouts`).
        trace: called with a :class:`~smtp_sansio.TraceLine` for every line sent and received.
        max_data_line_length: the longest line of message data accepted, in octets without CRLF
            (RFC 5321 section 4.5.3.1.6 says 998); ``None`` disables the check.
        credentials: authenticate with these after TLS (Emacs' ``smtpmail-auth-credentials``,
            resolved for this server by the adapter).  Without them no AUTH is sent, except
            EXTERNAL when ``auth_mechanisms`` names it and ``client_certificate`` is true.
        auth_mechanisms: SASL mechanism names in order of preference; default
            :data:`~smtp_sansio.DEFAULT_PREFERENCE` (strongest first).  The first one the server
            offers and the credentials allow is used, and only that one: a refusal is final.
        allow_insecure_auth: allow authenticating over plaintext or over TLS whose certificate
            was not verified.  Off by default: credentials are then refused with
            :class:`~smtp_sansio.SecurityError` before a byte of them is sent.
        client_certificate: the adapter presents a TLS client certificate (needed for EXTERNAL).
            The certificate alone authenticates with EXTERNAL only when ``auth_mechanisms`` names
            it: a certificate is often presented for the server's own checks (a relay permitted by
            fingerprint), and an AUTH nobody asked for could fail a connection that would work.
        nonce: returns a fresh, unpredictable client nonce (printable ASCII, no comma) for SCRAM;
            the core has no randomness of its own.  Without it SCRAM is never chosen.
        server_port: the port connected to, for OAUTHBEARER's host and port fields.

    Raises:
        LocalProtocolError: an argument is invalid.
    """

    def __init__(
        self,
        *,
        server_hostname: str,
        local_hostname: str,
        tls: TLSMode = "starttls",
        tls_verified: bool = True,
        verb: bool = False,
        sendto_domain: str | None = None,
        pipelining: bool = True,
        chunking: bool = False,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        lmtp: bool = False,
        timeout: TimeoutSpec = None,
        trace: Callable[[TraceLine], None] | None = None,
        max_data_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
        credentials: Credentials | None = None,
        auth_mechanisms: Sequence[str] | None = None,
        allow_insecure_auth: bool = False,
        client_certificate: bool = False,
        nonce: Callable[[], str] | None = None,
        server_port: int | None = None,
    ) -> None:
        if tls not in TLS_MODES:
            raise LocalProtocolError(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        if not server_hostname or FORBIDDEN_CONTROL.search(server_hostname):
            raise LocalProtocolError(f"invalid server host name {server_hostname!r}")
        validate_domain(local_hostname, what="local host name (EHLO/HELO argument)")
        if sendto_domain is not None:
            validate_domain(sendto_domain, what="sendto domain")
        DataEncoder(max_line_length=max_data_line_length)  # checks the limit now, not at the first message
        BdatEncoder(chunk_size=chunk_size)  # and the chunk size
        if not is_positive_int(max_in_flight):
            raise LocalProtocolError(f"max_in_flight must be a positive int, not {max_in_flight!r}")
        if credentials is not None and not isinstance(credentials, Credentials):
            raise LocalProtocolError(f"credentials must be Credentials, not {type(credentials).__name__}")
        self._auth_preference = mechanism_preference(auth_mechanisms)
        explicit_external = auth_mechanisms is not None and "EXTERNAL" in self._auth_preference
        if credentials is None and client_certificate and explicit_external:
            # The certificate is the credential (RFC 4422 appendix A): nothing else to resolve.
            credentials = Credentials()
        self._credentials = credentials
        self._allow_insecure_auth = allow_insecure_auth
        self._client_certificate = client_certificate
        self._nonce = nonce
        self._server_port = server_port
        self._authenticated: str | None = None
        self._server_hostname = server_hostname
        self._local_hostname = local_hostname
        self._tls_mode: TLSMode = tls
        self._verb = verb
        self._sendto_domain = sendto_domain
        self._pipelining = pipelining
        self._chunking = chunking and not lmtp
        self._chunk_size = chunk_size
        self._max_in_flight = max_in_flight
        self._lmtp = lmtp
        self._timeouts = resolve_timeouts(timeout)
        self._trace = trace
        self._max_data_line_length = max_data_line_length

        self._conn = Connection(max_data_line_length=max_data_line_length, chunk_size=chunk_size, lmtp=lmtp)
        self._capabilities = Capabilities()
        self._encrypted = tls == "implicit"
        self._verified = tls == "implicit" and tls_verified
        self._ready = False  # the handshake finished and no operation is running
        self._operation: _Operation | None = self._handshake()
        self._awaiting_tls = False
        self._closed = False
        # A fatal error: reported by next_request once the connection has been closed.
        self._failure: SMTPError | None = None
        self._failure_reported = False
        self._quit_done = False  # quit() on a closed session: the next request is Done(None)
        # send_messages() keeps its operation through a fatal error, to report every message:
        # an error found in received data is thrown into it rather than ending it.
        self._batch = False
        self._deferred: SMTPError | None = None

    # --- what the adapter and the user see -------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """What the server announced in its latest EHLO reply (empty before, and after STARTTLS)."""
        return self._capabilities

    @property
    def timeouts(self) -> Mapping[str, float | None]:
        """Seconds allowed for each phase; ``timeouts["connect"]`` is for the adapter's connect."""
        return self._timeouts

    @property
    def encrypted(self) -> bool:
        """True once the connection is protected by TLS (implicit, or after STARTTLS)."""
        return self._encrypted

    @property
    def certificate_verified(self) -> bool:
        """True if the connection is TLS and the adapter verified the certificate and host name."""
        return self._verified

    @property
    def authenticated(self) -> str | None:
        """The SASL mechanism the session authenticated with, or ``None``."""
        return self._authenticated

    @property
    def closed(self) -> bool:
        """True once the session asked for the connection to be closed, failed, or was aborted."""
        return self._closed or self._failure is not None

    @property
    def ready(self) -> bool:
        """True when the handshake is done and the session waits for :meth:`send_message` or :meth:`quit`."""
        return self._ready and not self.closed

    def next_request(self) -> Request:
        """Return what the adapter must do next.

        Returns:
            :class:`~smtp_sansio.Write`, :class:`~smtp_sansio.Read`, :class:`~smtp_sansio.StartTLS`,
            :class:`~smtp_sansio.Close`, or :class:`~smtp_sansio.Done` once the current operation
            (handshake, message, quit) has finished.

        Raises:
            ReplyError: the server refused the message (its sender, every recipient or its data);
                the transaction has been reset and the session is still usable.
            SMTPError: any other failure -- a negative greeting, a 421, a protocol violation, a
                security requirement not met.  The session has already asked for the connection
                to be closed and cannot be used again.
            LocalProtocolError: the session is not in a state to be driven (no operation, a TLS
                handshake not reported, an earlier failure).
        """
        if self._quit_done:
            self._quit_done = False
            return Done(result=None)
        if self._failure is not None:
            return self._report_failure(self._failure)
        if self._awaiting_tls:
            raise LocalProtocolError("call tls_established() once the TLS handshake has succeeded")
        if self._operation is None:
            state = "closed" if self._closed else "idle"
            raise LocalProtocolError(f"the session is {state}: call send_message() or quit() first")
        try:
            if self._deferred is not None:
                error, self._deferred = self._deferred, None
                request = self._operation.throw(error)
            else:
                request = next(self._operation)
        except StopIteration as stop:
            self._operation = None
            self._ready = not self._closed
            if isinstance(stop.value, _Refused):
                raise stop.value.error from None
            return Done(result=stop.value)
        except SMTPError as error:
            self._operation = None
            self._failure = error
            return self._report_failure(error)
        except BaseException as error:
            # An exception from outside the protocol (the trace callback, an interrupt) ended the
            # operation halfway: what the server saw is unknown, so the session is over.
            self._operation = None
            self._failure = LocalProtocolError(f"the session was interrupted by {error!r}")
            self._failure_reported = True
            raise
        if isinstance(request, Close):
            self._closed = True
        elif isinstance(request, StartTLS):
            self._awaiting_tls = True
        return request

    def receive_data(self, data: bytes) -> None:
        """Pass on what the server sent, after a :class:`~smtp_sansio.Read`; ``b""`` at end of file.

        Errors in the data are not raised here but by the next :meth:`next_request`, after it has
        asked for the connection to be closed.

        Raises:
            LocalProtocolError: the session has already failed or been closed.
        """
        self._check_alive()
        try:
            self._conn.receive_data(data)
        except SMTPError as error:
            if self._batch and self._operation is not None:
                self._deferred = error  # send_messages() reports its messages before ending
                return
            self._operation = None
            self._failure = error

    def tls_established(self, *, verified: bool) -> None:
        """Report that the TLS handshake requested by :class:`~smtp_sansio.StartTLS` succeeded.

        Args:
            verified: whether the certificate chain and the host name were verified.

        Raises:
            LocalProtocolError: no handshake was requested.
        """
        self._check_alive()
        if not self._awaiting_tls:
            raise LocalProtocolError("tls_established() called, but no TLS handshake was requested")
        self._awaiting_tls = False
        self._conn.start_tls_complete()
        self._encrypted = True
        self._verified = verified
        checked = "verified" if verified else "NOT verified"
        self._note(f"TLS established with {self._server_hostname}, certificate {checked}")

    def send_message(
        self,
        envelope: Envelope,
        data: MessageData,
        *,
        size: int | None = None,
        body: BodyType | None = None,
        dsn: Dsn | None = None,
        requiretls: bool = False,
        smtputf8: bool = False,
    ) -> None:
        """Start sending one message; drive :meth:`next_request` until it returns ``Done(SendResult)``.

        For ``bytes``, everything is checked before the first byte: the addresses (after the
        sendto domain is applied) against RFC 5321 and the server's SMTPUTF8 support, the data
        for NUL octets and lines over 998 octets, 8-bit content against 8BITMIME, the size against
        the server's SIZE limit.

        For an iterable of ``bytes`` chunks (a generator, a file read in blocks by an adapter), the
        content is read as it is sent, never held whole, in Writes of at most about ``chunk_size``
        octets; only what needs no content is checked up front (see
        :func:`smtp_sansio._transaction.prepare`).  A bad chunk (a NUL, an over-long line, 8-bit
        content that cannot be declared, not bytes) ends the message safely: with BDAT nothing of
        it is sent, the transaction is aborted with RSET (RFC 3030 section 2), the error is raised
        and the session stays usable; with DATA, what went out cannot be taken back and "." would
        deliver a truncated message, so the connection is closed without it (the server discards
        the transaction, RFC 5321 section 4.1.1.4), the error is raised and the session is over.

        Args:
            envelope: the sender and recipients.
            data: the message, headers and body, with any line endings: ``bytes``, or an iterable
                of ``bytes`` chunks.  Bcc fields must already be removed
                (:func:`~smtp_sansio.envelope_from_message` does it for bytes).
            size: the message size, for SIZE when ``data`` is an iterable (RFC 1870).
            body: the BODY parameter: ``"7BIT"``, ``"8BITMIME"`` (RFC 6152) or ``"BINARYMIME"`` (RFC
                3030 section 3: sent untouched with BDAT; needs CHUNKING and BINARYMIME).  ``None``
                decides from the content (bytes) or from the server (iterables: 8BITMIME if offered).
            dsn: ask for delivery status notifications (RFC 3461); the server must offer DSN.
            requiretls: ask that the message be relayed over verified TLS only (RFC 8689); needs
                a verified TLS connection and a server offering REQUIRETLS.
            smtputf8: declare SMTPUTF8 for an iterable whose header section is not ASCII.

        Raises:
            LocalProtocolError: the message cannot be sent as it is, or the session is not ready
                (handshake not finished, another operation running, closed).
        """
        self._check_ready("send a message")
        prepared = self._prepare(OutgoingMessage(
            envelope=envelope, data=data, size=size, body=body, dsn=dsn, requiretls=requiretls,
            smtputf8=smtputf8,
        ))
        self._ready = False
        self._operation = self._transaction(prepared)

    def send_messages(self, messages: Iterable[OutgoingMessage | tuple[Envelope, MessageData]]) -> None:
        """Start sending several messages over the connection, pipelined across transactions.

        Drive :meth:`next_request` until it returns ``Done`` with a tuple of one outcome per message,
        in order: a :class:`~smtp_sansio.SendResult`, the error that refused the message (a
        :class:`~smtp_sansio.ReplyError`, or a :class:`~smtp_sansio.LocalProtocolError` for a
        message that could not be sent, checked as by :meth:`send_message`), or
        :class:`~smtp_sansio.Unsent` when the connection ended first.

        With PIPELINING, the next message's MAIL and RCPT commands (and DATA) are written right
        after the previous message's final "." or BDAT LAST, before its reply (RFC 2920 section
        3.1, RFC 3030 section 4.2); never more than ``max_in_flight`` commands wait for replies.
        A refused message does not affect the others.  A 421, a protocol violation or the server
        hanging up ends the session: the request after Close is ``Done`` with every message not
        finished reported :class:`~smtp_sansio.Unsent` (nothing is dropped), and the session is
        closed.  (Bad data passed to :meth:`receive_data` before the first request of the batch
        is raised by :meth:`next_request`, like any fatal error: nothing was sent then.)

        Args:
            messages: :class:`~smtp_sansio.OutgoingMessage` values, or ``(envelope, data)`` pairs.

        Raises:
            LocalProtocolError: an entry is neither, or the session is not ready.
        """
        self._check_ready("send messages")
        prepared: list[PreparedMessage | SMTPError] = []
        for entry in messages:
            if isinstance(entry, tuple) and len(entry) == 2:
                entry = OutgoingMessage(envelope=entry[0], data=entry[1])
            if not isinstance(entry, OutgoingMessage):
                raise LocalProtocolError(
                    f"messages must be OutgoingMessage or (envelope, data) pairs, not {type(entry).__name__}"
                )
            try:
                prepared.append(self._prepare(entry))
            except LocalProtocolError as error:
                prepared.append(error)
        self._ready = False
        self._batch = True
        self._operation = self._batch_operation(prepared)

    def quit(self) -> None:
        """Start ending the session politely (QUIT, then close); drive it until ``Done(None)``.

        On a session that is already closed, the next request is simply ``Done(None)``.

        Raises:
            LocalProtocolError: another operation is running.
        """
        if self._operation is not None:
            raise LocalProtocolError("cannot quit while another operation is running")
        self._ready = False
        if self.closed:
            self._operation = None
            self._quit_done = True
        else:
            self._operation = self._quit_operation()

    def abort(self) -> None:
        """Mark the session dead without any further request; for adapters after a timeout or cancellation."""
        self._operation = None
        self._closed = True
        if self._failure is None:
            self._failure = LocalProtocolError("the session was aborted")
            self._failure_reported = True

    # --- the operations ---------------------------------------------------------------------------

    def _handshake(self) -> Generator[Request, None, None]:
        greeting = yield from self._expect()
        if greeting.reply.code != 220:
            # RFC 5321 section 3.1: a 554 greeting still expects QUIT; any code but 220 is a refusal.
            if greeting.reply.is_positive:
                error: SMTPError = RemoteProtocolError(f"the server greeted with {greeting.reply}, not 220")
            else:
                error = _reply_error(greeting.reply, None)
            yield from self._quit_and_close()
            raise error
        yield from self._hello()
        yield from self._negotiate_tls()
        if self._credentials is not None:
            yield from self._authenticate(self._credentials)
        if self._verb:
            # Not in any RFC; servers that do not know VERB say so, which changes nothing.
            yield from self._command(Verb())

    def _hello(self) -> Generator[Request, None, None]:
        name = self._local_hostname
        hello: Command = Lhlo(domain=name) if self._lmtp else Ehlo(domain=name)
        answer = yield from self._command(hello)
        if answer.reply.is_positive:
            # The LHLO reply has the EHLO reply's form (RFC 2033 section 4.1).
            self._capabilities = Capabilities.from_ehlo_reply(answer.reply)
        elif answer.reply.is_permanent and not self._lmtp:
            # RFC 5321 section 3.2: a server that does not understand EHLO answers 500, 502, 504 or
            # 550; the client falls back to HELO and uses no extension.
            answer = yield from self._command(Helo(domain=self._local_hostname))
            if not answer.reply.is_positive:
                yield from self._quit_and_close()
                raise _reply_error(answer.reply, answer.command)
            server_name = answer.reply.text.split(" ", 1)[0] if answer.reply.text else ""
            self._capabilities = Capabilities(server_name=server_name, esmtp=False)
        else:
            # A refused LHLO has no fallback: HELO is not LMTP (RFC 2033 section 4.1).
            yield from self._quit_and_close()
            raise _reply_error(answer.reply, answer.command)
        self._conn.pipelining = self._pipelining and "PIPELINING" in self._capabilities

    def _negotiate_tls(self) -> Generator[Request, None, None]:
        if self._tls_mode not in ("starttls", "opportunistic"):
            return
        required = self._tls_mode == "starttls"
        if "STARTTLS" not in self._capabilities:
            if required:
                # Stripping (CVE-2016-0772): without TLS nothing but QUIT may follow.
                yield from self._quit_and_close()
                raise SecurityError(
                    f"{self._server_hostname} does not offer STARTTLS, and TLS is required "
                    "(tls='starttls'; use tls='implicit' for port 465)"
                )
            self._note("the server does not offer STARTTLS: continuing without TLS (tls='opportunistic')")
            return
        answer = yield from self._command(Starttls())
        if not answer.reply.is_positive:
            if required:
                yield from self._quit_and_close()
                raise SecurityError(f"{self._server_hostname} refused STARTTLS: {answer.reply}")
            self._note(f"STARTTLS refused ({answer.reply.code}): going on without TLS (tls='opportunistic')")
            return
        # RFC 3207 section 4.2: everything learned before TLS is discarded.
        self._capabilities = Capabilities()
        yield StartTLS(server_hostname=self._server_hostname, timeout=self._timeouts["starttls"])
        yield from self._hello()

    def _authenticate(self, credentials: Credentials) -> Generator[Request, None, None]:
        host = self._server_hostname
        try:
            if not (self._encrypted and self._verified) and not self._allow_insecure_auth:
                protection = "TLS whose certificate was not verified" if self._encrypted else "plaintext"
                raise SecurityError(
                    f"refusing to send credentials to {host} over {protection} "
                    "(allow_insecure_auth=True permits it)"
                )
            if "AUTH" not in self._capabilities:
                raise AuthenticationError(f"credentials were given, but {host} does not offer AUTH")
            offered = self._capabilities.auth_mechanisms
            name = choose_mechanism(
                offered, self._auth_preference, credentials,
                client_certificate=self._client_certificate, nonce=self._nonce is not None,
            )
            if name is None:
                raise AuthenticationError(
                    f"no usable SASL mechanism: {host} offers {' '.join(offered) or 'none'}, the client "
                    f"would use {' '.join(self._auth_preference)} with the credentials given"
                )
            mechanism = build_mechanism(
                name, credentials, nonce=self._nonce, host=host, port=self._server_port
            )
            final = yield from run_exchange(mechanism, self._command, host=host)
            if final.reply.is_positive:
                mechanism.finish()  # SCRAM: the server must have proved it knows the password
        except (AuthenticationError, SecurityError, LocalProtocolError):
            yield from self._quit_and_close()
            raise
        if final.reply.is_positive:
            self._authenticated = name
            self._note(f"authenticated to {host} with {name}")
            return
        yield from self._quit_and_close()
        if final.reply.is_transient:
            # 454 and other 4xx: a temporary failure of the server, not of the credentials.
            raise TransientReplyError(final.reply, final.command)
        # RFC 4954 section 6: 535 and the other 5xx are final; no weaker mechanism is tried.
        raise AuthenticationError(
            f"{host} refused the credentials of {credentials.username or 'the client certificate'} "
            f"with {name}: {final.reply}{mechanism.server_error_text()}",
            reply=final.reply,
        )

    def _transaction(self, message: PreparedMessage) -> Generator[Request, None, object]:
        (outcome,) = yield from self._runner().run([message])
        # A single message is never Unsent: what ends the connection is raised.
        return outcome if isinstance(outcome, SendResult) else _Refused(outcome)  # type: ignore[arg-type]

    def _batch_operation(
        self, messages: list[PreparedMessage | SMTPError]
    ) -> Generator[Request, None, tuple[MessageOutcome, ...]]:
        runner = self._runner()
        try:
            outcomes: list[MessageOutcome] = (yield from runner.run(messages))
        except SMTPError as error:
            # The connection is over; every message without an outcome is reported unsent.
            if not self._closed:
                yield Close()
            self._failure = error
            self._failure_reported = True
            outcomes = unsent(runner.outcomes(), runner.data_sent(), error)
        finally:
            self._batch = False
        return tuple(outcomes)

    def _runner(self) -> TransactionRunner:
        return TransactionRunner(
            self._conn, self._timeouts, self._expect, self._emit if self._trace is not None else None,
            self._quit_and_close,
            chunk_size=self._chunk_size, max_in_flight=self._max_in_flight,
        )

    def _prepare(self, message: OutgoingMessage) -> PreparedMessage:
        envelope = message.envelope
        if not isinstance(envelope, Envelope):
            raise LocalProtocolError(f"envelope must be an Envelope, not {type(envelope).__name__}")
        recipients = dedupe_addresses(self._with_sendto_domain(r) for r in envelope.recipients)
        if recipients != envelope.recipients:
            # The given envelope was checked when it was built: a new one (checked again) only
            # when the sendto domain or the removal of duplicates changed the recipients.
            message = replace(message, envelope=Envelope(sender=envelope.sender, recipients=recipients))
        return prepare(
            message, self._capabilities, chunking=self._chunking, chunk_size=self._chunk_size,
            encrypted_and_verified=self._encrypted and self._verified,
            max_data_line_length=self._max_data_line_length,
        )

    def _quit_operation(self) -> Generator[Request, None, None]:
        yield from self._quit_and_close()

    # --- steps ------------------------------------------------------------------------------------

    def _command(self, command: Command) -> Generator[Request, None, ReplyReceived]:
        yield from self._write(command)
        return (yield from self._expect())

    def _write(self, *commands: Command) -> Generator[Request, None, None]:
        data = b"".join(self._conn.send(command) for command in commands)
        if self._trace is not None:
            for command in commands:
                self._emit("C", command.trace_text())
        phase = commands[0].phase
        yield Write(data=data, timeout=self._timeouts[phase], phase=phase)

    def _expect(self) -> Generator[Request, None, ReplyReceived]:
        # The next reply; a 421 to anything ends the session (RFC 5321 section 3.8).
        answer = yield from self._receive()
        if outcome_of(answer.reply.code) is Outcome.CLOSING:
            yield Close()
            raise TransientReplyError(answer.reply, answer.command)
        return answer

    def _receive(self) -> Generator[Request, None, ReplyReceived]:
        while True:
            phase = self._conn.awaited_phase or "command"
            event = self._conn.next_event()
            if event is NEED_DATA:
                yield Read(timeout=self._timeouts[phase], phase=phase)
                continue
            if isinstance(event, ConnectionClosed):  # pragma: no cover - only called while a reply is due
                raise RemoteProtocolError("the server closed the connection")
            if self._trace is not None:
                if event.verb in _AUTH_VERBS and event.reply.code == 334:
                    # A challenge, with what the exchange derived from the password (a SCRAM server
                    # signature lets anyone who has it test guesses offline): never traced.
                    self._emit("S", f"334 {REDACTED}")
                else:
                    for line in event.reply.wire_lines():
                        self._emit("S", line)
            return event

    def _quit_and_close(self) -> Generator[Request, None, None]:
        try:
            yield from self._write(Quit())
            yield from self._receive()
        except SMTPError:
            pass  # many servers hang up instead of answering QUIT; the session ends either way
        yield Close()

    # --- helpers ----------------------------------------------------------------------------------

    def _with_sendto_domain(self, recipient: str) -> str:
        if "@" in recipient:
            return recipient
        if self._sendto_domain is None:
            if recipient.lower() == "postmaster":
                return recipient  # RFC 5321 section 4.1.1.3 allows the bare <Postmaster>
            raise LocalProtocolError(
                f"recipient {recipient!r} has no domain; give sendto_domain to add one"
            )
        return f"{recipient}@{self._sendto_domain}"

    def _report_failure(self, failure: SMTPError) -> Request:
        if not self._closed:
            self._closed = True
            return Close()
        if not self._failure_reported:
            self._failure_reported = True
            raise failure
        raise LocalProtocolError(f"the session is no longer usable: {failure}")

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise LocalProtocolError(f"the session is no longer usable: {self._failure}")

    def _check_ready(self, what: str) -> None:
        self._check_alive()
        if self._closed:
            raise LocalProtocolError(f"cannot {what}: the session is closed")
        if not self._ready:
            raise LocalProtocolError(f"cannot {what} before the current operation is done")

    def _note(self, text: str) -> None:
        self._emit("*", text)

    def _emit(self, direction: TraceDirection, text: str) -> None:
        if self._trace is not None:
            self._trace(TraceLine(direction=direction, text=text))
