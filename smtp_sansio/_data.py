"""The DATA encoder: line endings, dot-stuffing and the end-of-data terminator.

Between the ``354`` reply to DATA and the final reply, the client sends the message as lines of
text and ends it with a line holding a single dot (RFC 5321 section 4.1.1.4).  Three things must be
right, or receivers disagree on where the message ends ("SMTP smuggling", CVE-2023-51764/51765/51766):

1. Every line ends in CRLF.  A bare CR or bare LF must never be sent (RFC 5321 section 2.3.8), so
   CRLF, bare LF and bare CR in the input all become CRLF.
2. A line that begins with "." gets one more "." in front (RFC 5321 section 4.5.2), the first line of
   the message included, so no line of the message can look like the terminator.
3. The message ends with exactly one ``.CRLF`` line, after a CRLF that ends the last line of text.

:class:`DataEncoder` does this for a message that arrives in chunks.  It keeps its state across
chunks and holds back at most one byte (a CR whose partner may be the next chunk's LF), so however
the input is split, the concatenated output is byte-for-byte what :func:`encode_data` gives for the
whole message, and every chunk is processed in time linear in its length.
"""

from __future__ import annotations

from ._errors import LocalProtocolError

__all__ = [
    "DEFAULT_CHUNK_SIZE", "BdatEncoder", "DataEncoder", "encode_bdat", "encode_data", "is_positive_int",
]

# RFC 5321 section 4.5.3.1.6: "The maximum total length of a text line including the <CRLF> is 1000
# octets (not counting the leading dot duplicated for transparency)."  That leaves 998 for the text.
DEFAULT_MAX_LINE_LENGTH = 998

_TERMINATOR = b".\r\n"


class DataEncoder:
    """Streaming encoder for the contents of an SMTP DATA command.

    Feed the message with :meth:`feed`, in chunks of any size, and send what each call returns;
    finish with :meth:`end` and send what it returns.  The output has CRLF line endings only, is
    dot-stuffed, and ends with one terminator.

    The terminator is ``CRLF "." CRLF`` in RFC 5321 section 4.1.1.4, where the first CRLF is the one
    that ends the last line of text.  So the encoder appends CRLF only when the message does not
    already end with a line ending, then ``.CRLF``: ``b"hi"`` becomes ``b"hi\\r\\n.\\r\\n"`` and so does
    ``b"hi\\n"``.  The empty message has no last line to end, and becomes just ``b".\\r\\n"``; the
    receiver sees ``CRLF.CRLF`` there too, because the DATA command line before it ended in CRLF.

    What cannot be sent is refused with :class:`~smtp_sansio.LocalProtocolError`, never repaired:

    * a NUL octet anywhere (RFC 5322 section 3.5 ``text`` excludes it, and so does RFC 2045
      section 2.8 for 8bit data; only BDAT with BINARYMIME could carry it);
    * a line longer than ``max_line_length`` octets, not counting its CRLF and not counting the dot
      added by dot-stuffing (RFC 5321 section 4.5.3.1.6).  Splitting the line would change the
      message, so that is left to the caller (for instance a quoted-printable transfer encoding).

    The error names the line (counted from 1 after line endings are normalised) and is the same
    whichever way the input was split into chunks.  After an error the encoder refuses every
    further call.  Whatever it returned before is an incomplete message: the caller must not end
    the DATA phase with a terminator (that would deliver the truncated message) but close the
    connection -- or, better, encode the whole message before sending DATA at all.

    Args:
        max_line_length: the longest line allowed, in octets without CRLF; ``None`` disables the
            check.
        transparency: dot-stuff lines and end with the terminator, as DATA needs (the default).
            ``False`` is for BDAT (RFC 3030 section 2): line endings are still normalised and
            the message still ends with a line ending, but nothing is stuffed and no ``.CRLF``
            follows.

    Raises:
        LocalProtocolError: ``max_line_length`` is not ``None`` and less than 1.
    """

    __slots__ = (
        "_at_line_start", "_done", "_line_length", "_line_number", "_max_line_length", "_pending_cr",
        "_transparency",
    )

    def __init__(
        self, *, max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH, transparency: bool = True
    ) -> None:
        if max_line_length is not None and max_line_length < 1:
            raise LocalProtocolError(f"max_line_length must be at least 1 or None, not {max_line_length}")
        self._max_line_length = max_line_length
        self._transparency = transparency
        # True when the next octet of output starts a line; the message starts with one.
        self._at_line_start = True
        # A CR that ended the previous chunk: a line ending either way, but one octet or two
        # (CRLF) depending on the next chunk, so it is decided then.
        self._pending_cr = False
        # Octets in the current, unfinished line and its number, for the length check and errors.
        self._line_length = 0
        self._line_number = 1
        # None while open; else why the encoder refuses further calls.
        self._done: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        """Encode the next part of the message.

        Args:
            chunk: the next bytes of the message, any length, possibly empty.

        Returns:
            The encoded bytes ready to send, possibly ``b""``.  A CR at the end of ``chunk`` is held
            back until the next call shows whether an LF follows it.

        Raises:
            LocalProtocolError: the chunk contains a NUL or completes a line that is too long, or
                the encoder has already ended or failed.
        """
        self._check_open()
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"message data must be bytes, not {type(chunk).__name__}")
        data = bytes(chunk)
        if self._pending_cr:
            data = b"\r" + data
        self._pending_cr = data.endswith(b"\r")
        if self._pending_cr:
            data = data[:-1]
        # Normalise to LF first (CRLF before lone CR, so a CRLF stays one line ending), work on LF,
        # and write CRLF at the very end: every bare CR and bare LF of the input becomes one CRLF
        # (RFC 5321 section 2.3.8).
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if not data:
            return b""
        self._check_content(data)

        # Dot-stuffing (RFC 5321 section 4.5.2): every line that starts with "." -- after a line
        # ending inside this chunk, or at the start of this chunk when the last output octet ended a
        # line (or nothing was output yet, for the first line of the message).
        stuffed = data
        if self._transparency:
            stuffed = data.replace(b"\n.", b"\n..")
            if self._at_line_start and data.startswith(b"."):
                stuffed = b"." + stuffed
        self._at_line_start = data.endswith(b"\n")

        last_newline = data.rfind(b"\n")
        if last_newline < 0:
            self._line_length += len(data)
        else:
            self._line_length = len(data) - last_newline - 1
            self._line_number += data.count(b"\n")
        return stuffed.replace(b"\n", b"\r\n")

    def end(self) -> bytes:
        """Finish the message.

        Returns:
            The last bytes to send: a CRLF if the message did not end with a line ending, then the
            terminator ``.CRLF`` -- exactly one, whatever the message contained (none without
            transparency).

        Raises:
            LocalProtocolError: the encoder has already ended or failed.
        """
        self._check_open()
        self._done = "the message has already been ended"
        terminator = _TERMINATOR if self._transparency else b""
        if self._pending_cr or not self._at_line_start:
            # A held-back CR ending the message is its last line ending; otherwise the last line
            # has no line ending yet and the terminator needs one before it (RFC 5321 4.1.1.4).
            # Without transparency (BDAT) the line ending is added all the same, so the message
            # stored is the same whichever command carried it.
            return b"\r\n" + terminator
        return terminator

    def _check_open(self) -> None:
        if self._done is not None:
            raise LocalProtocolError(f"DataEncoder cannot be used any more: {self._done}")

    def _check_content(self, data: bytes) -> None:
        # Report the error that comes first in the message, so the error (and its line number) does
        # not depend on where the chunks were split; a NUL wins a tie.
        nul = data.find(b"\0")
        too_long = self._first_octet_over_limit(data)
        if nul < 0 and too_long < 0:
            return
        if too_long < 0 or 0 <= nul <= too_long:
            line = self._line_number + data.count(b"\n", 0, nul)
            self._done = f"line {line} contains a NUL octet"
        else:
            line = self._line_number + data.count(b"\n", 0, too_long)
            self._done = (
                f"line {line} is longer than {self._max_line_length} octets (RFC 5321 section 4.5.3.1.6)"
            )
        raise LocalProtocolError(self._done)

    def _first_octet_over_limit(self, data: bytes) -> int:
        # The offset in ``data`` of the first octet that makes its line longer than the limit, or -1
        # if there is none.  ``data`` is LF-normalised; the current line already holds
        # ``self._line_length`` octets, which is never more than the limit.
        limit = self._max_line_length
        if limit is None or self._line_length + len(data) <= limit:
            return -1
        first_newline = data.find(b"\n")
        first_line = len(data) if first_newline < 0 else first_newline
        if self._line_length + first_line > limit:
            return limit - self._line_length
        # Only the remaining lines are left: split and measure them in C, and look for the culprit
        # only when one of them is known to be too long.
        lengths = list(map(len, data[first_line + 1 :].split(b"\n")))
        if max(lengths) <= limit:
            return -1
        index = next(i for i, length in enumerate(lengths) if length > limit)
        # Each earlier line takes its length plus its LF.
        return first_line + 1 + sum(lengths[:index]) + index + limit


def encode_data(message: bytes, *, max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH) -> bytes:
    """Encode a whole message for DATA, as :meth:`DataEncoder.feed` then :meth:`DataEncoder.end` would.

    Args:
        message: the message, headers and body, with any line endings.
        max_line_length: as for :class:`DataEncoder`.

    Returns:
        The bytes to send after the ``354`` reply, terminator included.

    Raises:
        LocalProtocolError: the message contains a NUL or a line that is too long.
    """
    encoder = DataEncoder(max_line_length=max_line_length)
    return encoder.feed(message) + encoder.end()


def is_positive_int(value: object) -> bool:
    """True for an int (not a bool) of at least 1."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


#: The default BDAT chunk size and the bound of every Write the session emits for message data:
#: 64 KiB, a common socket send-buffer size, large enough that the command line of each chunk
#: (``BDAT 65536``, 12 octets) costs nothing and small enough that the session never holds more
#: than a few of them.
DEFAULT_CHUNK_SIZE = 65536


class BdatEncoder:
    """Streaming encoder for the content of BDAT commands (RFC 3030 section 2), in fixed-size chunks.

    Feed the message with :meth:`feed`, in pieces of any size: each call returns the payloads of
    the chunks completed so far, every one exactly ``chunk_size`` octets.  :meth:`end` returns the
    payload of the last chunk, between 1 and ``chunk_size`` octets (``b""`` only for an empty
    message, two more when a CRLF is added to end an unterminated last line): a full chunk is held
    back until more data shows it is not the last, so the message never ends with an empty
    ``BDAT 0 LAST``.  The chunk boundaries depend only on the encoded
    message, never on how the input was split.

    A text message (the default) has its line endings normalised to CRLF and is checked for NUL
    octets and over-long lines, as by :class:`DataEncoder`, but is not dot-stuffed: BDAT counts
    octets and has no terminator to protect.  With ``binary=True`` (BINARYMIME, RFC 3030 section
    3) the octets are sent exactly as given.  After an error the encoder refuses every further
    call; the chunks returned before are part of an aborted transaction (send RSET).

    Args:
        chunk_size: octets per chunk, at least 1.
        max_line_length: as for :class:`DataEncoder`; ignored when ``binary``.
        binary: send the octets untouched (only with BODY=BINARYMIME).

    Raises:
        LocalProtocolError: ``chunk_size`` is not a positive int, or ``max_line_length`` is invalid.
    """

    __slots__ = ("_buffer", "_chunk_size", "_done", "_text")

    def __init__(
        self,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH,
        binary: bool = False,
    ) -> None:
        if not is_positive_int(chunk_size):
            raise LocalProtocolError(f"chunk_size must be a positive int, not {chunk_size!r}")
        self._chunk_size = chunk_size
        self._text = None if binary else DataEncoder(max_line_length=max_line_length, transparency=False)
        self._buffer = bytearray()
        self._done: str | None = None

    @property
    def chunk_size(self) -> int:
        """The size of every chunk but the last."""
        return self._chunk_size

    def feed(self, data: bytes) -> list[bytes]:
        """Encode the next part of the message; return the payloads of the chunks it completed.

        Raises:
            LocalProtocolError: the data has a NUL or an over-long line (text only), is not bytes,
                or the encoder has already ended or failed.
        """
        self._check_open()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"message data must be bytes, not {type(data).__name__}")
        try:
            encoded = bytes(data) if self._text is None else self._text.feed(data)
        except LocalProtocolError as error:
            self._done = str(error)
            self._buffer.clear()
            raise
        self._buffer += encoded
        size = self._chunk_size
        # Keep at least one octet back: the last chunk is never empty unless the message is.
        count = (len(self._buffer) - 1) // size if self._buffer else 0
        chunks = [bytes(self._buffer[i * size : (i + 1) * size]) for i in range(count)]
        del self._buffer[: count * size]
        return chunks

    def end(self) -> bytes:
        """Finish the message; return the payload of the last chunk (the one sent with ``LAST``).

        Raises:
            LocalProtocolError: the encoder has already ended or failed.
        """
        self._check_open()
        self._done = "the message has already been ended"
        if self._text is not None:
            self._buffer += self._text.end()
        last = bytes(self._buffer)
        self._buffer.clear()
        return last

    def _check_open(self) -> None:
        if self._done is not None:
            raise LocalProtocolError(f"BdatEncoder cannot be used any more: {self._done}")


def encode_bdat(message: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE, binary: bool = False,
                max_line_length: int | None = DEFAULT_MAX_LINE_LENGTH) -> bytes:
    """The BDAT commands and payloads for a whole message, as the connection sends them.

    Every chunk but the last is ``BDAT <chunk_size>CRLF`` and its payload; the last is
    ``BDAT <n> LAST CRLF`` and its payload.

    Raises:
        LocalProtocolError: as :meth:`BdatEncoder.feed`.
    """
    encoder = BdatEncoder(chunk_size=chunk_size, binary=binary, max_line_length=max_line_length)
    chunks = encoder.feed(message)
    last = encoder.end()
    return b"".join(b"BDAT %d\r\n%s" % (len(chunk), chunk) for chunk in chunks) + b"BDAT %d LAST\r\n%s" % (
        len(last), last)
