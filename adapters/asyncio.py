"""An asyncio adapter: the standard library's streams driving a :class:`~smtp_sansio.Session`.

It offers what :mod:`smtp_sansio.adapters.sync` offers, by the same names and with the same options,
results and errors; only the methods are coroutines::

    from smtp_sansio.adapters.asyncio import SMTPClient, send_message

    await send_message(msg, host="mail.example.org")        # one message, one connection

    async with SMTPClient("mail.example.org") as client:     # many messages, one connection
        for msg in messages:
            await client.send_message(msg)

Like the blocking adapter it makes no protocol decision: it performs the session's requests, each
within the request's timeout (:func:`asyncio.timeout`), and upgrades the stream to TLS with
:meth:`asyncio.StreamWriter.start_tls` for STARTTLS and for implicit TLS alike.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import ssl
from collections.abc import Iterable
from typing import Unpack, cast, overload

from smtp_sansio import BodyType, Dsn, Read, SendResult, Write

from ._async_base import AsyncClientBase
from ._base import (
    READ_SIZE,
    ClientOptions,
    MessageInput,
    document_options,
)
from ._queue import Queued, queue_instead

__all__ = ["SMTPClient", "send_message"]

# Turns of the loop to wait for an aborted transport to close its socket; one is enough.
_SETTLE_TURNS = 10


@document_options
class SMTPClient(AsyncClientBase):
    """One SMTP connection, for one or many messages, in an asyncio program.

    Use it as an async context manager: entering connects, reads the greeting, says EHLO,
    negotiates TLS and authenticates; leaving sends QUIT and closes the connection (always, even
    when an exception or a cancellation propagates).

    After any error that ends the connection (every error except a refused transaction, i.e. a
    :class:`~smtp_sansio.ReplyError` from :meth:`send_message`), the client cannot be used again:
    each later call raises :class:`~smtp_sansio.LocalProtocolError` naming the original error.
    A timeout raises :class:`~smtp_sansio.SMTPTimeoutError` (also a :class:`TimeoutError`); a
    timeout or a cancellation closes the connection before the exception leaves the client.

    Tasks may share one client: :meth:`connect`, :meth:`send_message` and :meth:`quit` hold an
    :class:`asyncio.Lock`, so their commands never interleave on the wire; the messages of several
    tasks go one after the other.  :meth:`close` takes no lock: it ends the connection at once, and
    a task waiting for the server gets :class:`~smtp_sansio.LocalProtocolError`.

    The constructor checks the options without awaiting, as the blocking adapter does; that may
    call :func:`socket.getfqdn` (give ``local_hostname`` to avoid it) and read certificate files.
    The one-shot :func:`send_message` constructs its client in a worker thread.  Credentials that
    may block (a netrc file, ``ask``, a token provider) are looked up in a worker thread before
    each connection.
    """

    def _setup(self) -> None:
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._closing: list[asyncio.StreamWriter] = []  # aborted, whose socket may still be open

    # --- the loop ------------------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._config.credentials_may_block:
            # Before connecting: asking for a password must not keep a server waiting, nor block
            # the event loop.
            credentials = await asyncio.to_thread(self._config.connection_credentials)
        else:
            credentials = self._config.connection_credentials()
        timeout = self._config.timeouts["connect"]
        try:
            async with asyncio.timeout(timeout):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise self._connect_timed_out() from None
        except OSError as exc:
            raise self._connect_error(exc) from exc
        self._session = self._config.new_session(self._writer.get_extra_info("sockname")[0], credentials)
        if self._options.tls == "implicit":
            # RFC 8314 section 3.3: TLS starts on connect; the handshake counts as connecting.
            await self._start_tls(timeout, "connect")

    async def _write(self, request: Write) -> None:
        writer = self._require_writer()
        try:
            async with asyncio.timeout(request.timeout):
                writer.write(request.data)
                await writer.drain()
        except TimeoutError:
            raise self._timed_out(request.phase) from None
        except ssl.SSLError as exc:
            raise self._tls_error(exc) from exc
        except OSError:
            pass  # the server hung up: the next read reports the end to the session
        if self._writer is not writer:
            raise self._closed_meanwhile()

    async def _read(self, request: Read) -> bytes:
        writer = self._require_writer()
        reader = cast(asyncio.StreamReader, self._reader)
        try:
            async with asyncio.timeout(request.timeout):
                data = await reader.read(READ_SIZE)
        except TimeoutError:
            raise self._timed_out(request.phase) from None
        except ssl.SSLError as exc:
            raise self._tls_error(exc) from exc
        except OSError:
            data = b""  # reset by the peer: to the session, the connection has ended
        if self._writer is not writer:
            raise self._closed_meanwhile()
        return data

    async def _start_tls(self, timeout: float | None, phase: str) -> None:
        # No plaintext byte can be left in the reader here: the read that brought the 220 took
        # everything buffered, and nothing is awaited between it and start_tls, which stops reading
        # at once.  Bytes that arrive later are fed to the handshake, which fails on them.
        writer = self._require_writer()
        try:
            async with asyncio.timeout(timeout):
                # asyncio's own handshake limit is switched off: the phase's timeout is the limit.
                await writer.start_tls(
                    self._options.ssl_context, server_hostname=self.host, ssl_handshake_timeout=math.inf
                )
        except BaseException as exc:
            # start_tls closes the connection when the handshake fails, without telling the
            # stream.  Close it for sure (the handshake may not have begun) and drop it.
            if self._writer is writer:
                self._close_transport()
            if isinstance(exc, TimeoutError):
                raise self._timed_out(phase) from None
            if isinstance(exc, OSError):
                raise self._handshake_error(exc) from exc
            raise
        if self._writer is not writer:
            raise self._closed_meanwhile()

    # --- closing -------------------------------------------------------------------------------------

    def _require_writer(self) -> asyncio.StreamWriter:
        if self._writer is None:
            raise self._no_connection()
        return self._writer

    def _close_transport(self) -> None:
        # abort(), not close(): like the blocking adapter's socket.close(), it neither sends a TLS
        # close_notify nor waits for the peer, so it cannot block and works during cancellation.
        # Every write was followed by a read of the server's answer, so nothing buffered is lost.
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.transport.abort()
            self._closing.append(writer)

    async def _settle(self) -> None:
        # An aborted transport closes its socket at the next turn of the loop; wait for that, so
        # that no socket outlives the call that ended the connection.  Not with wait_closed(): a
        # cancellation delivered there would cancel the stream's own future, and a stream whose
        # handshake failed is never told that it is closed.
        for _ in range(_SETTLE_TURNS):
            self._closing = [writer for writer in self._closing if _socket_open(writer)]
            if not self._closing:
                return
            await asyncio.sleep(0)


def _socket_open(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    return sock is not None and sock.fileno() != -1


@overload
async def send_message(
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
async def send_message(
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


async def send_message(
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
            iterable of ``bytes`` chunks (see :meth:`.sync.SMTPClient.send_message`).
        sender: the envelope sender; default the Sender or From header.
        recipients: the envelope recipients; default every To, Cc and Bcc address.
        dsn: delivery status notifications to ask for (RFC 3461).
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
        # In a worker thread: the entry is flushed to the disk before this returns.
        store = functools.partial(
            queue_instead, queue, message, sender=sender, recipients=recipients, extensions=extensions
        )
        return await asyncio.to_thread(store)
    # In a worker thread: checking the options may block (socket.getfqdn, certificate files).
    client = await asyncio.to_thread(functools.partial(SMTPClient, **options))
    async with client:
        return await client.send_message(
            message, sender=sender, recipients=recipients, dsn=dsn, requiretls=requiretls, body=body
        )
