"""Tests for the Session's mail transactions: MAIL, RCPT, DATA, pipelined or not, and what it refuses.

Driven by the transcript driver of test_session.py: every byte the client writes is checked, and
so is the grouping of writes (one Write per command without PIPELINING, one for MAIL, every RCPT and
DATA with it).  A refused transaction raises a ReplyError and leaves the session usable, which each
test shows by sending the next message on the same session.
"""

from __future__ import annotations

import pytest
from session_driver import (
    ALICE,
    BOB,
    CAROL,
    CLOSE,
    EHLO,
    ENVELOPE,
    GREETING,
    MESSAGE,
    QUIT,
    C,
    Driver,
    S,
    Split,
    Step,
    assert_dead,
    ehlo_reply,
    make_session,
    plain_steps,
    ready_session,
)

from smtp_sansio import (
    Envelope,
    LocalProtocolError,
    PermanentReplyError,
    RemoteProtocolError,
    ReplyError,
    SendResult,
    Session,
    TraceLine,
    TransientReplyError,
    Write,
)

DAVE = "dave@example.net"
MAIL = b"MAIL FROM:<alice@example.org>\r\n"
RSET = [C(b"RSET\r\n"), S(b"250 2.0.0 reset\r\n")]


def rcpt(address: str) -> bytes:
    return b"RCPT TO:<%s>\r\n" % address.encode()


def group(*recipients: str, mail: bytes = MAIL) -> Step:
    """The one write of a pipelined transaction: MAIL, every RCPT and DATA."""
    return C(mail + b"".join(rcpt(r) for r in recipients) + b"DATA\r\n")


def send(driver: Driver, recipients: tuple[str, ...], *steps: Step, body: bytes = MESSAGE) -> object:
    driver.session.send_message(Envelope(sender=ALICE, recipients=recipients), body)
    return driver.run(*steps)


def assert_usable(driver: Driver) -> None:
    """The session survived a refused transaction: the next message goes through."""
    assert driver.session.ready and not driver.session.closed
    capabilities = driver.session.capabilities
    mail = MAIL[:-2] + (b"" if capabilities.size_limit is None else b" SIZE=%d" % len(MESSAGE))
    if "PIPELINING" in capabilities:
        steps = [group(BOB, mail=mail + b"\r\n"), S(b"250 ok\r\n250 ok\r\n354 go\r\n"),
                 C(MESSAGE + b".\r\n"), S(b"250 2.0.0 queued\r\n")]
    else:
        steps = plain_steps(BOB, mail=mail)
    result = send(driver, (BOB,), *steps)
    assert isinstance(result, SendResult)
    assert result.accepted == (BOB,)


# --- successful transactions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extensions", "options"),
    [((), {}), (("PIPELINING",), {"pipelining": False})],
    ids=["not-offered", "off"],
)
def test_one_write_per_command_without_pipelining(
    extensions: tuple[str, ...], options: dict[str, object], split: Split
) -> None:
    driver = ready_session(*extensions, split=split, **options)
    result = send(
        driver, (BOB, CAROL, DAVE),
        C(MAIL), S(b"250 2.1.0 ok\r\n"),
        C(rcpt(BOB)), S(b"250 2.1.5 ok\r\n"),
        C(rcpt(CAROL)), S(b"550-5.1.1 no such user\r\n550 5.1.1 really\r\n"),
        C(rcpt(DAVE)), S(b"251 2.1.5 will forward\r\n"),
        C(b"DATA\r\n"), S(b"354 go ahead\r\n"),
        C(MESSAGE + b".\r\n"), S(b"250 2.0.0 queued as 1234\r\n"),
    )
    assert isinstance(result, SendResult)
    assert result.accepted == (BOB, DAVE)
    assert list(result.refused) == [CAROL]
    assert result.refused[CAROL].code == 550
    assert result.refused[CAROL].enhanced_status == "5.1.1"
    assert result.refused[CAROL].text == "5.1.1 no such user\n5.1.1 really"
    assert (result.reply.code, result.reply.text) == (250, "2.0.0 queued as 1234")
    assert driver.session.ready


def test_pipelining_sends_the_envelope_in_one_write(split: Split) -> None:
    driver = ready_session("PIPELINING", split=split)
    mark = len(driver.requests)
    result = send(
        driver, (BOB, CAROL, DAVE),
        group(BOB, CAROL, DAVE),
        S(b"250 2.1.0 ok\r\n"), S(b"250 2.1.5 ok\r\n"), S(b"450 4.2.1 busy\r\n"), S(b"250 2.1.5 ok\r\n"),
        S(b"354 go ahead\r\n"),
        C(MESSAGE + b".\r\n"), S(b"250 2.0.0 queued\r\n"),
    )
    assert [r for r in driver.requests[mark:] if isinstance(r, Write)] == [
        Write(data=driver.written[-2], timeout=300.0, phase="mail"),
        Write(data=MESSAGE + b".\r\n", timeout=180.0, phase="data_block"),
    ]
    assert isinstance(result, SendResult)
    assert result.accepted == (BOB, DAVE)
    assert {address: reply.code for address, reply in result.refused.items()} == {CAROL: 450}
    assert_usable(driver)


def test_empty_message() -> None:
    driver = ready_session()
    result = send(driver, (BOB,), *plain_steps(BOB, body=b""), body=b"")
    assert isinstance(result, SendResult)


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (
            b"From: a\n\n.starts with a dot\r\n..two dots\rbare CR\n.\nno final newline",
            b"From: a\r\n\r\n..starts with a dot\r\n...two dots\r\nbare CR\r\n..\r\nno final newline\r\n",
        ),
        (b".\r\n", b"..\r\n"),
        (b"x\r\n.\r\ny\r\n", b"x\r\n..\r\ny\r\n"),
        (b"ends with CR\r", b"ends with CR\r\n"),
    ],
)
def test_data_is_dot_stuffed_and_normalised(body: bytes, wire: bytes) -> None:
    driver = ready_session()
    send(driver, (BOB,), *plain_steps(BOB, body=wire), body=body)
    sent = driver.written[-1]
    assert sent == wire + b".\r\n"
    assert sent.count(b"\r\n.\r\n") == 1 and sent.endswith(b"\r\n.\r\n")


# --- refusals -----------------------------------------------------------------------------------------


def test_all_recipients_refused_pipelined(split: Split) -> None:
    driver = ready_session("PIPELINING", split=split)
    with pytest.raises(TransientReplyError) as info:
        send(
            driver, (BOB, CAROL),
            group(BOB, CAROL),
            S(b"250 ok\r\n"), S(b"550 5.1.1 unknown\r\n"), S(b"450 4.2.1 busy\r\n"),
            S(b"554 5.5.1 no valid recipients\r\n"),
            *RSET,
        )
    error = info.value
    assert error.code == 450  # transient: a later try may reach carol
    assert error.command == "RCPT (all 2 recipients refused)"
    assert {address: reply.code for address, reply in error.refused.items()} == {BOB: 550, CAROL: 450}
    assert error.refused[BOB].enhanced_status == "5.1.1"
    assert_usable(driver)


def test_all_recipients_refused_without_pipelining() -> None:
    driver = ready_session()
    with pytest.raises(PermanentReplyError) as info:
        send(
            driver, (BOB, CAROL),
            C(MAIL), S(b"250 ok\r\n"), C(rcpt(BOB)), S(b"550 5.1.1 unknown\r\n"),
            C(rcpt(CAROL)), S(b"553 5.1.3 bad address\r\n"),
            *RSET,  # no DATA at all
        )
    assert info.value.code == 550
    assert set(info.value.refused) == {BOB, CAROL}
    assert b"DATA\r\n" not in driver.written
    assert_usable(driver)


@pytest.mark.parametrize("reply", [b"550 5.7.1 sender rejected\r\n", b"451 4.7.1 greylisted\r\n"])
def test_mail_refused_without_pipelining(reply: bytes) -> None:
    driver = ready_session()
    with pytest.raises(ReplyError) as info:
        send(driver, (BOB,), C(MAIL), S(reply))
    assert type(info.value) is (PermanentReplyError if reply[:1] == b"5" else TransientReplyError)
    assert info.value.command == "MAIL FROM:<alice@example.org>"
    assert driver.written[-1] == MAIL  # no RCPT, no RSET
    assert_usable(driver)


def test_mail_refused_pipelined(split: Split) -> None:
    driver = ready_session("PIPELINING", split=split)
    with pytest.raises(PermanentReplyError) as info:
        send(
            driver, (BOB,),
            group(BOB), S(b"550 5.7.1 sender rejected\r\n"), S(b"503 5.5.1 need MAIL\r\n"), S(b"503 no\r\n"),
        )
    assert info.value.code == 550 and info.value.command == "MAIL FROM:<alice@example.org>"
    assert not info.value.refused
    assert_usable(driver)  # and no RSET was sent before the next MAIL
    assert b"RSET\r\n" not in driver.written


@pytest.mark.parametrize("pipelined", [False, True])
def test_data_refused_after_accepted_recipients(pipelined: bool) -> None:
    if pipelined:
        driver = ready_session("PIPELINING")
        steps = [group(BOB), S(b"250 ok\r\n250 ok\r\n451 4.3.0 no DATA now\r\n")]
    else:
        driver = ready_session()
        steps = [C(MAIL), S(b"250 ok\r\n"), C(rcpt(BOB)), S(b"250 ok\r\n"), C(b"DATA\r\n"), S(b"451 no\r\n")]
    with pytest.raises(TransientReplyError) as info:
        send(driver, (BOB,), *steps, *RSET)
    assert info.value.command == "DATA"
    assert not info.value.refused
    assert_usable(driver)


@pytest.mark.parametrize("final", [b"554 5.6.0 content rejected\r\n", b"452 4.3.1 out of storage\r\n"])
def test_final_reply_refuses_the_message(final: bytes) -> None:
    driver = ready_session()
    steps = plain_steps(BOB)
    with pytest.raises(ReplyError) as info:
        send(driver, (BOB,), *steps[:-1], S(final))
    assert info.value.code == int(final[:3])
    assert info.value.command == "end of data"
    assert_usable(driver)  # DATA-END completes the transaction: no RSET needed
    assert b"RSET\r\n" not in driver.written


@pytest.mark.parametrize("after_dot", [b"554 5.5.1 no recipients\r\n", b"250 2.0.0 what message?\r\n"])
def test_354_although_every_recipient_was_refused(after_dot: bytes) -> None:
    # A broken server accepts DATA without a recipient: the client ends the data at once, sending
    # nothing of the message.
    trace: list[TraceLine] = []
    driver = ready_session("PIPELINING", trace=trace.append)
    with pytest.raises(PermanentReplyError) as info:
        send(driver, (BOB,), group(BOB), S(b"250 ok\r\n550 5.1.1 unknown\r\n354 go ahead\r\n"),
             C(b".\r\n"), S(after_dot), *RSET)
    assert set(info.value.refused) == {BOB}
    assert not any(b"Hello Bob" in data for data in driver.written)
    assert [str(line) for line in trace[-5:]] == [
        "S: 354 go ahead", "C: .", f"S: {after_dot.decode().strip()}", "C: RSET", "S: 250 2.0.0 reset"
    ]
    assert_usable(driver)


def test_354_although_mail_was_refused() -> None:
    driver = ready_session("PIPELINING")
    with pytest.raises(PermanentReplyError) as info:
        send(driver, (BOB,), group(BOB), S(b"550 5.7.1 no\r\n250 ok\r\n354 go ahead\r\n"),
             C(b".\r\n"), S(b"503 5.5.1 no transaction\r\n"))
    assert info.value.command == "MAIL FROM:<alice@example.org>"
    assert not any(b"Hello Bob" in data for data in driver.written)
    assert_usable(driver)


def test_rset_refused_ends_the_session() -> None:
    driver = ready_session()
    with pytest.raises(RemoteProtocolError, match="refused RSET"):
        send(driver, (BOB,), C(MAIL), S(b"250 ok\r\n"), C(rcpt(BOB)), S(b"550 no\r\n"),
             C(b"RSET\r\n"), S(b"502 5.5.2 no RSET here\r\n"), C(QUIT), S(b"221 bye\r\n"), CLOSE)
    assert_dead(driver.session)


def test_421_in_a_pipelined_group_ends_the_session(split: Split) -> None:
    driver = ready_session("PIPELINING", split=split)
    with pytest.raises(TransientReplyError) as info:
        send(driver, (BOB, CAROL), group(BOB, CAROL), S(b"250 ok\r\n"), S(b"421 4.3.2 bye\r\n"), CLOSE)
    assert info.value.code == 421
    assert QUIT not in driver.written
    assert_dead(driver.session)


# --- recipients and the sendto domain -----------------------------------------------------------------


def test_sendto_domain_completes_bare_recipients() -> None:
    driver = ready_session(sendto_domain="example.org")
    result = send(
        driver, ("bob", CAROL, "bob@example.org"),  # the third is the first once completed: sent once
        *plain_steps("bob@example.org", CAROL),
    )
    assert isinstance(result, SendResult)
    assert result.accepted == ("bob@example.org", CAROL)


@pytest.mark.parametrize("postmaster", ["postmaster", "Postmaster", "POSTMASTER"])
def test_bare_postmaster_needs_no_domain(postmaster: str) -> None:
    driver = ready_session()
    result = send(driver, (postmaster,), *plain_steps(postmaster))
    assert isinstance(result, SendResult)
    assert result.accepted == (postmaster,)


def test_bare_recipient_without_sendto_domain_is_refused_locally() -> None:
    driver = ready_session()
    with pytest.raises(LocalProtocolError, match="sendto_domain"):
        driver.session.send_message(Envelope(sender=ALICE, recipients=(BOB, "bob")), MESSAGE)
    assert driver.written == [EHLO]
    assert_usable(driver)


def test_exact_duplicates_are_sent_once() -> None:
    driver = ready_session()
    result = send(driver, (BOB, CAROL, BOB), *plain_steps(BOB, CAROL))
    assert isinstance(result, SendResult)
    assert result.accepted == (BOB, CAROL)


# --- what is refused before anything is sent ----------------------------------------------------------


def forged(sender: str, *recipients: str) -> Envelope:
    # An envelope that skipped Envelope's own checks: the session must not rely on them.
    envelope = Envelope(sender=ALICE, recipients=(BOB,))
    object.__setattr__(envelope, "sender", sender)
    object.__setattr__(envelope, "recipients", recipients)
    return envelope


LONG_LINE = b"Subject: x\r\n\r\n" + b"x" * 999 + b"\r\n"
BAD_INPUTS = {
    "CR in recipient": lambda: (Envelope(sender=ALICE, recipients=("bob@example.net\rRSET",)), MESSAGE),
    "LF in sender": lambda: (Envelope(sender="alice@example.org\nRSET", recipients=(BOB,)), MESSAGE),
    "NUL in recipient": lambda: (Envelope(sender=ALICE, recipients=("bob\0@example.net",)), MESSAGE),
    "forged CRLF in recipient": lambda: (forged(ALICE, "bob@example.net\r\nRCPT TO:<eve@x.org>"), MESSAGE),
    "forged CRLF in sender": lambda: (forged("a@example.org>\r\nRSET\r\nMAIL FROM:<b@x.org", BOB), MESSAGE),
    "sender without domain": lambda: (Envelope(sender="alice", recipients=(BOB,)), MESSAGE),
    "invalid recipient": lambda: (Envelope(sender=ALICE, recipients=("bob@@example.net",)), MESSAGE),
    "line over 998 octets": lambda: (ENVELOPE, LONG_LINE),
    "NUL in the data": lambda: (ENVELOPE, b"Subject: x\r\n\r\nnul \0 here\r\n"),
    "non-ASCII sender": lambda: (Envelope(sender="jörg@example.org", recipients=(BOB,)), MESSAGE),
    "non-ASCII recipient": lambda: (Envelope(sender=ALICE, recipients=("bob@bücher.example",)), MESSAGE),
    "non-ASCII header": lambda: (ENVELOPE, "Subject: Grüße\r\n\r\nhi\r\n".encode()),
    "not an Envelope": lambda: ((ALICE, (BOB,)), MESSAGE),
    "str data": lambda: (ENVELOPE, "Subject: hi\r\n\r\nhi\r\n"),
}


@pytest.mark.parametrize("make_input", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_before_any_request(make_input) -> None:
    driver = ready_session("PIPELINING", "8BITMIME")
    mark = len(driver.requests)
    with pytest.raises(LocalProtocolError):
        driver.session.send_message(*make_input())
    assert len(driver.requests) == mark
    with pytest.raises(LocalProtocolError, match="idle"):
        driver.session.next_request()
    assert_usable(driver)


def test_longest_allowed_line_and_other_limits() -> None:
    driver = ready_session()
    body = b"Subject: x\r\n\r\n" + b"x" * 998 + b"\r\n"
    assert isinstance(send(driver, (BOB,), *plain_steps(BOB, body=body), body=body), SendResult)
    strict = ready_session(max_data_line_length=20)
    with pytest.raises(LocalProtocolError, match="longer than 20 octets"):
        strict.session.send_message(ENVELOPE, b"Subject: " + b"x" * 12 + b"\r\n\r\n")


def test_max_data_line_length_none_allows_long_lines() -> None:
    driver = ready_session(max_data_line_length=None)
    assert isinstance(send(driver, (BOB,), *plain_steps(BOB, body=LONG_LINE), body=LONG_LINE), SendResult)


def test_bytearray_data_is_accepted() -> None:
    driver = ready_session()
    driver.session.send_message(ENVELOPE, bytearray(MESSAGE))
    assert isinstance(driver.run(*plain_steps(BOB)), SendResult)


@pytest.mark.parametrize(
    ("sender", "recipient", "body", "parameters"),
    [
        ("jörg@example.org", "łukasz@bücher.example", MESSAGE, b" SIZE=%d SMTPUTF8"),
        (ALICE, BOB, "Subject: Grüße\r\n\r\nhi\r\n".encode(), b" SIZE=%d BODY=8BITMIME SMTPUTF8"),
        (ALICE, BOB, "Subject: hi\r\n\r\nGrüße\r\n".encode(), b" SIZE=%d BODY=8BITMIME"),
        (ALICE, BOB, MESSAGE, b" SIZE=%d"),
    ],
    ids=["utf8-addresses", "utf8-header", "8bit-body", "ascii"],
)
def test_mail_parameters(sender: str, recipient: str, body: bytes, parameters: bytes) -> None:
    driver = ready_session("SMTPUTF8", "8BITMIME", "SIZE 10000", "PIPELINING")
    driver.session.send_message(Envelope(sender=sender, recipients=(recipient,)), body)
    mail = b"MAIL FROM:<%s>%s\r\n" % (sender.encode(), parameters % len(body))
    driver.run(
        C(mail + b"RCPT TO:<%s>\r\n" % recipient.encode() + b"DATA\r\n"),
        S(b"250 ok\r\n250 ok\r\n354 go\r\n"), C(body + b".\r\n"), S(b"250 ok\r\n"),
    )


def test_8bit_body_without_8bitmime_is_refused_locally() -> None:
    driver = ready_session("PIPELINING")
    with pytest.raises(LocalProtocolError):
        driver.session.send_message(ENVELOPE, "Subject: hi\r\n\r\nGrüße\r\n".encode())
    assert driver.written == [EHLO]


def test_size_limit() -> None:
    driver = ready_session("SIZE 100")
    body = b"Subject: x\r\n\r\n" + b"y" * (100 - 16) + b"\r\n"  # exactly 100 octets on the wire
    assert len(body) == 100
    send(driver, (BOB,), *plain_steps(BOB, body=body, mail=MAIL[:-2] + b" SIZE=100"), body=body)
    with pytest.raises(LocalProtocolError, match="SIZE limit of 100"):
        driver.session.send_message(ENVELOPE, body[:-2] + b"z\r\n")
    # Dot-stuffing counts: 99 octets of input become 101 on the wire.
    stuffed = b"Subject: x\r\n\r\n" + b"y" * 77 + b"\r\n.\r\n.\r\n"
    assert len(stuffed) == 99
    with pytest.raises(LocalProtocolError, match="101 octets"):
        driver.session.send_message(ENVELOPE, stuffed)
    assert_usable(driver)


def test_size_without_a_limit_still_announces_the_size() -> None:
    driver = ready_session("SIZE")
    body = b"Subject: x\r\n\r\n" + b"y" * 900 + b"\r\n" * 50
    send(driver, (BOB,), *plain_steps(BOB, body=body, mail=MAIL[:-2] + b" SIZE=%d" % len(body)), body=body)


def test_null_sender() -> None:
    driver = ready_session()
    driver.session.send_message(Envelope(sender="", recipients=(BOB,)), MESSAGE)
    assert isinstance(driver.run(*plain_steps(BOB, mail=b"MAIL FROM:<>")), SendResult)


# --- when a message may be sent -----------------------------------------------------------------------


def test_send_message_needs_a_finished_handshake() -> None:
    session = Session(server_hostname="mail.example.org", local_hostname="client.example.org", tls="none")
    with pytest.raises(LocalProtocolError, match="before the current operation is done"):
        session.send_message(ENVELOPE, MESSAGE)
    driver = Driver(session)
    driver.run(S(GREETING), C(EHLO), S(ehlo_reply()))
    session.send_message(ENVELOPE, MESSAGE)
    with pytest.raises(LocalProtocolError, match="before the current operation is done"):
        session.send_message(ENVELOPE, MESSAGE)  # the first one is still running
    assert isinstance(driver.run(*plain_steps()), SendResult)


def test_send_message_after_quit() -> None:
    driver = ready_session()
    driver.session.quit()
    with pytest.raises(LocalProtocolError, match="before the current operation is done"):
        driver.session.send_message(ENVELOPE, MESSAGE)
    driver.run(C(QUIT), S(b"221 bye\r\n"), CLOSE)
    with pytest.raises(LocalProtocolError, match="the session is closed"):
        driver.session.send_message(ENVELOPE, MESSAGE)


def test_send_message_after_a_fatal_error() -> None:
    driver = Driver(make_session())
    with pytest.raises(TransientReplyError):
        driver.run(S(b"421 go away\r\n"), CLOSE)
    with pytest.raises(LocalProtocolError, match="no longer usable"):
        driver.session.send_message(ENVELOPE, MESSAGE)
