"""Every adapter against scripted servers that break the rules (see SECURITY.md classes).

Every test gives the client a timeout, so a client that waits where it should have failed ends in a
timeout error (a failure of the test), never in a hung suite.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

import pytest
from servers import ESMTP_RULES, LOOPBACK, Rule, ehlo_reply

from smtp_sansio import (
    PermanentReplyError,
    RemoteProtocolError,
    SecurityError,
    SMTPError,
    TransientReplyError,
)

MESSAGE = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hostile\r\n\r\nbody\r\n"

# Replies that must never be taken for anything after STARTTLS was sent.
POST_STARTTLS_ALLOWED = ([], [b"QUIT"])


def client_for(adapter, server, certs, *, tls: str = "starttls", **options):
    options.setdefault("timeout", 10)
    return adapter.client(
        LOOPBACK, server.port, tls=tls, ssl_context=certs.client_context(), local_hostname="c.test", **options
    )


def deliver(adapter, server, certs, **options) -> None:
    with client_for(adapter, server, certs, **options) as client:
        client.send_message(MESSAGE)


def starttls_offered(*rules: Rule) -> list[Rule]:
    return [
        Rule(prefix=b"EHLO", reply=ehlo_reply("STARTTLS", "AUTH PLAIN LOGIN"), once=True),
        *rules,
        *ESMTP_RULES,
    ]


# --- STARTTLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["starttls", "opportunistic"])
def test_starttls_response_injection_in_one_segment(adapter, scripted_server, certs, tls):
    injected = b"220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"
    server = scripted_server(rules=starttls_offered(Rule(prefix=b"STARTTLS", reply=injected)))
    with pytest.raises(SecurityError):
        deliver(adapter, server, certs, tls=tls)
    server.stop()
    assert server.lines_after(b"STARTTLS") in POST_STARTTLS_ALLOWED
    assert server.messages == []


def test_starttls_injection_in_a_later_segment(adapter, scripted_server, certs):
    # The extra bytes arrive after the 220, before or during the handshake: either way they are
    # not a TLS record, and the handshake must fail rather than skip them.
    def reply() -> Iterator[bytes]:
        yield b"220 go ahead\r\n"
        time.sleep(0.05)
        yield b"250-evil\r\n250 AUTH PLAIN\r\n"

    server = scripted_server(
        rules=starttls_offered(Rule(prefix=b"STARTTLS", reply=reply, then="silent")),
    )
    with pytest.raises(SecurityError):
        deliver(adapter, server, certs)
    server.stop()
    assert not server.received(b"MAIL")
    assert not server.received(b"AUTH")
    assert server.messages == []


@pytest.mark.parametrize("answer", [b"454 4.7.0 TLS not available\r\n", b"500 5.5.1 unknown command\r\n"])
def test_starttls_refused_under_required_tls(adapter, scripted_server, certs, answer):
    server = scripted_server(rules=starttls_offered(Rule(prefix=b"STARTTLS", reply=answer)))
    with pytest.raises(SecurityError):
        deliver(adapter, server, certs)
    server.stop()
    assert server.lines_after(b"STARTTLS") in POST_STARTTLS_ALLOWED
    assert not server.received(b"MAIL")


def test_starttls_not_offered_under_required_tls(adapter, scripted_server, certs):
    server = scripted_server(
        rules=[Rule(prefix=b"EHLO", reply=ehlo_reply("AUTH PLAIN", "8BITMIME")), *ESMTP_RULES]
    )
    with pytest.raises(SecurityError):
        deliver(adapter, server, certs)
    server.stop()
    assert server.lines_after(b"EHLO") in POST_STARTTLS_ALLOWED


def test_server_hangs_up_after_starttls_220(adapter, scripted_server, certs):
    server = scripted_server(
        rules=starttls_offered(Rule(prefix=b"STARTTLS", reply=b"220 go\r\n", then="close"))
    )
    with pytest.raises(SecurityError):
        deliver(adapter, server, certs)


def test_capabilities_are_forgotten_after_starttls(adapter, scripted_server, certs):
    rules = [
        Rule(prefix=b"EHLO", reply=ehlo_reply("STARTTLS", "AUTH PLAIN", "SIZE 10"), once=True),
        Rule(prefix=b"STARTTLS", reply=b"220 go ahead\r\n", then="starttls"),
        Rule(prefix=b"EHLO", reply=ehlo_reply("8BITMIME")),
        *ESMTP_RULES,
    ]
    server = scripted_server(rules=rules, tls_context=certs.server_context())
    with client_for(adapter, server, certs) as client:
        # SIZE 10 was announced in plaintext only: were it still believed, this message would be
        # refused locally as too large.
        client.send_message(MESSAGE)
    server.stop()
    assert len(server.messages) == 1
    assert server.lines[:3] == [b"EHLO c.test", b"STARTTLS", b"EHLO c.test"]


# --- greetings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "error"),
    [
        (b"554 5.3.2 no service for you\r\n", PermanentReplyError),
        (b"421 4.3.2 too busy\r\n", TransientReplyError),
        (b"354 what?\r\n", SMTPError),
        (b"hello, I am not an SMTP server\r\n", RemoteProtocolError),
        # A TLS ServerHello-like record where a 220 should be: the port speaks implicit TLS.
        (b"\x16\x03\x03\x00\x3a\x02\x00\x00\x36\x03\x03" + bytes(range(32)) + b"\r\n", RemoteProtocolError),
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", RemoteProtocolError),
        (b"", RemoteProtocolError),  # immediate hang-up
    ],
    ids=["554", "421", "354", "garbage", "tls-record", "http", "eof"],
)
def test_bad_greetings(adapter, scripted_server, certs, greeting, error):
    server = scripted_server(
        greeting=greeting, greeting_then="close" if not greeting else None, rules=ESMTP_RULES
    )
    client = client_for(adapter, server, certs)
    with pytest.raises(error) as info:
        client.connect()
    assert str(info.value)  # a message a person can read
    assert "\n" not in str(info.value)
    server.stop()
    # Never an EHLO after a bad greeting; at most a QUIT.
    assert server.lines in ([], [b"QUIT"])


def test_354_greeting_is_not_a_success(adapter, scripted_server, certs):
    server = scripted_server(greeting=b"354 go on\r\n", rules=ESMTP_RULES)
    with pytest.raises(SMTPError) as info:
        client_for(adapter, server, certs).connect()
    assert "354" in str(info.value)


# --- malformed and hostile replies ------------------------------------------------------------------


def endless_line() -> Iterator[bytes]:
    yield b"220 "
    # Bounded so that a client without a cap fails the test (by its timeout) instead of hanging.
    yield from itertools.repeat(b"x" * 65536, 256)


def endless_continuation() -> Iterator[bytes]:
    yield from itertools.repeat(b"220-more and more\r\n" * 1000, 1000)


@pytest.mark.parametrize("greeting", [endless_line, endless_continuation], ids=["line", "continuation"])
def test_endless_greeting_is_a_protocol_error(adapter, scripted_server, certs, greeting):
    server = scripted_server(greeting=greeting)
    with pytest.raises(RemoteProtocolError):
        client_for(adapter, server, certs, tls="none").connect()


def test_endless_ehlo_reply_is_a_protocol_error(adapter, scripted_server, certs):
    def reply() -> Iterator[bytes]:
        yield b"250-mx.test\r\n"
        yield from itertools.repeat(b"250-X-PADDING\r\n" * 1000, 1000)

    server = scripted_server(rules=[Rule(prefix=b"EHLO", reply=reply), *ESMTP_RULES])
    with pytest.raises(RemoteProtocolError):
        client_for(adapter, server, certs, tls="none").connect()


@pytest.mark.parametrize(
    "reply",
    [b"250-mx.test\r\n250-PIPE", b"250-mx.test\r\n", b"25"],
    ids=["mid-line", "mid-reply", "mid-code"],
)
def test_eof_in_the_middle_of_a_reply(adapter, scripted_server, certs, reply):
    server = scripted_server(rules=[Rule(prefix=b"EHLO", reply=reply, then="close"), *ESMTP_RULES])
    with pytest.raises(RemoteProtocolError):
        client_for(adapter, server, certs, tls="none").connect()


def test_eof_in_the_middle_of_a_reply_over_tls(adapter, scripted_server, certs):
    # A TLS connection that ends without a close_notify ends like a plain one: within a reply, that
    # is the server's protocol error, whatever the adapter.
    rules = [
        Rule(prefix=b"EHLO", reply=ehlo_reply("STARTTLS"), once=True),
        Rule(prefix=b"STARTTLS", reply=b"220 go ahead\r\n", then="starttls"),
        Rule(prefix=b"EHLO", reply=b"250-mx.test\r\n", then="close"),
    ]
    server = scripted_server(rules=rules, tls_context=certs.server_context())
    with pytest.raises(RemoteProtocolError):
        client_for(adapter, server, certs).connect()


def test_eof_after_mail(adapter, scripted_server, certs):
    server = scripted_server(rules=[Rule(prefix=b"MAIL", then="close"), *ESMTP_RULES])
    with client_for(adapter, server, certs, tls="none") as client, pytest.raises(RemoteProtocolError):
        client.send_message(MESSAGE)


def test_mismatched_codes_in_a_multiline_reply(adapter, scripted_server, certs):
    server = scripted_server(
        rules=[Rule(prefix=b"EHLO", reply=b"250-mx.test\r\n251 PIPELINING\r\n"), *ESMTP_RULES]
    )
    with pytest.raises(RemoteProtocolError):
        client_for(adapter, server, certs, tls="none").connect()


def test_non_utf8_reply_text_is_fine(adapter, scripted_server, certs, caplog):
    rules = [
        Rule(prefix=b"EHLO", reply=b"250-mx.test caf\xe9\r\n250 8BITMIME\r\n"),
        Rule(prefix=b"MAIL", reply=b"250 2.1.0 ok \xff\xfe\r\n"),
        Rule(prefix=b"RCPT", reply=b"250 2.1.5 d\xc3\xa9j\xe0 vu\r\n"),
        Rule(prefix=b"DATA", reply=b"354 \x80\x81\r\n", then="data", data_reply=b"250 2.0.0 queued \xe9\r\n"),
        *ESMTP_RULES,
    ]
    server = scripted_server(greeting=b"220 mx.test \xc0\xc1 ESMTP\r\n", rules=rules)
    caplog.set_level(logging.INFO, logger="smtp_sansio.trace")
    with client_for(adapter, server, certs, tls="none", trace=True) as client:
        result = client.send_message(MESSAGE)
    assert result.accepted == ("bob@example.org",)
    assert result.reply.lines[-1].endswith(b"queued \xe9")
    assert any(r.getMessage().startswith("S: 220") for r in caplog.records)


def test_replies_without_text_are_accepted(adapter, scripted_server, certs):
    rules = [
        Rule(prefix=b"EHLO", reply=b"250-mx.test\r\n250-234 odd but legal\r\n250\r\n"),
        Rule(prefix=b"MAIL", reply=b"250\r\n"),
        Rule(prefix=b"RCPT", reply=b"250 \r\n"),
        Rule(prefix=b"DATA", reply=b"354\r\n", then="data", data_reply=b"250\r\n"),
        *ESMTP_RULES,
    ]
    server = scripted_server(rules=rules)
    with client_for(adapter, server, certs, tls="none") as client:
        result = client.send_message(MESSAGE)
    assert result.reply.code == 250
    server.stop()
    assert len(server.messages) == 1


def test_unsolicited_reply_is_a_protocol_error(adapter, scripted_server, certs):
    server = scripted_server(greeting=b"220 mx.test ESMTP\r\n250 nobody asked\r\n", rules=ESMTP_RULES)
    with pytest.raises(RemoteProtocolError):
        client_for(adapter, server, certs, tls="none").connect()


def test_421_to_ehlo_ends_the_session(adapter, scripted_server, certs):
    server = scripted_server(rules=[Rule(prefix=b"EHLO", reply=b"421 4.3.2 going down\r\n", then="close")])
    client = client_for(adapter, server, certs, tls="none")
    with pytest.raises(TransientReplyError) as info:
        client.connect()
    assert info.value.code == 421
    server.stop()
    assert server.lines == [b"EHLO c.test"]


def test_silent_after_data_times_out(adapter, scripted_server, certs):
    server = scripted_server(rules=[Rule(prefix=b"DATA", then="silent"), *ESMTP_RULES])
    with client_for(adapter, server, certs, tls="none", timeout={"data": 0.3}) as client:
        with pytest.raises(SMTPError) as info:
            client.send_message(MESSAGE)
        assert getattr(info.value, "phase", None) == "data"
