"""The values behind CHUNKING and DSN: the Bdat command, BdatEncoder, the connection's BDAT and LMTP
bookkeeping, Dsn requests and xtext (RFC 3030, RFC 2033, RFC 3461)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_sansio import (
    NEED_DATA,
    Bdat,
    BdatEncoder,
    Connection,
    Data,
    Dsn,
    Ehlo,
    LocalProtocolError,
    Mail,
    Rcpt,
    Rset,
    State,
    encode_bdat,
    xtext_decode,
    xtext_encode,
)

# --- Bdat ------------------------------------------------------------------------------------------


def test_bdat_lines() -> None:
    assert Bdat(size=0, last=True).encode() == b"BDAT 0 LAST\r\n"
    assert Bdat(size=65536).encode() == b"BDAT 65536\r\n"
    assert (Bdat(size=1).state_input(), Bdat(size=1, last=True).state_input()) == ("BDAT", "BDAT-LAST")
    assert Mail(sender="").state_input() == "MAIL"


@pytest.mark.parametrize(("size", "last"), [(-1, False), (2**31, False), (True, False), ("5", False), (1, 1)])
def test_bdat_refuses_bad_arguments(size, last) -> None:
    with pytest.raises(LocalProtocolError, match="BDAT"):
        Bdat(size=size, last=last)


def test_bdat_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Bdat(size=1).size = 2  # type: ignore[misc]


# --- BdatEncoder -------------------------------------------------------------------------------------


@given(body=st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"")),
       cuts=st.lists(st.integers(0, 300), max_size=10), chunk_size=st.integers(1, 50))
def test_bdat_encoder_chunks_are_split_invariant(body: bytes, cuts: list[int], chunk_size: int) -> None:
    encoder = BdatEncoder(chunk_size=chunk_size, max_line_length=None)
    points = sorted({min(cut, len(body)) for cut in cuts})
    chunks: list[bytes] = []
    for a, b in zip([0, *points], [*points, len(body)], strict=True):
        chunks += encoder.feed(body[a:b])
    last = encoder.end()
    assert all(len(chunk) == chunk_size for chunk in chunks)
    assert 0 < len(last) <= chunk_size + 2 or body == b""
    whole = BdatEncoder(chunk_size=chunk_size, max_line_length=None)
    assert [*whole.feed(body), whole.end()] == [*chunks, last]
    text = b"".join(chunks) + last
    # CRLF only, nothing stuffed, and a last line ending added when missing.
    normal = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert text == (normal + b"\r\n" if normal and not normal.endswith(b"\r\n") else normal)


def test_binary_encoder_passes_octets_through() -> None:
    encoder = BdatEncoder(chunk_size=4, binary=True)
    assert encoder.feed(b"\0\r\n\r.\n") == [b"\0\r\n\r"]
    assert encoder.end() == b".\n"
    assert encode_bdat(b"", chunk_size=3) == b"BDAT 0 LAST\r\n"
    # Chunks cut the encoded octets anywhere, even between CR and LF (RFC 3030 section 2).
    assert encode_bdat(b"a\nb", chunk_size=2) == b"BDAT 2\r\na\rBDAT 4 LAST\r\n\nb\r\n"


def test_bdat_encoder_errors() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(LocalProtocolError, match="chunk_size"):
            BdatEncoder(chunk_size=bad)  # type: ignore[arg-type]
    encoder = BdatEncoder(chunk_size=4)
    with pytest.raises(LocalProtocolError, match="must be bytes"):
        encoder.feed("text")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="NUL"):
        encoder.feed(b"ab\0")
    with pytest.raises(LocalProtocolError, match="cannot be used any more: line 1 contains a NUL"):
        encoder.feed(b"x")
    done = BdatEncoder()
    done.end()
    with pytest.raises(LocalProtocolError, match="already been ended"):
        done.end()
    assert BdatEncoder(chunk_size=7).chunk_size == 7


# --- the connection ----------------------------------------------------------------------------------


def ready(**options) -> Connection:
    conn = Connection(**options)
    conn.receive_data(b"220 hi\r\n")
    conn.next_event()
    conn.send(Ehlo(domain="client.example"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    return conn


def answer(conn: Connection, data: bytes) -> list:
    conn.receive_data(data)
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if not conn.in_flight:
            break
    return events


def test_connection_bdat_flow_and_rset_between_chunks() -> None:
    conn = ready(chunk_size=4, pipelining=True)
    conn.send(Mail(sender="a@example.org"))
    conn.send(Rcpt(recipient="b@example.org"))
    assert conn.next_bdat() is None
    conn.feed_bdat(b"abcdefghij")
    assert conn.bdat_pending == 2
    with pytest.raises(LocalProtocolError, match="before every chunk"):
        _end_too_early()
    assert conn.next_bdat() == b"BDAT 4\r\nabcd"
    assert conn.next_bdat() == b"BDAT 4\r\nefgh"
    assert conn.projected_state is State.BDAT
    assert conn.send(Rset()) == b"RSET\r\n"  # RFC 3030 section 2: RSET aborts between chunks
    assert conn.bdat_pending == 0
    events = answer(conn, b"250 ok\r\n250 ok\r\n250 chunk\r\n554 no\r\n250 reset\r\n")
    assert [e.verb for e in events] == ["MAIL", "RCPT", "BDAT", "BDAT", "RSET"]
    assert conn.state is State.READY


def _end_too_early() -> None:
    conn = ready(chunk_size=1, pipelining=True)
    conn.send(Mail(sender="a@example.org"))
    conn.feed_bdat(b"abc")
    conn.end_bdat()


def test_connection_content_error_keeps_the_connection_usable() -> None:
    conn = ready(chunk_size=4, pipelining=True)
    conn.send(Mail(sender="a@example.org"))
    with pytest.raises(LocalProtocolError, match="NUL"):
        conn.feed_bdat(b"a\0")
    with pytest.raises(LocalProtocolError, match="binary cannot change"):
        conn.feed_bdat(b"a", binary=True)
    conn2 = ready(chunk_size=4, pipelining=True)
    conn2.send(Mail(sender="a@example.org"))
    with pytest.raises(LocalProtocolError, match="NUL"):
        conn2.feed_bdat(b"a\0")
    assert conn2.send(Rset()) == b"RSET\r\n"
    assert conn2.state is State.READY


def test_connection_refuses_bdat_outside_a_transaction_and_through_send() -> None:
    with pytest.raises(LocalProtocolError, match="BDAT is not allowed in state READY"):
        ready().feed_bdat(b"x")
    with pytest.raises(LocalProtocolError, match="feed_bdat"):
        ready().send(Bdat(size=1))


def test_connection_lmtp_expects_one_reply_per_accepted_recipient() -> None:
    conn = ready(lmtp=True, pipelining=True)
    conn.send(Mail(sender="a@example.org"))
    for name in ("b", "c", "d"):
        conn.send(Rcpt(recipient=f"{name}@example.org"))
    conn.send(Data())
    answer(conn, b"250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n")
    conn.send_data(b"hi\r\n")
    conn.end_data()
    assert conn.in_flight == ("DATA-END-RCPT", "DATA-END-RCPT")
    events = answer(conn, b"250 b done\r\n452 d full\r\n")
    assert [(e.verb, e.reply.code) for e in events] == [("DATA-END-RCPT", 250), ("DATA-END-RCPT", 452)]
    assert conn.state is State.READY


# --- DSN ---------------------------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=50))
def test_xtext_round_trip(text: str) -> None:
    encoded = xtext_encode(text)
    assert xtext_decode(encoded) == text
    assert all(33 <= ord(c) <= 126 and c != "=" for c in encoded)


def test_xtext_examples_and_errors() -> None:
    assert xtext_encode("a+b=c d\u007f") == "a+2Bb+3Dc+20d+7F"
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        xtext_encode("caf\u00e9")
    with pytest.raises(LocalProtocolError, match="must be made from a str"):
        xtext_encode(b"x")  # type: ignore[arg-type]
    for bad in ("+2", "+2b", "+ZZ", "a=b", "a b"):
        with pytest.raises(LocalProtocolError, match="invalid xtext"):
            xtext_decode(bad)


def test_dsn_parameters() -> None:
    dsn = Dsn(notify="delay", ret="full", envid="QQ314159", orcpt={"b@example.org": "old@example.org"})
    assert dsn.notify == ("DELAY",) and dsn.ret == "FULL"
    assert dsn.mail_parameters() == {"RET": "FULL", "ENVID": "QQ314159"}
    assert dsn.rcpt_parameters("b@example.org") == {"NOTIFY": "DELAY", "ORCPT": "rfc822;old@example.org"}
    assert dsn.rcpt_parameters("other@example.org") == {"NOTIFY": "DELAY"}
    assert Dsn().mail_parameters() == {} and Dsn().rcpt_parameters("x") == {}
    assert Dsn(notify=["success", "SUCCESS", "failure"]).notify == ("SUCCESS", "FAILURE")
    # The parameters are valid on the commands (esmtp-value grammar, RFC 5321 section 4.1.2).
    Rcpt(recipient="b@example.org", parameters=dsn.rcpt_parameters("b@example.org"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"notify": ("NEVER", "SUCCESS")}, "NEVER cannot be combined"),
        ({"notify": ("SOMETIMES",)}, "unknown DSN NOTIFY"),
        ({"notify": ()}, "non-empty"),
        ({"notify": (1,)}, "unknown DSN NOTIFY"),
        ({"ret": "BODY"}, "RET must be FULL or HDRS"),
        ({"ret": 1}, "RET must be FULL or HDRS"),
        ({"envid": ""}, "printable ASCII"),
        ({"envid": "caf\u00e9"}, "printable ASCII"),
        ({"envid": "x" * 101}, "over 100 characters"),
        ({"envid": "+" * 34}, "over 100 characters"),  # 102 characters as xtext
        ({"orcpt": ["x"]}, "must be a mapping"),
        ({"orcpt": {"b@example.org": ""}}, "non-empty address"),
        ({"orcpt": {"b@example.org": "x" * 500}}, "longer than 500"),
    ],
)
def test_dsn_refuses(options, message) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        Dsn(**options)


def test_may_pipeline() -> None:
    conn = ready(pipelining=True)
    assert conn.may_pipeline
    conn.send(Mail(sender="a@example.org"))
    assert conn.may_pipeline
    conn.send(Data())
    assert not conn.may_pipeline  # DATA ends a group (RFC 2920 section 3.1)
    plain = ready()
    plain.send(Mail(sender="a@example.org"))
    assert not plain.may_pipeline
