"""Fast on the wire: BDAT, pipelining across transactions, streaming, DSN, REQUIRETLS, LMTP, BINARYMIME.

Byte-exact transcripts use the script driver of session_driver.py; the properties (any split of the
message, any split of the replies, any mix of refusals) run against the server model of
fake_esmtp.py, which parses what the client writes and answers every command.
"""

from __future__ import annotations

import pytest
from fake_esmtp import FakeServer, bytewise, drive, handshake, whole
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from session_driver import (
    ALICE,
    BOB,
    CAROL,
    CLOSE,
    ENVELOPE,
    MESSAGE,
    QUIT,
    C,
    Driver,
    S,
    ehlo_reply,
    make_session,
    ready_session,
)

from smtp_sansio import (
    Close,
    Done,
    Dsn,
    Envelope,
    LocalProtocolError,
    OutgoingMessage,
    PermanentReplyError,
    Read,
    ReplyError,
    SendResult,
    Session,
    TransientReplyError,
    Unsent,
    Write,
    encode_bdat,
)

MAIL = b"MAIL FROM:<alice@example.org>\r\n"
RCPT_BOB = b"RCPT TO:<bob@example.net>\r\n"
OK = b"250 2.0.0 ok\r\n"


def normalised(body: bytes) -> bytes:
    """What the server stores: CRLF line endings, and a last line ending added if missing."""
    text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if not text or text.endswith(b"\r\n") else text + b"\r\n"


# --- BDAT, byte-exact ------------------------------------------------------------------------------


def test_bdat_small_message_is_one_chunk_with_last() -> None:
    driver = ready_session("PIPELINING", "CHUNKING", chunking=True)
    driver.session.send_message(ENVELOPE, b"Subject: hi\n\n.dot stays single\n")
    body = b"Subject: hi\r\n\r\n.dot stays single\r\n"
    result = driver.run(
        C(MAIL + RCPT_BOB), S(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n"),
        C(b"BDAT %d LAST\r\n" % len(body) + body), S(OK),
    )
    assert result == SendResult(accepted=(BOB,), reply=result.reply)
    assert result.reply.code == 250


def test_bdat_chunks_are_pipelined_then_last() -> None:
    driver = ready_session("PIPELINING", "CHUNKING", chunking=True, chunk_size=8)
    driver.session.send_message(ENVELOPE, b"0123456789abcdefXYZ")
    result = driver.run(
        # Writes hold at most chunk_size octets, or one command or chunk if that is longer.
        C(MAIL), C(RCPT_BOB), S(b"250 ok\r\n250 ok\r\n"),
        C(b"BDAT 8\r\n01234567"), C(b"BDAT 8\r\n89abcdef"), C(b"BDAT 5 LAST\r\nXYZ\r\n"),
        S(b"250 chunk\r\n250 chunk\r\n250 2.0.0 queued\r\n"),
    )
    assert isinstance(result, SendResult)
    assert result.reply.text == "2.0.0 queued"


def test_bdat_without_pipelining_waits_for_each_chunk() -> None:
    driver = ready_session("CHUNKING", chunking=True, chunk_size=8)
    driver.session.send_message(ENVELOPE, b"0123456789abcdefXYZ")
    result = driver.run(
        C(MAIL), S(b"250 ok\r\n"), C(RCPT_BOB), S(b"250 ok\r\n"),
        C(b"BDAT 8\r\n01234567"), S(b"250 chunk\r\n"), C(b"BDAT 8\r\n89abcdef"), S(b"250 chunk\r\n"),
        C(b"BDAT 5 LAST\r\nXYZ\r\n"), S(b"250 queued\r\n"),
    )
    assert isinstance(result, SendResult)


def test_bdat_is_not_used_unless_offered_and_enabled() -> None:
    for extensions, options in ((("PIPELINING",), {"chunking": True}), (("PIPELINING", "CHUNKING"), {})):
        driver = ready_session(*extensions, **options)
        driver.session.send_message(ENVELOPE, MESSAGE)
        driver.run(C(MAIL + RCPT_BOB + b"DATA\r\n"), S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
                   C(MESSAGE + b".\r\n"), S(OK))


def test_bdat_all_recipients_refused_sends_no_data() -> None:
    driver = ready_session("PIPELINING", "CHUNKING", chunking=True)
    driver.session.send_message(ENVELOPE, MESSAGE)
    with pytest.raises(PermanentReplyError) as info:
        driver.run(C(MAIL + RCPT_BOB), S(b"250 ok\r\n550 5.1.1 no\r\n"), C(b"RSET\r\n"), S(OK))
    assert set(info.value.refused) == {BOB}
    assert driver.session.ready


def test_bdat_refused_mail_sends_nothing_more() -> None:
    driver = ready_session("PIPELINING", "CHUNKING", chunking=True)
    driver.session.send_message(ENVELOPE, MESSAGE)
    with pytest.raises(PermanentReplyError, match=r"5\.1\.8"):
        driver.run(C(MAIL + RCPT_BOB), S(b"550 5.1.8 bad sender\r\n503 5.5.1 need MAIL\r\n"))


def test_bdat_refused_chunk_resets_and_the_session_goes_on() -> None:
    server = FakeServer(fail_chunk=2)
    # One command in flight at a time: the refusal arrives before the next chunk is sent.
    session = handshake(server, chunking=True, chunk_size=10, max_in_flight=1)
    session.send_message(ENVELOPE, b"x" * 30 + b"\r\n")
    with pytest.raises(PermanentReplyError, match="chunk refused"):
        drive(session, server)
    assert server.lines[-1] == b"RSET" and server.received == []
    session.send_message(ENVELOPE, MESSAGE)
    assert isinstance(drive(session, server).result, SendResult)
    assert server.received[-1].content == MESSAGE


def test_bdat_refusal_of_a_chunk_after_last_was_sent() -> None:
    # Every chunk is written before the first reply arrives: the refusal decides the outcome.
    server = FakeServer(fail_chunk=1)
    session = handshake(server, chunking=True, chunk_size=10)
    session.send_message(ENVELOPE, b"y" * 12 + b"\r\n")
    with pytest.raises(PermanentReplyError, match="chunk refused"):
        drive(session, server)
    assert session.ready and server.received == []


def test_bad_chunk_mid_stream_with_bdat_resets_and_keeps_the_session() -> None:
    server = FakeServer()
    session = handshake(server, chunking=True, chunk_size=16)
    chunks = [b"Subject: x\r\n\r\n", b"line one\r\n" * 5, b"nul \0 here\r\n", b"never read\r\n"]
    session.send_message(ENVELOPE, iter(chunks))
    with pytest.raises(LocalProtocolError, match="NUL"):
        drive(session, server)
    assert server.lines[-1] == b"RSET"
    assert any(line.startswith(b"BDAT 16") for line in server.lines)  # some chunks went out first
    assert not any(line.endswith(b"LAST") for line in server.lines)
    assert server.received == []
    session.send_message(ENVELOPE, [MESSAGE])
    assert isinstance(drive(session, server).result, SendResult)


def test_bad_chunk_mid_stream_with_data_closes_without_the_terminator() -> None:
    # What went out after the 354 cannot be taken back, and "." would deliver a truncated message:
    # the connection is closed instead, and the server discards the transaction.
    server = FakeServer()
    session = handshake(server, chunk_size=16)
    session.send_message(ENVELOPE, iter([b"Subject: x\r\n\r\n" + b"ok\r\n" * 10, b"bad\0\r\n"]))
    with pytest.raises(LocalProtocolError, match="NUL"):
        drive(session, server)
    assert session.closed
    assert server.received == [] and server.lines[-1] == b"DATA"


def test_eight_bit_chunk_without_8bitmime_is_refused_mid_stream() -> None:
    server = FakeServer(extensions=("PIPELINING", "CHUNKING"))
    session = handshake(server, chunking=True)
    session.send_message(ENVELOPE, [b"Subject: x\r\n\r\n", "caf\u00e9\r\n".encode()])
    with pytest.raises(LocalProtocolError, match="8BITMIME"):
        drive(session, server)
    assert session.ready


def test_chunk_of_the_wrong_type_is_refused_mid_stream() -> None:
    server = FakeServer()
    session = handshake(server, chunking=True)
    session.send_message(ENVELOPE, [b"Subject: x\r\n\r\n", "text"])  # type: ignore[list-item]
    with pytest.raises(LocalProtocolError, match="must be bytes, not str"):
        drive(session, server)


@given(
    body=st.lists(st.sampled_from([b"a", b"bc", b".", b"..", b"\r", b"\n", b"\r\n", b"x" * 40, b"\t"]),
                  max_size=30).map(b"".join),
    cuts=st.lists(st.integers(0, 600), max_size=8),
    chunk_size=st.integers(1, 70),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_bdat_wire_bytes_do_not_depend_on_the_split(body: bytes, cuts: list[int], chunk_size: int) -> None:
    points = sorted({min(cut, len(body)) for cut in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    wire = []
    for data in (body, pieces, [bytes([octet]) for octet in body]):
        server = FakeServer(extensions=("CHUNKING",))
        session = handshake(server, chunking=True, chunk_size=chunk_size, pipelining=False)
        session.send_message(ENVELOPE, data)
        run = drive(session, server)
        assert isinstance(run.result, SendResult)
        # MAIL, RCPT, then the chunks: byte-exact, CRLF normalised, nothing stuffed.
        wire.append(b"".join(run.writes[2:]))
        assert server.received[0].content == normalised(body)
        assert server.received[0].verb == "BDAT"
        # The last chunk may carry the CRLF added to an unterminated last line: two more octets.
        longest = chunk_size + 2 + len(b"BDAT %d LAST\r\n" % (chunk_size + 2))
        assert all(len(write) <= longest for write in run.writes[2:])
    assert wire[0] == wire[1] == wire[2] == encode_bdat(body, chunk_size=chunk_size)


# --- pipelining across transactions ---------------------------------------------------------------

ADDRESS = st.sampled_from(["", "refuse-", "later-"]).flatmap(
    lambda prefix: st.integers(0, 99).map(lambda n: f"{prefix}r{n}@example.net")
)
MESSAGES = st.lists(
    st.tuples(
        st.sampled_from([ALICE, ALICE, "bad@example.org"]),
        st.lists(ADDRESS, min_size=1, max_size=4, unique=True),
        st.lists(st.sampled_from([b"Subject: t\r\n\r\n", b"line\n", b".dot\r\n", b"\r\n", b"z" * 30]),
                 max_size=6).map(b"".join),
    ),
    min_size=1, max_size=5,
)


def _expected(sender: str, recipients: list[str]) -> tuple[type, tuple[str, ...]]:
    accepted = tuple(r for r in recipients if not r.startswith(("refuse-", "later-")))
    if sender.startswith("bad"):
        return PermanentReplyError, ()
    if not accepted:
        transient = any(r.startswith("later-") for r in recipients)
        return (TransientReplyError if transient else PermanentReplyError), ()
    return SendResult, accepted


def _summary(outcome: object) -> object:
    if isinstance(outcome, SendResult):
        return ("sent", outcome.accepted, {k: v.code for k, v in outcome.refused.items()}, outcome.reply.code)
    assert isinstance(outcome, ReplyError), outcome
    return (type(outcome).__name__, outcome.code, {k: v.code for k, v in outcome.refused.items()})


@given(
    messages=MESSAGES,
    chunking=st.booleans(),
    max_in_flight=st.integers(1, 8),
    chunk_size=st.sampled_from([7, 64, 4096]),
    split=st.sampled_from(["whole", "bytewise", "random"]),
    data=st.data(),
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pipelined_batches_pair_every_reply(
    messages, chunking, max_in_flight, chunk_size, split, data
) -> None:
    if split == "random":
        def splitter(pending: bytes) -> int:
            return data.draw(st.integers(1, len(pending)))
    else:
        splitter = whole if split == "whole" else bytewise
    batch = [(Envelope(sender=sender, recipients=tuple(rcpts)), body) for sender, rcpts, body in messages]
    summaries = []
    for pipelining in (True, False):
        server = FakeServer()
        session = handshake(server, pipelining=pipelining, chunking=chunking, chunk_size=chunk_size,
                            max_in_flight=max_in_flight)
        session.send_messages(batch)
        run = drive(session, server, splitter if pipelining else whole, max_in_flight=max_in_flight)
        outcomes = run.result
        assert isinstance(outcomes, tuple) and len(outcomes) == len(batch)
        for outcome, (sender, rcpts, _) in zip(outcomes, messages, strict=True):
            kind, accepted = _expected(sender, rcpts)
            assert isinstance(outcome, kind)
            if isinstance(outcome, SendResult):
                assert outcome.accepted == accepted
                assert set(outcome.refused) == set(rcpts) - set(accepted)
        delivered = [(r.recipients, r.content) for r in server.received]
        assert delivered == [
            (list(_expected(s, r)[1]), normalised(b))
            for s, r, b in messages if _expected(s, r)[0] is SendResult
        ]
        assert session.ready
        summaries.append([_summary(outcome) for outcome in outcomes])
        if not pipelining:
            assert run.max_waiting <= 1
    # Per-message results are exactly those of the same messages sent one command at a time.
    assert summaries[0] == summaries[1]


def test_next_transaction_follows_the_final_dot_in_the_same_write() -> None:
    driver = ready_session("PIPELINING")
    second = Envelope(sender=ALICE, recipients=(CAROL,))
    driver.session.send_messages([(ENVELOPE, MESSAGE), OutgoingMessage(envelope=second, data=[MESSAGE])])
    outcomes = driver.run(
        C(MAIL + RCPT_BOB + b"DATA\r\n"), S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        # RFC 2920 section 3.1: the end of one message and the next MAIL group in one write.
        C(MESSAGE + b".\r\n" + MAIL + b"RCPT TO:<carol@example.net>\r\nDATA\r\n"),
        S(b"250 first queued\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        C(MESSAGE + b".\r\n"), S(b"250 second queued\r\n"),
    )
    assert [o.reply.text for o in outcomes] == ["first queued", "second queued"]


def test_next_transaction_follows_bdat_last_in_the_same_write() -> None:
    driver = ready_session("PIPELINING", "CHUNKING", chunking=True)
    second = Envelope(sender=ALICE, recipients=(CAROL,))
    driver.session.send_messages([(ENVELOPE, MESSAGE), (second, MESSAGE)])
    last = b"BDAT %d LAST\r\n" % len(MESSAGE) + MESSAGE
    outcomes = driver.run(
        C(MAIL + RCPT_BOB), S(b"250 ok\r\n250 ok\r\n"),
        C(last + MAIL + b"RCPT TO:<carol@example.net>\r\n"),
        S(b"250 first\r\n250 ok\r\n250 ok\r\n"),
        C(last), S(b"250 second\r\n"),
    )
    assert [o.reply.text for o in outcomes] == ["first", "second"]


def test_a_refused_message_does_not_affect_the_next() -> None:
    server = FakeServer()
    session = handshake(server)
    bad = Envelope(sender="bad@example.org", recipients=(BOB,))
    nobody = Envelope(sender=ALICE, recipients=("refuse-1@example.net", "later-2@example.net"))
    session.send_messages([(bad, MESSAGE), (nobody, MESSAGE), (ENVELOPE, MESSAGE)])
    first, second, third = drive(session, server).result
    assert isinstance(first, PermanentReplyError) and first.code == 550
    assert isinstance(second, TransientReplyError)  # one refusal is temporary
    assert set(second.refused) == {"refuse-1@example.net", "later-2@example.net"}
    assert isinstance(third, SendResult) and third.accepted == (BOB,)


def test_invalid_message_in_a_batch_is_reported_and_skipped() -> None:
    server = FakeServer()
    session = handshake(server)
    session.send_messages([(ENVELOPE, b"nul\0\r\n"), (ENVELOPE, MESSAGE)])
    first, second = drive(session, server).result
    assert isinstance(first, LocalProtocolError) and isinstance(second, SendResult)
    assert len(server.received) == 1
    with pytest.raises(LocalProtocolError, match="OutgoingMessage"):
        session.send_messages([ENVELOPE])  # type: ignore[list-item]


def test_421_ends_the_batch_and_reports_every_unsent_message() -> None:
    server = FakeServer(close_on_mail=2)
    session = handshake(server)
    session.send_messages([(ENVELOPE, MESSAGE)] * 4)
    outcomes = drive(session, server).result
    assert isinstance(outcomes[0], SendResult)
    assert all(isinstance(outcome, Unsent) for outcome in outcomes[1:])
    assert outcomes[1].error.code == 421 and not outcomes[1].data_sent
    assert session.closed
    with pytest.raises(LocalProtocolError, match="no longer usable"):
        session.send_message(ENVELOPE, MESSAGE)


def test_server_hanging_up_mid_batch_reports_data_sent_as_uncertain() -> None:
    driver = ready_session("PIPELINING")
    driver.session.send_messages([(ENVELOPE, MESSAGE), (ENVELOPE, MESSAGE)])
    outcomes = driver.run(
        C(MAIL + RCPT_BOB + b"DATA\r\n"), S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        C(MESSAGE + b".\r\n" + MAIL + RCPT_BOB + b"DATA\r\n"), ("EOF", None), CLOSE,
    )
    assert [type(o) for o in outcomes] == [Unsent, Unsent]
    assert [o.data_sent for o in outcomes] == [True, False]
    assert driver.session.closed


def test_garbage_from_the_server_mid_batch_still_reports_every_message() -> None:
    driver = ready_session("PIPELINING")
    driver.session.send_messages([(ENVELOPE, MESSAGE)])
    outcomes = driver.run(C(MAIL + RCPT_BOB + b"DATA\r\n"), S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
                          C(MESSAGE + b".\r\n"), S(b"250 ok\r\n" + b"x" * 2000), CLOSE)
    assert isinstance(outcomes[0], Unsent)


def test_in_flight_bound_splits_a_large_group() -> None:
    server = FakeServer()
    session = handshake(server, max_in_flight=3)
    recipients = tuple(f"r{n}@example.net" for n in range(10))
    session.send_message(Envelope(sender=ALICE, recipients=recipients), MESSAGE)
    run = drive(session, server, max_in_flight=3)
    assert run.result.accepted == recipients
    assert run.max_waiting == 3


def test_default_in_flight_bound_is_100() -> None:
    server = FakeServer()
    session = handshake(server)
    session.send_messages([(Envelope(sender=ALICE, recipients=(f"r{n}@example.net",)), MESSAGE)
                           for n in range(150)])
    run = drive(session, server, max_in_flight=100)
    assert all(isinstance(outcome, SendResult) for outcome in run.result)


# --- streaming ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
def test_streaming_keeps_writes_and_memory_bounded(chunking: bool) -> None:
    chunk_size = 4096
    produced = 0

    def lines():
        nonlocal produced
        yield b"Subject: big\r\n\r\n"
        for n in range(3000):
            piece = b".%05d lorem ipsum dolor sit amet\n" % n * 10
            produced += len(piece)
            yield piece

    server = FakeServer()
    session = handshake(server, chunking=chunking, chunk_size=chunk_size)
    session.send_message(ENVELOPE, lines())
    written = 0
    while not isinstance(request := session.next_request(), Done):
        if isinstance(request, Write):
            assert len(request.data) <= chunk_size + 20
            written += len(request.data)
            # The generator is read only as far as the writes go: a few chunks ahead at most.
            assert produced - written <= 3 * chunk_size
            server.feed(request.data)
        else:
            assert isinstance(request, Read)
            session.receive_data(bytes(server.out[server.delivered :]))
            server.delivered = len(server.out)
    assert isinstance(request.result, SendResult)
    assert server.received[0].content.startswith(b"Subject: big\r\n\r\n.00000 lorem")
    assert len(server.received[0].content) > 100 * chunk_size


def test_size_is_sent_for_bytes_and_hinted_iterables_only() -> None:
    server = FakeServer()
    session = handshake(server, chunking=True)
    for data, size, expected in ((MESSAGE, None, f" SIZE={len(MESSAGE)}"), ([MESSAGE], None, ""),
                                 ([MESSAGE], 42, " SIZE=42")):
        session.send_message(ENVELOPE, data, size=size, body="7BIT")
        drive(session, server)
        assert server.received[-1].parameters == expected + " BODY=7BIT"
    with pytest.raises(LocalProtocolError, match="over the server's SIZE limit of 1000000"):
        session.send_message(ENVELOPE, [MESSAGE], size=2_000_000)
    with pytest.raises(LocalProtocolError, match="size must be"):
        session.send_message(ENVELOPE, [MESSAGE], size=-1)


def test_iterables_declare_8bitmime_when_offered() -> None:
    server = FakeServer()
    session = handshake(server)
    session.send_message(ENVELOPE, iter([MESSAGE]))
    drive(session, server)
    assert server.received[-1].parameters == " BODY=8BITMIME"


def test_body_type_checks() -> None:
    session = handshake(FakeServer())
    with pytest.raises(LocalProtocolError, match="8-bit content but body='7BIT'"):
        session.send_message(ENVELOPE, "Subject: x\r\n\r\ncaf\u00e9".encode(), body="7BIT")
    with pytest.raises(LocalProtocolError, match="body must be one of"):
        session.send_message(ENVELOPE, MESSAGE, body="QUOTED")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="bytes or an iterable"):
        session.send_message(ENVELOPE, 42)  # type: ignore[arg-type]


def test_binarymime_goes_through_untouched() -> None:
    server = FakeServer(extensions=("PIPELINING", "CHUNKING", "BINARYMIME", "8BITMIME"))
    session = handshake(server, chunking=True, chunk_size=5)
    binary = b"Subject: b\r\n\r\n\0\x01bare\nlf\rcr" + bytes(range(256))
    session.send_message(ENVELOPE, binary, body="BINARYMIME")
    drive(session, server)
    assert server.received[-1].content == binary
    assert server.received[-1].parameters == " BODY=BINARYMIME"


def test_binarymime_refused_unless_offered_with_chunking() -> None:
    session = handshake(FakeServer(), chunking=True)
    with pytest.raises(LocalProtocolError, match="BINARYMIME"):
        session.send_message(ENVELOPE, b"\0", body="BINARYMIME")
    session = handshake(FakeServer(extensions=("CHUNKING", "BINARYMIME")), chunking=False)
    with pytest.raises(LocalProtocolError, match="BINARYMIME"):
        session.send_message(ENVELOPE, b"\0", body="BINARYMIME")


# --- DSN and REQUIRETLS ------------------------------------------------------------------------------


def test_dsn_parameters_on_the_wire() -> None:
    driver = ready_session("DSN", "PIPELINING")
    dsn = Dsn(notify=("success", "FAILURE"), ret="HDRS", envid="id+1=2 x", orcpt={BOB: "bob+old@example.net"})
    driver.session.send_message(Envelope(sender=ALICE, recipients=(BOB, CAROL)), MESSAGE, dsn=dsn)
    driver.run(
        C(b"MAIL FROM:<alice@example.org> RET=HDRS ENVID=id+2B1+3D2+20x\r\n"
          b"RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bold@example.net\r\n"
          b"RCPT TO:<carol@example.net> NOTIFY=SUCCESS,FAILURE\r\nDATA\r\n"),
        S(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), C(MESSAGE + b".\r\n"), S(OK),
    )


def test_dsn_refused_locally_when_not_offered() -> None:
    driver = ready_session("PIPELINING")
    with pytest.raises(LocalProtocolError, match="does not offer DSN"):
        driver.session.send_message(ENVELOPE, MESSAGE, dsn=Dsn(notify=("NEVER",)))
    with pytest.raises(LocalProtocolError, match="must be a Dsn"):
        ready_session("DSN").session.send_message(ENVELOPE, MESSAGE, dsn={"notify": "NEVER"})  # type: ignore[arg-type]


def test_requiretls_needs_verified_tls_and_the_extension() -> None:
    plain = ready_session("REQUIRETLS")
    with pytest.raises(LocalProtocolError, match="REQUIRETLS needs a TLS connection"):
        plain.session.send_message(ENVELOPE, MESSAGE, requiretls=True)
    unverified = ready_session("REQUIRETLS", tls="implicit", tls_verified=False)
    with pytest.raises(LocalProtocolError, match="certificate was verified"):
        unverified.session.send_message(ENVELOPE, MESSAGE, requiretls=True)
    not_offered = ready_session(tls="implicit")
    with pytest.raises(LocalProtocolError, match="does not offer it"):
        not_offered.session.send_message(ENVELOPE, MESSAGE, requiretls=True)
    driver = ready_session("REQUIRETLS", tls="implicit")
    driver.session.send_message(ENVELOPE, MESSAGE, requiretls=True)
    driver.run(C(b"MAIL FROM:<alice@example.org> REQUIRETLS\r\n"), S(b"250 ok\r\n"), C(RCPT_BOB),
               S(b"250 ok\r\n"), C(b"DATA\r\n"), S(b"354 go\r\n"), C(MESSAGE + b".\r\n"), S(OK))


# --- LMTP ----------------------------------------------------------------------------------------------


def test_lmtp_reports_each_recipient() -> None:
    server = FakeServer(lmtp=True, extensions=("PIPELINING", "CHUNKING", "8BITMIME"))
    session = handshake(server, lmtp=True, chunking=True)
    recipients = ("a@example.net", "lmtpfail-b@example.net", "refuse-c@example.net", "d@example.net")
    session.send_message(Envelope(sender=ALICE, recipients=recipients), MESSAGE)
    result = drive(session, server).result
    assert result.accepted == ("a@example.net", "d@example.net")
    assert {k: v.code for k, v in result.refused.items()} == {"lmtpfail-b@example.net": 552,
                                                             "refuse-c@example.net": 550}
    assert {k: v.text for k, v in result.recipient_replies.items()} == {
        "a@example.net": "2.1.5 delivered to a@example.net",
        "d@example.net": "2.1.5 delivered to d@example.net",
    }
    assert result.reply is result.recipient_replies["a@example.net"]
    assert server.received[0].verb == "DATA"  # no BDAT in LMTP
    assert server.lines[0] == b"LHLO client.example"


def test_lmtp_every_delivery_failed_and_next_message_pipelined() -> None:
    server = FakeServer(lmtp=True)
    session = handshake(server, lmtp=True)
    failing = Envelope(sender=ALICE, recipients=("lmtpfail-a@example.net", "lmtpfail-b@example.net"))
    session.send_messages([(failing, MESSAGE), (ENVELOPE, MESSAGE)])
    first, second = drive(session, server, bytewise).result
    assert isinstance(first, PermanentReplyError) and first.code == 552
    assert set(first.refused) == set(failing.recipients)
    assert isinstance(second, SendResult) and second.recipient_replies[BOB].code == 250


def test_lhlo_refused_has_no_helo_fallback() -> None:
    driver = Driver(make_session(lmtp=True))
    with pytest.raises(PermanentReplyError):
        driver.run(S(b"220 lmtp ready\r\n"), C(b"LHLO client.example.org\r\n"), S(b"500 what\r\n"),
                   C(QUIT), S(b"221 bye\r\n"), CLOSE)


def test_lmtp_session_speaks_lhlo() -> None:
    driver = Driver(make_session(lmtp=True))
    driver.run(S(b"220 lmtp ready\r\n"), C(b"LHLO client.example.org\r\n"), S(ehlo_reply("PIPELINING")))
    assert "PIPELINING" in driver.session.capabilities


# --- options ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"chunk_size": 0}, {"max_in_flight": 0}, {"max_in_flight": True}])
def test_invalid_options(options) -> None:
    with pytest.raises(LocalProtocolError):
        Session(server_hostname="x", local_hostname="client.example", **options)


def test_error_in_received_data_mid_batch_still_reports_every_message() -> None:
    # An adapter feeding data after it reported the end of the stream: the error is raised inside
    # the batch, which reports its messages instead of losing them.
    driver = ready_session("PIPELINING")
    session = driver.session
    session.send_messages([(ENVELOPE, MESSAGE), (ENVELOPE, MESSAGE)])
    assert isinstance(session.next_request(), Write)
    assert isinstance(session.next_request(), Read)
    session.receive_data(b"")
    session.receive_data(b"250 too late\r\n")
    assert isinstance(session.next_request(), Close)
    done = session.next_request()
    assert isinstance(done, Done)
    assert [type(o) for o in done.result] == [Unsent, Unsent]
    assert "after the connection was closed" in str(done.result[0].error)
    assert session.closed
