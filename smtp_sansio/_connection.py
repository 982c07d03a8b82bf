"""The protocol object: commands in, bytes out; bytes in, events out.

:class:`Connection` is the h11-style heart of the package.  It knows the grammar and the state
machine, pairs pipelined replies with their commands in order, and refuses anything the protocol
does not allow.  It has no policy: which command to send next is the caller's choice (the bundled
:class:`~smtp_sansio.Session`, or a framework's own).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NoReturn, TypeVar

from ._commands import Bdat, Command
from ._data import DEFAULT_CHUNK_SIZE, BdatEncoder, DataEncoder
from ._errors import LocalProtocolError, RemoteProtocolError, SecurityError, SMTPError
from ._replies import DEFAULT_MAX_LINE_LENGTH, DEFAULT_MAX_REPLY_LINES, Reply, ReplyReader, preview_bytes
from ._state import GREETING, GROUP_ENDERS, REPLY_TRANSITIONS, SEND_TRANSITIONS, Outcome, State, outcome_of

__all__ = ["NEED_DATA", "Connection", "ConnectionClosed", "Event", "NeedData", "ReplyReceived"]

_T = TypeVar("_T")


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


#: Returned by :meth:`Connection.next_event` when a whole reply has not arrived yet.
NEED_DATA: Final = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyReceived:
    """The server answered the oldest command in flight.

    Attributes:
        verb: the state-table name of what was answered: ``"GREETING"``, ``"EHLO"``, ``"RCPT"``,
            ``"DATA-END"`` for the end of message content, ...
        command: the answered command as the trace shows it (secrets redacted); ``None`` for the
            greeting.
        reply: the reply.
    """

    verb: str
    command: str | None
    reply: Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The server closed the connection while no reply was outstanding."""


Event = ReplyReceived | ConnectionClosed


@dataclass(frozen=True, slots=True)
class _InFlight:
    verb: str
    command: str | None
    phase: str  # the timeout phase its reply falls under (RFC 5321 section 4.5.3.2)


class Connection:
    """An SMTP client connection, without the I/O.

    Feed what the server sends to :meth:`receive_data` and collect :meth:`next_event` results;
    turn commands into bytes with :meth:`send`, :meth:`send_data` and :meth:`end_data` (or, with
    CHUNKING, :meth:`feed_bdat`, :meth:`next_bdat` and :meth:`end_bdat`) and write those bytes
    yourself.  The first event is the server's greeting.

    Any error raised by a method leaves the connection in :attr:`State.ERROR`, after which every
    method raises :class:`LocalProtocolError` naming the original failure.

    Args:
        pipelining: allow sending commands before earlier replies arrive (RFC 2920).  Enable it
            only once the server has announced PIPELINING; it can also be set later.
        max_line_length: longest reply line accepted, in octets.
        max_reply_lines: most lines accepted in one reply.
        max_data_line_length: longest line of message content accepted (RFC 5321 4.5.3.1.6 says
            998); ``None`` disables the check.
        chunk_size: the payload size of every BDAT chunk but the last (RFC 3030 section 2).
        lmtp: the server speaks LMTP (RFC 2033): the end of the data is answered once for every
            recipient accepted in the transaction (section 4.2), each reply a ``DATA-END-RCPT``
            event.
    """

    def __init__(
        self,
        *,
        pipelining: bool = False,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_lines: int = DEFAULT_MAX_REPLY_LINES,
        max_data_line_length: int | None = 998,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        lmtp: bool = False,
    ) -> None:
        BdatEncoder(chunk_size=chunk_size)  # checks the size now
        self.pipelining = pipelining
        self.lmtp = lmtp
        self._chunk_size = chunk_size
        self._bdat: BdatEncoder | None = None
        self._bdat_binary = False
        self._bdat_ready: deque[bytes] = deque()
        self._accepted_rcpts = 0  # positive RCPT replies since the last MAIL, for LMTP
        self._reader = ReplyReader(max_line_length=max_line_length, max_reply_lines=max_reply_lines)
        self._in_flight: deque[_InFlight] = deque([_InFlight(GREETING, None, "greeting")])
        self._state = State.GREETING
        self._projected = State.GREETING
        self._max_data_line_length = max_data_line_length
        self._encoder: DataEncoder | None = None
        self._failure: SMTPError | None = None

    @property
    def state(self) -> State:
        """The state confirmed by the replies received so far."""
        return self._state

    @property
    def projected_state(self) -> State:
        """The state once every command in flight has succeeded; what :meth:`send` checks against."""
        return self._projected

    @property
    def in_flight(self) -> tuple[str, ...]:
        """The verbs still waiting for a reply, oldest first."""
        return tuple(entry.verb for entry in self._in_flight)

    @property
    def in_flight_count(self) -> int:
        """How many commands are waiting for a reply: ``len(in_flight)`` without building the tuple.

        A sender that keeps a bound on the commands in flight asks this before every command.
        """
        return len(self._in_flight)

    @property
    def may_pipeline(self) -> bool:
        """True if a command may be sent now: nothing is in flight, or pipelining is on and the last
        command in flight does not end a group (RFC 2920 section 3.1)."""
        if not self._in_flight:
            return True
        return self.pipelining and self._in_flight[-1].verb not in GROUP_ENDERS

    @property
    def awaited_phase(self) -> str | None:
        """The timeout phase of the oldest command in flight (``"greeting"``, ``"rcpt"``, ...).

        ``None`` when no reply is expected.  The names are those of
        :data:`~smtp_sansio.DEFAULT_TIMEOUTS` (RFC 5321 section 4.5.3.2).
        """
        return self._in_flight[0].phase if self._in_flight else None

    def send(self, command: Command) -> bytes:
        """Return the bytes for ``command`` and record that a reply is expected.

        Raises:
            LocalProtocolError: the command is not allowed in the projected state, or would be
                pipelined where RFC 2920 forbids it or pipelining is off.
        """
        self._check_usable()
        if isinstance(command, Bdat):
            # A BDAT line is only ever sent with its payload (RFC 3030 section 2).
            self._fail(LocalProtocolError("BDAT is sent with feed_bdat(), next_bdat() and end_bdat()"))
        state_input = command.state_input()
        self._advance(state_input)
        data = self._guard(command.encode)
        if command.verb in ("RSET", "QUIT"):
            # Either ends a CHUNKING transaction: what was not sent of it is dropped.
            self._bdat = None
            self._bdat_ready.clear()
        if command.verb == "MAIL":
            self._accepted_rcpts = 0
        self._in_flight.append(_InFlight(state_input, command.trace_text(), command.phase))
        return data

    def send_data(self, chunk: bytes) -> bytes:
        """Encode a piece of message content after a 354 reply to DATA.

        Line endings become CRLF and lines starting with ``.`` are dot-stuffed (RFC 5321 2.3.8,
        4.5.2); the chunking of the content never changes the bytes produced.

        Raises:
            LocalProtocolError: outside the DATA state, or the content has a NUL or an over-long
                line.
        """
        self._check_usable()
        self._advance("DATA-BODY")
        return self._guard(lambda: self._data_encoder().feed(chunk))

    def end_data(self) -> bytes:
        """Return the rest of the content and the terminating ``CRLF.CRLF``; a reply is expected."""
        self._check_usable()
        self._advance("DATA-END")
        data = self._guard(self._data_encoder().end)
        self._encoder = None
        if self.lmtp:
            # RFC 2033 section 4.2: one reply for each RCPT that succeeded, in their order.  A
            # server that sent 354 without any accepted recipient still owes one reply.
            for _ in range(max(1, self._accepted_rcpts)):
                self._in_flight.append(_InFlight("DATA-END-RCPT", ".", "data_end"))
        else:
            self._in_flight.append(_InFlight("DATA-END", ".", "data_end"))
        return data

    def feed_bdat(self, data: bytes, *, binary: bool = False) -> None:
        """Add message content for CHUNKING (RFC 3030); collect the chunks with :meth:`next_bdat`.

        Nothing is sent by this call: the content is encoded (line endings normalised unless
        ``binary``, no dot-stuffing) and cut into chunks of ``chunk_size`` octets, which
        :meth:`next_bdat` hands out one at a time so that the caller decides how many are in
        flight.  Allowed in a transaction (after MAIL) until :meth:`end_bdat`.

        Unlike every other error, a content error (a NUL, an over-long line) does not break the
        connection: nothing of that content was sent, and the caller aborts the transaction with
        RSET (RFC 3030 section 2), which the connection then allows.

        Args:
            data: the next bytes of the message.
            binary: the message is BODY=BINARYMIME (RFC 3030 section 3): no line-ending
                normalisation, no checks.  Must be the same for every call of one message.

        Raises:
            LocalProtocolError: not in a transaction, the content is refused, or ``binary``
                changed within a message.
        """
        self._check_usable()
        if (self._projected, "BDAT") not in SEND_TRANSITIONS:
            self._fail(LocalProtocolError(f"BDAT is not allowed in state {self._projected.name}"))
        if self._bdat is None:
            self._bdat = BdatEncoder(
                chunk_size=self._chunk_size, max_line_length=self._max_data_line_length, binary=binary
            )
            self._bdat_binary = binary
        elif binary != self._bdat_binary:
            self._fail(LocalProtocolError("binary cannot change within a message"))
        # A content error leaves the encoder refusing, and the connection usable (see above).
        self._bdat_ready.extend(self._bdat.feed(data))

    @property
    def bdat_pending(self) -> int:
        """How many complete chunks :meth:`next_bdat` can hand out now."""
        return len(self._bdat_ready)

    def next_bdat(self) -> bytes | None:
        """Return the next complete chunk, ``BDAT <size>`` CRLF and its payload, or ``None``.

        Each chunk returned is one command in flight, whose reply is a ``BDAT`` event.

        Raises:
            LocalProtocolError: the chunk may not be sent now (see :meth:`send`).
        """
        self._check_usable()
        if not self._bdat_ready:
            return None
        self._advance("BDAT")
        payload = self._bdat_ready.popleft()
        command = Bdat(size=len(payload))
        self._in_flight.append(_InFlight("BDAT", command.line(), "data_block"))
        return command.encode() + payload

    def end_bdat(self) -> bytes:
        """Return the last chunk, ``BDAT <size> LAST`` CRLF and its payload; a reply is expected.

        The message may be empty (``BDAT 0 LAST``); the reply, a ``BDAT-LAST`` event, is the
        reply to the whole message (RFC 3030 section 2).

        Raises:
            LocalProtocolError: complete chunks are still waiting for :meth:`next_bdat`, or the
                chunk may not be sent now.
        """
        self._check_usable()
        if self._bdat_ready:
            self._fail(LocalProtocolError("end_bdat() called before every chunk was taken with next_bdat()"))
        self._advance("BDAT-LAST")
        if self._bdat is None:
            self._bdat = BdatEncoder(chunk_size=self._chunk_size)
        payload = self._guard(self._bdat.end)
        self._bdat = None
        command = Bdat(size=len(payload), last=True)
        self._in_flight.append(_InFlight("BDAT-LAST", command.line(), "data_end"))
        return command.encode() + payload

    def start_tls_complete(self) -> None:
        """Record that the TLS handshake after STARTTLS succeeded; EHLO must follow.

        Raises:
            LocalProtocolError: if STARTTLS was not accepted first.
        """
        self._check_usable()
        self._advance("TLS-ESTABLISHED")
        self._state = self._projected

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the server; ``b""`` means the server closed the connection.

        Raises:
            SecurityError: bytes arrived between the STARTTLS 220 and the handshake.
            RemoteProtocolError: bytes arrived while no reply was awaited.
        """
        self._check_usable()
        if self._state is State.TLS and data:
            self._fail(SecurityError(_INJECTION))
        if data and not self._in_flight:
            # Every reply answers a command (RFC 5321 section 4.2): bytes arriving when none is
            # awaited would be taken for the reply to the next command.
            self._fail(RemoteProtocolError(f"the server sent data nobody asked for: {preview_bytes(data)}"))
        if data:
            self._guard(lambda: self._reader.feed(data))
        else:
            self._reader.feed_eof()

    def next_event(self) -> Event | NeedData:
        """Return the next event, or :data:`NEED_DATA` if a whole reply has not arrived yet.

        Raises:
            RemoteProtocolError: a malformed reply, a reply nobody asked for, a reply that makes
                no sense for its command, or the connection closed while a reply was due.
            SecurityError: plaintext bytes followed the STARTTLS 220 (RFC 3207 section 4.2,
                the "response injection" of the NO STARTTLS study).
        """
        self._check_usable()
        reply = self._guard(self._reader.next_reply)
        if reply is None:
            if not self._reader.at_eof:
                return NEED_DATA
            if self._in_flight:
                self._fail(
                    RemoteProtocolError(
                        f"the server closed the connection while a reply to {self._in_flight[0].verb} was due"
                    )
                )
            self._state = self._projected = State.CLOSED
            return ConnectionClosed()
        answered = self._in_flight.popleft()
        key = (answered.verb, outcome_of(reply.code))
        if answered.verb == "RCPT" and key[1] is Outcome.OK:
            self._accepted_rcpts += 1
        if key not in REPLY_TRANSITIONS:
            self._fail(RemoteProtocolError(f"reply {reply} makes no sense as an answer to {answered.verb}"))
        new_state = REPLY_TRANSITIONS[key]
        if new_state is not None:
            self._state = new_state
        if new_state is State.CLOSED:
            self._in_flight.clear()
        if not self._in_flight:
            self._projected = self._state
        if self._reader.has_pending_data and not self._in_flight and new_state is not State.CLOSED:
            if self._state is State.TLS:
                self._fail(SecurityError(_INJECTION))
            # Every reply answers a command (RFC 5321 section 4.2); bytes beyond the last awaited
            # reply answer nothing and would be taken for the reply to the next command.
            self._fail(RemoteProtocolError("the server sent data nobody asked for after its reply"))
        return ReplyReceived(verb=answered.verb, command=answered.command, reply=reply)

    def _advance(self, verb: str) -> None:
        if self._in_flight:
            last = self._in_flight[-1].verb
            if last in GROUP_ENDERS:
                reason = "(RFC 2920 section 3.1)"
            elif not self.pipelining:
                reason = "while pipelining is off"
            else:
                reason = ""
            if reason:
                self._fail(LocalProtocolError(f"cannot send {verb} before the reply to {last} {reason}"))
        projected = SEND_TRANSITIONS.get((self._projected, verb))
        if projected is None:
            self._fail(LocalProtocolError(f"{verb} is not allowed in state {self._projected.name}"))
        self._projected = projected

    def _data_encoder(self) -> DataEncoder:
        if self._encoder is None:
            self._encoder = DataEncoder(max_line_length=self._max_data_line_length)
        return self._encoder

    def _guard(self, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except SMTPError as error:
            self._fail(error)

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise LocalProtocolError(f"the connection is unusable after an earlier error: {self._failure}")
        if self._state is State.CLOSED:
            raise LocalProtocolError("the connection is closed")

    def _fail(self, error: SMTPError) -> NoReturn:
        self._failure = error
        self._state = self._projected = State.ERROR
        raise error


_INJECTION = (
    "the server sent data after its STARTTLS reply and before the TLS handshake: "
    "possible STARTTLS response injection, refusing to continue"
)
