"""Every adapter (sync, asyncio, trio) against real servers on loopback: aiosmtpd and scripted servers.

Each test of the first part runs once per adapter through the ``adapter`` fixture of adapters.py,
which makes the async adapters look blocking.  The last part is for what only an event loop has --
many connections at once, cancellation, tasks sharing a client -- and runs as anyio tests on asyncio
and trio.
"""

from __future__ import annotations

import base64
import contextlib
import email
import importlib
import io
import itertools
import logging
import socket
import ssl
import subprocess
import sys
import threading
import tracemalloc
import uuid
from email.message import EmailMessage

import anyio
import pytest
import test_postfix_esmtp
from postfix import queue_id_of
from servers import ESMTP_RULES, LOOPBACK, Rule, ehlo_reply, running_smtpd

from adapters import client_sockets
from smtp_sansio import (
    AuthenticationError,
    Dsn,
    Envelope,
    LocalProtocolError,
    OutgoingMessage,
    PermanentReplyError,
    SecurityError,
    SMTPConnectError,
    SMTPTimeoutError,
    TransientReplyError,
    Unsent,
)
from smtp_sansio.adapters._netrc import CredentialsError
from smtp_sansio.adapters.queue import Queued, flush_queue, list_queue, read_entry


def make_message(
    *, to: str = "bob@example.org", subject: str = "hello", body: str = "Hi Bob.\n", **headers: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "alice@example.org"
    message["To"] = to
    message["Subject"] = subject
    for name, value in headers.items():
        message[name] = value
    message.set_content(body)
    return message


@pytest.fixture
def tls_options(certs):
    """Options of a client that trusts the test CA and checks the name 127.0.0.1."""
    return {"host": LOOPBACK, "ssl_context": certs.client_context(), "local_hostname": "client.test"}


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


PLAIN = {"host": LOOPBACK, "tls": "none", "local_hostname": "c.test"}
PLAIN_OPTIONS = {"tls": "none", "local_hostname": "c.test"}  # with the host and port given apart


# --- TLS modes -------------------------------------------------------------------------------------


def test_plain_delivery(adapter, smtpd_factory):
    server = smtpd_factory()
    result = adapter.send_message(make_message(), port=server.port, **PLAIN)
    assert result.accepted == ("bob@example.org",)
    assert dict(result.refused) == {}
    assert result.reply.code == 250
    [received] = server.messages
    assert received.mail_from == "alice@example.org"
    assert received.rcpt_tos == ("bob@example.org",)
    assert b"Subject: hello\r\n" in received.content
    assert received.content.endswith(b"Hi Bob.\r\n")
    assert server.commands()[0] == "EHLO"
    assert server.commands()[-1] == "QUIT"
    assert "STARTTLS" not in server.commands()


def test_bytes_message(adapter, smtpd_factory):
    server = smtpd_factory()
    data = b"From: a@example.org\nTo: b@example.org\nSubject: raw\n\n.leading dot\nend\n"
    adapter.send_message(data, port=server.port, **PLAIN)
    [received] = server.messages
    assert received.rcpt_tos == ("b@example.org",)
    assert (
        received.content
        == b"From: a@example.org\r\nTo: b@example.org\r\nSubject: raw\r\n\r\n.leading dot\r\nend\r\n"
    )


def test_starttls_required_works(adapter, smtpd_factory, tls_options):
    server = smtpd_factory(require_starttls=True)
    result = adapter.send_message(make_message(), port=server.port, **tls_options)
    assert result.accepted == ("bob@example.org",)
    assert len(server.messages) == 1
    commands = server.commands()
    assert commands.index("STARTTLS") < commands.index("MAIL")
    # RFC 3207 section 4.2: the client must greet again after the handshake.
    assert commands[: commands.index("MAIL")] == ["EHLO", "STARTTLS", "EHLO"]


def test_starttls_verifies_dns_name(adapter, smtpd_factory, tls_options):
    server = smtpd_factory(starttls=True)
    tls_options["host"] = "localhost"
    adapter.send_message(make_message(), port=server.port, **tls_options)
    assert len(server.messages) == 1


def test_starttls_stripped_is_a_security_error(adapter, smtpd_factory, tls_options):
    server = smtpd_factory()  # no STARTTLS offered
    with pytest.raises(SecurityError, match=r"STARTTLS|TLS"):
        adapter.send_message(make_message(), port=server.port, **tls_options)
    # Nothing but the greeting and a polite QUIT: no MAIL, no AUTH, no message.
    assert server.commands() in (["EHLO"], ["EHLO", "QUIT"])
    assert server.messages == []


def test_implicit_tls(adapter, smtpd_factory, tls_options):
    server = smtpd_factory(implicit_tls=True)
    result = adapter.send_message(make_message(), port=server.port, tls="implicit", **tls_options)
    assert result.accepted == ("bob@example.org",)
    assert "STARTTLS" not in server.commands()
    assert len(server.messages) == 1


def test_opportunistic_uses_starttls_when_offered(adapter, smtpd_factory, tls_options):
    server = smtpd_factory(starttls=True)
    adapter.send_message(make_message(), port=server.port, tls="opportunistic", **tls_options)
    assert "STARTTLS" in server.commands()
    assert len(server.messages) == 1


def test_opportunistic_falls_back_to_plaintext(adapter, smtpd_factory, tls_options):
    server = smtpd_factory()
    adapter.send_message(make_message(), port=server.port, tls="opportunistic", **tls_options)
    assert "STARTTLS" not in server.commands()
    assert len(server.messages) == 1


def test_no_tls_never_starts_tls_even_when_offered(adapter, smtpd_factory):
    server = smtpd_factory(starttls=True)
    adapter.send_message(make_message(), port=server.port, **PLAIN)
    assert "STARTTLS" not in server.commands()
    assert len(server.messages) == 1


# --- certificates ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_unknown_ca_is_refused(adapter, smtpd_factory, certs, tls_options, tls):
    server = smtpd_factory(
        starttls=tls == "starttls", implicit_tls=tls == "implicit", server_cert=certs.untrusted_server
    )
    with pytest.raises(SecurityError, match=r"127\.0\.0\.1") as info:
        adapter.send_message(make_message(), port=server.port, tls=tls, **tls_options)
    assert "certificate" in str(info.value)
    assert server.messages == []
    assert "MAIL" not in server.commands()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_wrong_host_name_is_refused(adapter, smtpd_factory, certs, tls_options, tls):
    server = smtpd_factory(
        starttls=tls == "starttls", implicit_tls=tls == "implicit", server_cert=certs.wrong_host
    )
    with pytest.raises(SecurityError, match="certificate"):
        adapter.send_message(make_message(), port=server.port, tls=tls, **tls_options)
    assert server.messages == []


def test_default_context_does_not_trust_the_test_ca(adapter, smtpd_factory):
    server = smtpd_factory(starttls=True)
    with pytest.raises(SecurityError):
        adapter.send_message(make_message(), host=LOOPBACK, port=server.port, local_hostname="c.test")
    assert server.messages == []


def test_plaintext_server_on_the_implicit_tls_port(adapter, smtpd_factory, tls_options):
    # The handshake reads "220 ..." where a TLS record should be.
    server = smtpd_factory()
    with pytest.raises(SecurityError, match="TLS handshake"):
        adapter.send_message(make_message(), port=server.port, tls="implicit", **tls_options)
    assert server.messages == []


# --- options ---------------------------------------------------------------------------------------


def test_verb_accepted(adapter, smtpd_factory):
    server = smtpd_factory(verb=True)
    adapter.send_message(make_message(), port=server.port, verb=True, **PLAIN)
    commands = server.commands()
    assert "VERB" in commands
    assert commands.index("VERB") < commands.index("MAIL")
    assert len(server.messages) == 1


def test_verb_refused_is_ignored(adapter, smtpd_factory):
    server = smtpd_factory(verb=False)  # aiosmtpd answers VERB with 500
    adapter.send_message(make_message(), port=server.port, verb=True, **PLAIN)
    assert "VERB" in server.commands()
    assert len(server.messages) == 1


def test_no_verb_by_default(adapter, smtpd_factory):
    server = smtpd_factory(verb=True)
    adapter.send_message(make_message(), port=server.port, **PLAIN)
    assert "VERB" not in server.commands()


def test_sendto_domain(adapter, smtpd_factory):
    server = smtpd_factory()
    result = adapter.send_message(
        make_message(),
        recipients=["bob", "carol@other.example"],
        port=server.port,
        sendto_domain="example.org",
        **PLAIN,
    )
    [received] = server.messages
    assert received.rcpt_tos == ("bob@example.org", "carol@other.example")
    assert "bob@example.org" in result.accepted


def test_bcc_is_stripped_but_receives(adapter, smtpd_factory):
    server = smtpd_factory()
    message = make_message(Cc="dave@example.org", Bcc="carol@example.org")
    adapter.send_message(message, port=server.port, **PLAIN)
    [received] = server.messages
    assert set(received.rcpt_tos) == {"bob@example.org", "dave@example.org", "carol@example.org"}
    assert b"bcc" not in received.content.lower()
    assert b"carol" not in received.content
    assert message["Bcc"] == "carol@example.org"  # the caller's message is untouched


def test_explicit_envelope(adapter, smtpd_factory):
    server = smtpd_factory()
    adapter.send_message(
        make_message(), sender="bounces@example.org", recipients=["x@example.net"], port=server.port, **PLAIN
    )
    [received] = server.messages
    assert received.mail_from == "bounces@example.org"
    assert received.rcpt_tos == ("x@example.net",)


def test_smtpserver_environment_variable(adapter, smtpd_factory, monkeypatch):
    server = smtpd_factory()
    monkeypatch.setenv("SMTPSERVER", LOOPBACK)
    client = adapter.client(port=server.port, tls="none", local_hostname="c.test")
    assert client.host == LOOPBACK
    with client:
        client.send_message(make_message())
    assert len(server.messages) == 1


def test_invalid_options_fail_before_connecting(adapter):
    with pytest.raises(LocalProtocolError, match="tls"):
        adapter.client(LOOPBACK, 25, tls="starttls-please")
    with pytest.raises(LocalProtocolError):
        adapter.client(LOOPBACK, "not-a-service-name")
    with pytest.raises(LocalProtocolError):
        adapter.client(LOOPBACK, 25, trace="yes")
    with pytest.raises(LocalProtocolError):
        adapter.client(LOOPBACK, 25, ssl_context="ctx")
    with pytest.raises(LocalProtocolError, match="local host name"):
        adapter.client(LOOPBACK, free_port(), tls="none", local_hostname="bad name")
    with pytest.raises(LocalProtocolError, match="tls"):
        adapter.send_message(make_message(), host=LOOPBACK, port=25, tls="starttls-please")


def test_local_hostname_default(adapter, smtpd_factory, monkeypatch):
    # The machine's FQDN when it is a valid dotted domain, else the address literal of the local
    # end of the connection (RFC 5321 section 4.1.3), as smtplib does.
    server = smtpd_factory()
    options = {"host": LOOPBACK, "port": server.port, "tls": "none"}
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "client.example.org")
    adapter.send_message(make_message(), **options)
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "localhost")
    adapter.send_message(make_message(), **options)
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "under_score.example")
    adapter.send_message(make_message(), **options)
    ehlos = [line for line in server.lines if line.startswith(b"EHLO")]
    assert ehlos == [b"EHLO client.example.org", b"EHLO [127.0.0.1]", b"EHLO [127.0.0.1]"]


# --- refusals and failures -------------------------------------------------------------------------


def test_some_recipients_refused(adapter, smtpd_factory):
    server = smtpd_factory()
    result = adapter.send_message(
        make_message(),
        recipients=["ok@example.org", "refuse-me@example.org", "later@example.org"],
        port=server.port,
        **PLAIN,
    )
    assert result.accepted == ("ok@example.org",)
    assert set(result.refused) == {"refuse-me@example.org", "later@example.org"}
    assert result.refused["refuse-me@example.org"].code == 550
    assert result.refused["refuse-me@example.org"].enhanced_status == "5.1.1"
    assert result.refused["later@example.org"].code == 450
    assert result.refused["later@example.org"].enhanced_status == "4.2.1"
    [received] = server.messages
    assert received.rcpt_tos == ("ok@example.org",)


def test_all_recipients_refused_keeps_the_connection(adapter, smtpd_factory):
    server = smtpd_factory()
    with adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test") as client:
        with pytest.raises(PermanentReplyError) as info:
            client.send_message(make_message(), recipients=["refuse1@example.org", "refuse2@example.org"])
        assert set(info.value.refused) == {"refuse1@example.org", "refuse2@example.org"}
        assert info.value.code == 550
        assert client.usable
        # The transaction was reset; the same connection carries the next message.
        client.send_message(make_message(subject="second"))
    assert len(server.messages) == 1
    assert b"Subject: second" in server.messages[0].content
    assert server.commands().count("EHLO") == 1
    assert "RSET" in server.commands()


def test_421_to_mail_ends_the_client(adapter, smtpd_factory):
    server = smtpd_factory(mail_421=True)
    client = adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test")
    with client:
        with pytest.raises(TransientReplyError) as info:
            client.send_message(make_message())
        assert info.value.code == 421
        assert not client.transport_open
        assert not client.usable
        with pytest.raises(LocalProtocolError, match="no longer usable"):
            client.send_message(make_message())
    assert server.messages == []


def test_connection_refused(adapter, tls_options):
    port = free_port()
    with pytest.raises(SMTPConnectError, match=rf"cannot connect to 127\.0\.0\.1:{port}: \w") as info:
        adapter.send_message(make_message(), port=port, **tls_options)
    assert isinstance(info.value, ConnectionError)


def test_a_new_client_after_a_failure(adapter, smtpd_factory):
    client = adapter.client(LOOPBACK, free_port(), tls="none", local_hostname="c.test")
    with pytest.raises(SMTPConnectError):
        client.connect()
    with pytest.raises(LocalProtocolError, match="already closed; create a new one"):
        client.connect()
    with pytest.raises(LocalProtocolError, match="no longer usable after: cannot connect"):
        client.send_message(make_message())
    server = smtpd_factory()
    with adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test") as again:
        again.send_message(make_message())
    assert len(server.messages) == 1


def test_context_manager_closes_on_error(adapter, smtpd_factory):
    server = smtpd_factory()
    with (
        pytest.raises(RuntimeError),
        adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test") as c,
    ):
        raise RuntimeError("boom")
    assert not c.transport_open
    assert server.commands() == ["EHLO", "QUIT"]


# --- timeouts --------------------------------------------------------------------------------------


def test_greeting_timeout(adapter, scripted_server):
    server = scripted_server(greeting=None)
    client = adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test", timeout=0.3)
    with pytest.raises(SMTPTimeoutError) as info:
        client.connect()
    assert info.value.phase == "greeting"
    assert "greeting" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert not client.transport_open
    with pytest.raises(LocalProtocolError, match="no longer usable"):
        client.send_message(make_message())
    client.close()  # harmless after the failure


def test_timeout_mapping_applies_per_phase(adapter, scripted_server):
    rules = [Rule(prefix=b"MAIL", then="silent"), *ESMTP_RULES]
    server = scripted_server(rules=rules)
    client = adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test", timeout={"mail": 0.3})
    with client:
        with pytest.raises(SMTPTimeoutError) as info:
            client.send_message(make_message())
        assert info.value.phase == "mail"
        assert not client.transport_open
        with pytest.raises(LocalProtocolError):
            client.send_message(make_message())
    assert not server.received(b"DATA")


def test_starttls_handshake_timeout(adapter, scripted_server, certs):
    rules = [
        Rule(prefix=b"EHLO", reply=ehlo_reply("STARTTLS")),
        Rule(prefix=b"STARTTLS", reply=b"220 go ahead\r\n", then="silent"),  # and no handshake
    ]
    server = scripted_server(rules=rules)
    client = adapter.client(
        LOOPBACK, server.port, ssl_context=certs.client_context(), local_hostname="c.test",
        timeout={"starttls": 0.3},
    )
    with pytest.raises(SMTPTimeoutError) as info:
        client.connect()
    assert info.value.phase == "starttls"
    assert not client.transport_open


def test_implicit_tls_handshake_counts_as_connecting(adapter, scripted_server, certs):
    server = scripted_server(greeting=None)  # accepts, and never speaks TLS
    client = adapter.client(
        LOOPBACK, server.port, tls="implicit", ssl_context=certs.client_context(), local_hostname="c.test",
        timeout={"connect": 0.3},
    )
    with pytest.raises(SMTPTimeoutError, match="during connect") as info:
        client.connect()
    assert info.value.phase == "connect"
    assert not client.transport_open


# --- reuse -----------------------------------------------------------------------------------------


def test_many_messages_over_one_connection(adapter, smtpd_factory, tls_options):
    server = smtpd_factory(starttls=True)
    with adapter.client(port=server.port, **tls_options) as client:
        for number in range(5):
            result = client.send_message(make_message(subject=f"message {number}"))
            assert result.accepted == ("bob@example.org",)
    assert [m.content.count(b"Subject: message") for m in server.messages] == [1] * 5
    for number, received in enumerate(server.messages):
        assert f"Subject: message {number}".encode() in received.content
    commands = server.commands()
    assert commands.count("STARTTLS") == 1
    assert commands.count("QUIT") == 1


def test_client_lifecycle_errors(adapter, smtpd_factory):
    server = smtpd_factory()
    client = adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test")
    assert not client.usable
    with pytest.raises(LocalProtocolError, match="not connected"):
        client.send_message(make_message())
    client.connect()
    assert client.usable
    with pytest.raises(LocalProtocolError, match="already"):
        client.connect()
    client.quit()
    assert not client.transport_open
    assert not client.usable
    with pytest.raises(LocalProtocolError, match="closed"):
        client.send_message(make_message())
    client.quit()  # a second quit does nothing
    client.close()
    assert server.commands() == ["EHLO", "QUIT"]


def test_close_without_quit(adapter, smtpd_factory):
    server = smtpd_factory()
    client = adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test")
    client.connect()
    client.close()
    assert not client.transport_open
    with pytest.raises(LocalProtocolError, match="is closed"):
        client.send_message(make_message())
    assert server.commands() == ["EHLO"]


def test_invalid_address_sends_nothing(adapter, smtpd_factory):
    server = smtpd_factory()
    with adapter.client(LOOPBACK, server.port, tls="none", local_hostname="c.test") as client:
        with pytest.raises(LocalProtocolError):
            client.send_message(make_message(), recipients=["bob@example.org\r\nRCPT TO:<x@evil.test>"])
        # Nothing was sent for it, and the connection is still good.
        client.send_message(make_message())
    assert len(server.messages) == 1
    assert not any(b"evil" in line for line in server.lines)


# --- trace -----------------------------------------------------------------------------------------


def test_trace_to_the_default_logger(adapter, smtpd_factory, caplog):
    server = smtpd_factory()
    caplog.set_level(logging.INFO, logger="smtp_sansio.trace")
    adapter.send_message(make_message(), port=server.port, trace=True, **PLAIN)
    lines = [r.getMessage() for r in caplog.records if r.name == "smtp_sansio.trace"]
    assert any(line.startswith("S: 220") for line in lines)
    assert "C: EHLO c.test" in lines
    assert any(line.startswith("C: MAIL FROM:<alice@example.org>") for line in lines)
    assert any(line.startswith("S: 250") for line in lines)
    assert lines.index("C: EHLO c.test") > 0


def test_trace_to_a_given_logger(adapter, smtpd_factory, caplog):
    server = smtpd_factory()
    logger = logging.getLogger("test.smtp.trace")
    caplog.set_level(logging.INFO, logger="test.smtp.trace")
    adapter.send_message(make_message(), port=server.port, trace=logger, **PLAIN)
    lines = [r.getMessage() for r in caplog.records if r.name == "test.smtp.trace"]
    assert "C: EHLO c.test" in lines
    assert not [r for r in caplog.records if r.name == "smtp_sansio.trace"]


def test_no_trace_by_default(adapter, smtpd_factory, caplog):
    server = smtpd_factory()
    caplog.set_level(logging.DEBUG)
    adapter.send_message(make_message(), port=server.port, **PLAIN)
    assert not [r for r in caplog.records if r.name.startswith("smtp_sansio")]


def test_starttls_trace_is_readable(adapter, smtpd_factory, tls_options, caplog):
    server = smtpd_factory(starttls=True)
    caplog.set_level(logging.INFO, logger="smtp_sansio.trace")
    adapter.send_message(make_message(), port=server.port, trace=True, **tls_options)
    lines = [r.getMessage() for r in caplog.records if r.name == "smtp_sansio.trace"]
    assert "C: STARTTLS" in lines
    assert lines.count("C: EHLO client.test") == 2
    assert all(line[:3] in ("C: ", "S: ", "*: ") or line.startswith("* ") for line in lines)


# --- authentication --------------------------------------------------------------------------------


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def auth_rules(mechanisms: str, *rules: Rule) -> list[Rule]:
    """A server that offers STARTTLS, then ``AUTH mechanisms``, and answers AUTH with ``rules``."""
    return [
        Rule(prefix=b"EHLO", reply=ehlo_reply("STARTTLS"), once=True),
        Rule(prefix=b"STARTTLS", reply=b"220 go ahead\r\n", then="starttls"),
        Rule(prefix=b"EHLO", reply=ehlo_reply(f"AUTH {mechanisms}", "8BITMIME")),
        *rules,
        *ESMTP_RULES,
    ]


@pytest.fixture
def auth_server(scripted_server, certs):
    """Start a scripted server with :func:`auth_rules` and a TLS context presenting certs.server."""

    def start(mechanisms: str, *rules: Rule, context=None):
        context = context or certs.server_context()
        return scripted_server(rules=auth_rules(mechanisms, *rules), tls_context=context)

    return start


ACCEPT_PLAIN = Rule(prefix=b"AUTH PLAIN " + b64("\0alice\0secret"), reply=b"235 2.7.0 accepted\r\n")


def test_auth_plain(adapter, auth_server, tls_options):
    server = auth_server("PLAIN LOGIN", ACCEPT_PLAIN)
    with adapter.client(port=server.port, username="alice", password="secret", **tls_options) as client:
        assert client.authenticated == "PLAIN"
        client.send_message(make_message())
    server.stop()
    assert server.lines[:4] == [b"EHLO client.test", b"STARTTLS", b"EHLO client.test",
                                b"AUTH PLAIN " + b64("\0alice\0secret")]
    assert len(server.messages) == 1


def test_auth_login_as_asked_for(adapter, auth_server, tls_options):
    server = auth_server(
        "LOGIN PLAIN",
        Rule(prefix=b"AUTH LOGIN", reply=b"334 VXNlcm5hbWU6\r\n"),
        Rule(prefix=b64("alice"), reply=b"334 UGFzc3dvcmQ6\r\n"),
        Rule(prefix=b64("secret"), reply=b"235 2.7.0 accepted\r\n"),
    )
    result = adapter.send_message(
        make_message(), port=server.port, username="alice", password="secret", auth_mechanisms=["LOGIN"],
        **tls_options,
    )
    assert result.accepted == ("bob@example.org",)
    server.stop()
    assert server.lines_after(b"AUTH LOGIN")[:2] == [b64("alice"), b64("secret")]


def test_auth_refused(adapter, auth_server, tls_options):
    server = auth_server("PLAIN", Rule(prefix=b"AUTH", reply=b"535 5.7.8 bad credentials\r\n"))
    client = adapter.client(port=server.port, username="alice", password="wrong", **tls_options)
    with pytest.raises(AuthenticationError, match="535") as info:
        client.connect()
    assert info.value.reply.code == 535
    assert "wrong" not in str(info.value)
    assert not client.transport_open
    server.stop()
    assert not server.received(b"MAIL")


def test_no_credentials_over_plaintext(adapter, scripted_server):
    server = scripted_server(rules=[Rule(prefix=b"EHLO", reply=ehlo_reply("AUTH PLAIN")), *ESMTP_RULES])
    with pytest.raises(SecurityError, match="plaintext"):
        adapter.send_message(make_message(), port=server.port, username="alice", password="secret", **PLAIN)
    server.stop()
    assert not server.received(b"AUTH")
    assert not server.received(b"MAIL")


def test_allow_insecure_auth(adapter, scripted_server):
    server = scripted_server(
        rules=[Rule(prefix=b"EHLO", reply=ehlo_reply("AUTH PLAIN")), ACCEPT_PLAIN, *ESMTP_RULES]
    )
    options = {"username": "alice", "password": "secret", "allow_insecure_auth": True, **PLAIN}
    adapter.send_message(make_message(), port=server.port, **options)
    server.stop()
    assert server.received(b"AUTH PLAIN")
    assert len(server.messages) == 1


def test_ask_for_the_password_off_the_event_loop(adapter, auth_server, tls_options):
    server = auth_server("PLAIN", ACCEPT_PLAIN)
    asked = []

    def ask(what, host, port):
        asked.append((what, host, port, threading.get_ident()))
        return "secret"

    adapter.send_message(make_message(), port=server.port, username="alice", ask=ask, **tls_options)
    [(what, host, port, thread)] = asked
    assert (what, host, port) == ("password", LOOPBACK, server.port)
    if adapter.name != "sync":
        assert thread != adapter.run(threading.get_ident)  # not in the event loop's thread
    server.stop()
    assert server.received(b"AUTH PLAIN " + b64("\0alice\0secret"))


def test_credentials_from_a_netrc_file(adapter, auth_server, tls_options, tmp_path):
    server = auth_server("PLAIN", ACCEPT_PLAIN)
    netrc = tmp_path / "authinfo"
    netrc.write_text(f"machine {LOOPBACK} port {server.port} login alice password secret\n")
    netrc.chmod(0o600)
    adapter.send_message(make_message(), port=server.port, credentials=str(netrc), **tls_options)
    netrc.chmod(0o644)  # now refused, before connecting
    with pytest.raises(CredentialsError):
        adapter.send_message(make_message(), port=server.port, credentials=str(netrc), **tls_options)
    server.stop()
    assert server.connections == 1
    assert len(server.messages) == 1


def test_oauth_token_provider_called_per_connection(adapter, auth_server, tls_options):
    tokens = iter(["token-1", "token-2"])

    def xoauth2(token: str) -> bytes:
        return b"AUTH XOAUTH2 " + b64(f"user=alice@example.org\x01auth=Bearer {token}\x01\x01")

    accepted = b"235 2.7.0 accepted\r\n"
    rules = [Rule(prefix=xoauth2(token), reply=accepted) for token in ("token-1", "token-2")]
    server = auth_server("XOAUTH2 PLAIN", *rules)
    options = {"username": "alice@example.org", "oauth_token": lambda: next(tokens), **tls_options}
    for _ in range(2):
        adapter.send_message(make_message(), port=server.port, **options)
    server.stop()
    auth_lines = [line for line in server.lines if line.startswith(b"AUTH")]
    assert auth_lines == [xoauth2("token-1"), xoauth2("token-2")]
    assert len(server.messages) == 2


def test_client_certificate_and_external(adapter, auth_server, certs, tls_options, tmp_path):
    context = certs.server_context()
    context.verify_mode = ssl.CERT_REQUIRED
    certs.ca.configure_trust(context)  # the server requires a certificate from the test CA
    server = auth_server("EXTERNAL PLAIN", Rule(prefix=b"AUTH EXTERNAL", reply=b"235 2.7.0 accepted\r\n"),
                         context=context)
    leaf = certs.ca.issue_cert("client.example")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    with adapter.client(port=server.port, client_cert=(str(cert), str(key)), auth_mechanisms=["EXTERNAL"],
                        **tls_options) as client:
        assert client.authenticated == "EXTERNAL"
        client.send_message(make_message())
    server.stop()
    assert server.errors == []
    assert len(server.messages) == 1


# --- the trio extra --------------------------------------------------------------------------------


def test_the_trio_adapter_names_its_extra_when_trio_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "trio", None)  # makes "import trio" fail
    monkeypatch.delitem(sys.modules, "smtp_sansio.adapters.trio")
    with pytest.raises(ImportError, match=r"pip install 'smtp-sansio\[trio\]'"):
        importlib.import_module("smtp_sansio.adapters.trio")


# --- event loops only: many connections, cancellation, shared clients -------------------------------


def message_ids(server) -> list[str]:
    return [email.message_from_bytes(m.content)["Message-ID"] for m in server.messages]


@pytest.mark.anyio
async def test_200_simultaneous_connections(async_adapter, certs):
    # Every client connects, waits until all 200 are connected, then sends its message and quits.
    count = 200
    context = certs.client_context()  # one context for all: making one reads the CA store
    connected = 0
    everyone_connected = anyio.Event()
    results = []

    async def one(number: int) -> None:
        nonlocal connected
        client = async_adapter.SMTPClient(
            LOOPBACK, server.port, tls="starttls", ssl_context=context, local_hostname="c.test", timeout=60
        )
        async with client:
            connected += 1
            if connected == count:
                everyone_connected.set()
            await everyone_connected.wait()
            message = make_message(subject=f"message {number}")
            message["Message-ID"] = f"<{number}@concurrency.test>"
            results.append(await client.send_message(message))

    with running_smtpd(certs=certs, starttls=True, backlog=count) as server:
        tasks_before = len(anyio.get_running_tasks())
        async with anyio.create_task_group() as group:
            for number in range(count):
                group.start_soon(one, number)
        assert len(anyio.get_running_tasks()) == tasks_before
        assert client_sockets(server.port) == []
        assert len(results) == count
        assert sorted(message_ids(server)) == sorted(f"<{n}@concurrency.test>" for n in range(count))
        assert server.commands().count("STARTTLS") == count


@pytest.mark.anyio
@pytest.mark.parametrize("interruption", ["cancelled", "timeout"])
async def test_cancellation_or_timeout_closes_the_connection(async_adapter, scripted_server, interruption):
    server = scripted_server(rules=[Rule(prefix=b"MAIL", then="silent"), *ESMTP_RULES])
    tasks_before = len(anyio.get_running_tasks())
    timeout = {"mail": 0.3} if interruption == "timeout" else 30
    client = async_adapter.SMTPClient(LOOPBACK, server.port, timeout=timeout, **PLAIN_OPTIONS)
    await client.connect()
    assert len(client_sockets(server.port)) == 1
    if interruption == "timeout":
        with pytest.raises(SMTPTimeoutError):
            await client.send_message(make_message())
    else:
        with anyio.move_on_after(0.3) as scope:
            await client.send_message(make_message())
        assert scope.cancelled_caught
    # The connection was closed before the exception left the client, and nothing goes on.
    assert client_sockets(server.port) == []
    assert len(anyio.get_running_tasks()) == tasks_before
    with pytest.raises(LocalProtocolError, match="no longer usable after"):
        await client.send_message(make_message())
    with pytest.raises(LocalProtocolError, match="already closed"):
        await client.connect()
    await client.close()
    server.stop()
    assert not server.received(b"DATA")


@pytest.mark.anyio
async def test_tasks_sharing_a_client_take_turns(async_adapter, smtpd_factory):
    server = smtpd_factory()
    results = {}
    async with async_adapter.SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test") as client:

        async def send(number: int) -> None:
            results[number] = await client.send_message(make_message(subject=f"task {number}"))

        async with anyio.create_task_group() as group:
            for number in range(5):
                group.start_soon(send, number)
    assert sorted(results) == list(range(5))
    subjects = sorted(email.message_from_bytes(m.content)["Subject"] for m in server.messages)
    assert subjects == [f"task {number}" for number in range(5)]
    commands = [c for c in server.commands() if c in {"EHLO", "MAIL", "RCPT", "DATA", "QUIT"}]
    assert commands == ["EHLO", *["MAIL", "RCPT", "DATA"] * 5, "QUIT"]


@pytest.mark.anyio
async def test_close_from_another_task_ends_a_waiting_operation(async_adapter, scripted_server):
    server = scripted_server(rules=[Rule(prefix=b"MAIL", then="silent"), *ESMTP_RULES])
    client = async_adapter.SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test", timeout=30)
    await client.connect()

    async def send() -> None:
        with pytest.raises(LocalProtocolError, match="closed by close"):
            await client.send_message(make_message())

    async with anyio.create_task_group() as group:
        group.start_soon(send)
        with anyio.fail_after(30):
            while not server.received(b"MAIL"):
                await anyio.sleep(0.01)
        await client.close()
    assert client_sockets(server.port) == []
    with pytest.raises(LocalProtocolError, match="is closed"):
        await client.send_message(make_message())


# --- streamed messages, batches, BDAT and DSN (aiosmtpd, a discarding server, Postfix) --------------

SENDER = "alice@example.org"


def raw_message(recipient: str, body: bytes = b"Streamed body.\n", subject: str = "streamed") -> bytes:
    header = b"From: %s\nTo: %s\nSubject: %s\n\n" % (SENDER.encode(), recipient.encode(), subject.encode())
    return header + body


class ReadRecorder(io.BytesIO):
    """A binary file that records the size asked for by each read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.sizes.append(-1 if size is None else size)
        return super().read(size)


def test_a_binary_file_is_read_in_chunks(adapter, smtpd_factory):
    server = smtpd_factory()
    data = raw_message("bob@example.org", b"line of the file\n" * 200)
    file = ReadRecorder(data)
    with adapter.client(port=server.port, chunk_size=512, **PLAIN) as client:
        result = client.send_message(file, sender=SENDER, recipients=["bob@example.org"])
    assert result.accepted == ("bob@example.org",)
    [received] = server.messages
    assert received.content == data.replace(b"\n", b"\r\n")
    # Never the whole file at once: chunk_size octets per read, until the end.
    assert file.sizes and set(file.sizes) == {512}
    assert len(file.sizes) == len(data) // 512 + 2


def test_a_generator_is_sent_as_it_is_read(adapter, smtpd_factory):
    server = smtpd_factory()
    pieces = [b"From: alice@example.org\nTo: bob@", b"example.org\nSubject: gen\n\n", b".dot\n", b"end\n"]
    result = adapter.send_message(
        (piece for piece in pieces), sender=SENDER, recipients=("bob@example.org",), port=server.port, **PLAIN
    )
    assert result.accepted == ("bob@example.org",)
    [received] = server.messages
    assert received.content == b"".join(pieces).replace(b"\n", b"\r\n")


def test_a_stream_needs_sender_and_recipients(adapter, smtpd_factory, tmp_path):
    server = smtpd_factory()
    path = tmp_path / "message.eml"
    path.write_bytes(raw_message("bob@example.org"))
    with adapter.client(port=server.port, **PLAIN) as client:
        with pytest.raises(LocalProtocolError, match="give sender and recipients explicitly"):
            client.send_message(iter([b"To: bob@example.org\n\nhi\n"]))
        with path.open("rb") as file, pytest.raises(LocalProtocolError, match="sender and recipients"):
            client.send_message(file, sender=SENDER)
        with path.open("r") as text, pytest.raises(LocalProtocolError, match="binary mode"):
            client.send_message(text, sender=SENDER, recipients=["bob@example.org"])
        with pytest.raises(LocalProtocolError, match="not str"):
            client.send_message("To: bob@example.org\n\nhi\n", sender=SENDER, recipients=["bob@example.org"])
        with pytest.raises(LocalProtocolError, match="not a single string"):
            client.send_message(iter([b"x\n"]), sender=SENDER, recipients="bob@example.org")
        # Nothing was sent, and the client is still usable.
        with path.open("rb") as file:
            assert client.send_message(file, sender=SENDER, recipients=["bob@example.org"]).accepted
    assert server.commands().count("MAIL") == 1
    assert len(server.messages) == 1


def test_options_are_checked(adapter):
    invalid = ({"chunk_size": 0}, {"max_in_flight": 0}, {"pipelining": "yes"}, {"chunking": 1},
               {"lmtp": None})
    for options in invalid:
        with pytest.raises(LocalProtocolError):
            adapter.client(port=25, **PLAIN, **options)


def test_send_messages_reports_each_outcome_in_order(adapter, smtpd_factory):
    server = smtpd_factory()
    batch = [
        make_message(to="first@example.org", subject="one"),
        raw_message("refuse-me@example.org"),
        b"From: alice@example.org\nSubject: no recipients at all\n\nhi\n",
        OutgoingMessage(envelope=Envelope(sender=SENDER, recipients=("third@example.org",)),
                        data=iter([raw_message("third@example.org", subject="three")])),
    ]
    with adapter.client(port=server.port, **PLAIN) as client:
        first, refused, unsendable, third = client.send_messages(batch)
        assert client.send_messages([]) == ()
        assert client.send_message(make_message(subject="after")).accepted  # still usable
    assert first.accepted == ("first@example.org",)
    assert isinstance(refused, PermanentReplyError) and refused.code == 550
    assert isinstance(unsendable, LocalProtocolError) and "no recipients" in str(unsendable)
    assert third.accepted == ("third@example.org",)
    subjects = [email.message_from_bytes(m.content)["Subject"] for m in server.messages]
    assert subjects == ["one", "three", "after"]


def test_send_messages_after_a_421_reports_unsent_and_ends_the_client(adapter, smtpd_factory):
    server = smtpd_factory(mail_421=True)
    with adapter.client(port=server.port, **PLAIN) as client:
        outcomes = client.send_messages([make_message(subject="a"), make_message(subject="b")])
        assert len(outcomes) == 2
        assert all(isinstance(o, Unsent | TransientReplyError) for o in outcomes)
        assert isinstance(outcomes[-1], Unsent) and not outcomes[-1].data_sent
        with pytest.raises(LocalProtocolError, match="no longer usable"):
            client.send_messages([make_message()])
        assert not client.transport_open
    assert server.messages == []


def test_send_messages_needs_an_iterable_of_messages(adapter, smtpd_factory):
    server = smtpd_factory()
    client = adapter.client(port=server.port, **PLAIN)
    with client, pytest.raises(LocalProtocolError, match="not one message"):
        client.send_messages(raw_message("bob@example.org"))
    with pytest.raises(LocalProtocolError, match="not connected"):
        adapter.client(port=server.port, **PLAIN).send_messages([])


class DiscardServer:
    """An SMTP server in a thread that offers PIPELINING and CHUNKING and throws the data away.

    It reads into one preallocated buffer (``recv_into``), so that it allocates next to nothing
    while a large message goes through: tracemalloc then sees the client's memory only.
    """

    EHLO = b"250-discard.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"

    def __init__(self) -> None:
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self.received = 0  # message octets
        self._buffer = bytearray(1 << 16)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DiscardServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        self._thread.join(30)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self._listener.accept()
            with conn:
                conn.settimeout(60)
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        view = memoryview(self._buffer)
        pending = bytearray()
        conn.sendall(b"220 discard.test ESMTP\r\n")
        while True:
            end = pending.find(b"\r\n")
            if end < 0:
                count = conn.recv_into(view)
                if not count:
                    return
                pending += view[:count]
                continue
            line = bytes(pending[:end]).upper()
            del pending[: end + 2]
            if line.startswith(b"EHLO"):
                conn.sendall(self.EHLO)
            elif line.startswith(b"QUIT"):
                conn.sendall(b"221 bye\r\n")
                return
            elif line.startswith(b"DATA"):
                conn.sendall(b"354 go ahead\r\n")
                self._skip_data(conn, view, pending)
                conn.sendall(b"250 2.0.0 discarded\r\n")
            elif line.startswith(b"BDAT"):
                size = int(line.split()[1])
                taken = min(size, len(pending))
                del pending[:taken]
                while taken < size:
                    count = conn.recv_into(view, min(len(view), size - taken))
                    if not count:
                        return
                    taken += count
                self.received += size
                conn.sendall(b"250 2.0.0 discarded\r\n" if line.endswith(b"LAST") else b"250 2.0.0 more\r\n")
            else:
                conn.sendall(b"250 2.0.0 ok\r\n")

    def _skip_data(self, conn: socket.socket, view: memoryview, pending: bytearray) -> None:
        # Up to CRLF.CRLF, keeping only the last four octets across reads.
        tail = bytearray(pending)
        pending.clear()
        while True:
            end = tail.find(b"\r\n.\r\n")
            if end >= 0 or tail.startswith(b".\r\n"):
                rest = end + 5 if end >= 0 else 3
                self.received += rest
                pending += tail[rest:]
                return
            self.received += max(len(tail) - 4, 0)
            del tail[:-4]
            count = conn.recv_into(view)
            if not count:
                return
            tail += view[:count]


MIB = 1 << 20


@pytest.mark.parametrize("chunking", [True, False], ids=["BDAT", "DATA"])
def test_a_large_streamed_message_needs_little_memory(adapter, chunking):
    block = b"".join(b"%075d\r\n" % n for n in range(800))  # 62.5 KiB of 77-octet lines
    count = 20 * MIB // len(block)
    with DiscardServer() as server, adapter.client(port=server.port, chunking=chunking, **PLAIN) as client:
        header = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: large\r\n\r\n"
        chunks = itertools.chain([header], itertools.repeat(block, count))
        tracemalloc.start()
        try:
            result = client.send_message(chunks, sender=SENDER, recipients=["bob@example.org"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.accepted == ("bob@example.org",)
    assert server.received >= count * len(block)
    # A bound on what the client held while sending 20 MiB (the server allocates almost nothing).
    assert peak < 8 * MIB


#: aiosmtpd's LMTP server, answering per recipient ("full-" local parts are refused).
lmtp_server = test_postfix_esmtp.lmtp_server


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # MAIL, both RCPTs and DATA written before the first reply ...
        ({"pipelining": True}, "CCCCSSSS"),
        # ... or each waiting for its reply: pipelining off, or one command in flight at most.
        ({"pipelining": False}, "CSCSCSCS"),
        ({"max_in_flight": 1}, "CSCSCSCS"),
        ({"max_in_flight": 2}, "CCSCSCSS"),
    ],
)
def test_pipelining_can_be_switched_off_or_bounded(adapter, caplog, options, expected):
    caplog.set_level(logging.INFO, logger="smtp_sansio.trace")
    recipients = ["a@example.org", "b@example.org"]
    with DiscardServer() as server:
        result = adapter.send_message(raw_message("x@example.org"), recipients=recipients, chunking=False,
                                      trace=True, port=server.port, **PLAIN, **options)
    assert result.accepted == tuple(recipients)
    lines = [r.getMessage() for r in caplog.records if r.name == "smtp_sansio.trace"]
    start = next(i for i, line in enumerate(lines) if line.startswith("C: MAIL"))
    sides = "".join(line[0] for line in lines[start : start + 8])
    assert sides == expected


def test_lmtp_option(adapter, lmtp_server):
    port, handler = lmtp_server
    recipients = ["a@example.org", "full-b@example.org"]
    result = adapter.send_message(raw_message("a@example.org"), recipients=recipients, lmtp=True, port=port,
                                  **PLAIN)
    assert result.accepted == ("a@example.org",)
    assert result.refused["full-b@example.org"].code == 552
    assert handler.messages[0][0] == ["a@example.org"]


# --- the same against Postfix: BDAT (the default when offered), batches, DSN ------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.org"


POSTFIX_OPTIONS = {"tls": "none", "local_hostname": "client.test", "timeout": 20}


@pytest.mark.postfix
def test_bdat_from_a_file_arrives_intact_at_postfix(adapter, postfix):
    recipient = unique("hold")
    body = b".leading dot\n..two dots\n.\n" + b"a line of the body\n" * 40
    file = io.BytesIO(raw_message(recipient, body))
    with adapter.client(postfix.host, postfix.smtp_port, chunk_size=256, **POSTFIX_OPTIONS) as client:
        assert "CHUNKING" in client.capabilities
        result = client.send_message(file, sender=SENDER, recipients=[recipient])
    queue_id = queue_id_of(result.reply.text)
    _, _, stored = postfix.pop_held_message(queue_id).partition(b"\n\n")
    assert stored == body  # not dot-stuffed: BDAT counts octets
    counts = postfix.queue_connection(queue_id)
    assert int(counts["bdat"]) > 3 and "data" not in counts


@pytest.mark.postfix
def test_a_batch_pipelined_to_postfix_with_one_refused(adapter, postfix):
    recipients = [unique("first"), unique("refuse"), unique("third"), unique("fourth")]
    batch = [raw_message(r) for r in recipients[:3]]
    batch.append(OutgoingMessage(envelope=Envelope(sender=SENDER, recipients=(recipients[3],)),
                                 data=(piece for piece in [raw_message(recipients[3])])))
    with adapter.client(postfix.host, postfix.smtp_port, **POSTFIX_OPTIONS) as client:
        first, refused, third, fourth = client.send_messages(batch)
    assert isinstance(refused, PermanentReplyError) and refused.code == 550
    assert [o.accepted for o in (first, third, fourth)] == [(r,) for r in (recipients[0], *recipients[2:])]
    queue_ids = [queue_id_of(o.reply.text) for o in (first, third, fourth)]
    for queue_id in queue_ids:
        postfix.wait_for_delivery(queue_id, 1)
    counts = postfix.queue_connection(queue_ids[0])
    # One connection; nothing sent for the refused message but an RSET.
    assert (counts["mail"], counts["rcpt"], counts["bdat"], counts["rset"]) == ("4", "3/4", "3", "1")


@pytest.mark.postfix
def test_dsn_reaches_postfix(adapter, postfix):
    recipient = unique("hold")
    dsn = Dsn(notify=("FAILURE", "DELAY"), ret="FULL", envid="batch 7", orcpt={recipient: "orig@example.org"})
    result = adapter.send_message(raw_message(recipient), dsn=dsn, host=postfix.host, port=postfix.smtp_port,
                                  **POSTFIX_OPTIONS)
    queue_id = queue_id_of(result.reply.text)
    config = ["-c", str(postfix.config_directory)]
    shown = subprocess.run(["/usr/sbin/postcat", *config, "-e", "-q", queue_id],
                           capture_output=True, check=True, text=True)
    postfix.pop_held_message(queue_id)
    assert "named_attribute: envelope_id=batch 7\n" in shown.stdout
    assert "named_attribute: dsn_orig_rcpt=rfc822;orig@example.org\n" in shown.stdout
    assert "named_attribute: ret_flags=1\n" in shown.stdout  # DSN_RET_FULL
    assert "named_attribute: notify_flags=12\n" in shown.stdout  # FAILURE (4) | DELAY (8)


# --- the offline queue (Emacs' smtpmail-queue-mail) -----------------------------------------------


def test_queue_option_stores_instead_of_sending(adapter, tmp_path, smtpd_factory):
    server = smtpd_factory()
    queue_dir = tmp_path / "queue"
    message = make_message(bcc="hidden@example.org")
    # The port of a live server: were the message sent instead of queued, the server would see it.
    queued = adapter.send_message(message, queue=queue_dir, port=server.port, **PLAIN)
    assert isinstance(queued, Queued)
    assert queued.directory == str(queue_dir)
    assert server.commands() == []
    [entry] = list_queue(queue_dir)
    assert entry.id == queued.id
    assert entry.sender == "alice@example.org"
    assert set(entry.recipients) == {"bob@example.org", "hidden@example.org"}
    _, data = read_entry(queue_dir, queued.id)
    assert b"hidden@example.org" not in data  # Bcc is removed when queued, as when sent

    report = flush_queue(queue_dir, port=server.port, **PLAIN)
    assert report.sent == [queued.id]
    assert list_queue(queue_dir) == []
    assert len(server.messages) == 1
    assert set(server.messages[0].rcpt_tos) == {"bob@example.org", "hidden@example.org"}


def test_queue_option_expands_the_home_directory(adapter, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    queued = adapter.send_message(raw_message("bob@example.org"), queue="~/outbox", **PLAIN)
    assert queued.directory == str(tmp_path / "outbox")
    assert [entry.id for entry in list_queue(tmp_path / "outbox")] == [queued.id]


def test_queue_option_refuses_what_it_cannot_keep(adapter, tmp_path):
    queue_dir = tmp_path / "queue"
    message = raw_message("bob@example.org")
    for extra in ({"dsn": Dsn(notify=("FAILURE",))}, {"requiretls": True}, {"body": "8BITMIME"}):
        with pytest.raises(LocalProtocolError, match="not kept in the queue"):
            adapter.send_message(message, queue=queue_dir, **PLAIN, **extra)
    with pytest.raises(LocalProtocolError, match=r"must be an email\.message\.Message or bytes"):
        adapter.send_message(iter([message]), sender=SENDER, recipients=["bob@example.org"], queue=queue_dir,
                             **PLAIN)
    with pytest.raises(LocalProtocolError):
        adapter.send_message(b"Subject: no addresses\n\nhi\n", queue=queue_dir, **PLAIN)
    assert not queue_dir.exists() or list_queue(queue_dir) == []


def test_password_and_token_together_are_refused_when_the_client_is_made(adapter):
    from smtp_sansio.adapters import CredentialsError as PublicCredentialsError

    assert PublicCredentialsError is CredentialsError
    with pytest.raises(CredentialsError, match="not both"):
        adapter.client(port=25, username="alice", password="pw", oauth_token="tok", **PLAIN)
