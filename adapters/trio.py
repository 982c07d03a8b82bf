"""A trio adapter: trio's TCP streams and :class:`trio.SSLStream` driving a :class:`~smtp_sansio.Session`.

It offers what :mod:`smtp_sansio.adapters.sync` offers, by the same names and with the same options,
results and errors; only the methods are async::

    from smtp_sansio.adapters.trio import SMTPClient, send_message

    await send_message(msg, host="mail.example.org")        # one message, one connection

    async with SMTPClient("mail.example.org") as client:     # many messages, one connection
        for msg in messages:
            await client.send_message(msg)

Like the blocking adapter it makes no protocol decision: it performs the session's requests, each
within the request's timeout (:func:`trio.fail_after`), and wraps the TCP stream in a
:class:`trio.SSLStream` for STARTTLS and for implicit TLS alike.  trio is an optional dependency:
``pip install 'smtp-sansio[trio]'``.
"""

from __future__ import annotations

import functools
import math
import os
import ssl
from collections.abc import Iterable
from typing import Unpack, overload

from smtp_sansio import BodyType, Dsn, Read, SendResult, Write

from ._async_base import AsyncClientBase
from ._base import (
    READ_SIZE,
    ClientOptions,
    MessageInput,
    document_options,
)

try:
    import trio
except ImportError as exc:  # pragma: no cover - exercised by a test that hides trio
    raise ImportError(
        "smtp_sansio.adapters.trio needs trio: install the 'trio' extra, pip install 'smtp-sansio[trio]'",
        name=exc.name,
    ) from exc
from ._queue import Queued, queue_instead

__all__ = ["SMTPClient", "send_message"]


@document_options
class SMTPClient(AsyncClientBase):
    """One SMTP connection, for one or many messages, in a trio program.

    Use it as an async context manager: entering connects, reads the greeting, says EHLO,
    negotiates TLS and authenticates; leaving sends QUIT and closes the connection (always, even
    when an exception or a cancellation propagates).

    After any error that ends the connection (every error except a refused transaction, i.e. a
    :class:`~smtp_sansio.ReplyError` from :meth:`send_message`), the client cannot be used again:
    each later call raises :class:`~smtp_sansio.LocalProtocolError` naming the original error.
    A timeout raises :class:`~smtp_sansio.SMTPTimeoutError` (also a :class:`TimeoutError`); a
    timeout or a cancellation closes the connection before the exception leaves the client.

    Tasks may share one client: :meth:`connect`, :meth:`send_message` and :meth:`quit` take a
    :class:`trio.Lock`, so their commands never interleave on the wire; the messages of several
    tasks go one after the other.  :meth:`close` takes no lock: it closes the socket at once, and a
    task waiting for the server gets :class:`~smtp_sansio.LocalProtocolError`.

    The constructor checks the options without awaiting, as the blocking adapter does; that may
    call :func:`socket.getfqdn` (give ``local_hostname`` to avoid it) and read certificate files.
    The one-shot :func:`send_message` constructs its client in a worker thread.  Credentials that
    may block (a netrc file, ``ask``, a token provider) are looked up in a worker thread before
    each connection.
    """

    def _setup(self) -> None:
        self._lock = trio.Lock()
        self._tcp: trio.SocketStream | None = None
        self._stream: trio.abc.Stream | None = None  # the TCP stream, or the TLS stream over it

    async def _closed_checkpoint(self) -> None:
        # trio's convention: every async method of a resource is a checkpoint, close() included.
        # Only here: a checkpoint while an exception is being handled could replace it with
        # trio.Cancelled, so the error paths do not settle (trio's socket closes at once anyway).
        await trio.lowlevel.checkpoint()

    # --- the loop ------------------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._config.credentials_may_block:
            # Before connecting: asking for a password must not keep a server waiting, nor block
            # the event loop.
            credentials = await trio.to_thread.run_sync(self._config.connection_credentials)
        else:
            credentials = self._config.connection_credentials()
        timeout = self._config.timeouts["connect"]
        try:
            with trio.fail_after(_seconds(timeout)):
                self._tcp = self._stream = await trio.open_tcp_stream(self.host, self.port)
        except trio.TooSlowError:
            raise self._connect_timed_out() from None
        except OSError as exc:
            raise self._connect_error(exc) from exc
        self._session = self._config.new_session(self._tcp.socket.getsockname()[0], credentials)
        if self._options.tls == "implicit":
            # RFC 8314 section 3.3: TLS starts on connect; the handshake counts as connecting.
            await self._start_tls(timeout, "connect")

    async def _write(self, request: Write) -> None:
        stream = self._require_stream()
        try:
            with trio.fail_after(_seconds(request.timeout)):
                await stream.send_all(request.data)
        except trio.TooSlowError:
            raise self._timed_out(request.phase) from None
        except trio.BrokenResourceError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):
                raise self._tls_error(exc.__cause__) from exc
            # The server hung up: the next read reports the end to the session.
        except trio.ClosedResourceError:
            raise self._closed_meanwhile() from None

    async def _read(self, request: Read) -> bytes:
        stream = self._require_stream()
        try:
            with trio.fail_after(_seconds(request.timeout)):
                return bytes(await stream.receive_some(READ_SIZE))
        except trio.TooSlowError:
            raise self._timed_out(request.phase) from None
        except trio.BrokenResourceError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):
                raise self._tls_error(exc.__cause__) from exc
            return b""  # reset by the peer: to the session, the connection has ended
        except trio.ClosedResourceError:
            raise self._closed_meanwhile() from None

    async def _start_tls(self, timeout: float | None, phase: str) -> None:
        # https_compatible: an end of the connection without close_notify reads as an end, as with
        # the blocking and asyncio adapters (SMTP replies delimit themselves, and the session
        # treats an end within a reply as an error); and closing never waits for the server.
        stream, context = self._require_stream(), self._options.ssl_context
        tls = trio.SSLStream(stream, context, server_hostname=self.host, https_compatible=True)
        try:
            with trio.fail_after(_seconds(timeout)):
                await tls.do_handshake()
        except trio.TooSlowError:
            raise self._timed_out(phase) from None
        except trio.BrokenResourceError as exc:
            raise self._handshake_error(exc.__cause__ or exc) from exc
        except trio.ClosedResourceError:
            raise self._closed_meanwhile() from None
        self._stream = tls

    # --- closing -------------------------------------------------------------------------------------

    def _require_stream(self) -> trio.abc.Stream:
        if self._stream is None:
            raise self._no_connection()
        return self._stream

    def _close_transport(self) -> None:
        # Closing the socket itself (not aclose()) neither sends a TLS close_notify nor waits, like
        # the blocking adapter's socket.close(): it cannot block, needs no shield under
        # cancellation, and wakes a task blocked on the socket with ClosedResourceError.
        tcp, self._tcp, self._stream = self._tcp, None, None
        if tcp is not None:
            tcp.socket.close()


def _seconds(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


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
        return await trio.to_thread.run_sync(store)
    # In a worker thread: checking the options may block (socket.getfqdn, certificate files).
    client = await trio.to_thread.run_sync(functools.partial(SMTPClient, **options))
    async with client:
        return await client.send_message(
            message, sender=sender, recipients=recipients, dsn=dsn, requiretls=requiretls, body=body
        )
