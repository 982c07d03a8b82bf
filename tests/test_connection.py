"""Tests for Connection, through its public API only: the state machine, reply pairing, pipelining,
STARTTLS, DATA, and the sticky ERROR and CLOSED states.

Connections are brought into each state by real command sequences and scripted server replies; the
state tables themselves are pinned down in test_state.py, so here they are taken as the reference.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import smtp_sansio as smtp
from smtp_sansio import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    ReplyReceived,
    SecurityError,
    encode_data,
)
from smtp_sansio._state import GROUP_ENDERS, REPLY_TRANSITIONS, SEND_TRANSITIONS, Outcome, State

COMMANDS = {
    "EHLO": smtp.Ehlo(domain="client.example"),
    "HELO": smtp.Helo(domain="client.example"),
    "LHLO": smtp.Lhlo(domain="client.example"),
    "STARTTLS": smtp.Starttls(),
    "AUTH": smtp.Auth(mechanism="PLAIN", initial_response=b"\0user\0secret"),
    "AUTH-RESPONSE": smtp.AuthResponse(data=b"secret"),
    "MAIL": smtp.Mail(sender="alice@example.org"),
    "RCPT": smtp.Rcpt(recipient="bob@example.org"),
    "DATA": smtp.Data(),
    "RSET": smtp.Rset(),
    "NOOP": smtp.Noop(),
    "QUIT": smtp.Quit(),
    "VERB": smtp.Verb(),
    "VRFY": smtp.Vrfy(argument="bob"),
}
SEND_INPUTS = (*COMMANDS, "DATA-BODY", "DATA-END", "BDAT", "BDAT-LAST", "TLS-ESTABLISHED")
#: Fed to feed_bdat() by apply("BDAT"): more than one default chunk, so one is ready to send.
BDAT_BODY = b"body\r\n" * 11000
#: What the first BDAT of BDAT_BODY and then BDAT LAST put on the wire and in events.
BDAT_FRAME = b"BDAT 65536\r\n" + BDAT_BODY[:65536]
BDAT_LAST_EMPTY = b"BDAT 0 LAST\r\n"
TRACES = {"DATA-END": ".", "BDAT": "BDAT 65536", "BDAT-LAST": "BDAT 0 LAST"}  # BDAT LAST from MAIL
#: The timeout phase each reply falls under (RFC 5321 section 4.5.3.2, names of DEFAULT_TIMEOUTS).
PHASES = {
    "EHLO": "command", "HELO": "command", "LHLO": "command", "STARTTLS": "starttls", "AUTH": "auth",
    "AUTH-RESPONSE": "auth", "MAIL": "mail", "RCPT": "rcpt", "DATA": "data", "RSET": "command",
    "NOOP": "command", "QUIT": "command", "VERB": "command", "VRFY": "command", "DATA-END": "data_end",
    "BDAT": "data_block", "BDAT-LAST": "data_end",
}

READY_PATH = [b"220 hi\r\n", "EHLO", b"250 ok\r\n"]
MAIL_PATH = [*READY_PATH, "MAIL", b"250 ok\r\n"]
#: Scripts that bring a fresh connection into each state with nothing in flight.
PATHS: dict[State, list[str | bytes]] = {
    State.GREETING: [],
    State.REJECTED: [b"554 go away\r\n"],
    State.HELLO: [b"220 hi\r\n"],
    State.READY: READY_PATH,
    State.AUTH: [*READY_PATH, "AUTH", b"334 \r\n"],
    State.TLS: [*READY_PATH, "STARTTLS", b"220 go ahead\r\n"],
    State.MAIL: MAIL_PATH,
    State.DATA: [*MAIL_PATH, "RCPT", b"250 ok\r\n", "DATA", b"354 go\r\n"],
    State.BDAT: [*MAIL_PATH, "RCPT", b"250 ok\r\n", "BDAT", b"250 ok\r\n"],
    State.CLOSED: [*READY_PATH, "QUIT", b"221 bye\r\n"],
    # A command refused locally is the shortest way to a dead connection.
    State.ERROR: [b"220 hi\r\n", "RCPT"],
}


def apply(conn: Connection, verb: str) -> bytes:
    """Feed one input of the send table to ``conn``."""
    if verb == "DATA-BODY":
        return conn.send_data(b"body\r\n")
    if verb == "DATA-END":
        return conn.end_data()
    if verb == "TLS-ESTABLISHED":
        conn.start_tls_complete()
        return b""
    if verb == "BDAT":
        conn.feed_bdat(BDAT_BODY)
        frame = conn.next_bdat()
        assert frame is not None
        return frame
    if verb == "BDAT-LAST":
        while conn.bdat_pending:
            conn.next_bdat()
        return conn.end_bdat()
    return conn.send(COMMANDS[verb])


def feed(conn: Connection, data: bytes) -> list:
    """Feed ``data``, then collect events until NEED_DATA or until the connection is closed."""
    conn.receive_data(data)
    events = []
    while conn.state is not State.CLOSED and (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def run(conn: Connection, script: list[str | bytes]) -> None:
    for step in script:
        if isinstance(step, bytes):
            assert len(feed(conn, step)) == 1
        else:
            apply(conn, step)


def connection_in(state: State, **options) -> Connection:
    conn = Connection(**options)
    if state is State.ERROR:
        with pytest.raises(LocalProtocolError):
            run(conn, PATHS[state])
    else:
        run(conn, PATHS[state])
    assert (conn.state, conn.projected_state) == (state, state)
    assert conn.in_flight == (("GREETING",) if state is State.GREETING else ())
    return conn


def feed_every_way(script: list[str | bytes], data: bytes, **options) -> tuple:
    """Run ``script`` on fresh connections and feed ``data`` whole, byte by byte, and followed by the
    start of another reply; the events and the resulting states must agree.

    Returns (events, state, in_flight).
    """
    outcomes = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        conn = Connection(**options)
        run(conn, script)
        events = [event for chunk in chunks for event in feed(conn, chunk)]
        outcomes.append((events, conn.state, conn.projected_state, conn.in_flight))
    assert outcomes[0] == outcomes[1]
    events, state, _, in_flight = outcomes[0]
    # Trailing bytes are kept for the next reply while one is awaited, ignored once the server is
    # closing, and refused otherwise: every reply answers a command (RFC 5321 section 4.2), and after
    # a STARTTLS 220 they are an injection attempt (RFC 3207 section 4.2).
    conn = Connection(**options)
    run(conn, script)
    if in_flight or state is State.CLOSED:
        assert feed(conn, data + b"25") == events
    else:
        error = SecurityError if state is State.TLS else RemoteProtocolError
        with pytest.raises(error, match="injection" if state is State.TLS else "nobody asked for"):
            feed(conn, data + b"25")
    return events, state, in_flight


def _assert_refuses_everything(conn: Connection, state: State, message: str) -> None:
    calls = [
        lambda: conn.send(COMMANDS["NOOP"]),
        lambda: conn.send(COMMANDS["QUIT"]),
        lambda: conn.send_data(b"x"),
        conn.end_data,
        conn.start_tls_complete,
        lambda: conn.receive_data(b"250 ok\r\n"),
        lambda: conn.receive_data(b""),
        conn.next_event,
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError) as info:
            call()
        assert message in str(info.value)
        assert (conn.state, conn.projected_state) == (state, state)


def assert_unusable(conn: Connection, original: Exception) -> None:
    """After an error every call raises LocalProtocolError naming the first failure."""
    _assert_refuses_everything(conn, State.ERROR, f"unusable after an earlier error: {original}")


def assert_closed(conn: Connection) -> None:
    assert (conn.in_flight, conn.awaited_phase) == ((), None)
    _assert_refuses_everything(conn, State.CLOSED, "the connection is closed")


def reply_bytes(code: int, *lines: bytes) -> bytes:
    *head, last = lines or (b"ok",)
    return b"".join(b"%d-%s\r\n" % (code, line) for line in head) + b"%d %s\r\n" % (code, last)


# --- every state, every input ----------------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
def test_every_state_is_reachable(state):
    connection_in(state)


@pytest.mark.parametrize(("state", "verb"), list(itertools.product(State, SEND_INPUTS)))
def test_send_table_through_the_connection(state, verb):
    # This includes send_data and end_data outside DATA and start_tls_complete outside TLS.
    conn = connection_in(state)
    key = (state, verb)
    if key in SEND_TRANSITIONS:
        data = apply(conn, verb)
        assert conn.projected_state is SEND_TRANSITIONS[key]
        assert conn.awaited_phase == PHASES.get(verb)
        if verb in COMMANDS:
            assert (data, conn.state, conn.in_flight) == (COMMANDS[verb].encode(), state, (verb,))
        elif verb == "DATA-END":
            assert (data, conn.state, conn.in_flight) == (b".\r\n", State.DATA, ("DATA-END",))
        elif verb == "DATA-BODY":
            assert (data, conn.state, conn.in_flight) == (b"body\r\n", State.DATA, ())
        elif verb == "BDAT":
            # In BDAT, the rest of the BDAT that led there comes first: chunks follow the content.
            payload = (BDAT_BODY[65536:] + BDAT_BODY)[:65536] if state is State.BDAT else BDAT_FRAME[12:]
            assert (data, conn.state, conn.in_flight) == (b"BDAT 65536\r\n" + payload, state, ("BDAT",))
        elif verb == "BDAT-LAST":
            # The rest of BDAT_BODY when a BDAT went before, else an empty message.
            rest = BDAT_BODY[65536:] if state is State.BDAT else b""
            assert (data, conn.state, conn.in_flight) == (
                b"BDAT %d LAST\r\n%s" % (len(rest), rest), state, ("BDAT-LAST",))
        else:
            assert (data, conn.state, conn.in_flight) == (b"", State.HELLO, ())
        return
    with pytest.raises(LocalProtocolError) as info:
        apply(conn, verb)
    message = str(info.value)
    if state is State.CLOSED:
        assert message == "the connection is closed"
        assert conn.state is State.CLOSED
    elif state is State.ERROR:
        assert message.endswith("unusable after an earlier error: RCPT is not allowed in state HELLO")
    elif state is State.GREETING and verb == "BDAT":
        # feed_bdat() sends nothing yet: it only checks that a transaction is open.
        assert message == "BDAT is not allowed in state GREETING"
        assert_unusable(conn, info.value)
    elif state is State.GREETING:
        # The greeting is in flight, and nothing may be sent before it (RFC 5321 section 3.1).
        assert message == f"cannot send {verb} before the reply to GREETING (RFC 2920 section 3.1)"
        assert_unusable(conn, info.value)
    else:
        assert message == f"{verb} is not allowed in state {state.name}"
        assert_unusable(conn, info.value)


CODES = {Outcome.OK: 250, Outcome.FAILED: 554, Outcome.CLOSING: 421}
# Every way a reply can be awaited: the greeting, and each command or the end of data in each state
# where it may be sent.
ANSWERED = [(State.GREETING, "GREETING")] + [
    key for key in SEND_TRANSITIONS if key[1] not in ("DATA-BODY", "TLS-ESTABLISHED")
]


@pytest.mark.parametrize("outcome", list(Outcome))
@pytest.mark.parametrize(("state", "verb"), ANSWERED)
def test_reply_table_through_the_connection(state, verb, outcome):
    script = PATHS[state] if verb == "GREETING" else [*PATHS[state], verb]
    conn = Connection()
    run(conn, script)
    assert conn.in_flight == (verb,)
    code = CODES.get(outcome, 334 if verb.startswith("AUTH") else 354)
    key = (verb, outcome)
    if key not in REPLY_TRANSITIONS:
        with pytest.raises(RemoteProtocolError, match=f"makes no sense as an answer to {verb}$") as info:
            feed(conn, reply_bytes(code))
        assert_unusable(conn, info.value)
        return
    events = feed(conn, reply_bytes(code))
    assert feed_every_way(script, reply_bytes(code)) == (events, conn.state, conn.in_flight)
    command = None if verb == "GREETING" else TRACES.get(verb) or COMMANDS[verb].trace_text()
    if verb == "BDAT-LAST" and state is State.BDAT:
        command = f"BDAT {len(BDAT_BODY) - 65536} LAST"
    assert events == [ReplyReceived(verb=verb, command=command, reply=Reply(code=code, lines=(b"ok",)))]
    expected = REPLY_TRANSITIONS[key] or state
    assert (conn.state, conn.projected_state, conn.in_flight) == (expected, expected, ())
    if expected is State.CLOSED:
        assert_closed(conn)


def test_secrets_are_redacted_in_events():
    conn = connection_in(State.READY)
    conn.send(COMMANDS["AUTH"])
    (event,) = feed(conn, b"334 \r\n")
    conn.send(COMMANDS["AUTH-RESPONSE"])
    (second,) = feed(conn, b"235 welcome\r\n")
    assert (event.command, second.command) == ("AUTH PLAIN <redacted>", "<redacted>")
    assert conn.state is State.READY


@given(st.data())
@settings(max_examples=300)
def test_random_walk_follows_the_tables(data):
    # A model walk, one command at a time: mostly allowed inputs with any reply the table allows for
    # them, now and then an input the table refuses, which must kill the connection.
    conn = Connection()
    model, awaited = State.GREETING, "GREETING"
    for _ in range(40):
        if awaited is not None:
            outcomes = sorted({o for v, o in REPLY_TRANSITIONS if v == awaited}, key=lambda o: o.name)
            outcome = data.draw(st.sampled_from(outcomes))
            code = CODES.get(outcome, 334 if awaited.startswith("AUTH") else 354)
            if outcome is Outcome.FAILED:
                code = data.draw(st.sampled_from([450, 451, 500, 502, 535, 550, 554]))
            (event,) = feed(conn, reply_bytes(code))
            assert (event.verb, event.reply.code) == (awaited, code)
            model = REPLY_TRANSITIONS[(awaited, outcome)] or model
            awaited = None
            assert (conn.state, conn.projected_state, conn.in_flight) == (model, model, ())
            if model is State.CLOSED:
                return
            continue
        allowed = [verb for verb in SEND_INPUTS if (model, verb) in SEND_TRANSITIONS]
        if data.draw(st.integers(0, 9)) == 0:
            refused = [verb for verb in SEND_INPUTS if verb not in allowed]
            with pytest.raises(LocalProtocolError, match="is not allowed in state"):
                apply(conn, data.draw(st.sampled_from(refused)))
            assert conn.state is State.ERROR
            return
        verb = data.draw(st.sampled_from(allowed))
        apply(conn, verb)
        assert conn.projected_state is SEND_TRANSITIONS[(model, verb)]
        if verb == "TLS-ESTABLISHED":
            model = State.HELLO
        elif verb != "DATA-BODY":
            awaited = verb
            assert conn.in_flight == (verb,)
        assert conn.state is model


# --- the greeting, events and the end of the stream ---------------------------------------------------


def test_greeting_is_the_first_event():
    conn = Connection()
    assert (conn.state, conn.in_flight, conn.awaited_phase) == (State.GREETING, ("GREETING",), "greeting")
    events, state, in_flight = feed_every_way([], b"220-mx.example ESMTP\r\n220 ready\r\n")
    reply = Reply(code=220, lines=(b"mx.example ESMTP", b"ready"))
    assert events == [ReplyReceived(verb="GREETING", command=None, reply=reply)]
    assert (state, in_flight) == (State.HELLO, ())


def test_need_data_while_a_reply_is_incomplete():
    conn = Connection()
    for chunk in (b"2", b"20-first line\r", b"\n220 sec", b"ond\r"):
        conn.receive_data(chunk)
        assert conn.next_event() is NEED_DATA
        assert conn.next_event() is NEED_DATA
        assert conn.state is State.GREETING
    conn.receive_data(b"\n")
    assert conn.next_event().reply.lines == (b"first line", b"second")
    assert conn.state is State.HELLO


def test_partial_bytes_with_nothing_in_flight_are_refused():
    conn = connection_in(State.HELLO)
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"25")
        conn.next_event()


# In TLS the end of the stream is a close, not an injection: it carries no bytes to be misread.
@pytest.mark.parametrize("state", [State.REJECTED, State.HELLO, State.READY, State.TLS, State.DATA])
def test_eof_with_nothing_due(state):
    conn = connection_in(state)
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert_closed(conn)


# --- errors are sticky ------------------------------------------------------------------------------


class OverlongNoop(smtp.Command):
    """A caller's own command whose line breaks the 512-octet limit (RFC 5321 section 4.5.3.1.4).

    The bundled commands refuse to be built that long, so only a subclass can reach the wire check.
    """

    verb = "NOOP"

    def line(self) -> str:
        return "NOOP " + "x" * 600


LPE, RPE = LocalProtocolError, RemoteProtocolError


def bytewise(conn: Connection, data: bytes) -> None:
    for index in range(len(data)):
        feed(conn, data[index : index + 1])


FAILURES = {
    # name: (state to start from, trigger, error type, message fragment[, connection options])
    "refused-command": (State.READY, lambda c: apply(c, "RCPT"), LPE, "RCPT is not allowed in state READY"),
    "unsolicited-reply": (State.READY, lambda c: feed(c, b"250 what\r\n"), RPE, "asked for: '250 what"),
    # Every reply answers a command (RFC 5321 section 4.2): bytes beyond the last awaited one are refused.
    "leftover": (State.GREETING, lambda c: feed(c, b"220 hi\r\n250 extra\r\n"), RPE, "nobody asked for"),
    "leftover-bytewise": (State.GREETING, lambda c: bytewise(c, b"220 hi\r\n250 extra\r\n"),
                          RPE, "nobody asked for"),
    "eof-while-due": (State.GREETING, lambda c: feed(c, b""), RPE, "while a reply to GREETING was due"),
    "eof-mid-reply": (State.READY, lambda c: (apply(c, "NOOP"), feed(c, b"250-par"), feed(c, b"")),
                      RPE, "middle of a reply"),
    "pipelining-off": (State.READY, lambda c: (apply(c, "RSET"), apply(c, "NOOP")),
                       LPE, "NOOP before the reply to RSET while pipelining is off"),
    "group-ender": (State.READY, lambda c: (apply(c, "NOOP"), apply(c, "RSET")),
                    LPE, "RSET before the reply to NOOP (RFC 2920 section 3.1)", {"pipelining": True}),
    "command-too-long": (State.READY, lambda c: c.send(OverlongNoop()), LPE, "longer than 512 octets"),
    "malformed-reply": (State.GREETING, lambda c: feed(c, b"hello\r\n"), RPE, "expected a reply code"),
    "bad-continuation": (State.GREETING, lambda c: feed(c, b"220-a\r\n250 b\r\n"), RPE, "code changed"),
    "long-reply-line": (State.GREETING, lambda c: feed(c, b"220 " + b"x" * 20),
                        RPE, "longer than 10", {"max_line_length": 10}),
    "too-many-lines": (State.GREETING, lambda c: feed(c, b"220-a\r\n220-b\r\n"),
                       RPE, "longer than 2 lines", {"max_reply_lines": 2}),
    "nonsense-reply": (State.MAIL, lambda c: (apply(c, "RCPT"), feed(c, b"354 ?\r\n")),
                       RPE, "makes no sense as an answer to RCPT"),
    "data-after-eof": (State.READY, lambda c: (apply(c, "NOOP"), c.receive_data(b""), c.receive_data(b"2")),
                       RPE, "after the connection was closed"),
    "tls-complete-early": (State.READY, lambda c: (apply(c, "STARTTLS"), c.start_tls_complete()),
                           LPE, "TLS-ESTABLISHED before the reply to STARTTLS"),
    "data-before-354": (State.MAIL, lambda c: (apply(c, "DATA"), c.send_data(b"x")), LPE, "before the reply"),
    "end-before-354": (State.MAIL, lambda c: (apply(c, "DATA"), c.end_data()), LPE, "before the reply"),
    "nul": (State.DATA, lambda c: c.send_data(b"a\0b"), LPE, "line 1 contains a NUL"),
    "long-data-line": (State.DATA, lambda c: c.send_data(b"x" * 999 + b"\r\n"), LPE, "longer than 998"),
    "injection-one-feed": (State.READY, lambda c: (apply(c, "STARTTLS"), feed(c, b"220 go\r\n250 x\r\n")),
                           SecurityError, "injection"),
    "injection-later-feed": (State.READY, lambda c: (apply(c, "STARTTLS"), c.receive_data(b"220 go\r\n"),
                                                     c.receive_data(b"250 x\r\n"), c.next_event()),
                             SecurityError, "injection"),
    "injection-bytewise": (State.READY, lambda c: (apply(c, "STARTTLS"), bytewise(c, b"220 go\r\n250 x\r\n")),
                           SecurityError, "injection"),
    "injection-in-tls": (State.TLS, lambda c: c.receive_data(b"250 x\r\n"), SecurityError, "injection"),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_any_error_kills_the_connection(name):
    state, trigger, error, fragment, *options = FAILURES[name]
    options = options[0] if options else {}
    conn = connection_in(state, **options)
    with pytest.raises(error) as info:
        trigger(conn)
    assert fragment in str(info.value)
    assert_unusable(conn, info.value)


# --- pipelining (RFC 2920) --------------------------------------------------------------------------


def test_pipelining_is_off_by_default_and_can_be_switched_on():
    conn = connection_in(State.READY)
    assert conn.pipelining is False
    conn.send(COMMANDS["MAIL"])
    with pytest.raises(LocalProtocolError, match="while pipelining is off"):
        conn.send(COMMANDS["RCPT"])
    conn = connection_in(State.READY)
    conn.pipelining = True  # once the EHLO reply has announced PIPELINING
    conn.send(COMMANDS["MAIL"])
    conn.send(COMMANDS["RCPT"])
    assert conn.in_flight == ("MAIL", "RCPT")


def _pipelined_transaction(recipients: int) -> Connection:
    conn = connection_in(State.READY, pipelining=True)
    conn.send(COMMANDS["MAIL"])
    for index in range(recipients):
        conn.send(smtp.Rcpt(recipient=f"r{index}@example.org"))
    conn.send(COMMANDS["DATA"])
    return conn


def test_replies_are_paired_in_order():
    conn = _pipelined_transaction(2)
    assert conn.in_flight == ("MAIL", "RCPT", "RCPT", "DATA")
    assert conn.in_flight_count == 4
    assert (conn.state, conn.projected_state) == (State.READY, State.DATA)
    events = feed(conn, b"250 sender ok\r\n250 first\r\n550 no such user\r\n354 go\r\n")
    assert [(e.verb, e.command, e.reply.code) for e in events] == [
        ("MAIL", "MAIL FROM:<alice@example.org>", 250),
        ("RCPT", "RCPT TO:<r0@example.org>", 250),
        ("RCPT", "RCPT TO:<r1@example.org>", 550),
        ("DATA", "DATA", 354),
    ]
    assert (conn.state, conn.projected_state, conn.in_flight, conn.in_flight_count) == (
        State.DATA, State.DATA, (), 0
    )


def test_refused_mail_in_a_group_leaves_ready():
    conn = _pipelined_transaction(1)
    states = []
    conn.receive_data(b"550 sender refused\r\n503 no sender\r\n554 no valid recipients\r\n")
    while (event := conn.next_event()) is not NEED_DATA:
        states.append((event.verb, conn.state, conn.projected_state))
    assert states == [
        ("MAIL", State.READY, State.DATA),
        ("RCPT", State.READY, State.DATA),
        ("DATA", State.READY, State.READY),
    ]
    conn.send(COMMANDS["MAIL"])


@pytest.mark.parametrize("verb", sorted(GROUP_ENDERS - {"GREETING"}))
def test_nothing_follows_a_group_ender(verb):
    state = next(state for state, input_ in SEND_TRANSITIONS if input_ == verb)
    conn = connection_in(state, pipelining=True)
    conn.send(COMMANDS[verb])
    with pytest.raises(LocalProtocolError, match=rf"before the reply to {verb} \(RFC 2920 section 3.1\)"):
        conn.send(COMMANDS["QUIT"])


@pytest.mark.parametrize("verb", ["MAIL", "RCPT", "RSET"])
def test_transaction_commands_may_be_followed(verb):
    conn = connection_in(State.MAIL if verb == "RCPT" else State.READY, pipelining=True)
    conn.send(COMMANDS[verb])
    conn.send(COMMANDS["QUIT"])
    assert conn.in_flight == (verb, "QUIT")


def test_message_content_may_start_a_group():
    # RFC 2920 section 3.1: the content is explicitly allowed to be the first "command" of a group.
    conn = connection_in(State.DATA, pipelining=True)
    conn.end_data()
    conn.send(COMMANDS["MAIL"])
    conn.send(COMMANDS["RCPT"])
    events = feed(conn, b"250 queued\r\n250 ok\r\n")
    assert [e.verb for e in events] == ["DATA-END", "MAIL"]
    assert (conn.state, conn.in_flight) == (State.MAIL, ("RCPT",))


reply_lines = st.lists(
    st.sampled_from([b"ok", b"", b"2.1.5 fine", b"\xfftext", b"a-b c"]), min_size=1, max_size=3
)
rcpt_codes = st.sampled_from([250, 251, 450, 503, 550])


@given(
    mail=st.tuples(st.sampled_from([250, 451, 550]), reply_lines),
    rcpts=st.lists(st.tuples(rcpt_codes, reply_lines), min_size=1, max_size=20),
    data=st.tuples(st.sampled_from([354, 554]), reply_lines),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
)
@settings(max_examples=200)
def test_pipelined_replies_in_any_chunks(mail, rcpts, data, cuts):
    replies = [mail, *rcpts, data]
    wire = b"".join(reply_bytes(code, *lines) for code, lines in replies)
    whole_events = feed(_pipelined_transaction(len(rcpts)), wire)

    conn = _pipelined_transaction(len(rcpts))
    assert conn.awaited_phase == "mail"
    # b"" would mean the end of the stream: cut only strictly inside the serialised replies.
    points = sorted({cut for cut in cuts if 0 < cut < len(wire)})
    events, phases = [], []
    for start, end in itertools.pairwise([0, *points, len(wire)]):
        conn.receive_data(wire[start:end])
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
            phases.append(conn.awaited_phase)

    assert events == whole_events
    assert [e.verb for e in events] == ["MAIL", *["RCPT"] * len(rcpts), "DATA"]
    assert [e.command for e in events] == [
        "MAIL FROM:<alice@example.org>", *[f"RCPT TO:<r{i}@example.org>" for i in range(len(rcpts))], "DATA",
    ]
    assert [(e.reply.code, list(e.reply.lines)) for e in events] == [(c, list(ls)) for c, ls in replies]
    assert phases == ["rcpt"] * len(rcpts) + ["data", None]
    expected = State.DATA if data[0] == 354 else State.MAIL if mail[0] == 250 else State.READY
    assert (conn.state, conn.projected_state, conn.in_flight) == (expected, expected, ())
    if expected is State.DATA:
        conn.end_data()
        assert conn.awaited_phase == "data_end"
        assert [e.verb for e in feed(conn, b"250 queued\r\n")] == ["DATA-END"]
        assert conn.state is State.READY


def test_awaited_phase_follows_the_oldest_command():
    conn = Connection(pipelining=True)
    seen = [conn.awaited_phase]
    run(conn, READY_PATH)
    seen.append(conn.awaited_phase)
    for verb in ("MAIL", "RCPT", "DATA"):
        conn.send(COMMANDS[verb])
    seen.append(conn.awaited_phase)
    for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
        feed(conn, reply)
        seen.append(conn.awaited_phase)
    conn.end_data()
    seen.append(conn.awaited_phase)
    assert seen == ["greeting", None, "mail", "rcpt", "data", None, "data_end"]


# --- STARTTLS (RFC 3207) ----------------------------------------------------------------------------


def test_starttls_then_handshake_then_ehlo():
    conn = connection_in(State.READY)
    assert conn.send(COMMANDS["STARTTLS"]) == b"STARTTLS\r\n"
    assert conn.awaited_phase == "starttls"
    assert feed(conn, b"220 2.0.0 go ahead\r\n")[0].verb == "STARTTLS"
    assert (conn.state, conn.projected_state) == (State.TLS, State.TLS)
    conn.start_tls_complete()
    assert (conn.state, conn.projected_state, conn.in_flight) == (State.HELLO, State.HELLO, ())
    conn.send(COMMANDS["EHLO"])
    feed(conn, b"250 ok\r\n")
    assert conn.state is State.READY
    # What was learned before TLS is void (RFC 3207 section 4.2): no transaction without a new EHLO.
    after = connection_in(State.TLS)
    after.start_tls_complete()
    with pytest.raises(LocalProtocolError, match="MAIL is not allowed in state HELLO"):
        after.send(COMMANDS["MAIL"])


# --- DATA (RFC 5321 section 4.1.1.4) -----------------------------------------------------------------

MESSAGE = b".starts with a dot\nbare LF\rbare CR\r\n..two dots\r\n.\r\nlast line without ending"


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(MESSAGE)])
def test_data_is_stuffed_and_normalised_across_chunks(size):
    conn = connection_in(State.DATA)
    out = b"".join(conn.send_data(MESSAGE[i : i + size]) for i in range(0, len(MESSAGE), size))
    out += conn.end_data()
    assert out == encode_data(MESSAGE)
    # Exactly one terminator, at the end; a "." line of the message was stuffed to "..".
    assert out == (
        b"..starts with a dot\r\nbare LF\r\nbare CR\r\n...two dots\r\n..\r\nlast line without ending\r\n.\r\n"
    )
    assert conn.in_flight == ("DATA-END",)
    assert (conn.state, conn.projected_state) == (State.DATA, State.READY)


@pytest.mark.parametrize("code", [250, 451, 554])
def test_reply_to_end_of_data_returns_to_ready(code):
    conn = connection_in(State.DATA)
    conn.send_data(b"Subject: hi\r\n\r\nbody\r\n")
    conn.end_data()
    (event,) = feed(conn, reply_bytes(code))
    assert (event.verb, event.command, event.reply.code) == ("DATA-END", ".", code)
    assert (conn.state, conn.projected_state, conn.in_flight) == (State.READY, State.READY, ())


def test_each_message_starts_a_fresh_encoding():
    # The dot at the very start of the second message is stuffed: the encoder state does not leak
    # from one transaction into the next.
    conn = connection_in(State.DATA)
    conn.send_data(b"no line ending")
    conn.end_data()
    feed(conn, b"250 queued\r\n")
    run(conn, ["MAIL", b"250 ok\r\n", "RCPT", b"250 ok\r\n", "DATA", b"354 go\r\n"])
    assert conn.send_data(b".x") + conn.end_data() == b"..x\r\n.\r\n"


def test_line_length_limits():
    conn = connection_in(State.DATA)
    assert conn.send_data(b"x" * 998 + b"\n") == b"x" * 998 + b"\r\n"
    with pytest.raises(LocalProtocolError, match="line 2 is longer than 998") as info:
        conn.send_data(b"y" * 500)
        conn.send_data(b"y" * 499)
    assert_unusable(conn, info.value)
    unlimited = connection_in(State.DATA, max_data_line_length=None)
    assert unlimited.send_data(b"z" * 5000) == b"z" * 5000


# --- 421 and QUIT -----------------------------------------------------------------------------------


@pytest.mark.parametrize("trailing", [b"", b"503 never read\r\n"])
def test_421_in_a_group_closes_and_clears(trailing):
    conn = _pipelined_transaction(3)
    events = feed(conn, b"421 4.3.2 shutting down\r\n" + trailing)
    assert [(e.verb, e.reply.code) for e in events] == [("MAIL", 421)]
    assert_closed(conn)


@pytest.mark.parametrize("reply", [b"221 bye\r\n", b"500 what\r\n", b"221 bye\r\n250 late\r\n"])
def test_quit_closes(reply):
    conn = connection_in(State.MAIL)
    conn.send(COMMANDS["QUIT"])
    assert conn.projected_state is State.CLOSED
    assert [e.verb for e in feed(conn, reply)] == ["QUIT"]
    assert_closed(conn)
