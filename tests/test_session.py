"""Tests for the Session, the client policy: handshake, TLS modes, VERB, quitting, timeouts, trace.

The session performs no I/O, so these tests are its adapter.  A script lists, in order, the exact
bytes the client must write and the bytes the server answers with; :class:`Driver` checks each Write
request against the next client step and feeds the server steps on Read requests -- whole, byte by
byte, or with every CR and its LF in separate reads.  StartTLS is answered by ``tls_established``
without any TLS (real TLS is tested against aiosmtpd in test_adapters.py).  Mail transactions
are tested in test_session_transactions.py with the same driver.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from session_driver import (
    ALICE,
    BOB,
    CAROL,
    CLOSE,
    EHLO,
    ENVELOPE,
    EOF,
    GREETING,
    LOCAL,
    MESSAGE,
    QUIT,
    SERVER,
    TLS,
    C,
    Driver,
    S,
    Split,
    Step,
    assert_dead,
    bytewise,
    ehlo_reply,
    make_session,
    plain_steps,
    ready_session,
    whole,
)

from smtp_sansio import (
    DEFAULT_TIMEOUTS,
    Capabilities,
    Close,
    Done,
    Envelope,
    LocalProtocolError,
    PermanentReplyError,
    Read,
    RemoteProtocolError,
    SecurityError,
    SendResult,
    Session,
    SMTPError,
    StartTLS,
    TraceLine,
    TransientReplyError,
    Write,
    resolve_timeouts,
)

# --- the handshake -------------------------------------------------------------------------------------


def test_greeting_then_ehlo(split: Split) -> None:
    driver = Driver(make_session(), split)
    assert driver.session.capabilities == Capabilities()
    assert not driver.session.ready
    assert driver.run(S(GREETING), C(EHLO), S(ehlo_reply("PIPELINING", "SIZE 1000", "8BITMIME"))) is None
    session = driver.session
    assert session.ready and not session.closed and not session.encrypted and not session.certificate_verified
    assert session.capabilities.server_name == SERVER
    assert session.capabilities.esmtp
    assert dict(session.capabilities.extensions) == {"PIPELINING": (), "SIZE": ("1000",), "8BITMIME": ()}
    assert driver.written == [EHLO]


def test_next_request_while_idle_is_a_local_error() -> None:
    driver = ready_session()
    with pytest.raises(LocalProtocolError, match="idle"):
        driver.session.next_request()
    assert driver.session.ready  # nothing changed: the session can still be used
    driver.session.send_message(ENVELOPE, MESSAGE)
    assert isinstance(driver.run(*plain_steps()), SendResult)


@pytest.mark.parametrize("code", [500, 502, 504, 550])
def test_ehlo_refused_falls_back_to_helo_without_extensions(code: int, split: Split) -> None:
    notes: list[TraceLine] = []
    driver = Driver(make_session(tls="opportunistic", trace=notes.append), split)
    driver.run(
        S(GREETING),
        C(EHLO),
        S(b"%d 5.5.1 command not recognised\r\n" % code),
        C(b"HELO client.example.org\r\n"),
        S(b"250 mail.example.org pleased to meet you\r\n"),
    )
    capabilities = driver.session.capabilities
    assert capabilities == Capabilities(server_name=SERVER, esmtp=False)
    assert TraceLine(
        direction="*", text="the server does not offer STARTTLS: continuing without TLS (tls='opportunistic')"
    ) in notes
    # No extension afterwards: no STARTTLS, no pipelining, no MAIL parameters.
    driver.session.send_message(Envelope(sender=ALICE, recipients=(BOB, CAROL)), MESSAGE)
    result = driver.run(*plain_steps(BOB, CAROL))
    assert isinstance(result, SendResult)
    assert result.accepted == (BOB, CAROL)
    assert not any(b"STARTTLS" in data for data in driver.written)


def test_helo_reply_without_text() -> None:
    driver = Driver(make_session())
    driver.run(S(GREETING), C(EHLO), S(b"502\r\n"), C(b"HELO client.example.org\r\n"), S(b"250\r\n"))
    assert driver.session.capabilities == Capabilities(server_name="", esmtp=False)


def test_helo_refused_too() -> None:
    driver = Driver(make_session())
    with pytest.raises(PermanentReplyError) as info:
        driver.run(
            S(GREETING), C(EHLO), S(b"500 what\r\n"),
            C(b"HELO client.example.org\r\n"), S(b"501 5.5.4 bad name\r\n"),
            C(QUIT), S(b"221 bye\r\n"), CLOSE,
        )
    assert info.value.code == 501
    assert info.value.command == "HELO client.example.org"
    assert info.value.reply.enhanced_status == "5.5.4"
    assert_dead(driver.session)


def test_transient_ehlo_refusal_is_not_a_helo_fallback(split: Split) -> None:
    driver = Driver(make_session(), split)
    with pytest.raises(TransientReplyError) as info:
        driver.run(S(GREETING), C(EHLO), S(b"451 4.3.0 try later\r\n"), C(QUIT), S(b"221 bye\r\n"), CLOSE)
    assert info.value.code == 451 and info.value.command == "EHLO client.example.org"
    assert_dead(driver.session)


def test_421_to_ehlo_closes_without_quit() -> None:
    driver = Driver(make_session())
    with pytest.raises(TransientReplyError) as info:
        driver.run(S(GREETING), C(EHLO), S(b"421 4.3.2 shutting down\r\n"), CLOSE)
    assert info.value.code == 421
    assert driver.written == [EHLO]
    assert_dead(driver.session)


QUIT_STEPS = [C(QUIT), S(b"221 2.0.0 bye\r\n"), CLOSE]


@pytest.mark.parametrize(
    ("greeting", "after", "error"),
    [
        (b"554 5.3.2 no service for you\r\n", QUIT_STEPS, PermanentReplyError),
        (b"554 no service\r\n", [C(QUIT), EOF, CLOSE], PermanentReplyError),  # hangs up instead of 221
        (b"450 busy\r\n", QUIT_STEPS, TransientReplyError),
        (b"421 4.3.2 too busy\r\n", [CLOSE], TransientReplyError),
        (b"250 hello\r\n", QUIT_STEPS, RemoteProtocolError),
        (b"354 go ahead\r\n", [CLOSE], RemoteProtocolError),
    ],
    ids=["554", "554-then-hangup", "450", "421", "250", "354"],
)
def test_greetings_other_than_220(greeting: bytes, after: list[Step], error: type, split: Split) -> None:
    driver = Driver(make_session(), split)
    with pytest.raises(SMTPError) as info:
        driver.run(S(greeting), *after)
    assert type(info.value) is error
    assert EHLO not in driver.written
    if isinstance(info.value, PermanentReplyError | TransientReplyError):
        assert info.value.code == int(greeting[:3])
        assert info.value.command is None
    assert_dead(driver.session)


@pytest.mark.parametrize(
    "steps",
    [
        [EOF, CLOSE],
        [S(b"220-mail.example.org\r\n220 ready"), EOF, CLOSE],
        [S(GREETING), C(EHLO), EOF, CLOSE],
    ],
    ids=["before-greeting", "inside-greeting", "after-ehlo"],
)
def test_eof_while_a_reply_is_due(steps: list[Step], split: Split) -> None:
    driver = Driver(make_session(), split)
    with pytest.raises(RemoteProtocolError, match="closed"):
        driver.run(*steps)
    assert_dead(driver.session)


def test_eof_after_mail_is_fatal() -> None:
    driver = ready_session()
    driver.session.send_message(ENVELOPE, MESSAGE)
    with pytest.raises(RemoteProtocolError, match="reply to MAIL"):
        driver.run(C(b"MAIL FROM:<alice@example.org>\r\n"), EOF, CLOSE)
    assert_dead(driver.session)


def test_two_replies_to_one_command_are_fatal() -> None:
    driver = Driver(make_session())
    with pytest.raises(RemoteProtocolError, match="nobody asked for"):
        driver.run(S(GREETING + b"250 unasked\r\n"), CLOSE)
    assert driver.written == []
    assert_dead(driver.session)


# --- TLS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verified", [True, False])
def test_starttls_forgets_everything_learned_before(verified: bool, split: Split) -> None:
    trace: list[TraceLine] = []
    driver = Driver(make_session(tls="starttls", timeout={"starttls": 17}, trace=trace.append), split)
    driver.run(
        S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS", "SIZE 100", "PIPELINING")),
        C(b"STARTTLS\r\n"), S(b"220 2.0.0 ready to start TLS\r\n"),
        TLS(verified),
        C(EHLO), S(ehlo_reply("8BITMIME")),
    )
    session = driver.session
    assert [r for r in driver.requests if isinstance(r, StartTLS)] == [
        StartTLS(server_hostname=SERVER, timeout=17.0, phase="starttls")
    ]
    assert driver.at_tls == (Capabilities(), False)
    assert session.encrypted
    assert session.certificate_verified is verified
    assert dict(session.capabilities.extensions) == {"8BITMIME": ()}
    checked = "verified" if verified else "NOT verified"
    assert TraceLine(direction="*", text=f"TLS established with {SERVER}, certificate {checked}") in trace
    # SIZE 100 and PIPELINING were announced before TLS only: neither applies now.
    body = b"Subject: big\r\n\r\n" + b"x" * 300 + b"\r\n"
    session.send_message(ENVELOPE, body)
    assert isinstance(driver.run(*plain_steps(body=body)), SendResult)


def test_opportunistic_upgrades_when_offered() -> None:
    driver = Driver(make_session(tls="opportunistic"))
    driver.run(
        S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS")),
        C(b"STARTTLS\r\n"), S(b"220 go ahead\r\n"), TLS(True), C(EHLO), S(ehlo_reply()),
    )
    assert driver.session.encrypted and driver.session.certificate_verified


@pytest.mark.parametrize(
    "steps",
    [
        [S(ehlo_reply("PIPELINING", "AUTH PLAIN")), *QUIT_STEPS],
        [S(ehlo_reply("STARTTLS")), C(b"STARTTLS\r\n"), S(b"454 4.7.0 TLS not available\r\n"), *QUIT_STEPS],
        [S(ehlo_reply("STARTTLS")), C(b"STARTTLS\r\n"), S(b"500 5.5.1 unknown command\r\n"), *QUIT_STEPS],
        [S(b"502 no EHLO\r\n"), C(b"HELO client.example.org\r\n"), S(b"250 ok\r\n"), *QUIT_STEPS],
    ],
    ids=["not-offered", "refused-454", "refused-500", "helo-fallback"],
)
def test_required_starttls_unavailable(steps: list[Step], split: Split) -> None:
    driver = Driver(make_session(tls="starttls"), split)
    with pytest.raises(SecurityError, match=SERVER):
        driver.run(S(GREETING), C(EHLO), *steps)
    assert not any(data.startswith(b"MAIL") for data in driver.written)
    assert not driver.session.encrypted
    assert_dead(driver.session)


def test_default_tls_mode_is_required_starttls() -> None:
    session = Session(server_hostname=SERVER, local_hostname=LOCAL)
    with pytest.raises(SecurityError, match="does not offer STARTTLS"):
        Driver(session).run(S(GREETING), C(EHLO), S(ehlo_reply()), *QUIT_STEPS)


@pytest.mark.parametrize(
    ("steps", "note"),
    [
        (
            [S(ehlo_reply())],
            "the server does not offer STARTTLS: continuing without TLS (tls='opportunistic')",
        ),
        (
            [S(ehlo_reply("STARTTLS")), C(b"STARTTLS\r\n"), S(b"454 4.7.0 not now\r\n")],
            "STARTTLS refused (454): going on without TLS (tls='opportunistic')",
        ),
    ],
    ids=["not-offered", "refused"],
)
def test_opportunistic_falls_back_to_plaintext(steps: list[Step], note: str) -> None:
    trace: list[TraceLine] = []
    driver = Driver(make_session(tls="opportunistic", trace=trace.append))
    assert driver.run(S(GREETING), C(EHLO), *steps) is None
    assert TraceLine(direction="*", text=note) in trace
    assert driver.session.ready and not driver.session.encrypted


def test_tls_none_never_sends_starttls() -> None:
    driver = Driver(make_session(tls="none"))
    driver.run(S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS")))
    assert not driver.session.encrypted
    assert driver.written == [EHLO]


@pytest.mark.parametrize("verified", [True, False])
def test_implicit_tls_is_encrypted_from_the_start(verified: bool) -> None:
    driver = Driver(make_session(tls="implicit", tls_verified=verified))
    assert driver.session.encrypted
    assert driver.session.certificate_verified is verified
    driver.run(S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS")))
    assert driver.written == [EHLO]
    assert not any(isinstance(r, StartTLS) for r in driver.requests)


def test_tls_verified_means_nothing_without_tls() -> None:
    assert not make_session(tls="none", tls_verified=True).certificate_verified


STARTTLS_PREFIX = [S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS")), C(b"STARTTLS\r\n")]


def test_bytes_injected_with_the_starttls_220() -> None:
    driver = Driver(make_session(tls="starttls"), whole)
    with pytest.raises(SecurityError, match="injection"):
        driver.run(*STARTTLS_PREFIX, S(b"220 go ahead\r\n250-mail.example.org\r\n250 AUTH PLAIN\r\n"), CLOSE)
    assert driver.written[-1] == b"STARTTLS\r\n"
    assert not any(isinstance(r, StartTLS) for r in driver.requests)
    assert_dead(driver.session)


def test_bytes_injected_before_the_tls_handshake() -> None:
    driver = Driver(make_session(tls="starttls"), whole)
    driver.run(*STARTTLS_PREFIX, S(b"220 go ahead\r\n"), stop_at=StartTLS)
    driver.session.receive_data(b"250 injected\r\n")  # plaintext where the TLS handshake should be
    assert driver.session.next_request() == Close()
    with pytest.raises(SecurityError, match="injection"):
        driver.session.next_request()
    assert_dead(driver.session)


def test_driving_on_before_the_tls_handshake_is_reported() -> None:
    driver = Driver(make_session(tls="starttls"))
    driver.run(*STARTTLS_PREFIX, S(b"220 go ahead\r\n"), stop_at=StartTLS)
    for _ in range(2):
        with pytest.raises(LocalProtocolError, match="tls_established"):
            driver.session.next_request()
    with pytest.raises(LocalProtocolError, match="before the current operation"):
        driver.session.send_message(ENVELOPE, MESSAGE)
    driver.session.tls_established(verified=False)
    assert driver.run(C(EHLO), S(ehlo_reply())) is None
    assert driver.session.encrypted and not driver.session.certificate_verified


def test_tls_established_without_a_request() -> None:
    session = make_session(tls="starttls")
    with pytest.raises(LocalProtocolError, match="no TLS handshake was requested"):
        session.tls_established(verified=True)
    driver = Driver(session)
    driver.run(S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS")), C(b"STARTTLS\r\n"), S(b"220 go\r\n"), TLS(),
               C(EHLO), S(ehlo_reply()))
    with pytest.raises(LocalProtocolError, match="no TLS handshake was requested"):
        session.tls_established(verified=True)
    assert session.ready


def test_421_to_starttls() -> None:
    driver = Driver(make_session(tls="starttls"))
    with pytest.raises(TransientReplyError):
        driver.run(*STARTTLS_PREFIX, S(b"421 4.7.0 bye\r\n"), CLOSE)
    assert_dead(driver.session)


VERB_STEPS = [C(b"VERB\r\n"), S(b"250 ok\r\n")]

# --- VERB ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [b"250 2.0.0 Verbose mode\r\n", b"500 5.5.1 Command unrecognized\r\n"])
def test_verb_after_the_handshake_whatever_the_answer(reply: bytes) -> None:
    driver = Driver(make_session(verb=True))
    assert driver.run(S(GREETING), C(EHLO), S(ehlo_reply()), C(b"VERB\r\n"), S(reply)) is None
    assert driver.session.ready
    driver.session.send_message(ENVELOPE, MESSAGE)
    assert isinstance(driver.run(*plain_steps()), SendResult)


def test_verb_comes_after_the_second_ehlo() -> None:
    driver = Driver(make_session(tls="starttls", verb=True))
    driver.run(*STARTTLS_PREFIX, S(b"220 go\r\n"), TLS(), C(EHLO), S(ehlo_reply()), *VERB_STEPS)
    assert driver.written == [EHLO, b"STARTTLS\r\n", EHLO, b"VERB\r\n"]


# --- quit and abort -----------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [S(b"221 2.0.0 bye\r\n"), EOF, S(b"500 what\r\n"), S(b"421 closing\r\n")])
def test_quit(answer: Step, split: Split) -> None:
    driver = ready_session(split=split)
    session = driver.session
    session.quit()
    assert not session.ready
    assert driver.run(C(QUIT), answer, CLOSE) is None
    assert session.closed and not session.ready
    with pytest.raises(LocalProtocolError, match="closed"):
        session.next_request()
    with pytest.raises(LocalProtocolError, match="the session is closed"):
        session.send_message(ENVELOPE, MESSAGE)
    session.quit()  # again: nothing left to do
    assert session.next_request() == Done(result=None)
    assert driver.written == [EHLO, QUIT]


def test_quit_refused_while_an_operation_runs() -> None:
    driver = Driver(make_session())
    with pytest.raises(LocalProtocolError, match="another operation"):
        driver.session.quit()  # the handshake is running
    driver.run(S(GREETING), C(EHLO), S(ehlo_reply()))
    driver.session.send_message(ENVELOPE, MESSAGE)
    with pytest.raises(LocalProtocolError, match="another operation"):
        driver.session.quit()
    assert isinstance(driver.run(*plain_steps()), SendResult)


def test_quit_after_a_message() -> None:
    driver = ready_session()
    driver.session.send_message(ENVELOPE, MESSAGE)
    driver.run(*plain_steps())
    driver.session.quit()
    assert driver.run(*QUIT_STEPS) is None


@pytest.mark.parametrize("when", ["idle", "in-handshake", "in-transaction"])
def test_abort_makes_the_session_unusable(when: str) -> None:
    driver = Driver(make_session())
    if when != "in-handshake":
        driver.run(S(GREETING), C(EHLO), S(ehlo_reply()))
    if when == "in-transaction":
        driver.session.send_message(ENVELOPE, MESSAGE)
        driver.run(C(b"MAIL FROM:<alice@example.org>\r\n"), stop_at=Read)
    driver.session.abort()
    assert driver.session.closed and not driver.session.ready
    with pytest.raises(LocalProtocolError, match="no longer usable: the session was aborted"):
        driver.session.next_request()
    assert_dead(driver.session)
    driver.session.abort()  # twice is harmless
    with pytest.raises(LocalProtocolError, match="aborted"):
        driver.session.next_request()


def test_abort_after_a_failure_keeps_the_failure() -> None:
    session = make_session()
    assert isinstance(session.next_request(), Read)
    session.receive_data(b"")
    session.receive_data(b"220 hello\r\n")  # data after the end of the stream
    session.abort()  # the adapter closed the connection itself: no Close request any more
    with pytest.raises(RemoteProtocolError, match="after the connection was closed"):
        session.next_request()
    assert_dead(session)


# --- timeouts -----------------------------------------------------------------------------------------

TIMEOUT_SPEC = {"rcpt": 7, "data_end": None, "starttls": 30.5}


def test_every_request_carries_the_timeout_of_its_phase() -> None:
    driver = Driver(make_session(tls="starttls", verb=True, timeout=TIMEOUT_SPEC))
    driver.run(*STARTTLS_PREFIX, S(b"220 go\r\n"), TLS(), C(EHLO), S(ehlo_reply()), *VERB_STEPS)
    driver.session.send_message(ENVELOPE, MESSAGE)
    driver.run(*plain_steps())
    driver.session.quit()
    driver.run(*QUIT_STEPS)
    seen = [(type(r).__name__, r.phase) for r in driver.requests if isinstance(r, Read | Write | StartTLS)]
    assert seen == [
        ("Read", "greeting"),
        ("Write", "command"), ("Read", "command"),  # EHLO
        ("Write", "starttls"), ("Read", "starttls"), ("StartTLS", "starttls"),
        ("Write", "command"), ("Read", "command"),  # EHLO again
        ("Write", "command"), ("Read", "command"),  # VERB
        ("Write", "mail"), ("Read", "mail"),
        ("Write", "rcpt"), ("Read", "rcpt"),
        ("Write", "data"), ("Read", "data"),
        ("Write", "data_block"), ("Read", "data_end"),
        ("Write", "command"), ("Read", "command"),  # QUIT
    ]
    resolved = resolve_timeouts(TIMEOUT_SPEC)
    assert driver.session.timeouts == resolved
    for request in driver.requests:
        if isinstance(request, Read | Write | StartTLS):
            assert request.timeout == resolved[request.phase]
    assert resolved["rcpt"] == 7.0 and resolved["data_end"] is None
    assert resolved["mail"] == DEFAULT_TIMEOUTS["mail"]


def test_pipelined_replies_are_read_with_the_timeout_of_their_command() -> None:
    driver = ready_session("PIPELINING", split=bytewise, timeout={"mail": 1, "rcpt": 2, "data": 3})
    driver.session.send_message(ENVELOPE, MESSAGE)
    driver.run(
        C(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"),
        S(b"250 ok\r\n250 ok\r\n354 go\r\n"), C(MESSAGE + b".\r\n"), S(b"250 queued\r\n"),
    )
    reads = [(r.phase, r.timeout) for r in driver.requests if isinstance(r, Read)]
    phases = [phase for i, phase in enumerate(reads) if i == 0 or reads[i - 1] != phase]
    assert phases[-4:] == [("mail", 1.0), ("rcpt", 2.0), ("data", 3.0), ("data_end", 600.0)]


def test_one_number_for_every_phase() -> None:
    session = make_session(timeout=5)
    assert set(session.timeouts.values()) == {5.0}
    assert session.next_request() == Read(timeout=5.0, phase="greeting")
    assert make_session().timeouts == DEFAULT_TIMEOUTS


# --- trace --------------------------------------------------------------------------------------------


def test_trace_shows_every_line_and_no_message_content() -> None:
    trace: list[TraceLine] = []
    driver = Driver(make_session(tls="starttls", trace=trace.append))
    driver.run(
        S(b"220 mail.example.org caf\xe9 ready\r\n"),  # Latin-1, not UTF-8
        C(EHLO), S(b"250-mail.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),
        C(b"STARTTLS\r\n"), S(b"220 2.0.0 ready\r\n"), TLS(True),
        C(EHLO), S(b"250-mail.example.org\r\n250 PIPELINING\r\n"),
    )
    body = b"Subject: secret plans\r\n\r\nThe secret is 42.\r\n"
    driver.session.send_message(ENVELOPE, body)
    driver.run(
        C(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"),
        S(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n"),
        C(body + b".\r\n"), S(b"250 2.0.0 queued\r\n"),
    )
    driver.session.quit()
    driver.run(*QUIT_STEPS)
    assert all(isinstance(line, TraceLine) for line in trace)
    assert [str(line) for line in trace] == [
        "S: 220 mail.example.org caf\\xe9 ready",
        "C: EHLO client.example.org",
        "S: 250-mail.example.org", "S: 250-PIPELINING", "S: 250-STARTTLS", "S: 250 8BITMIME",
        "C: STARTTLS",
        "S: 220 2.0.0 ready",
        "*: TLS established with mail.example.org, certificate verified",
        "C: EHLO client.example.org",
        "S: 250-mail.example.org", "S: 250 PIPELINING",
        "C: MAIL FROM:<alice@example.org>", "C: RCPT TO:<bob@example.net>", "C: DATA",
        "S: 250 2.1.0 ok", "S: 250 2.1.5 ok", "S: 354 go ahead",
        f"C: <message data: {len(body)} octets>",
        "C: .",
        "S: 250 2.0.0 queued",
        "C: QUIT",
        "S: 221 2.0.0 bye",
    ]
    assert not any("secret" in line.text for line in trace)


def test_an_exception_from_the_trace_callback_leaves_the_session_unusable() -> None:
    def trace(line: TraceLine) -> None:
        if line.text.startswith("RCPT"):
            raise ValueError("the trace callback failed")

    driver = ready_session(trace=trace)
    driver.session.send_message(ENVELOPE, MESSAGE)
    with pytest.raises(ValueError, match="trace callback"):
        driver.run(C(b"MAIL FROM:<alice@example.org>\r\n"), S(b"250 ok\r\n"))
    # Not Done(result=None): the message was never sent.  The connection is to be closed, and the
    # session is dead.
    assert isinstance(driver.session.next_request(), Close)
    assert driver.session.closed
    with pytest.raises(LocalProtocolError, match="interrupted by ValueError"):
        driver.session.next_request()
    assert not driver.session.ready


# --- construction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"tls": "ssl"},
        {"tls": "STARTTLS"},
        {"local_hostname": "my host"},
        {"local_hostname": "client.example.org\r\nMAIL FROM:<x@y>"},
        {"local_hostname": ""},
        {"local_hostname": "bücher.example"},
        {"server_hostname": ""},
        {"server_hostname": "mail.example.org\n"},
        {"sendto_domain": "example org"},
        {"sendto_domain": "example.org\r\n"},
        {"sendto_domain": ""},
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": True},
        {"timeout": {"bogus": 3}},
        {"timeout": {"rcpt": 0}},
    ],
)
def test_invalid_constructor_arguments(options: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        make_session(**options)


def test_address_literal_as_local_hostname() -> None:
    driver = Driver(make_session(local_hostname="[192.0.2.1]"))
    driver.run(S(GREETING), C(b"EHLO [192.0.2.1]\r\n"), S(ehlo_reply()))
    assert driver.session.ready


# --- chunking invariance ------------------------------------------------------------------------------

FULL_SESSION = [
    S(b"220-mail.example.org ESMTP\r\n220 welcome\r\n"),
    C(EHLO), S(ehlo_reply("STARTTLS", "PIPELINING")), C(b"STARTTLS\r\n"), S(b"220 go\r\n"), TLS(),
    C(EHLO), S(ehlo_reply("PIPELINING", "SIZE 10000")),
]
FULL_MESSAGE = [
    C(b"MAIL FROM:<alice@example.org> SIZE=%d\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<carol@example.net>\r\n"
      b"DATA\r\n" % len(MESSAGE)),
    S(b"250 ok\r\n"), S(b"550 5.1.1 unknown\r\n"), S(b"250 ok\r\n"), S(b"354 go\r\n"),
    C(MESSAGE + b".\r\n"), S(b"250 2.0.0 queued\r\n"),
]


@settings(max_examples=60)
@given(st.data())
def test_any_split_of_the_server_bytes_gives_the_same_session(data: st.DataObject) -> None:
    def random_split(chunk: bytes) -> list[bytes]:
        cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(chunk) - 1)), max_size=6))))
        bounds = [0, *[cut for cut in cuts if cut < len(chunk)], len(chunk)]
        return [chunk[a:b] for a, b in itertools.pairwise(bounds) if chunk[a:b]]

    driver = Driver(make_session(tls="starttls"), random_split)
    assert driver.run(*FULL_SESSION) is None
    driver.session.send_message(Envelope(sender=ALICE, recipients=(BOB, CAROL)), MESSAGE)
    result = driver.run(*FULL_MESSAGE)
    assert isinstance(result, SendResult)
    assert result.accepted == (CAROL,)
    assert result.refused[BOB].enhanced_status == "5.1.1"
    driver.session.quit()
    driver.run(*QUIT_STEPS)
