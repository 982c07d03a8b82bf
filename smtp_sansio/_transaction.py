"""Mail transactions: what a message needs on the wire, and the machinery that sends a queue of them.

:func:`prepare` turns an :class:`OutgoingMessage` into the commands of its transaction, checking
everything that can be checked before the first byte (addresses, extensions, SIZE, DSN,
REQUIRETLS).  :class:`TransactionRunner` then sends one or several prepared messages over one
connection, as fast as the protocol allows:

* with PIPELINING (RFC 2920), MAIL and every RCPT are written without waiting; DATA ends the
  group (section 3.1), and the next message's MAIL/RCPT/DATA group is written right behind the
  previous message's final "." ("the actual transfer of message content is explicitly allowed to
  be the first command in a group", RFC 2920 section 3.1);
* with CHUNKING (RFC 3030), the message goes as BDAT chunks, pipelined (section 4.2), the last one
  marked LAST; the next message's MAIL and RCPTs follow it without waiting.  The chunks are only
  sent once the MAIL and RCPT replies showed that someone will receive them;
* never more than ``max_in_flight`` commands wait for their replies: the replies to that many
  commands (a few kilobytes) always fit in the socket buffers, so neither side can block writing
  while the other is blocked writing too;
* message data is read from the caller's chunks as it is sent, and written in pieces of at most
  about ``chunk_size`` octets, so memory use does not grow with the size of the message.

Every reply is checked in order against the command it answers, and each message gets its own
outcome, exactly as if it had been sent alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._capabilities import Capabilities
from ._commands import Command, Data, Mail, Rcpt, Rset
from ._connection import Connection, ReplyReceived
from ._data import DataEncoder, is_positive_int
from ._dsn import Dsn
from ._envelope import Envelope, message_needs_smtputf8, needs_smtputf8
from ._errors import (
    LocalProtocolError,
    PermanentReplyError,
    RemoteProtocolError,
    ReplyError,
    SMTPError,
    TransientReplyError,
)
from ._replies import Reply
from ._requests import Request, Write
from ._results import SendResult, TraceDirection, Unsent

__all__ = [
    "BODY_TYPES",
    "DEFAULT_MAX_IN_FLIGHT",
    "BodyType",
    "MessageData",
    "Outcome",
    "OutgoingMessage",
    "PreparedMessage",
    "TransactionRunner",
    "prepare",
    "reply_error",
    "unsent",
]

#: The message content: the whole message as bytes, or an iterable of byte chunks read as it is sent.
MessageData = bytes | bytearray | memoryview | Iterable[bytes]

#: The BODY parameter of MAIL: ``"7BIT"`` (plain text), ``"8BITMIME"`` (RFC 6152), ``"BINARYMIME"``
#: (RFC 3030 section 3, only with CHUNKING).
BodyType = Literal["7BIT", "8BITMIME", "BINARYMIME"]
BODY_TYPES: tuple[BodyType, ...] = ("7BIT", "8BITMIME", "BINARYMIME")

#: The default bound on commands awaiting a reply.  A reply is rarely over 100 octets, so the replies
#: to 256 commands (about 26 KB) fit in any socket receive buffer (Linux starts at 128 KiB): the
#: server never blocks writing replies the client is not yet reading, and so it keeps reading
#: commands.  RFC 5321 section 4.5.3.1.8 makes every server accept 100 recipients: a transaction
#: that large is MAIL, 100 RCPTs and DATA or BDAT, 102 commands, and with the previous message's
#: last chunk still unanswered in a batch, twice that must still fit for each message to cost one
#: round trip.  A bound of 100 split such transactions into three round trips.
DEFAULT_MAX_IN_FLIGHT = 256

#: What :meth:`~smtp_sansio.Session.send_messages` reports for each message.
Outcome = SendResult | SMTPError | Unsent


def reply_error(reply: Reply, command: str | None, refused: Mapping[str, Reply] | None = None) -> ReplyError:
    """The :class:`ReplyError` for a negative reply: transient for 4xx, permanent for 5xx."""
    error_class = TransientReplyError if reply.is_transient else PermanentReplyError
    return error_class(reply, command, refused=refused)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    """One message for :meth:`~smtp_sansio.Session.send_messages`, with its per-message options.

    Attributes:
        envelope: the sender and recipients.
        data: the message (headers and body, any line endings) as bytes, or an iterable of byte
            chunks that is read as the message is sent and never held whole.
        size: the size in octets, for the SIZE parameter when ``data`` is an iterable (RFC 1870);
            without it no SIZE is sent for an iterable.  Ignored for bytes, which are measured.
        body: the BODY parameter; ``None`` chooses: 8BITMIME for 8-bit bytes, for an iterable
            8BITMIME when offered, else none (and then an 8-bit octet in the stream is an error).
        dsn: request delivery status notifications (RFC 3461); the server must offer DSN.
        requiretls: ask that the message travel over verified TLS only (RFC 8689); needs a
            verified TLS connection and a server offering REQUIRETLS.
        smtputf8: declare SMTPUTF8 for an iterable whose header section is not ASCII (an iterable is
            not scanned for it; bytes are).
    """

    envelope: Envelope
    data: MessageData
    size: int | None = None
    body: BodyType | None = None
    dsn: Dsn | None = None
    requiretls: bool = False
    smtputf8: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedMessage:
    """A message whose commands are built and checked; only its content remains to be read.

    Attributes:
        mail: the MAIL command, with every parameter.
        rcpts: one RCPT command per recipient.
        data: the content, as given.
        chunking: sent with BDAT rather than DATA.
        binary: BODY=BINARYMIME: the content goes through untouched.
        ascii_only: an iterable whose every octet must be 7-bit (no 8BITMIME to declare).
    """

    mail: Mail
    rcpts: tuple[Rcpt, ...]
    data: MessageData
    chunking: bool = False
    binary: bool = False
    ascii_only: bool = False


def prepare(
    message: OutgoingMessage,
    capabilities: Capabilities,
    *,
    chunking: bool,
    encrypted_and_verified: bool,
    max_data_line_length: int | None,
    chunk_size: int,
) -> PreparedMessage:
    """Build and check the commands of one transaction; nothing is sent.

    What is checked, and when: for bytes, everything before the first byte -- addresses, SMTPUTF8
    (addresses and header section, RFC 6531 section 3.4), NUL octets and line lengths, 8-bit
    content against 8BITMIME (RFC 6152), the size against SIZE (RFC 1870).  For an iterable, only
    what does not need the content: addresses, SMTPUTF8 from the addresses (or ``smtputf8``), the
    ``size`` hint against SIZE; the content is checked chunk by chunk as it is sent (see
    :meth:`~smtp_sansio.Session.send_message` for what happens then).  Bcc fields are never
    looked for: the content is sent as given.

    Raises:
        LocalProtocolError: the message cannot be sent to this server as it is.
    """
    envelope = message.envelope
    data = message.data
    streamed = not isinstance(data, bytes | bytearray | memoryview)
    # A str is iterable too, but of characters: text must be encoded by the caller.
    given: object = data
    if streamed and (isinstance(given, str) or not isinstance(given, Iterable)):
        raise LocalProtocolError(
            f"message data must be bytes or an iterable of bytes, not {type(data).__name__}"
        )
    if message.body is not None and message.body not in BODY_TYPES:
        raise LocalProtocolError(f"body must be one of {', '.join(BODY_TYPES)}, not {message.body!r}")
    binary = message.body == "BINARYMIME"
    if binary and not (chunking and "CHUNKING" in capabilities and "BINARYMIME" in capabilities):
        # RFC 3030 section 3: BINARYMIME only with BDAT, and only to a server offering both.
        raise LocalProtocolError("BODY=BINARYMIME needs chunking, with CHUNKING and BINARYMIME offered")
    use_bdat = chunking and "CHUNKING" in capabilities

    # RFC 6531 section 3.4: non-ASCII addresses or header fields need SMTPUTF8 on MAIL.
    smtputf8 = needs_smtputf8(envelope) or message.smtputf8
    if not streamed:
        smtputf8 = smtputf8 or message_needs_smtputf8(bytes(data))  # type: ignore[arg-type]
    if smtputf8 and "SMTPUTF8" not in capabilities:
        raise LocalProtocolError(
            "the message has non-ASCII addresses or header fields and the server does not offer SMTPUTF8"
        )

    size = message.size
    given_size: object = size
    if given_size is not None and not (is_positive_int(given_size) or given_size == 0):
        raise LocalProtocolError(f"size must be a non-negative int or None, not {size!r}")
    eight_bit = message.body in ("8BITMIME", "BINARYMIME")
    if not streamed:
        content = bytes(data)  # type: ignore[arg-type]
        size = _measure(content, bdat=use_bdat, binary=binary, max_line_length=max_data_line_length,
                        chunk_size=chunk_size)
        if not content.isascii():
            if message.body == "7BIT":
                raise LocalProtocolError("the message has 8-bit content but body='7BIT' was given")
            eight_bit = True
    elif message.body is None and "8BITMIME" in capabilities:
        eight_bit = True  # declaring 8BITMIME for 7-bit content is harmless (RFC 6152 section 3)

    limit = capabilities.size_limit
    if limit and size is not None and size > limit:
        raise LocalProtocolError(f"the message is {size} octets, over the server's SIZE limit of {limit}")
    parameters: dict[str, str | None] = {}
    if limit is not None and size is not None:
        parameters["SIZE"] = str(size)
    if binary:
        parameters["BODY"] = "BINARYMIME"
    elif eight_bit:
        # RFC 6152 section 3: 8-bit content only to a server that announced 8BITMIME, which is
        # told so; anything else could be mangled or bounced after acceptance.
        if "8BITMIME" not in capabilities:
            raise LocalProtocolError(
                "the message has 8-bit content and the server does not offer 8BITMIME; "
                "use a 7-bit Content-Transfer-Encoding (quoted-printable or base64)"
            )
        parameters["BODY"] = "8BITMIME"
    elif message.body == "7BIT" and "8BITMIME" in capabilities:
        parameters["BODY"] = "7BIT"
    if smtputf8:
        parameters["SMTPUTF8"] = None
    dsn = message.dsn
    if dsn is not None:
        if not isinstance(dsn, Dsn):
            raise LocalProtocolError(f"dsn must be a Dsn, not {type(dsn).__name__}")
        # RFC 3461 section 4: the parameters only to a server that announced DSN.
        if "DSN" not in capabilities:
            raise LocalProtocolError("DSN requested, but the server does not offer DSN (RFC 3461)")
        parameters.update(dsn.mail_parameters())
    if message.requiretls:
        # RFC 8689 section 4.1: only over TLS with a verified certificate, to a server offering it.
        if not encrypted_and_verified:
            raise LocalProtocolError("REQUIRETLS needs a TLS connection whose certificate was verified")
        if "REQUIRETLS" not in capabilities:
            raise LocalProtocolError("REQUIRETLS was asked for, but the server does not offer it")
        parameters["REQUIRETLS"] = None
    mail = Mail(sender=envelope.sender, parameters=parameters, smtputf8=smtputf8)
    rcpts = tuple(
        Rcpt(recipient=recipient, smtputf8=smtputf8,
             parameters=dsn.rcpt_parameters(recipient) if dsn is not None else {})
        for recipient in envelope.recipients
    )
    return PreparedMessage(
        mail=mail, rcpts=rcpts, data=data, chunking=use_bdat, binary=binary,
        ascii_only=streamed and not eight_bit,
    )


def _measure(
    content: bytes, *, bdat: bool, binary: bool, max_line_length: int | None, chunk_size: int
) -> int:
    # The octets of the message as it will be transmitted (RFC 1870 section 4: for DATA, without
    # the final ".CRLF"), found piece by piece so the message is never copied whole.  Checks NUL
    # octets and line lengths on the way.
    if binary:
        return len(content)
    encoder = DataEncoder(max_line_length=max_line_length, transparency=not bdat)
    view = memoryview(content)
    pieces = range(0, len(content), chunk_size)
    total = sum(len(encoder.feed(bytes(view[i : i + chunk_size]))) for i in pieces)
    total += len(encoder.end())
    return total if bdat else total - 3


def _pieces(data: MessageData, chunk_size: int, *, ascii_only: bool) -> Iterator[bytes]:
    # The content in pieces of at most chunk_size octets, checked for type (and 7-bit) on the way.
    chunks: Iterable[object] = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"message chunks must be bytes, not {type(chunk).__name__}")
        view = memoryview(chunk).cast("B")
        for start in range(0, len(view), chunk_size):
            piece = bytes(view[start : start + chunk_size])
            if ascii_only and not piece.isascii():
                raise LocalProtocolError(
                    "the message has 8-bit content and the server does not offer 8BITMIME; "
                    "use a 7-bit Content-Transfer-Encoding (quoted-printable or base64)"
                )
            yield piece


Kind = Literal["MAIL", "RCPT", "DATA", "END", "BDAT", "RSET"]


@dataclass(eq=False)
class _Transaction:
    # The progress of one message on the wire.
    message: PreparedMessage
    mail_reply: ReplyReceived | None = None
    rcpt_replies: list[ReplyReceived] = field(default_factory=list)
    data_reply: ReplyReceived | None = None
    ends_expected: int = 0
    end_replies: list[ReplyReceived] = field(default_factory=list)
    bdat_refusal: ReplyReceived | None = None
    outstanding: int = 0
    data_sent: bool = False
    outcome: Outcome | None = None

    @property
    def chunk_refused(self) -> bool:
        return self.bdat_refusal is not None

    @property
    def mail_ok(self) -> bool:
        return self.mail_reply is not None and self.mail_reply.reply.is_positive

    def accepted(self) -> tuple[str, ...]:
        return tuple(
            rcpt.recipient for rcpt, answer in zip(self.message.rcpts, self.rcpt_replies, strict=False)
            if answer.reply.is_positive
        )

    def refused(self) -> dict[str, Reply]:
        return {
            rcpt.recipient: answer.reply
            for rcpt, answer in zip(self.message.rcpts, self.rcpt_replies, strict=False)
            if not answer.reply.is_positive
        }


Expect = Callable[[], Generator[Request, None, ReplyReceived]]
Emit = Callable[[TraceDirection, str], None]


def _no_trace(direction: TraceDirection, text: str) -> None:
    pass


class TransactionRunner:
    """Sends prepared messages over one connection, pipelined and chunked as far as allowed.

    Used by :class:`~smtp_sansio.Session`; the runner is a generator of requests like the rest of
    the session.  Each message's outcome is a :class:`~smtp_sansio.SendResult` or the error that
    refused it; an error that ends the connection (a 421, a protocol violation, content that
    cannot be sent after DATA was accepted) propagates and leaves the messages not yet finished
    without an outcome.

    Args:
        conn: the connection.
        timeouts: seconds per phase.
        expect: the session's step that returns the next reply (and ends the session on 421).
        emit: the trace callback, or ``None`` when nobody traces: the trace lines are then not
            even built (a command's trace text costs as much as its encoding).
        quit_and_close: the session's step that sends QUIT and closes, for a server that cannot
            be trusted any more.
        chunk_size: the bound of message data per write, and the BDAT chunk size.
        max_in_flight: the most commands awaiting a reply at any time.
    """

    def __init__(
        self,
        conn: Connection,
        timeouts: Mapping[str, float | None],
        expect: Expect,
        emit: Emit | None,
        quit_and_close: Callable[[], Generator[Request, None, None]],
        *,
        chunk_size: int,
        max_in_flight: int,
    ) -> None:
        self._conn = conn
        self._timeouts = timeouts
        self._expect = expect
        self._tracing = emit is not None
        self._emit: Emit = emit or _no_trace
        self._quit_and_close = quit_and_close
        self._chunk_size = chunk_size
        self._max_in_flight = max_in_flight
        self._expected: deque[tuple[_Transaction, Kind]] = deque()
        self._out: list[bytes] = []
        self._out_length = 0
        self._out_phase = "command"
        self._entries: list[_Transaction | SMTPError] = []

    def outcomes(self) -> list[Outcome | None]:
        """Each message's outcome so far, in order; ``None`` while it is not finished."""
        return [entry if isinstance(entry, SMTPError) else entry.outcome for entry in self._entries]

    def data_sent(self) -> list[bool]:
        """For each message, whether the end of its data was written (its fate is then the server's)."""
        return [not isinstance(entry, SMTPError) and entry.data_sent for entry in self._entries]

    def run(self, messages: Iterable[PreparedMessage | SMTPError]) -> Generator[Request, None, list[Outcome]]:
        """Send every message, in order; return their outcomes.

        A message given as an error (it failed :func:`prepare`) is not sent; the error is its outcome.
        """
        # Every message has its entry from the start, so that none is forgotten if the connection ends.
        self._entries = [
            message if isinstance(message, SMTPError) else _Transaction(message=message)
            for message in messages
        ]
        for entry in self._entries:
            if isinstance(entry, _Transaction):
                yield from self._send(entry)
        while self._expected:
            yield from self._read_one()
        outcomes = self.outcomes()
        assert None not in outcomes  # noqa: S101 - every reply has been read
        return outcomes  # type: ignore[return-value]

    # --- one transaction -----------------------------------------------------------------------------

    def _send(self, tx: _Transaction) -> Generator[Request, None, None]:
        message = tx.message
        pipelining = self._conn.pipelining
        yield from self._command(tx, message.mail, "MAIL")
        for rcpt in message.rcpts:
            # Without pipelining each reply comes before the next command; with it, a full
            # in-flight bound may bring the MAIL reply early.  Either way a refused MAIL stops the
            # transaction: its RCPTs would only be answered 503.
            yield from (self._room() if pipelining else self._settle(tx))
            if self._mail_refused(tx):
                break
            yield from self._command(tx, rcpt, "RCPT")
        if not message.chunking and pipelining:
            yield from self._room()
        if message.chunking or not pipelining or self._mail_refused(tx):
            # The envelope's replies decide whether there is anyone to send the content to.
            yield from self._settle(tx)
            if not tx.mail_ok:
                assert tx.mail_reply is not None  # noqa: S101 - settled
                tx.outcome = reply_error(tx.mail_reply.reply, tx.mail_reply.command)
                return
            if not tx.accepted():
                yield from self._reset(tx)
                tx.outcome = self._all_refused(tx)
                return
        if message.chunking:
            yield from self._send_chunks(tx)
            return
        yield from self._command(tx, Data(), "DATA")
        yield from self._settle(tx)  # DATA ends the group (RFC 2920 section 3.1): wait for 354
        assert tx.data_reply is not None  # noqa: S101 - settled
        if tx.data_reply.reply.code // 100 == 3:
            if tx.mail_ok and tx.accepted():
                yield from self._send_data(tx)
                return
            # A server that accepts DATA without a transaction or a recipient: end the data at
            # once, so that nothing can be delivered (RFC 2920 section 3.1).
            yield from self._queue(self._conn.send_data(b"") + self._conn.end_data(), "data_block")
            self._emit("C", ".")
            self._expect_reply(tx, "END", count=self._end_replies(tx))
            yield from self._settle(tx)
            tx.end_replies.clear()
        if not tx.mail_ok:
            assert tx.mail_reply is not None  # noqa: S101 - settled
            tx.outcome = reply_error(tx.mail_reply.reply, tx.mail_reply.command)
            return
        yield from self._reset(tx)
        if tx.accepted():
            tx.outcome = reply_error(tx.data_reply.reply, tx.data_reply.command)
        else:
            tx.outcome = self._all_refused(tx)

    def _end_replies(self, tx: _Transaction) -> int:
        # RFC 2033 section 4.2: in LMTP, one reply per accepted recipient (at least one, as the
        # connection counts them); one otherwise.
        return max(1, len(tx.accepted())) if self._conn.lmtp else 1

    def _send_data(self, tx: _Transaction) -> Generator[Request, None, None]:
        # After the 354 nothing is answered until the final ".": the content streams out in writes
        # of at most chunk_size octets.  A chunk that cannot be sent ends the connection (the error
        # propagates): what went out cannot be taken back, and ending it with "." would deliver a
        # truncated message, so the session closes without the terminator and the server discards
        # the incomplete transaction (RFC 5321 section 4.1.1.4).
        message = tx.message
        total = 0
        given = False
        for piece in _pieces(message.data, self._chunk_size, ascii_only=message.ascii_only):
            given = given or bool(piece)
            encoded = self._conn.send_data(piece)
            total += len(encoded)
            for start in range(0, len(encoded), self._chunk_size):
                yield from self._queue(encoded[start : start + self._chunk_size], "data_block")
        end = self._conn.end_data()
        total += len(end)
        if given:
            self._emit("C", f"<message data: {total - 3} octets>")
        self._emit("C", ".")
        yield from self._queue(end, "data_block")
        tx.data_sent = True
        self._expect_reply(tx, "END", count=self._end_replies(tx))

    def _send_chunks(self, tx: _Transaction) -> Generator[Request, None, None]:
        # BDAT (RFC 3030 section 2): each chunk is a command with a reply, pipelined within the
        # in-flight bound.  A refused chunk or content that cannot be sent aborts the transaction
        # with RSET, which discards what the server received of it.
        message = tx.message
        conn = self._conn
        problem: SMTPError | None = None
        total = 0
        try:
            for piece in _pieces(message.data, self._chunk_size, ascii_only=message.ascii_only):
                conn.feed_bdat(piece, binary=message.binary)
                while conn.bdat_pending and not tx.chunk_refused:
                    yield from self._room()  # may read a refusal of an earlier chunk
                    if self._refused(tx):
                        break
                    frame = conn.next_bdat()
                    assert frame is not None  # noqa: S101 - pending
                    size = frame.index(b"\r\n")
                    self._emit("C", frame[:size].decode("ascii"))
                    total += len(frame) - size - 2
                    yield from self._queue(frame, "data_block")
                    self._expect_reply(tx, "BDAT")
                if tx.chunk_refused:
                    break
        except LocalProtocolError as error:
            problem = error
        if problem is None and not tx.chunk_refused:
            yield from self._room()
        if problem is None and not tx.chunk_refused:
            frame = conn.end_bdat()
            size = frame.index(b"\r\n")
            self._emit("C", frame[:size].decode("ascii"))
            total += len(frame) - size - 2
            self._emit("C", f"<message data: {total} octets>")
            yield from self._queue(frame, "data_end")
            tx.data_sent = True
            self._expect_reply(tx, "END")
            return
        yield from self._settle(tx)
        yield from self._reset(tx)
        if problem is not None:
            tx.outcome = problem
        else:
            assert tx.bdat_refusal is not None  # noqa: S101 - the other case
            tx.outcome = reply_error(tx.bdat_refusal.reply, tx.bdat_refusal.command)

    def _reset(self, tx: _Transaction) -> Generator[Request, None, None]:
        # RSET ends what is left of a refused transaction (RFC 5321 section 4.1.1.5).  Its reply is
        # awaited (and checked) with the rest; nothing of the next message goes before it.
        yield from self._command(tx, Rset(), "RSET")
        yield from self._settle(tx)

    # --- commands, replies and writes --------------------------------------------------------------

    def _command(self, tx: _Transaction, command: Command, kind: Kind) -> Generator[Request, None, None]:
        yield from self._room()
        data = self._conn.send(command)
        if self._tracing:
            self._emit("C", command.trace_text())
        yield from self._queue(data, command.phase)
        self._expect_reply(tx, kind)

    def _expect_reply(self, tx: _Transaction, kind: Kind, count: int = 1) -> None:
        for _ in range(count):
            self._expected.append((tx, kind))
            tx.outstanding += 1
        if kind == "END":
            tx.ends_expected = count

    def _room(self) -> Generator[Request, None, None]:
        # Read replies until one more command may be sent: nothing in flight, or pipelining on, the
        # last command in flight not ending a group (RFC 2920 section 3.1), and room in the bound.
        # Asked before every command: in_flight_count, since building the in_flight tuple each time
        # cost as much as the commands in flight (up to max_in_flight, 256 by default).
        conn = self._conn
        while self._expected and not (
            conn.may_pipeline and conn.in_flight_count < self._max_in_flight
        ):
            yield from self._read_one()

    def _settle(self, tx: _Transaction) -> Generator[Request, None, None]:
        # Read replies until every command of ``tx`` has been answered.
        while tx.outstanding:
            yield from self._read_one()

    def _queue(self, data: bytes, phase: str) -> Generator[Request, None, None]:
        if self._out and self._out_length + len(data) > self._chunk_size:
            yield from self._flush()
        if not self._out:
            self._out_phase = phase
        self._out.append(data)
        self._out_length += len(data)

    def _flush(self) -> Generator[Request, None, None]:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            self._out_length = 0
            yield Write(data=data, timeout=self._timeouts[self._out_phase], phase=self._out_phase)

    def _read_one(self) -> Generator[Request, None, None]:
        yield from self._flush()
        answer = yield from self._expect()
        tx, kind = self._expected.popleft()
        tx.outstanding -= 1
        if kind == "MAIL":
            tx.mail_reply = answer
        elif kind == "RCPT":
            tx.rcpt_replies.append(answer)
        elif kind == "DATA":
            tx.data_reply = answer
        elif kind == "BDAT":
            if not answer.reply.is_positive and tx.bdat_refusal is None:
                tx.bdat_refusal = answer
        elif kind == "RSET":
            if not answer.reply.is_positive:
                # RFC 5321 section 4.1.1.5: RSET cannot fail; a server that says otherwise cannot
                # be trusted with the next transaction.
                yield from self._quit_and_close()
                raise RemoteProtocolError(f"the server refused RSET: {answer.reply}")
        else:
            tx.end_replies.append(answer)
            if len(tx.end_replies) == tx.ends_expected and tx.outcome is None and tx.data_sent:
                tx.outcome = self._final_outcome(tx)

    # --- outcomes -------------------------------------------------------------------------------------

    def _final_outcome(self, tx: _Transaction) -> Outcome:
        accepted = tx.accepted()
        refused = tx.refused()
        if tx.bdat_refusal is not None:
            # A chunk was refused after the last one was sent: the message is not accepted.
            return reply_error(tx.bdat_refusal.reply, tx.bdat_refusal.command)
        if not self._conn.lmtp:
            final = tx.end_replies[0]
            if not final.reply.is_positive:
                return reply_error(final.reply, "end of data")
            return SendResult(accepted=accepted, refused=refused, reply=final.reply)
        # LMTP (RFC 2033 section 4.2): one reply per accepted recipient, in RCPT order.
        delivered: dict[str, Reply] = {}
        for recipient, answer in zip(accepted, tx.end_replies, strict=False):
            if answer.reply.is_positive:
                delivered[recipient] = answer.reply
            else:
                refused[recipient] = answer.reply
        if not delivered:
            replies = [refused[recipient] for recipient in accepted]
            reply = next((r for r in replies if r.is_transient), replies[0])
            return reply_error(reply, "end of data (every recipient refused)", refused)
        return SendResult(
            accepted=tuple(delivered), refused=refused, reply=next(iter(delivered.values())),
            recipient_replies=delivered,
        )

    @staticmethod
    def _mail_refused(tx: _Transaction) -> bool:
        return tx.mail_reply is not None and not tx.mail_reply.reply.is_positive

    @staticmethod
    def _refused(tx: _Transaction) -> bool:
        # A function, so that the type checker does not assume the attribute unchanged by a read.
        return tx.chunk_refused

    @staticmethod
    def _all_refused(tx: _Transaction) -> ReplyError:
        # Every recipient refused.  The error is transient if any refusal is, since trying again
        # later may then succeed for some.
        refused = tx.refused()
        replies = list(refused.values())
        reply = next((r for r in replies if r.is_transient), replies[0])
        return reply_error(reply, f"RCPT (all {len(replies)} recipients refused)", refused)


def unsent(outcomes: list[Outcome | None], data_sent: list[bool], error: SMTPError) -> list[Outcome]:
    """Fill the gaps after the connection ended: every unfinished message is :class:`Unsent`."""
    return [
        Unsent(error=error, data_sent=sent) if outcome is None else outcome
        for outcome, sent in zip(outcomes, data_sent, strict=True)
    ]
