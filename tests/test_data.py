"""Tests for the DATA encoder: line endings, dot-stuffing, the terminator, and chunking invariance."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_sansio._data import DataEncoder, encode_data
from smtp_sansio._errors import LocalProtocolError

TERMINATOR = b"\r\n.\r\n"


def dot_unstuff(data: bytes) -> bytes:
    """Read DATA output the way an RFC 5321 section 4.5.2 receiver does.

    Splits into CRLF lines, stops at the line holding a single ".", removes one leading "." from every
    other line, and returns the text with CRLF line endings.  Fails the test if a line lacks its CRLF,
    if there is no terminator, or if anything follows it.
    """
    lines = []
    position = 0
    while True:
        end = data.find(b"\r\n", position)
        assert end >= 0, f"unterminated line at offset {position}: {data[position:]!r}"
        line = data[position:end]
        position = end + 2
        if line == b".":
            assert position == len(data), f"data after the terminator: {data[position:]!r}"
            return b"".join(line + b"\r\n" for line in lines)
        lines.append(line[1:] if line.startswith(b".") else line)


def normalise(data: bytes) -> bytes:
    # Independent of the encoder: one regex pass, CRLF tried before the lone characters.
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def expected_text(data: bytes) -> bytes:
    text = normalise(data)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def encode_in_chunks(data: bytes, cuts: list[int], **options: int | None) -> bytes:
    encoder = DataEncoder(**options)
    points = sorted({min(cut, len(data)) for cut in cuts})
    out = []
    previous = 0
    for point in [*points, len(data)]:
        out.append(encoder.feed(data[previous:point]))
        previous = point
    out.append(encoder.end())
    return b"".join(out)


def assert_well_formed(out: bytes) -> None:
    # No bare CR or LF anywhere (RFC 5321 section 2.3.8).
    assert b"\r" not in out.replace(b"\r\n", b"") and b"\n" not in out.replace(b"\r\n", b"")
    # Exactly one end of data, at the very end; the DATA command line before it ended in CRLF.
    assert (b"\r\n" + out).count(TERMINATOR) == 1
    assert (b"\r\n" + out).endswith(TERMINATOR)


# Inputs rich in the characters that matter: line endings, dots, and some other octets.
messages = st.one_of(
    st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"a", b" ", b"\xff", b".\r\n"]), max_size=60).map(
        b"".join
    ),
    st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"x")),
)
cut_points = st.lists(st.integers(min_value=0, max_value=300), max_size=12)


@given(messages, cut_points)
@settings(max_examples=500)
def test_any_chunking_gives_identical_output(data: bytes, cuts: list[int]) -> None:
    assert encode_in_chunks(data, cuts) == encode_data(data)


@given(messages)
@settings(max_examples=500)
def test_byte_by_byte_gives_identical_output(data: bytes) -> None:
    assert encode_in_chunks(data, list(range(len(data)))) == encode_data(data)


@given(messages)
@settings(max_examples=500)
def test_unstuffing_gives_back_the_normalised_input(data: bytes) -> None:
    out = encode_data(data)
    assert_well_formed(out)
    assert dot_unstuff(out) == expected_text(data)


@given(messages, cut_points)
def test_chunked_output_is_well_formed(data: bytes, cuts: list[int]) -> None:
    out = encode_in_chunks(data, cuts)
    assert_well_formed(out)
    assert dot_unstuff(out) == expected_text(data)


@pytest.mark.parametrize(
    ("message", "encoded"),
    [
        # The empty message: the DATA line's CRLF and this ".CRLF" form the end of data.
        (b"", b".\r\n"),
        (b"hello", b"hello\r\n.\r\n"),
        (b"hello\r\n", b"hello\r\n.\r\n"),
        (b"hello\n", b"hello\r\n.\r\n"),
        (b"hello\r", b"hello\r\n.\r\n"),
        (b"\r\n", b"\r\n.\r\n"),
        (b"a\r\nb\nc\rd", b"a\r\nb\r\nc\r\nd\r\n.\r\n"),
        (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
        (b"a\n\rb", b"a\r\n\r\nb\r\n.\r\n"),
        # SMTP smuggling (CVE-2023-51764/51765/51766): no bare line ending survives, every dot
        # line is stuffed, so none of these ends the message early.
        (b"a\n.\r\nMAIL FROM:<x@y>\r\n", b"a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n"),
        (b"a\r.\r\nRCPT TO:<x@y>", b"a\r\n..\r\nRCPT TO:<x@y>\r\n.\r\n"),
        (b"a\r\n.\nDATA\r\n", b"a\r\n..\r\nDATA\r\n.\r\n"),
        (b"a\r\n.\rQUIT", b"a\r\n..\r\nQUIT\r\n.\r\n"),
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
        # A dot on the first line: stuffed too, else ".CRLF" right after DATA ends the message.
        (b".\r\n", b"..\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".hidden", b"..hidden\r\n.\r\n"),
        (b"..", b"...\r\n.\r\n"),
        # A lone "." line in the middle, and one at the end.
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n.", b"a\r\n..\r\n.\r\n"),
        (b"a\r\n.\r\n", b"a\r\n..\r\n.\r\n"),
        # Dots elsewhere in a line are data.
        (b"a.b\r\n a.\r\n", b"a.b\r\n a.\r\n.\r\n"),
        (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
    ],
)
def test_encoding_table(message: bytes, encoded: bytes) -> None:
    assert encode_data(message) == encoded
    assert encode_in_chunks(message, list(range(len(message)))) == encoded
    assert_well_formed(encoded)


@pytest.mark.parametrize(
    ("chunks", "encoded"),
    [
        # A CR at the end of a chunk is held back: with the next chunk's LF it is one line ending.
        ([b"a\r", b"\nb"], b"a\r\nb\r\n.\r\n"),
        ([b"a\r", b"b"], b"a\r\nb\r\n.\r\n"),
        ([b"a\r", b"\r", b"\n"], b"a\r\n\r\n.\r\n"),
        ([b"a\r", b"", b"\n"], b"a\r\n.\r\n"),
        ([b"a\r", b".\r\n"], b"a\r\n..\r\n.\r\n"),
        ([b"a\r\n", b"."], b"a\r\n..\r\n.\r\n"),
        ([b"a\n", b".", b"."], b"a\r\n...\r\n.\r\n"),
        ([b"a", b".", b"\n"], b"a.\r\n.\r\n"),
        ([b"\r"], b"\r\n.\r\n"),
        ([b"", b""], b".\r\n"),
    ],
)
def test_chunk_edges(chunks: list[bytes], encoded: bytes) -> None:
    encoder = DataEncoder()
    assert b"".join(encoder.feed(chunk) for chunk in chunks) + encoder.end() == encoded


def test_held_back_cr_is_at_most_one_byte() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"a\r") == b"a"
    assert encoder.feed(b"\r") == b"\r\n"
    assert encoder.feed(b"\n") == b"\r\n"
    assert encoder.feed(b"b") == b"b"
    assert encoder.end() == b"\r\n.\r\n"


def test_accepts_bytes_like() -> None:
    encoder = DataEncoder()
    assert encoder.feed(bytearray(b"a\n")) == b"a\r\n"
    assert encoder.feed(memoryview(b".b")) == b"..b"
    assert encoder.end() == b"\r\n.\r\n"


def test_rejects_text() -> None:
    encoder = DataEncoder()
    with pytest.raises(LocalProtocolError, match="must be bytes"):
        encoder.feed("text")  # type: ignore[arg-type]
    # Nothing was consumed; the encoder still works.
    assert encoder.feed(b"x") + encoder.end() == b"x\r\n.\r\n"


# --- NUL and long lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "line"),
    [(b"\0", 1), (b"a\0b", 1), (b"a\r\nb\nc\0", 3), (b"a\r\r\0", 3), (b"a\r\n" * 5 + b"\0\r\n", 6)],
)
def test_nul_is_refused_naming_the_line(message: bytes, line: int) -> None:
    with pytest.raises(LocalProtocolError, match=rf"^line {line} contains a NUL octet$"):
        encode_data(message)
    with pytest.raises(LocalProtocolError, match=rf"^line {line} contains a NUL octet$"):
        encode_in_chunks(message, list(range(len(message))))


def test_nul_is_refused_even_without_a_length_limit() -> None:
    with pytest.raises(LocalProtocolError, match="NUL"):
        encode_data(b"a\0", max_line_length=None)


def test_998_octet_lines_pass_999_fail() -> None:
    line = b"x" * 998
    assert encode_data(line) == line + TERMINATOR
    assert encode_data(b"a\r\n" + line + b"\r\n") == b"a\r\n" + line + TERMINATOR
    with pytest.raises(LocalProtocolError, match=r"^line 1 is longer than 998 octets"):
        encode_data(line + b"x")
    with pytest.raises(LocalProtocolError, match=r"^line 3 is longer than 998 octets"):
        encode_data(b"a\r\nb\n" + line + b"x\r\n")


def test_the_stuffed_dot_does_not_count() -> None:
    # RFC 5321 section 4.5.3.1.6: "not counting the leading dot duplicated for transparency".
    line = b"." + b"x" * 997
    assert encode_data(line) == b"." + line + TERMINATOR


def test_line_length_is_counted_across_chunks() -> None:
    encoder = DataEncoder()
    out = b"".join(encoder.feed(b"x" * 100) for _ in range(9))
    out += encoder.feed(b"y" * 98 + b"\r")  # 998 octets, then a held-back line ending
    out += encoder.feed(b"\n" + b"z" * 998)
    assert out + encoder.end() == b"x" * 900 + b"y" * 98 + b"\r\n" + b"z" * 998 + TERMINATOR

    encoder = DataEncoder()
    for _ in range(9):
        encoder.feed(b"x" * 110)
    with pytest.raises(LocalProtocolError, match=r"^line 1 is longer"):
        encoder.feed(b"x" * 9)


def test_a_long_line_after_short_ones_in_one_chunk() -> None:
    encoder = DataEncoder(max_line_length=5)
    assert encoder.feed(b"12345\n") == b"12345\r\n"
    with pytest.raises(LocalProtocolError, match=r"^line 4 is longer than 5 octets"):
        encoder.feed(b"1234\n\n123456\n1234567\n")


def test_long_line_before_nul_across_chunks() -> None:
    # The line is too long at its 6th octet, before the NUL: the length error comes first, also
    # when part of the line arrived in an earlier chunk.
    for chunks in ([b"123", b"4567\0"], [b"1234567\0"], [b"12", b"3", b"4567\0"]):
        encoder = DataEncoder(max_line_length=5)
        with pytest.raises(LocalProtocolError, match=r"^line 1 is longer than 5 octets"):
            for chunk in chunks:
                encoder.feed(chunk)
    encoder = DataEncoder(max_line_length=5)
    encoder.feed(b"123")
    with pytest.raises(LocalProtocolError, match=r"^line 1 contains a NUL octet$"):
        encoder.feed(b"45\0")


def test_max_line_length_none_disables_the_check() -> None:
    line = b"x" * 100_000
    assert encode_data(line, max_line_length=None) == line + TERMINATOR


@pytest.mark.parametrize("limit", [0, -1])
def test_max_line_length_must_be_positive(limit: int) -> None:
    with pytest.raises(LocalProtocolError, match="max_line_length"):
        DataEncoder(max_line_length=limit)


errorful = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"a", b"bb", b"\0"]), max_size=40).map(
    b"".join
)


@given(errorful, cut_points, st.integers(min_value=1, max_value=6) | st.none())
@settings(max_examples=500)
def test_errors_do_not_depend_on_chunking(data: bytes, cuts: list[int], limit: int | None) -> None:
    try:
        whole: bytes | str = encode_data(data, max_line_length=limit)
    except LocalProtocolError as exc:
        whole = str(exc)
    try:
        chunked: bytes | str = encode_in_chunks(data, cuts, max_line_length=limit)
    except LocalProtocolError as exc:
        chunked = str(exc)
    assert chunked == whole


@given(errorful, st.integers(min_value=1, max_value=6))
def test_errors_are_the_first_problem_in_the_message(data: bytes, limit: int) -> None:
    # An independent oracle: walk the normalised lines, the first NUL or overlong position wins.
    expected = None
    for number, line in enumerate(normalise(data).split(b"\r\n"), start=1):
        nul = line.find(b"\0")
        if 0 <= nul <= limit:
            expected = f"line {number} contains a NUL octet"
        elif len(line) > limit:
            expected = f"line {number} is longer than {limit} octets"
        if expected:
            break
    if expected is None:
        assert encode_data(data, max_line_length=limit).endswith(b".\r\n")
    else:
        with pytest.raises(LocalProtocolError) as info:
            encode_data(data, max_line_length=limit)
        assert str(info.value).startswith(expected)


# --- lifecycle ------------------------------------------------------------------------------------


def test_no_use_after_end() -> None:
    encoder = DataEncoder()
    encoder.feed(b"a")
    encoder.end()
    with pytest.raises(LocalProtocolError, match="already been ended"):
        encoder.feed(b"b")
    with pytest.raises(LocalProtocolError, match="already been ended"):
        encoder.end()


def test_no_use_after_error() -> None:
    encoder = DataEncoder()
    with pytest.raises(LocalProtocolError):
        encoder.feed(b"a\0")
    with pytest.raises(LocalProtocolError, match="cannot be used any more: line 1 contains a NUL"):
        encoder.feed(b"b")
    with pytest.raises(LocalProtocolError, match="cannot be used any more"):
        encoder.end()


def test_large_input_in_one_chunk() -> None:
    # Many short lines and many dot lines in one go; a quadratic encoder would not finish this.
    data = b".\n" * 200_000 + b"\r" * 200_000 + b"x" * 998
    out = encode_data(data)
    assert out.count(b"..\r\n") == 200_000
    assert dot_unstuff(out) == expected_text(data)
