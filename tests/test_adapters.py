"""Every adapter (sync, asyncio, trio) against real servers on loopback: aiosmtpd and scripted servers.

Each test of the first part runs once per adapter through the ``adapter`` fixture of adapters.py,
which makes the async adapters look blocking.  The last part is for what only an event loop has --
many connections at once, cancellation, tasks sharing a client -- and runs as anyio tests on asyncio
and trio.
"""

from __future__ import annotations

import base64
import email
import importlib
import logging
import socket
import ssl
import sys
import threading
from email.message import EmailMessage

import anyio
import pytest
from servers import ESMTP_RULES, LOOPBACK, Rule, ehlo_reply, running_smtpd

from adapters import client_sockets
from smtp_sansio import (
    AuthenticationError,
    LocalProtocolError,
    PermanentReplyError,
    SecurityError,
    SMTPConnectError,
    SMTPTimeoutError,
    TransientReplyError,
)
from smtp_sansio.adapters._netrc import CredentialsError


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
    with pytest.raises(LocalProtocolError, match="not connected"):
        client.send_message(make_message())
    client.connect()
    with pytest.raises(LocalProtocolError, match="already"):
        client.connect()
    client.quit()
    assert not client.transport_open
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
