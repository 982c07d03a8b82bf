"""Server replies: the :class:`Reply` value and the bounded :class:`ReplyReader`.

The reader is the only place where bytes from the server are parsed.  Whatever it is fed, it either
returns replies or raises :class:`RemoteProtocolError`; it never raises anything else and never
holds more than its caps allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._abnf import ENHANCED_STATUS, REPLY_LINE
from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_REPLY_LINES",
    "Reply",
    "ReplyReader",
    "preview_bytes",
]

# RFC 5321 section 4.5.3.1.5 limits a reply line to 512 octets with its CRLF, but the same section
# asks receivers to be liberal, and real servers exceed it in long EHLO AUTH lists and banners.
# Postfix reads lines up to its line_length_limit of 2048 octets; twice that still bounds memory
# while accepting every server we know of.
DEFAULT_MAX_LINE_LENGTH = 4096

# A multi-line reply has no length limit in RFC 5321.  EHLO replies of large providers run to about
# twenty lines and multi-line banners to a few dozen; 512 lines of at most 4096 octets caps one
# reply at 2 MiB, so an endless continuation cannot exhaust memory.
DEFAULT_MAX_REPLY_LINES = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One complete server reply, possibly of several lines.

    Attributes:
        code: the three-digit reply code (RFC 5321 section 4.2).
        lines: the text of each line after the code and separator, as raw bytes (``b""`` where
            a line had no text).
        enhanced_status: the RFC 3463 status code at the start of the first line's text
            (``"2.1.0"``), when present and of the same class as ``code``; else ``None``.
    """

    code: int
    lines: tuple[bytes, ...] = field(default=(b"",))
    enhanced_status: str | None = None

    def __post_init__(self) -> None:
        # Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 section 4.2): the codes a reader can produce.
        if not (200 <= self.code <= 559 and self.code // 10 % 10 <= 5):
            raise LocalProtocolError(f"{self.code} is not a reply code (2xx to 5xx, second digit 0 to 5)")
        if not self.lines:
            raise LocalProtocolError("a reply has at least one line")

    @property
    def text(self) -> str:
        """The text of all lines joined by newlines, decoded losslessly.

        Bytes that are not UTF-8 are kept as surrogate escapes, so
        ``reply.text.encode("utf-8", "surrogateescape")`` gives back the raw text.
        """
        return "\n".join(line.decode("utf-8", "surrogateescape") for line in self.lines)

    @property
    def text_oneline(self) -> str:
        """The text on one line, with undecodable bytes and control characters made visible."""
        return " ".join(_printable(line) for line in self.lines).strip()

    @property
    def is_positive(self) -> bool:
        """True for 2xx (positive completion) replies."""
        return 200 <= self.code < 300

    @property
    def is_transient(self) -> bool:
        """True for 4xx (transient negative completion) replies."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """True for 5xx (permanent negative completion) replies."""
        return self.code >= 500

    def wire_lines(self) -> list[str]:
        """The reply's lines as they appeared on the wire (without CRLF), for traces.

        Undecodable bytes and control characters are made visible (``\\x1b``), so that a server
        cannot write terminal escape sequences into a trace shown on a terminal.
        """
        last = len(self.lines) - 1
        return [
            f"{self.code}{'-' if index < last else ' '}{_printable(line)}".rstrip()
            for index, line in enumerate(self.lines)
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.text_oneline}".rstrip()


def _first_byte_can_start_reply(byte: int) -> bool:
    # Reply-code = %x32-35 ...: a reply starts with 2, 3, 4 or 5.  Checking this as soon as one byte
    # is in means a TLS record (0x16), an HTTP response ("H") or other garbage where a reply should
    # be is rejected at once instead of after a line's worth of buffering.
    return 0x32 <= byte <= 0x35


class ReplyReader:
    """Accumulate bytes from the server and cut them into :class:`Reply` objects.

    Lines may end in CRLF or, leniently, a bare LF.  The buffer remembers how far it has searched
    for a line ending, so feeding a reply byte by byte stays linear.

    Args:
        max_line_length: the longest reply line accepted, in octets, without its line ending.
        max_reply_lines: the most lines one multi-line reply may have.
    """

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_lines: int = DEFAULT_MAX_REPLY_LINES,
    ) -> None:
        if max_line_length < 3 or max_reply_lines < 1:
            raise LocalProtocolError("reply caps must allow at least one line holding a reply code")
        self._max_line_length = max_line_length
        self._max_reply_lines = max_reply_lines
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no LF
        self._lines: list[tuple[bytes, bytes, bytes]] = []  # (code, separator, text) of the reply so far
        self._eof = False

    @property
    def has_pending_data(self) -> bool:
        """True if bytes were received that are not yet part of a returned reply."""
        return bool(self._buffer or self._lines)

    @property
    def at_eof(self) -> bool:
        """True once :meth:`feed_eof` has been called."""
        return self._eof

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server.

        Raises:
            RemoteProtocolError: if data arrives after the end of the stream.
        """
        if self._eof and data:
            raise RemoteProtocolError("data received after the connection was closed")
        self._buffer += data

    def feed_eof(self) -> None:
        """Record that the server closed the connection."""
        self._eof = True

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or ``None`` if more data is needed.

        At the end of the stream with nothing buffered, ``None`` is returned too; check
        :attr:`at_eof`.

        Raises:
            RemoteProtocolError: the bytes do not form a valid reply, a cap was exceeded, or the
                stream ended in the middle of a reply.
        """
        while True:
            line = self._next_line()
            if line is None:
                if self._eof and (self._buffer or self._lines):
                    raise RemoteProtocolError("connection closed in the middle of a reply")
                return None
            match = REPLY_LINE.fullmatch(line)
            if match is None:
                raise RemoteProtocolError(f"malformed reply line {preview_bytes(line)}")
            code, separator, text = match.groups(b"")
            separator = separator or b" "
            if self._lines and self._lines[0][0] != code:
                # RFC 5321 section 4.2.1: every line of a multi-line reply carries the same code.
                raise RemoteProtocolError(
                    f"reply code changed within a multi-line reply: {self._lines[0][0]!r} then {code!r}"
                )
            self._lines.append((code, separator, text))
            if separator == b" ":
                return self._finish()
            if len(self._lines) >= self._max_reply_lines:
                raise RemoteProtocolError(f"reply longer than {self._max_reply_lines} lines")

    def _finish(self) -> Reply:
        lines = tuple(text for _, _, text in self._lines)
        code_bytes = self._lines[0][0]
        self._lines = []
        status_match = ENHANCED_STATUS.match(lines[0])
        status = None
        # RFC 3463 section 2: the status class must agree with the reply class, which keeps text
        # such as "2.5 million messages" in a 5xx reply from being taken for a status code.
        if status_match is not None and status_match.group(1)[:1] == code_bytes[:1]:
            status = status_match.group(1).decode("ascii")
        return Reply(code=int(code_bytes), lines=lines, enhanced_status=status)

    def _next_line(self) -> bytes | None:
        buffer = self._buffer
        if buffer and not _first_byte_can_start_reply(buffer[0]):
            raise RemoteProtocolError(f"expected a reply code, received {preview_bytes(bytes(buffer[:32]))}")
        end = buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) > self._max_line_length + 1:  # +1: a CR may be waiting for its LF
                raise RemoteProtocolError(f"reply line longer than {self._max_line_length} octets")
            return None
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        self._scanned = 0
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self._max_line_length:
            raise RemoteProtocolError(f"reply line longer than {self._max_line_length} octets")
        return line


def _printable(data: bytes, *, encoding: str = "utf-8") -> str:
    """Bytes as text with undecodable bytes and non-printable characters shown as escapes."""
    text = data.decode(encoding, "backslashreplace")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def preview_bytes(data: bytes) -> str:
    """A short, printable rendering of bytes for error messages, in quotes."""
    return f"'{_printable(data[:40], encoding='ascii')}{'...' if len(data) > 40 else ''}'"
