"""What the asyncio and trio clients share: the public coroutines, the lock, and the request loop.

The two event-loop adapters differ only in how they connect, read, write and start TLS, and in what
closing needs afterwards; :class:`AsyncClientBase` holds everything else, so that the two behave
the same by construction:

* every public operation but :meth:`~AsyncClientBase.close` holds the client's lock (an
  :class:`asyncio.Lock` or a :class:`trio.Lock`, made by the subclass), so tasks sharing a client
  take turns and their commands never interleave on the wire;
* any exception from the I/O, a cancellation or a timeout included, closes the connection
  synchronously (:meth:`~._base.ClientBase._close_transport`) before it leaves the client.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self, cast

from smtp_sansio import BodyType, Close, Done, Dsn, Read, SendResult, SMTPError, StartTLS, Write

from ._base import BatchItem, BatchOutcome, ClientBase, MessageInput

__all__ = ["AsyncClientBase"]


class AsyncClientBase(ClientBase):
    """An ``SMTPClient`` whose operations are coroutines; subclasses supply the I/O.

    A subclass sets ``self._lock`` in :meth:`_setup` and implements :meth:`_open`, :meth:`_write`,
    :meth:`_read`, :meth:`_start_tls` and the synchronous :meth:`_close_transport`.
    """

    _WITH = "async with"
    _lock: AbstractAsyncContextManager[Any]

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # As in the blocking adapter: every message's outcome is known, so a failing QUIT is not
        # worth an exception.
        try:
            if self._state == "open":
                await self.quit()
        except SMTPError:
            pass
        finally:
            await self.close()

    async def connect(self) -> None:
        """Connect, greet, negotiate TLS, authenticate and send VERB, as configured.

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
        async with self._lock:
            self._begin_connect()
            try:
                await self._open()
            except BaseException as exc:
                if self._state != "closed":
                    self._fail(exc)
                await self._settle()
                raise
            await self._drive()

    async def send_message(
        self,
        message: MessageInput,
        *,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        dsn: Dsn | None = None,
        requiretls: bool = False,
        body: BodyType | None = None,
    ) -> SendResult:
        """Send one message over this connection; see :meth:`.sync.SMTPClient.send_message`.

        A binary file given as the message is read in the event loop, ``chunk_size`` octets at a
        time as the data is sent: each read of a local file blocks the loop briefly.  To avoid
        even that (a file on a slow network share), pass an iterable of chunks read beforehand.

        Returns:
            The accepted recipients, the refused ones with their replies, and the final reply.

        Raises:
            LocalProtocolError: the message or an address cannot be sent (nothing was sent), or
                the client is not connected or no longer usable.
            ReplyError: the server refused the transaction; the connection stays usable.
            SMTPError: any other failure; the connection is closed.
        """
        async with self._lock:
            self._start_message(message, sender, recipients, dsn=dsn, requiretls=requiretls, body=body)
            return cast(SendResult, await self._drive())

    async def send_messages(self, messages: Iterable[BatchItem]) -> tuple[BatchOutcome, ...]:
        """Send several messages, pipelined across transactions; see :meth:`.sync.SMTPClient.send_messages`.

        Returns:
            One outcome per message, in order: a :class:`~smtp_sansio.SendResult`, the
            :class:`~smtp_sansio.SMTPError` that refused it or kept it from being sent, or
            :class:`~smtp_sansio.Unsent` when the connection ended first (the client is then closed).

        Raises:
            LocalProtocolError: the client is not connected or no longer usable.
            SMTPError: a failure of the connection itself (a timeout); the connection is closed.
        """
        async with self._lock:
            failed = self._start_messages(messages)
            return self._finish_messages(failed, await self._drive())

    async def quit(self) -> None:
        """Send QUIT, read the reply and close the connection; nothing if already closed.

        Raises:
            SMTPError: the server did not answer QUIT properly; the connection is closed anyway.
        """
        async with self._lock:
            try:
                if self._state == "open":
                    self._session.quit()
                    await self._drive()
            finally:
                await self.close()

    async def close(self) -> None:
        """Close the connection without QUIT; the client cannot be used any more."""
        self._mark_closed()
        await self._closed_checkpoint()

    async def aclose(self) -> None:
        """The same as :meth:`close`, by the name ``contextlib.aclosing()`` and trio look for."""
        await self.close()

    # --- what a subclass supplies ---------------------------------------------------------------------

    @abstractmethod
    async def _open(self) -> None:
        """Look up the credentials, connect, make the session, and run implicit TLS if configured."""

    @abstractmethod
    async def _write(self, request: Write) -> None:
        """Write the request's bytes within its timeout."""

    @abstractmethod
    async def _read(self, request: Read) -> bytes:
        """Read what the server sent, within the request's timeout; ``b""`` at its end."""

    @abstractmethod
    async def _start_tls(self, timeout: float | None, phase: str) -> None:
        """Run the TLS handshake over the connection within ``timeout``."""

    async def _settle(self) -> None:
        """Wait, if the event loop needs it, until a connection just closed has let go of its socket."""

    async def _closed_checkpoint(self) -> None:
        """What :meth:`close` awaits after closing (by default :meth:`_settle`)."""
        await self._settle()

    # --- the loop ------------------------------------------------------------------------------------

    async def _drive(self) -> object:
        # Perform the session's requests until it reports the operation done.
        try:
            return await self._perform_requests()
        except BaseException as exc:
            self._after_error(exc)
            await self._settle()
            raise

    async def _perform_requests(self) -> object:
        session = self._session
        while True:
            request = session.next_request()
            if isinstance(request, Write):
                await self._write(request)
            elif isinstance(request, Read):
                session.receive_data(await self._read(request))
            elif isinstance(request, StartTLS):
                await self._start_tls(request.timeout, request.phase)
                session.tls_established(verified=self._options.tls_verified)
            elif isinstance(request, Close):
                self._close_transport()
                await self._settle()
            elif isinstance(request, Done):
                return request.result

