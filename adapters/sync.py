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

import os
import socket
import ssl
from collections.abc import Iterable
from types import TracebackType
from typing import Unpack, cast, overload

from smtp_sansio import BodyType, Close, Done, Dsn, Read, SendResult, SMTPError, StartTLS, Write

from ._base import (
    READ_SIZE,
    BatchItem,
    BatchOutcome,
    ClientBase,
    ClientOptions,
    MessageInput,
    document_options,
)
from ._queue import Queued, queue_instead

__all__ = ["SMTPClient", "send_message"]


@document_options
class SMTPClient(ClientBase):
    """One SMTP connection, for one or many messages.

    Use it as a context manager: entering connects, reads the greeting, says EHLO and negotiates
    TLS; leaving sends QUIT and closes the socket (always, even when an exception propagates).

    After any error that ends the connection (every error except a refused transaction, i.e. a
    :class:`~smtp_sansio.ReplyError` from :meth:`send_message`), the client cannot be used again:
    each later call raises :class:`~smtp_sansio.LocalProtocolError` naming the original error.

    A client is for one thread at a time: it takes no lock.
    """

    def _setup(self) -> None:
        self._sock: socket.socket | None = None

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
        self._begin_connect()
        host, port = self.host, self.port
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
            raise self._connect_timed_out() from None
        except OSError as exc:
            raise self._connect_error(exc) from exc
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
        message: MessageInput,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        dsn: Dsn | None = None,
        requiretls: bool = False,
        body: BodyType | None = None,
    ) -> SendResult:
        """Send one message over this connection.

        Args:
            message: an :class:`email.message.Message` (Bcc fields are not transmitted); the
                message as bytes (its Bcc fields are removed too); or, streamed without ever being
                held whole, a binary file object (read ``chunk_size`` octets at a time) or an
                iterable of ``bytes`` chunks (a generator).  A streamed message is sent as it is
                read, Bcc fields included, so ``sender`` and ``recipients`` must be given.
            sender: the envelope sender; default the Sender or From header.
            recipients: the envelope recipients; default every To, Cc and Bcc address.
            dsn: ask for delivery status notifications (RFC 3461): a :class:`~smtp_sansio.Dsn`
                with NOTIFY, RET, ENVID and ORCPT; the server must offer DSN.
            requiretls: ask that the message be relayed over verified TLS only (RFC 8689); needs
                a verified TLS connection and a server offering REQUIRETLS.
            body: the BODY parameter: ``"7BIT"``, ``"8BITMIME"`` or ``"BINARYMIME"`` (sent
                untouched with BDAT; needs ``chunking`` and a server offering CHUNKING and
                BINARYMIME).  ``None`` chooses from the content and the server.

        Returns:
            The accepted recipients, the refused ones with their replies, and the final reply.

        Raises:
            LocalProtocolError: the message or an address cannot be sent (nothing was sent), or
                the client is not connected or no longer usable.
            ReplyError: the server refused the transaction (every recipient, the sender or the
                data); the connection stays usable.
            SMTPError: any other failure; the connection is closed.
        """
        self._start_message(message, sender, recipients, dsn=dsn, requiretls=requiretls, body=body)
        return cast(SendResult, self._drive())

    def send_messages(self, messages: Iterable[BatchItem]) -> tuple[BatchOutcome, ...]:
        """Send several messages over this connection, pipelined across transactions.

        With PIPELINING, each message's MAIL, RCPT and DATA (or BDAT) commands are written right
        behind the previous message's data, before its reply; at most 100 commands wait for replies.
        A refused message does not affect the others.

        Args:
            messages: :class:`email.message.Message` or ``bytes`` values (the envelope from the
                headers), or :class:`~smtp_sansio.OutgoingMessage` values, which carry their own
                envelope, data (bytes or an iterable of chunks) and options (``dsn``, ...).

        Returns:
            One outcome per message, in order: a :class:`~smtp_sansio.SendResult`; the
            :class:`~smtp_sansio.ReplyError` that refused the message, or the
            :class:`~smtp_sansio.LocalProtocolError` that kept it from being sent; or
            :class:`~smtp_sansio.Unsent` (with the error and whether its data was already sent)
            when the connection ended before its outcome was known -- the client is then closed.

        Raises:
            LocalProtocolError: the client is not connected or no longer usable.
            SMTPError: a failure of the connection itself (a timeout); the connection is closed.
        """
        failed = self._start_messages(messages)
        return self._finish_messages(failed, self._drive())

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
        self._mark_closed()

    # --- the loop ------------------------------------------------------------------------------------

    def _drive(self) -> object:
        # Perform the session's requests until it reports the operation done.
        try:
            return self._perform_requests()
        except BaseException as exc:
            self._after_error(exc)
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
                self._close_transport()
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
            raise self._tls_error(exc) from exc
        except OSError:
            # The server hung up.  Whatever it said before doing so is still readable, and the
            # next read reports the end of the connection to the session, which words the error.
            pass

    def _read(self, request: Read) -> bytes:
        sock = self._require_socket()
        try:
            _set_timeout(sock, request.timeout)
            return sock.recv(READ_SIZE)
        except TimeoutError:
            raise self._timed_out(request.phase) from None
        except ssl.SSLError as exc:
            raise self._tls_error(exc) from exc
        except OSError:
            return b""  # reset by the peer: to the session, the connection has ended

    def _handshake(self, sock: socket.socket, timeout: float | None, phase: str) -> socket.socket:
        try:
            sock.settimeout(timeout)
            # The certificate is checked against the configured name, never the address connected
            # to (RFC 6125; a DNS answer is not authenticated).
            return self._options.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            raise self._timed_out(phase) from None
        except OSError as exc:
            raise self._handshake_error(exc) from exc

    @property
    def tls_socket(self) -> ssl.SSLSocket | None:
        """The TLS socket of the open connection, for its version, cipher and certificate.

        ``None`` before connecting, after closing, and while the connection is not TLS.
        """
        return self._sock if isinstance(self._sock, ssl.SSLSocket) else None

    def _require_socket(self) -> socket.socket:
        if self._sock is None:
            raise self._no_connection()
        return self._sock

    def _close_transport(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


@overload
def send_message(
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    dsn: Dsn | None = None,
    requiretls: bool = False,
    body: BodyType | None = None,
    queue: None = None,
    **options: Unpack[ClientOptions],
) -> SendResult: ...


@overload
def send_message(
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    dsn: Dsn | None = None,
    requiretls: bool = False,
    body: BodyType | None = None,
    queue: str | os.PathLike[str],
    **options: Unpack[ClientOptions],
) -> Queued: ...


def send_message(
    message: MessageInput,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    dsn: Dsn | None = None,
    requiretls: bool = False,
    body: BodyType | None = None,
    queue: str | os.PathLike[str] | None = None,
    **options: Unpack[ClientOptions],
) -> SendResult | Queued:
    """Connect, send one message, and quit; or, with ``queue``, store it in the offline queue.

    Args:
        message: an :class:`email.message.Message`, the message as bytes, a binary file or an
            iterable of ``bytes`` chunks (see :meth:`SMTPClient.send_message`).
        sender: the envelope sender; default the Sender or From header.
        recipients: the envelope recipients; default every To, Cc and Bcc address.
        dsn: delivery status notifications to ask for; see :meth:`SMTPClient.send_message`.
        requiretls: ask for REQUIRETLS (RFC 8689).
        body: the BODY parameter, or ``None`` to choose.
        queue: a queue directory (Emacs' ``smtpmail-queue-mail`` and ``smtpmail-queue-dir``):
            the message (a Message or bytes) is stored there, complete on the disk, instead of
            sent, and no connection is made; send it later with
            :func:`smtp_sansio.adapters.queue.flush_queue` or ``smtp-sansio queue flush``.
        options: the options of :class:`SMTPClient` (``host``, ``port``, ``tls``, ...).

    Returns:
        The accepted and refused recipients and the server's final reply; with ``queue``, the
        :class:`~smtp_sansio.adapters.queue.Queued` entry.

    Raises:
        SMTPError: see :meth:`SMTPClient.connect` and :meth:`SMTPClient.send_message`.
        QueueError: with ``queue``, the entry could not be written; nothing is left behind.
    """
    if queue is not None:
        extensions = dsn is not None or requiretls or body is not None
        return queue_instead(queue, message, sender=sender, recipients=recipients, extensions=extensions)
    with SMTPClient(**options) as client:
        return client.send_message(
            message, sender=sender, recipients=recipients, dsn=dsn, requiretls=requiretls, body=body
        )


def _set_timeout(sock: socket.socket, timeout: float | None) -> None:
    # settimeout() costs a system call each time; most requests repeat the previous timeout.
    if sock.gettimeout() != timeout:
        sock.settimeout(timeout)
