"""The SMTP client state machine, as data.

Two rules govern this module:

1. Everything that decides a transition lives here, in the tables below, and nowhere else.
2. Nothing here parses or encodes; the connection looks states up, the tables only state them.

Pipelining (RFC 2920) means a client sends commands before earlier replies have arrived, so the
machine keeps two views of the same session:

* the *projected* state assumes every command in flight succeeds.  :data:`SEND_TRANSITIONS` maps
  (projected state, input) to the next projected state, and an input with no entry is a
  :class:`~smtp_sansio.LocalProtocolError` naming both.  Inputs are command verbs, plus
  ``DATA-BODY`` (message content after a 354), ``DATA-END`` (the terminating ``.``),
  ``BDAT-LAST`` (the last chunk of a CHUNKING transaction, RFC 3030 section 2) and
  ``TLS-ESTABLISHED`` (the adapter finished the handshake).
* the *confirmed* state follows the replies.  :data:`REPLY_TRANSITIONS` maps (verb, outcome) to the
  state the reply puts the session in, ``None`` meaning "unchanged".  A reply with no entry (a 354
  to MAIL, a 2xx to DATA) is a :class:`~smtp_sansio.RemoteProtocolError`.  In LMTP (RFC 2033
  section 4.2) the end of the data is answered once per accepted recipient: the connection then
  awaits one ``DATA-END-RCPT`` reply for each of them instead of one ``DATA-END`` reply.

When no command is in flight the two views coincide.  When a pipelined command fails, the replies to
the commands behind it settle the state: a refused MAIL leaves READY, and the DATA that was sent
after it comes back 503/554 and leaves READY too.

:data:`GROUP_ENDERS` lists the commands after which nothing may be sent until their reply arrives
(RFC 2920 section 3.1, RFC 3207 section 4.2, RFC 4954 section 4).
"""

from __future__ import annotations

import enum

__all__ = [
    "GREETING",
    "GROUP_ENDERS",
    "REPLY_TRANSITIONS",
    "SEND_TRANSITIONS",
    "Outcome",
    "State",
    "outcome_of",
]


class State(enum.Enum):
    """Where an SMTP client session is."""

    GREETING = "GREETING"  # connected, waiting for the server's 220
    REJECTED = "REJECTED"  # the greeting was negative: only QUIT is left (RFC 5321 3.1)
    HELLO = "HELLO"  # greeted (or TLS just started): EHLO/HELO/LHLO comes next
    READY = "READY"  # session open, no mail transaction
    AUTH = "AUTH"  # a 334 challenge waits for the client's response
    TLS = "TLS"  # STARTTLS accepted: nothing may cross the wire until the handshake is done
    MAIL = "MAIL"  # mail transaction open: RCPT, DATA, RSET
    DATA = "DATA"  # 354 received: message content, then the terminating "."
    BDAT = "BDAT"  # CHUNKING: chunks sent, more to come until BDAT ... LAST (RFC 3030 section 2)
    CLOSED = "CLOSED"  # QUIT answered, 421 received or the server hung up
    ERROR = "ERROR"  # a protocol violation on either side: the connection is dead


class Outcome(enum.Enum):
    """How a reply answered its command, by its first digit (RFC 5321 section 4.2.1)."""

    OK = "2xx"  # positive completion
    MORE = "3xx"  # positive intermediate: send more (354, 334)
    FAILED = "4xx/5xx"  # negative, transient or permanent: the command had no effect
    CLOSING = "421"  # service not available, closing the channel (RFC 5321 section 3.8)


# By the first digit (RFC 5321 section 4.2.1); built once rather than for every reply.
_OUTCOME_BY_CLASS = {2: Outcome.OK, 3: Outcome.MORE}


def outcome_of(code: int) -> Outcome:
    """Classify a reply code."""
    if code == 421:
        return Outcome.CLOSING
    return _OUTCOME_BY_CLASS.get(code // 100, Outcome.FAILED)


#: The pseudo-verb of the server's greeting, which answers the connection rather than a command.
GREETING = "GREETING"

_HELLOS = ("EHLO", "HELO", "LHLO")

SEND_TRANSITIONS: dict[tuple[State, str], State] = {
    # A negative greeting leaves QUIT as the one polite move (RFC 5321 section 3.1).
    (State.REJECTED, "QUIT"): State.CLOSED,
    # After the greeting, and again after STARTTLS, the client must (re)introduce itself
    # (RFC 5321 4.1.4, RFC 3207 4.2).
    **{(State.HELLO, verb): State.READY for verb in _HELLOS},
    (State.HELLO, "NOOP"): State.HELLO,
    (State.HELLO, "QUIT"): State.CLOSED,
    # The session is open.  A repeated EHLO resets it (RFC 5321 4.1.4).
    **{(State.READY, verb): State.READY for verb in _HELLOS},
    (State.READY, "STARTTLS"): State.TLS,
    (State.READY, "AUTH"): State.READY,
    (State.READY, "VERB"): State.READY,
    (State.READY, "VRFY"): State.READY,
    (State.READY, "NOOP"): State.READY,
    (State.READY, "RSET"): State.READY,
    (State.READY, "MAIL"): State.MAIL,
    (State.READY, "QUIT"): State.CLOSED,
    # Each 334 challenge is answered by exactly one response (or "*").
    (State.AUTH, "AUTH-RESPONSE"): State.READY,
    # TLS: the adapter runs the handshake; then EHLO again, with everything learned before forgotten.
    (State.TLS, "TLS-ESTABLISHED"): State.HELLO,
    # The mail transaction (RFC 5321 section 3.3).
    (State.MAIL, "RCPT"): State.MAIL,
    (State.MAIL, "DATA"): State.DATA,
    (State.MAIL, "RSET"): State.READY,
    (State.MAIL, "NOOP"): State.MAIL,
    (State.MAIL, "QUIT"): State.CLOSED,
    # CHUNKING (RFC 3030 section 2): BDAT replaces DATA, never both in one transaction; the chunk
    # marked LAST ends the message and the transaction, like DATA's "." (RFC 3030 section 2).
    (State.MAIL, "BDAT"): State.BDAT,
    (State.MAIL, "BDAT-LAST"): State.READY,
    (State.BDAT, "BDAT"): State.BDAT,
    (State.BDAT, "BDAT-LAST"): State.READY,
    # RSET aborts a transaction between chunks and the receiver discards what it got (RFC 3030
    # section 2); QUIT may end the session there as anywhere.  No RCPT after the first chunk.
    (State.BDAT, "RSET"): State.READY,
    (State.BDAT, "QUIT"): State.CLOSED,
    # Message content, then "." completes the transaction whatever the reply (RFC 5321 4.1.1.4).
    (State.DATA, "DATA-BODY"): State.DATA,
    (State.DATA, "DATA-END"): State.READY,
}

REPLY_TRANSITIONS: dict[tuple[str, Outcome], State | None] = {
    (GREETING, Outcome.OK): State.HELLO,
    (GREETING, Outcome.FAILED): State.REJECTED,
    **{(verb, Outcome.OK): State.READY for verb in _HELLOS},
    **{(verb, Outcome.FAILED): None for verb in _HELLOS},
    (("STARTTLS", Outcome.OK)): State.TLS,
    ("STARTTLS", Outcome.FAILED): None,
    ("AUTH", Outcome.OK): None,
    ("AUTH", Outcome.MORE): State.AUTH,
    ("AUTH", Outcome.FAILED): None,
    ("AUTH-RESPONSE", Outcome.OK): State.READY,
    ("AUTH-RESPONSE", Outcome.MORE): State.AUTH,
    ("AUTH-RESPONSE", Outcome.FAILED): State.READY,
    ("MAIL", Outcome.OK): State.MAIL,
    ("MAIL", Outcome.FAILED): None,
    ("RCPT", Outcome.OK): None,
    ("RCPT", Outcome.FAILED): None,
    ("DATA", Outcome.MORE): State.DATA,
    ("DATA", Outcome.FAILED): None,
    ("DATA-END", Outcome.OK): State.READY,
    ("DATA-END", Outcome.FAILED): State.READY,
    # LMTP (RFC 2033 section 4.2): one reply per accepted recipient after the final ".", each
    # positive or negative for its recipient alone; the transaction is over after the first.
    ("DATA-END-RCPT", Outcome.OK): State.READY,
    ("DATA-END-RCPT", Outcome.FAILED): State.READY,
    # A chunk is answered once it has been read (RFC 3030 section 2): 250 keeps the transaction in
    # chunking; a refusal leaves it where it was, and the client aborts it with RSET (the receiver
    # discards the chunk and every later one, RFC 3030 section 2).
    ("BDAT", Outcome.OK): State.BDAT,
    ("BDAT", Outcome.FAILED): None,
    # The reply to the LAST chunk is the reply to the whole message, as the reply to DATA's "."
    # (RFC 3030 section 2): either way the transaction is over.
    ("BDAT-LAST", Outcome.OK): State.READY,
    ("BDAT-LAST", Outcome.FAILED): State.READY,
    ("RSET", Outcome.OK): State.READY,
    ("RSET", Outcome.FAILED): None,
    ("NOOP", Outcome.OK): None,
    ("NOOP", Outcome.FAILED): None,
    ("VERB", Outcome.OK): None,
    ("VERB", Outcome.FAILED): None,
    ("VRFY", Outcome.OK): None,
    ("VRFY", Outcome.FAILED): None,
    ("QUIT", Outcome.OK): State.CLOSED,
    ("QUIT", Outcome.FAILED): State.CLOSED,
}

# 421 may answer anything, including the greeting, and always ends the session (RFC 5321 3.8).
REPLY_TRANSITIONS.update(
    {(verb, Outcome.CLOSING): State.CLOSED for verb in {verb for verb, _ in REPLY_TRANSITIONS}}
)

#: Commands that must be the last of a pipelined group: the client waits for their reply before
#: sending anything else.  RFC 2920 section 3.1 names EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP;
#: STARTTLS (RFC 3207 4.2) and AUTH (RFC 4954 4) change the session; HELO, LHLO and VERB are
#: treated the same way because nothing says they may be followed.  BDAT, with or without LAST, is
#: not one: RFC 3030 section 4.2 lets chunks be pipelined, and a new MAIL may follow BDAT LAST as
#: it may follow the "." of DATA (RFC 2920 section 3.1).
GROUP_ENDERS: frozenset[str] = frozenset(
    {GREETING, "EHLO", "HELO", "LHLO", "DATA", "VRFY", "QUIT", "NOOP", "STARTTLS", "AUTH", "AUTH-RESPONSE",
     "VERB"}
)
