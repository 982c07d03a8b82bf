"""Tests for the state tables: every (state, input) and (verb, outcome) pair, against a copy written out.

The expected tables below are deliberately spelled out entry by entry instead of being derived from
anything: a change to the protocol machine must be made twice, once in the module and once here, so
that it is never made by accident.  Every pair that is not listed must be absent.
"""

from __future__ import annotations

import itertools

import pytest

from smtp_sansio._state import (
    GREETING,
    GROUP_ENDERS,
    REPLY_TRANSITIONS,
    SEND_TRANSITIONS,
    Outcome,
    State,
    outcome_of,
)

#: Every command verb a Command subclass can carry.
COMMAND_VERBS = (
    "EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "AUTH-RESPONSE", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
    "QUIT", "VERB", "VRFY",
)
#: The pseudo-inputs of the send table: message content, its end, a CHUNKING chunk (BDAT, whose
#: command line is built by the connection with its payload) and the last one, and the finished TLS
#: handshake.
PSEUDO_INPUTS = ("DATA-BODY", "DATA-END", "BDAT", "BDAT-LAST", "TLS-ESTABLISHED")
SEND_INPUTS = COMMAND_VERBS + PSEUDO_INPUTS
#: What a reply can answer: the connection itself, every command, the end of message content (once,
#: or in LMTP once per accepted recipient, RFC 2033 section 4.2), and each BDAT chunk.
REPLY_VERBS = (GREETING, *COMMAND_VERBS, "DATA-END", "DATA-END-RCPT", "BDAT", "BDAT-LAST")

S = State
EXPECTED_SEND: dict[tuple[State, str], State] = {
    (S.REJECTED, "QUIT"): S.CLOSED,
    (S.HELLO, "EHLO"): S.READY,
    (S.HELLO, "HELO"): S.READY,
    (S.HELLO, "LHLO"): S.READY,
    (S.HELLO, "NOOP"): S.HELLO,
    (S.HELLO, "QUIT"): S.CLOSED,
    (S.READY, "EHLO"): S.READY,
    (S.READY, "HELO"): S.READY,
    (S.READY, "LHLO"): S.READY,
    (S.READY, "STARTTLS"): S.TLS,
    (S.READY, "AUTH"): S.READY,
    (S.READY, "VERB"): S.READY,
    (S.READY, "VRFY"): S.READY,
    (S.READY, "NOOP"): S.READY,
    (S.READY, "RSET"): S.READY,
    (S.READY, "MAIL"): S.MAIL,
    (S.READY, "QUIT"): S.CLOSED,
    (S.AUTH, "AUTH-RESPONSE"): S.READY,
    (S.TLS, "TLS-ESTABLISHED"): S.HELLO,
    (S.MAIL, "RCPT"): S.MAIL,
    (S.MAIL, "DATA"): S.DATA,
    (S.MAIL, "RSET"): S.READY,
    (S.MAIL, "NOOP"): S.MAIL,
    (S.MAIL, "QUIT"): S.CLOSED,
    (S.MAIL, "BDAT"): S.BDAT,
    (S.MAIL, "BDAT-LAST"): S.READY,
    (S.BDAT, "BDAT"): S.BDAT,
    (S.BDAT, "BDAT-LAST"): S.READY,
    (S.BDAT, "RSET"): S.READY,
    (S.BDAT, "QUIT"): S.CLOSED,
    (S.DATA, "DATA-BODY"): S.DATA,
    (S.DATA, "DATA-END"): S.READY,
}

R = Outcome
UNCHANGED = None
EXPECTED_REPLY: dict[tuple[str, Outcome], State | None] = {
    (GREETING, R.OK): S.HELLO,
    (GREETING, R.FAILED): S.REJECTED,
    (GREETING, R.CLOSING): S.CLOSED,
    ("EHLO", R.OK): S.READY,
    ("EHLO", R.FAILED): UNCHANGED,
    ("EHLO", R.CLOSING): S.CLOSED,
    ("HELO", R.OK): S.READY,
    ("HELO", R.FAILED): UNCHANGED,
    ("HELO", R.CLOSING): S.CLOSED,
    ("LHLO", R.OK): S.READY,
    ("LHLO", R.FAILED): UNCHANGED,
    ("LHLO", R.CLOSING): S.CLOSED,
    ("STARTTLS", R.OK): S.TLS,
    ("STARTTLS", R.FAILED): UNCHANGED,
    ("STARTTLS", R.CLOSING): S.CLOSED,
    ("AUTH", R.OK): UNCHANGED,
    ("AUTH", R.MORE): S.AUTH,
    ("AUTH", R.FAILED): UNCHANGED,
    ("AUTH", R.CLOSING): S.CLOSED,
    ("AUTH-RESPONSE", R.OK): S.READY,
    ("AUTH-RESPONSE", R.MORE): S.AUTH,
    ("AUTH-RESPONSE", R.FAILED): S.READY,
    ("AUTH-RESPONSE", R.CLOSING): S.CLOSED,
    ("MAIL", R.OK): S.MAIL,
    ("MAIL", R.FAILED): UNCHANGED,
    ("MAIL", R.CLOSING): S.CLOSED,
    ("RCPT", R.OK): UNCHANGED,
    ("RCPT", R.FAILED): UNCHANGED,
    ("RCPT", R.CLOSING): S.CLOSED,
    ("DATA", R.MORE): S.DATA,
    ("DATA", R.FAILED): UNCHANGED,
    ("DATA", R.CLOSING): S.CLOSED,
    ("RSET", R.OK): S.READY,
    ("RSET", R.FAILED): UNCHANGED,
    ("RSET", R.CLOSING): S.CLOSED,
    ("NOOP", R.OK): UNCHANGED,
    ("NOOP", R.FAILED): UNCHANGED,
    ("NOOP", R.CLOSING): S.CLOSED,
    ("QUIT", R.OK): S.CLOSED,
    ("QUIT", R.FAILED): S.CLOSED,
    ("QUIT", R.CLOSING): S.CLOSED,
    ("VERB", R.OK): UNCHANGED,
    ("VERB", R.FAILED): UNCHANGED,
    ("VERB", R.CLOSING): S.CLOSED,
    ("VRFY", R.OK): UNCHANGED,
    ("VRFY", R.FAILED): UNCHANGED,
    ("VRFY", R.CLOSING): S.CLOSED,
    ("DATA-END", R.OK): S.READY,
    ("DATA-END", R.FAILED): S.READY,
    ("DATA-END", R.CLOSING): S.CLOSED,
    ("DATA-END-RCPT", R.OK): S.READY,
    ("DATA-END-RCPT", R.FAILED): S.READY,
    ("DATA-END-RCPT", R.CLOSING): S.CLOSED,
    ("BDAT", R.OK): S.BDAT,
    ("BDAT", R.FAILED): UNCHANGED,
    ("BDAT", R.CLOSING): S.CLOSED,
    ("BDAT-LAST", R.OK): S.READY,
    ("BDAT-LAST", R.FAILED): S.READY,
    ("BDAT-LAST", R.CLOSING): S.CLOSED,
}

_ABSENT = object()


def _pair_id(pair: tuple[object, object]) -> str:
    first, second = pair
    return f"{getattr(first, 'name', first)}-{getattr(second, 'name', second)}"


# --- the enums --------------------------------------------------------------------------------------


def test_states_are_the_documented_eleven():
    assert [state.name for state in State] == [
        "GREETING", "REJECTED", "HELLO", "READY", "AUTH", "TLS", "MAIL", "DATA", "BDAT", "CLOSED", "ERROR",
    ]
    # The values are the names, so a state prints the same in traces, errors and the docs' diagram.
    assert all(state.value == state.name for state in State)


def test_outcomes():
    assert [outcome.name for outcome in Outcome] == ["OK", "MORE", "FAILED", "CLOSING"]


# --- SEND_TRANSITIONS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", list(itertools.product(State, SEND_INPUTS)), ids=_pair_id)
def test_send_transition(pair):
    assert SEND_TRANSITIONS.get(pair, _ABSENT) == EXPECTED_SEND.get(pair, _ABSENT)


def test_send_table_has_no_other_keys():
    # Catches an entry whose input is misspelt or new, which the pairwise walk would not visit.
    assert set(SEND_TRANSITIONS) == set(EXPECTED_SEND)
    assert SEND_TRANSITIONS == EXPECTED_SEND


def test_nothing_can_be_sent_from_the_terminal_or_waiting_states():
    # Before the greeting the server speaks first (RFC 5321 section 3.1); CLOSED and ERROR are final.
    sources = {state for state, _ in SEND_TRANSITIONS}
    assert sources == set(State) - {State.GREETING, State.CLOSED, State.ERROR}
    assert all(target is not State.ERROR for target in SEND_TRANSITIONS.values())


def test_tls_state_only_accepts_the_finished_handshake():
    # RFC 3207 section 4.2: nothing may be sent between the 220 and the end of the TLS negotiation.
    assert [verb for state, verb in SEND_TRANSITIONS if state is State.TLS] == ["TLS-ESTABLISHED"]


def test_every_send_input_is_used():
    assert {verb for _, verb in SEND_TRANSITIONS} == set(SEND_INPUTS)


# --- REPLY_TRANSITIONS --------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", list(itertools.product(REPLY_VERBS, Outcome)), ids=_pair_id)
def test_reply_transition(pair):
    assert REPLY_TRANSITIONS.get(pair, _ABSENT) == EXPECTED_REPLY.get(pair, _ABSENT)


def test_reply_table_has_no_other_keys():
    assert set(REPLY_TRANSITIONS) == set(EXPECTED_REPLY)
    assert REPLY_TRANSITIONS == EXPECTED_REPLY


@pytest.mark.parametrize("verb", REPLY_VERBS)
def test_421_closes_whatever_it_answers(verb):
    # RFC 5321 section 3.8: 421 may answer any command and the server then closes the channel.
    assert REPLY_TRANSITIONS[(verb, Outcome.CLOSING)] is State.CLOSED


@pytest.mark.parametrize("verb", REPLY_VERBS)
def test_every_verb_has_a_negative_reply(verb):
    # Any command may be refused (RFC 5321 section 4.3.2 lists 4xx/5xx for each), so a refusal is never
    # a protocol error.
    assert (verb, Outcome.FAILED) in REPLY_TRANSITIONS


def test_only_auth_and_data_take_an_intermediate_reply():
    # 334 continues a SASL exchange (RFC 4954 section 4), 354 starts message content (RFC 5321
    # 4.1.1.4); a 3xx to anything else is nonsense.
    assert {verb for verb, outcome in REPLY_TRANSITIONS if outcome is Outcome.MORE} == {
        "AUTH", "AUTH-RESPONSE", "DATA",
    }
    # And DATA is the one command a 2xx cannot answer: it asks for content, not for an action.
    assert ("DATA", Outcome.OK) not in REPLY_TRANSITIONS


def test_every_command_verb_can_be_answered():
    # Every input of the send table that puts a command on the wire has a row in the reply table.
    sent = {verb for _, verb in SEND_TRANSITIONS} - {"DATA-BODY", "TLS-ESTABLISHED"}
    # The end of data is answered per recipient in LMTP (RFC 2033 section 4.2).
    assert {verb for verb, _ in REPLY_TRANSITIONS} == sent | {GREETING, "DATA-END-RCPT"}


def test_chunking_transitions():
    # RFC 3030 section 2: BDAT replaces DATA (never both in a transaction), no RCPT after a chunk,
    # LAST ends the transaction like DATA's "." whatever its reply, and RSET aborts between chunks.
    allowed = {verb for state, verb in SEND_TRANSITIONS if state is State.BDAT}
    assert allowed == {"BDAT", "BDAT-LAST", "RSET", "QUIT"}
    assert (State.DATA, "BDAT") not in SEND_TRANSITIONS
    assert (State.BDAT, "DATA") not in SEND_TRANSITIONS
    assert REPLY_TRANSITIONS[("BDAT-LAST", Outcome.FAILED)] is State.READY
    # A chunk may be followed by more chunks and by the next transaction (RFC 3030 section 4.2).
    assert not {"BDAT", "BDAT-LAST"} & GROUP_ENDERS


def test_lmtp_replies_each_end_the_transaction():
    # RFC 2033 section 4.2: each per-recipient reply answers the data for that recipient alone.
    assert REPLY_TRANSITIONS[("DATA-END-RCPT", Outcome.OK)] is State.READY
    assert REPLY_TRANSITIONS[("DATA-END-RCPT", Outcome.FAILED)] is State.READY


# --- outcome_of ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", range(200, 600))
def test_outcome_of(code):
    if code == 421:
        expected = Outcome.CLOSING
    elif code < 300:
        expected = Outcome.OK
    elif code < 400:
        expected = Outcome.MORE
    else:
        expected = Outcome.FAILED
    assert outcome_of(code) is expected


# --- GROUP_ENDERS ----------------------------------------------------------------------------------


def test_group_enders_include_what_rfc_2920_names():
    # RFC 2920 section 3.1 names EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP (EXPN and TURN are not
    # implemented); RFC 3207 section 4.2 adds STARTTLS and RFC 4954 section 4 AUTH.
    assert {"EHLO", "DATA", "VRFY", "QUIT", "NOOP", "STARTTLS", "AUTH"} <= GROUP_ENDERS


@pytest.mark.parametrize("verb", ["MAIL", "RCPT", "RSET"])
def test_transaction_commands_may_be_pipelined(verb):
    # The point of RFC 2920: MAIL, RCPT and RSET may be followed before their replies arrive.
    assert verb not in GROUP_ENDERS


def test_group_enders_are_known_verbs():
    assert set(GROUP_ENDERS) <= set(REPLY_VERBS)
    assert isinstance(GROUP_ENDERS, frozenset)


def test_greeting_is_a_group_ender():
    # The client must not talk before the greeting (RFC 5321 section 3.1).
    assert GREETING == "GREETING"
    assert GREETING in GROUP_ENDERS
