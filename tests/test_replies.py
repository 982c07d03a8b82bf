"""Tests for the reply reader and the Reply value (RFC 5321 section 4.2).

Every parsing case goes through :func:`check`, which feeds the input whole, byte by byte, and followed
by the start of another reply, and expects the same replies (or the same error) each time.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_sansio import (
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_MAX_REPLY_LINES,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    ReplyReader,
)

# The reply whose first half "trailing" feeds after each case; the rest of it comes in a later feed.
# Cases with a tiny line cap get a trailer that fits in it.
TRAILERS = [
    (b"220 trailing data\r\n", Reply(code=220, lines=(b"trailing data",))),
    (b"221\r\n", Reply(code=221)),
]


def drain(reader: ReplyReader, into: list[Reply]) -> None:
    while (reply := reader.next_reply()) is not None:
        into.append(reply)


def run(
    chunks: list[bytes], *, eof: bool = False, **caps: int
) -> tuple[ReplyReader, list[Reply], Exception | None]:
    """Feed chunks one at a time, collecting replies after each, until the end or the first error."""
    reader = ReplyReader(**caps)
    replies: list[Reply] = []
    try:
        for chunk in chunks:
            reader.feed(chunk)
            drain(reader, replies)
        if eof:
            reader.feed_eof()
            drain(reader, replies)
    except RemoteProtocolError as exc:
        return reader, replies, exc
    return reader, replies, None


def check(
    data: bytes, expected: list[Reply], *, error: str | None = None, eof: bool = False, **caps: int
) -> None:
    """Feed ``data`` three ways and expect ``expected`` replies each time, then ``error`` if given.

    Without ``eof`` or ``error``, ``data`` must end at a reply boundary: the "trailing" way appends the
    head of another reply, which must stay buffered and parse once its tail arrives.
    """
    ways = {
        "whole": [data],
        "byte by byte": [data[i : i + 1] for i in range(len(data))],
    }
    trailer, trailer_reply = next(
        (wire, reply) for wire, reply in TRAILERS
        if len(wire) - 2 <= caps.get("max_line_length", DEFAULT_MAX_LINE_LENGTH)
    )
    half = len(trailer) // 2
    if not eof:
        ways["trailing"] = [data + trailer[:half]]
    for way, chunks in ways.items():
        reader, replies, exc = run(chunks, eof=eof, **caps)
        assert replies == expected, way
        if error is not None:
            assert exc is not None, f"{way}: no error"
            assert re.search(error, str(exc)), f"{way}: {exc}"
            continue
        assert exc is None, f"{way}: {exc!r}"
        if eof:
            assert reader.at_eof and not reader.has_pending_data
            assert reader.next_reply() is None
        elif way == "trailing":
            assert reader.has_pending_data
            assert reader.next_reply() is None
            reader.feed(trailer[half:])
            assert reader.next_reply() == trailer_reply
            assert reader.next_reply() is None
            assert not reader.has_pending_data
        else:
            assert not reader.has_pending_data
            assert not reader.at_eof


def one(code: int, *lines: bytes, status: str | None = None) -> list[Reply]:
    return [Reply(code=code, lines=lines or (b"",), enhanced_status=status)]


# -- well-formed replies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(b"250 OK\r\n", one(250, b"OK"), id="single-line"),
        pytest.param(b"220 mx.example.org ESMTP\r\n", one(220, b"mx.example.org ESMTP"), id="greeting"),
        pytest.param(
            b"250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
            one(250, b"mx.example.org", b"PIPELINING", b"SIZE 1000"),
            id="multi-line",
        ),
        pytest.param(b"250\r\n", one(250, b""), id="no-text"),
        pytest.param(b"250 \r\n", one(250, b""), id="empty-text"),
        pytest.param(b"250-\r\n250\r\n", one(250, b"", b""), id="empty-continuation"),
        pytest.param(b"250-234 text\r\n250 end\r\n", one(250, b"234 text", b"end"), id="code-like-text"),
        pytest.param(b"250 234 text\r\n", one(250, b"234 text"), id="code-like-final-text"),
        pytest.param(b"250  two spaces \r\n", one(250, b" two spaces "), id="spaces-kept"),
        pytest.param(b"250 a\tb\r\n", one(250, b"a\tb"), id="tab"),
        pytest.param(b"354 go ahead\n", one(354, b"go ahead"), id="bare-LF"),
        pytest.param(b"250-a\n250-b\r\n250 c\n", one(250, b"a", b"b", b"c"), id="mixed-endings"),
        pytest.param(
            b"250 OK\r\n550 no\r\n421 bye\r\n",
            [*one(250, b"OK"), *one(550, b"no"), *one(421, b"bye")],
            id="several-replies",
        ),
        pytest.param(b"559 x\r\n200 y\r\n", [*one(559, b"x"), *one(200, b"y")], id="code-range-ends"),
    ],
)
def test_well_formed(data: bytes, expected: list[Reply]) -> None:
    check(data, expected)


def test_crlf_split_across_feeds() -> None:
    reader = ReplyReader()
    reader.feed(b"250 OK\r")
    assert reader.next_reply() is None
    assert reader.has_pending_data
    reader.feed(b"\n")
    assert reader.next_reply() == Reply(code=250, lines=(b"OK",))
    assert not reader.has_pending_data


def test_multi_line_reply_is_pending_until_its_last_line() -> None:
    reader = ReplyReader()
    reader.feed(b"250-first\r\n")
    assert reader.next_reply() is None
    assert reader.has_pending_data  # a continuation line is held, though the buffer is empty
    reader.feed(b"250 last\r\n")
    assert reader.next_reply() == Reply(code=250, lines=(b"first", b"last"))


def test_feeding_nothing_changes_nothing() -> None:
    reader = ReplyReader()
    reader.feed(b"")
    assert reader.next_reply() is None
    assert not reader.has_pending_data
    assert not reader.at_eof


# -- enhanced status codes (RFC 3463, RFC 2034) ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"250 2.1.0 Sender OK\r\n", "2.1.0"),
        (b"550 5.1.1 No such user\r\n", "5.1.1"),
        (b"451 4.7.1 Try later\r\n", "4.7.1"),
        (b"250 2.0.0\r\n", "2.0.0"),  # at the end of the text
        (b"552 5.123.456 big\r\n", "5.123.456"),
        (b"550-5.7.1 first line\r\n550 5.7.1 second\r\n", "5.7.1"),
        (b"250 OK\r\n", None),
        (b"250\r\n", None),
        (b"550 2.5 million messages\r\n", None),  # not a status code, and of the wrong class
        (b"250 5.1.1 x\r\n", None),  # class mismatch
        (b"550 2.1.0 x\r\n", None),
        (b"354 3.0.0 go\r\n", None),  # there is no class 3 (RFC 3463 section 3.1)
        (b"250 2.1.0x\r\n", None),  # must be followed by a space or end the text
        (b"250 2.1000.0 x\r\n", None),  # subject has at most three digits
        (b"250 x 2.1.0\r\n", None),  # only at the start of the text
        (b"250-OK\r\n250 2.1.0 late\r\n", None),  # only on the first line
    ],
)
def test_enhanced_status(data: bytes, status: str | None) -> None:
    lines = tuple(line[4:] for line in data.split(b"\r\n")[:-1])  # every case is CRLF-terminated
    check(data, [Reply(code=int(data[:3]), lines=lines, enhanced_status=status)])


# -- text that is not UTF-8 or not printable --------------------------------------------------------


def test_non_utf8_text_is_kept_raw() -> None:
    data = b"550-caf\xe9 \xff\xfe\r\n550 \xc3\xa9t\xc3\xa9\r\n"
    check(data, one(550, b"caf\xe9 \xff\xfe", b"\xc3\xa9t\xc3\xa9"))
    reply = run([data])[1][0]
    assert reply.text == "caf\udce9 \udcff\udcfe\n\u00e9t\u00e9"
    assert reply.text.encode("utf-8", "surrogateescape") == b"caf\xe9 \xff\xfe\n\xc3\xa9t\xc3\xa9"
    assert reply.text_oneline == "caf\\xe9 \\xff\\xfe \u00e9t\u00e9"
    assert reply.text_oneline.isprintable()
    assert str(reply) == "550 caf\\xe9 \\xff\\xfe \u00e9t\u00e9"


def test_control_characters_are_made_visible_in_text_oneline() -> None:
    reply = Reply(code=250, lines=(b"a\x00b\tc\x1b[2J\x7f", b"\xc2\x85"))
    assert reply.text == "a\x00b\tc\x1b[2J\x7f\n\x85"
    assert reply.text_oneline == "a\\x00b\\x09c\\x1b[2J\\x7f \\x85"
    assert reply.text_oneline.isprintable()


def test_text_oneline_strips_surrounding_space() -> None:
    assert Reply(code=250, lines=(b"  OK  ",)).text_oneline == "OK"
    assert Reply(code=250, lines=(b"",)).text_oneline == ""


# -- Reply as a value ---------------------------------------------------------------------------


def test_reply_defaults() -> None:
    reply = Reply(code=250)
    assert reply.lines == (b"",)
    assert reply.enhanced_status is None
    assert reply.text == ""
    assert str(reply) == "250"
    assert reply.wire_lines() == ["250"]


@pytest.mark.parametrize("code", [0, 199, 260, 299, 499, 560, 599, 600, 999, -250])
def test_reply_code_out_of_range(code: int) -> None:
    # Reply-code = %x32-35 %x30-35 %x30-39: only what the reader itself can produce.
    with pytest.raises(LocalProtocolError, match="not a reply code"):
        Reply(code=code)


def test_reply_without_lines() -> None:
    with pytest.raises(LocalProtocolError, match="at least one line"):
        Reply(code=250, lines=())


@pytest.mark.parametrize(
    ("code", "positive", "transient", "permanent"),
    [(200, True, False, False), (250, True, False, False), (259, True, False, False),
     (354, False, False, False), (421, False, True, False), (459, False, True, False),
     (500, False, False, True), (554, False, False, True), (559, False, False, True)],
)
def test_reply_classes(code: int, positive: bool, transient: bool, permanent: bool) -> None:
    reply = Reply(code=code)
    assert (reply.is_positive, reply.is_transient, reply.is_permanent) == (positive, transient, permanent)


def test_wire_lines_and_str() -> None:
    reply = Reply(code=250, lines=(b"mx.example.org", b"", b"SIZE \xff", b"8BITMIME"))
    assert reply.wire_lines() == ["250-mx.example.org", "250-", "250-SIZE \\xff", "250 8BITMIME"]
    assert str(reply) == "250 mx.example.org  SIZE \\xff 8BITMIME"
    assert Reply(code=221, lines=(b"bye",)).wire_lines() == ["221 bye"]


def test_wire_lines_escape_terminal_control_sequences() -> None:
    # A trace goes to terminals: a hostile server must not be able to write escape sequences there.
    reply = Reply(code=250, lines=(b"mx \x1b[2J\x1b]0;owned\x07", b"\x08\x7f ok"))
    lines = reply.wire_lines()
    assert lines == ["250-mx \\x1b[2J\\x1b]0;owned\\x07", "250 \\x08\\x7f ok"]
    assert all(line.isprintable() for line in lines)


def test_reply_is_frozen() -> None:
    reply = Reply(code=250)
    with pytest.raises(AttributeError):
        reply.code = 550  # type: ignore[misc]
    with pytest.raises(TypeError):
        Reply(250)  # type: ignore[misc]


# -- malformed replies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"2x0 OK\r\n", id="non-digit"),
        pytest.param(b"25\r\n", id="two-digits"),
        pytest.param(b"2\r\n", id="one-digit"),
        pytest.param(b"260 OK\r\n", id="second-digit-6"),
        pytest.param(b"2500 OK\r\n", id="four-digits"),
        pytest.param(b"250_OK\r\n", id="underscore-separator"),
        pytest.param(b"250\tOK\r\n", id="tab-separator"),
        pytest.param(b"250OK\r\n", id="no-separator"),
        pytest.param(b"250 a\rb\r\n", id="bare-CR-in-text"),
        pytest.param(b"250 OK\r\r\n", id="CR-CR-LF"),
        pytest.param(b"250-OK\r\n25\r\n", id="bad-continuation"),
    ],
)
def test_malformed_line(data: bytes) -> None:
    check(data, [], error="malformed reply line")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"600 OK\r\n", id="600"),
        pytest.param(b"99 OK\r\n", id="99"),
        pytest.param(b"199 OK\r\n", id="1xx"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="TLS-record"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\n", id="HTTP"),
        pytest.param(b" 250 OK\r\n", id="leading-space"),
        pytest.param(b"\r\n", id="empty-line"),
        pytest.param(b"\n", id="bare-LF"),
        pytest.param(b"\x00", id="NUL"),
    ],
)
def test_garbage_is_rejected_at_the_first_byte(data: bytes) -> None:
    check(data, [], error="expected a reply code")
    # One byte is enough: nothing waits for a line ending.
    reader = ReplyReader()
    reader.feed(data[:1])
    with pytest.raises(RemoteProtocolError, match="expected a reply code"):
        reader.next_reply()


def test_garbage_after_a_good_reply() -> None:
    check(b"250 OK\r\nHTTP/1.1 200 OK\r\n", one(250, b"OK"), error="expected a reply code")


def test_error_preview_is_printable_and_short() -> None:
    reader = ReplyReader()
    reader.feed(b"\x16\x03\x01" + b"\xff" * 100)
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_reply()
    message = str(info.value)
    assert message.isprintable()
    assert "x16" in message and "\x16" not in message and "\xff" not in message
    reader = ReplyReader()
    reader.feed(b"250" + b"x" * 100 + b"\x1b\r\n")
    with pytest.raises(RemoteProtocolError, match=r"malformed reply line '250x+\.\.\.'") as info:
        reader.next_reply()
    assert len(str(info.value)) < 80


@pytest.mark.parametrize(
    "data",
    [
        b"250-first\r\n550 second\r\n",
        b"250-first\r\n251 second\r\n",
        b"250-a\r\n250-b\r\n220-c\r\n",
    ],
)
def test_code_change_within_a_multi_line_reply(data: bytes) -> None:
    check(data, [], error="reply code changed within a multi-line reply")


# -- caps ---------------------------------------------------------------------------------------


def test_line_length_cap_boundary() -> None:
    check(b"250 " + b"x" * 6 + b"\r\n", one(250, b"x" * 6), max_line_length=10)  # exactly 10 octets
    check(b"250 " + b"x" * 6 + b"\n", one(250, b"x" * 6), max_line_length=10)
    check(b"250 " + b"x" * 7 + b"\r\n", [], error="longer than 10 octets", max_line_length=10)
    check(b"250 " + b"x" * 7 + b"\n", [], error="longer than 10 octets", max_line_length=10)


def test_endless_line_fails_without_a_line_ending() -> None:
    # Nothing waits for the LF: once the buffer holds more than a line and its CR, the reply is refused.
    check(b"250 " + b"x" * 100, [], error="longer than 10 octets", max_line_length=10)
    reader = ReplyReader(max_line_length=10)
    reader.feed(b"250 " + b"x" * 6 + b"\r")  # 11 octets: a full line whose LF may come next
    assert reader.next_reply() is None
    reader.feed(b"x")
    with pytest.raises(RemoteProtocolError, match="longer than 10 octets"):
        reader.next_reply()


def test_default_line_length_cap() -> None:
    assert DEFAULT_MAX_LINE_LENGTH == 4096
    text = b"x" * (DEFAULT_MAX_LINE_LENGTH - 4)
    check(b"250 " + text + b"\r\n", one(250, text))
    check(b"250 " + text + b"x\r\n", [], error=f"longer than {DEFAULT_MAX_LINE_LENGTH} octets")


def test_smallest_line_length_cap() -> None:
    check(b"250\r\n", one(250), max_line_length=3)
    check(b"250 \r\n", [], error="longer than 3 octets", max_line_length=3)


def test_reply_lines_cap_boundary() -> None:
    check(b"250-a\r\n250-b\r\n250 c\r\n", one(250, b"a", b"b", b"c"), max_reply_lines=3)
    # The third continuation line is refused at once, before any further line arrives.
    check(b"250-a\r\n250-b\r\n250-c\r\n", [], error="longer than 3 lines", max_reply_lines=3)
    check(b"250 only\r\n", one(250, b"only"), max_reply_lines=1)
    check(b"250-a\r\n", [], error="longer than 1 lines", max_reply_lines=1)


def test_default_reply_lines_cap() -> None:
    assert DEFAULT_MAX_REPLY_LINES == 512
    lines = [b"%d" % i for i in range(DEFAULT_MAX_REPLY_LINES)]
    data = b"".join(b"250-" + line + b"\r\n" for line in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"
    check(data, one(250, *lines))
    too_many = b"250-x\r\n" * DEFAULT_MAX_REPLY_LINES
    check(too_many, [], error=f"longer than {DEFAULT_MAX_REPLY_LINES} lines")


def test_caps_apply_per_reply() -> None:
    data = b"250-a\r\n250 b\r\n251-c\r\n251 d\r\n"
    check(data, [*one(250, b"a", b"b"), *one(251, b"c", b"d")], max_reply_lines=2)


@pytest.mark.parametrize(("caps"), [{"max_line_length": 2}, {"max_line_length": -1}, {"max_reply_lines": 0}])
def test_caps_must_allow_a_reply(caps: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        ReplyReader(**caps)


# -- end of stream ------------------------------------------------------------------------------


def test_eof_with_nothing_pending() -> None:
    check(b"", [], eof=True)
    check(b"250 OK\r\n", one(250, b"OK"), eof=True)
    check(b"250-a\r\n250 b\n421 bye\r\n", [*one(250, b"a", b"b"), *one(421, b"bye")], eof=True)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"250 OK", id="mid-line"),
        pytest.param(b"250 OK\r", id="before-LF"),
        pytest.param(b"2", id="one-byte"),
        pytest.param(b"250-first\r\n", id="mid-reply"),
        pytest.param(b"250-first\r\n250 la", id="mid-last-line"),
    ],
)
def test_eof_in_the_middle_of_a_reply(data: bytes) -> None:
    check(data, [], error="closed in the middle of a reply", eof=True)


def test_eof_after_a_reply_then_a_fragment() -> None:
    check(b"250 OK\r\n220 x", one(250, b"OK"), error="closed in the middle of a reply", eof=True)


def test_data_after_eof() -> None:
    reader = ReplyReader()
    reader.feed_eof()
    assert reader.at_eof
    reader.feed(b"")  # nothing is not data
    assert reader.next_reply() is None
    with pytest.raises(RemoteProtocolError, match="after the connection was closed"):
        reader.feed(b"250 OK\r\n")


def test_replies_buffered_before_eof_are_still_returned() -> None:
    reader = ReplyReader()
    reader.feed(b"250 a\r\n251 b\r\n")
    reader.feed_eof()
    assert reader.next_reply() == Reply(code=250, lines=(b"a",))
    assert reader.next_reply() == Reply(code=251, lines=(b"b",))
    assert reader.next_reply() is None
    assert reader.at_eof


# -- properties ---------------------------------------------------------------------------------

fragments = st.sampled_from(
    [b"250", b"550", b"220", b"2", b"25", b"600", b"-", b" ", b"\r\n", b"\n", b"\r", b"2.1.0", b"5.1.1 ",
     b"x", b"OK", b"\xff\xfe", b"\x16\x03", b"HTTP/1.1", b"\x00", b"\t"]
)
wire_bytes = st.one_of(st.binary(max_size=200), st.lists(fragments, max_size=80).map(b"".join))
cut_points = st.lists(st.integers(min_value=0, max_value=400), max_size=15)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


@given(
    data=wire_bytes,
    cuts=cut_points,
    eof=st.booleans(),
    max_line_length=st.integers(min_value=3, max_value=40),
    max_reply_lines=st.integers(min_value=1, max_value=6),
)
@settings(max_examples=600)
def test_any_input_parses_or_raises_remote_protocol_error(
    data: bytes, cuts: list[int], eof: bool, max_line_length: int, max_reply_lines: int
) -> None:
    reader = ReplyReader(max_line_length=max_line_length, max_reply_lines=max_reply_lines)
    steps: list[bytes | None] = [*split(data, cuts), *([None] if eof else [])]
    for chunk in steps:
        if chunk is None:
            reader.feed_eof()
            chunk = b""
        else:
            reader.feed(chunk)
        try:
            while True:
                # Whatever was fed, the buffer holds at most one partial line (and its CR) from before
                # this feed, plus this chunk; and a reply in progress stays under the line cap.
                assert len(reader._buffer) <= max_line_length + 1 + len(chunk)
                assert len(reader._lines) < max_reply_lines
                reply = reader.next_reply()
                if reply is None:
                    break
                assert isinstance(reply, Reply)
                assert 200 <= reply.code <= 599
                assert 1 <= len(reply.lines) <= max_reply_lines
                assert all(not line or len(line) + 4 <= max_line_length for line in reply.lines)
        except RemoteProtocolError:
            return
        # After "need more data", only a partial line is held, never more than the cap allows.
        assert len(reader._buffer) <= max_line_length + 1
        assert b"\n" not in reader._buffer
    assert reader.at_eof == eof
    if eof:
        assert not reader.has_pending_data


line_text = st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def replies_on_the_wire(draw: st.DrawFn) -> tuple[list[Reply], bytes]:
    replies = []
    wire = bytearray()
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        # Reply-code = %x32-35 %x30-35 %x30-39 (RFC 5321 section 4.2)
        code = 100 * draw(st.integers(2, 5)) + 10 * draw(st.integers(0, 5)) + draw(st.integers(0, 9))
        lines = draw(st.lists(line_text, min_size=1, max_size=4))
        status = None
        if code // 100 != 3 and draw(st.booleans()):
            status = f"{code // 100}.{draw(st.integers(0, 999))}.{draw(st.integers(0, 999))}"
            lines[0] = status.encode() + (b" " + lines[0] if lines[0] else b"")
        elif lines[0][:1].isdigit():
            lines[0] = b"x" + lines[0]  # keep text from being read as a status code
        replies.append(Reply(code=code, lines=tuple(lines), enhanced_status=status))
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            wire += b"%d" % code
            if not (last and not line and draw(st.booleans())):  # "250" alone may end a reply
                wire += (b" " if last else b"-") + line
            wire += draw(st.sampled_from([b"\r\n", b"\n"]))
    return replies, bytes(wire)


@given(replies_on_the_wire(), cut_points, st.booleans())
@settings(max_examples=400)
def test_serialised_replies_parse_back(case: tuple[list[Reply], bytes], cuts: list[int], eof: bool) -> None:
    expected, wire = case
    reader, replies, exc = run(split(wire, cuts), eof=eof)
    assert exc is None
    assert replies == expected
    assert not reader.has_pending_data
