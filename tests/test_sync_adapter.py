"""The blocking adapter against real servers on loopback (aiosmtpd, and scripted servers)."""

from __future__ import annotations

import logging
import socket
from email.message import EmailMessage

import pytest
from servers import ESMTP_RULES, LOOPBACK, Rule

from smtp_sansio import (
    LocalProtocolError,
    PermanentReplyError,
    SecurityError,
    SMTPConnectError,
    SMTPTimeoutError,
    TransientReplyError,
)
from smtp_sansio.adapters._options import (
    DEFAULT_HOST,
    address_literal,
    resolve_host,
    resolve_port,
    resolve_server_options,
)
from smtp_sansio.adapters.sync import SMTPClient, send_message


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


# --- TLS modes -------------------------------------------------------------------------------------


def test_plain_delivery(smtpd_factory):
    server = smtpd_factory()
    result = send_message(
        make_message(), host=LOOPBACK, port=server.port, tls="none", local_hostname="c.test"
    )
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


def test_bytes_message(smtpd_factory):
    server = smtpd_factory()
    data = b"From: a@example.org\nTo: b@example.org\nSubject: raw\n\n.leading dot\nend\n"
    send_message(data, host=LOOPBACK, port=server.port, tls="none", local_hostname="c.test")
    [received] = server.messages
    assert received.rcpt_tos == ("b@example.org",)
    assert (
        received.content
        == b"From: a@example.org\r\nTo: b@example.org\r\nSubject: raw\r\n\r\n.leading dot\r\nend\r\n"
    )


def test_starttls_required_works(smtpd_factory, tls_options):
    server = smtpd_factory(require_starttls=True)
    result = send_message(make_message(), port=server.port, **tls_options)
    assert result.accepted == ("bob@example.org",)
    assert len(server.messages) == 1
    commands = server.commands()
    assert commands.index("STARTTLS") < commands.index("MAIL")
    # RFC 3207 section 4.2: the client must greet again after the handshake.
    assert commands[: commands.index("MAIL")] == ["EHLO", "STARTTLS", "EHLO"]


def test_starttls_verifies_dns_name(smtpd_factory, tls_options):
    server = smtpd_factory(starttls=True)
    tls_options["host"] = "localhost"
    send_message(make_message(), port=server.port, **tls_options)
    assert len(server.messages) == 1


def test_starttls_stripped_is_a_security_error(smtpd_factory, tls_options):
    server = smtpd_factory()  # no STARTTLS offered
    with pytest.raises(SecurityError, match=r"STARTTLS|TLS"):
        send_message(make_message(), port=server.port, **tls_options)
    # Nothing but the greeting and a polite QUIT: no MAIL, no AUTH, no message.
    assert server.commands() in (["EHLO"], ["EHLO", "QUIT"])
    assert server.messages == []


def test_implicit_tls(smtpd_factory, tls_options):
    server = smtpd_factory(implicit_tls=True)
    result = send_message(make_message(), port=server.port, tls="implicit", **tls_options)
    assert result.accepted == ("bob@example.org",)
    assert "STARTTLS" not in server.commands()
    assert len(server.messages) == 1


def test_opportunistic_uses_starttls_when_offered(smtpd_factory, tls_options):
    server = smtpd_factory(starttls=True)
    send_message(make_message(), port=server.port, tls="opportunistic", **tls_options)
    assert "STARTTLS" in server.commands()
    assert len(server.messages) == 1


def test_opportunistic_falls_back_to_plaintext(smtpd_factory, tls_options):
    server = smtpd_factory()
    send_message(make_message(), port=server.port, tls="opportunistic", **tls_options)
    assert "STARTTLS" not in server.commands()
    assert len(server.messages) == 1


def test_no_tls_never_starts_tls_even_when_offered(smtpd_factory):
    server = smtpd_factory(starttls=True)
    send_message(make_message(), host=LOOPBACK, port=server.port, tls="none", local_hostname="c.test")
    assert "STARTTLS" not in server.commands()
    assert len(server.messages) == 1


# --- certificates ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_unknown_ca_is_refused(smtpd_factory, certs, tls_options, tls):
    server = smtpd_factory(
        starttls=tls == "starttls", implicit_tls=tls == "implicit", server_cert=certs.untrusted_server
    )
    with pytest.raises(SecurityError, match=r"127\.0\.0\.1") as info:
        send_message(make_message(), port=server.port, tls=tls, **tls_options)
    assert "certificate" in str(info.value)
    assert server.messages == []
    assert "MAIL" not in server.commands()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_wrong_host_name_is_refused(smtpd_factory, certs, tls_options, tls):
    server = smtpd_factory(
        starttls=tls == "starttls", implicit_tls=tls == "implicit", server_cert=certs.wrong_host
    )
    with pytest.raises(SecurityError, match="certificate"):
        send_message(make_message(), port=server.port, tls=tls, **tls_options)
    assert server.messages == []


def test_default_context_does_not_trust_the_test_ca(smtpd_factory):
    server = smtpd_factory(starttls=True)
    with pytest.raises(SecurityError):
        send_message(make_message(), host=LOOPBACK, port=server.port, local_hostname="c.test")
    assert server.messages == []


# --- options ---------------------------------------------------------------------------------------


def test_verb_accepted(smtpd_factory):
    server = smtpd_factory(verb=True)
    send_message(
        make_message(), host=LOOPBACK, port=server.port, tls="none", verb=True, local_hostname="c.test"
    )
    commands = server.commands()
    assert "VERB" in commands
    assert commands.index("VERB") < commands.index("MAIL")
    assert len(server.messages) == 1


def test_verb_refused_is_ignored(smtpd_factory):
    server = smtpd_factory(verb=False)  # aiosmtpd answers VERB with 500
    send_message(
        make_message(), host=LOOPBACK, port=server.port, tls="none", verb=True, local_hostname="c.test"
    )
    assert "VERB" in server.commands()
    assert len(server.messages) == 1


def test_no_verb_by_default(smtpd_factory):
    server = smtpd_factory(verb=True)
    send_message(make_message(), host=LOOPBACK, port=server.port, tls="none", local_hostname="c.test")
    assert "VERB" not in server.commands()


def test_sendto_domain(smtpd_factory):
    server = smtpd_factory()
    result = send_message(
        make_message(),
        recipients=["bob", "carol@other.example"],
        host=LOOPBACK,
        port=server.port,
        tls="none",
        sendto_domain="example.org",
        local_hostname="c.test",
    )
    [received] = server.messages
    assert received.rcpt_tos == ("bob@example.org", "carol@other.example")
    assert "bob@example.org" in result.accepted


def test_bcc_is_stripped_but_receives(smtpd_factory):
    server = smtpd_factory()
    message = make_message(Cc="dave@example.org", Bcc="carol@example.org")
    send_message(message, host=LOOPBACK, port=server.port, tls="none", local_hostname="c.test")
    [received] = server.messages
    assert set(received.rcpt_tos) == {"bob@example.org", "dave@example.org", "carol@example.org"}
    assert b"bcc" not in received.content.lower()
    assert b"carol" not in received.content
    assert message["Bcc"] == "carol@example.org"  # the caller's message is untouched


def test_explicit_envelope(smtpd_factory):
    server = smtpd_factory()
    send_message(
        make_message(),
        sender="bounces@example.org",
        recipients=["x@example.net"],
        host=LOOPBACK,
        port=server.port,
        tls="none",
        local_hostname="c.test",
    )
    [received] = server.messages
    assert received.mail_from == "bounces@example.org"
    assert received.rcpt_tos == ("x@example.net",)


def test_smtpserver_environment_variable(smtpd_factory, monkeypatch):
    server = smtpd_factory()
    monkeypatch.setenv("SMTPSERVER", LOOPBACK)
    client = SMTPClient(port=server.port, tls="none", local_hostname="c.test")
    assert client.host == LOOPBACK
    with client:
        client.send_message(make_message())
    assert len(server.messages) == 1


def test_resolve_host():
    assert resolve_host("mail.example.org", {"SMTPSERVER": "other"}) == "mail.example.org"
    assert resolve_host(None, {"SMTPSERVER": "env.example.org"}) == "env.example.org"
    assert resolve_host(None, {"SMTPSERVER": ""}) == DEFAULT_HOST == "localhost"
    assert resolve_host(None, {}) == "localhost"
    assert resolve_host("[::1]", {}) == "::1"
    for bad in ("", "a b", "mail\r\nx", "a\x00"):
        with pytest.raises(LocalProtocolError):
            resolve_host(bad, {})


def test_resolve_port():
    assert resolve_port(None, "starttls") == 587
    assert resolve_port(None, "implicit") == 465
    assert resolve_port(None, "opportunistic") == 25
    assert resolve_port(None, "none") == 25
    assert resolve_port(2525, "starttls") == 2525
    assert resolve_port("2525", "starttls") == 2525
    for bad in (0, -1, 65536, "70000", True, "no-such-service-here", 2.5):
        with pytest.raises(LocalProtocolError):
            resolve_port(bad, "starttls")


@pytest.mark.parametrize(("name", "number"), [("smtp", 25), ("submission", 587), ("submissions", 465)])
def test_resolve_port_service_names(name, number):
    try:
        expected = socket.getservbyname(name, "tcp")
    except OSError:
        pytest.skip(f"the services database of this machine has no {name!r}")
    assert expected == number
    assert resolve_port(name, "starttls") == number


def test_invalid_options_fail_before_connecting():
    with pytest.raises(LocalProtocolError, match="tls"):
        SMTPClient(LOOPBACK, 25, tls="starttls-please")
    with pytest.raises(LocalProtocolError):
        SMTPClient(LOOPBACK, "not-a-service-name")
    with pytest.raises(LocalProtocolError):
        SMTPClient(LOOPBACK, 25, trace="yes")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        SMTPClient(LOOPBACK, 25, ssl_context="ctx")  # type: ignore[arg-type]


def test_tls_verified_follows_the_context(certs):
    strict = resolve_server_options(host="h", port=1, tls="starttls", ssl_context=None, local_hostname="c")
    assert strict.tls_verified
    lax = certs.client_context()
    lax.check_hostname = False
    options = resolve_server_options(host="h", port=1, tls="starttls", ssl_context=lax, local_hostname="c")
    assert not options.tls_verified


def test_local_hostname_default(smtpd_factory, monkeypatch):
    # The machine's FQDN when it is a valid dotted domain, else the address literal of the local
    # end of the connection (RFC 5321 section 4.1.3), as smtplib does.
    server = smtpd_factory()
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "client.example.org")
    send_message(make_message(), host=LOOPBACK, port=server.port, tls="none")
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "localhost")
    send_message(make_message(), host=LOOPBACK, port=server.port, tls="none")
    monkeypatch.setattr(socket, "getfqdn", lambda *args: "under_score.example")
    send_message(make_message(), host=LOOPBACK, port=server.port, tls="none")
    ehlos = [line for line in server.lines if line.startswith(b"EHLO")]
    assert ehlos == [b"EHLO client.example.org", b"EHLO [127.0.0.1]", b"EHLO [127.0.0.1]"]


def test_address_literal():
    assert address_literal("192.0.2.1") == "[192.0.2.1]"
    assert address_literal("::1") == "[IPv6:::1]"
    assert address_literal("fe80::1%eth0") == "[IPv6:fe80::1]"


def test_invalid_local_hostname_fails_before_connecting():
    with pytest.raises(LocalProtocolError, match="local host name"):
        SMTPClient(LOOPBACK, free_port(), tls="none", local_hostname="bad name")


# --- refusals and failures -------------------------------------------------------------------------


def test_some_recipients_refused(smtpd_factory):
    server = smtpd_factory()
    result = send_message(
        make_message(),
        recipients=["ok@example.org", "refuse-me@example.org", "later@example.org"],
        host=LOOPBACK,
        port=server.port,
        tls="none",
        local_hostname="c.test",
    )
    assert result.accepted == ("ok@example.org",)
    assert set(result.refused) == {"refuse-me@example.org", "later@example.org"}
    assert result.refused["refuse-me@example.org"].code == 550
    assert result.refused["refuse-me@example.org"].enhanced_status == "5.1.1"
    assert result.refused["later@example.org"].code == 450
    assert result.refused["later@example.org"].enhanced_status == "4.2.1"
    [received] = server.messages
    assert received.rcpt_tos == ("ok@example.org",)


def test_all_recipients_refused_keeps_the_connection(smtpd_factory):
    server = smtpd_factory()
    with SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test") as client:
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


def test_421_to_mail_ends_the_client(smtpd_factory):
    server = smtpd_factory(mail_421=True)
    client = SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test")
    with client:
        with pytest.raises(TransientReplyError) as info:
            client.send_message(make_message())
        assert info.value.code == 421
        with pytest.raises(LocalProtocolError, match="no longer usable"):
            client.send_message(make_message())
    assert server.messages == []


def test_connection_refused(tls_options):
    port = free_port()
    with pytest.raises(SMTPConnectError, match=rf"cannot connect to 127\.0\.0\.1:{port}"):
        send_message(make_message(), port=port, **tls_options)


def test_greeting_timeout(scripted_server):
    server = scripted_server(greeting=None)
    client = SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test", timeout=0.3)
    with pytest.raises(SMTPTimeoutError) as info:
        client.connect()
    assert info.value.phase == "greeting"
    assert "greeting" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(LocalProtocolError, match="no longer usable"):
        client.send_message(make_message())
    client.close()  # harmless after the failure


def test_timeout_mapping_applies_per_phase(scripted_server):
    rules = [Rule(prefix=b"MAIL", then="silent"), *ESMTP_RULES]
    server = scripted_server(rules=rules)
    client = SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test", timeout={"mail": 0.3})
    with client:
        with pytest.raises(SMTPTimeoutError) as info:
            client.send_message(make_message())
        assert info.value.phase == "mail"
        with pytest.raises(LocalProtocolError):
            client.send_message(make_message())
    assert not server.received(b"DATA")


def test_context_manager_closes_on_error(smtpd_factory):
    server = smtpd_factory()
    with (
        pytest.raises(RuntimeError),
        SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test") as c,
    ):
        raise RuntimeError("boom")
    assert c._sock is None
    assert server.commands() == ["EHLO", "QUIT"]


# --- reuse -----------------------------------------------------------------------------------------


def test_many_messages_over_one_connection(smtpd_factory, tls_options):
    server = smtpd_factory(starttls=True)
    with SMTPClient(port=server.port, **tls_options) as client:
        for number in range(5):
            result = client.send_message(make_message(subject=f"message {number}"))
            assert result.accepted == ("bob@example.org",)
    assert [m.content.count(b"Subject: message") for m in server.messages] == [1] * 5
    for number, received in enumerate(server.messages):
        assert f"Subject: message {number}".encode() in received.content
    commands = server.commands()
    assert commands.count("STARTTLS") == 1
    assert commands.count("QUIT") == 1


def test_client_lifecycle_errors(smtpd_factory):
    server = smtpd_factory()
    client = SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test")
    with pytest.raises(LocalProtocolError, match="not connected"):
        client.send_message(make_message())
    client.connect()
    with pytest.raises(LocalProtocolError, match="already"):
        client.connect()
    client.quit()
    with pytest.raises(LocalProtocolError, match="closed"):
        client.send_message(make_message())
    client.quit()  # a second quit does nothing
    client.close()
    assert server.commands() == ["EHLO", "QUIT"]


def test_invalid_address_sends_nothing(smtpd_factory):
    server = smtpd_factory()
    with SMTPClient(LOOPBACK, server.port, tls="none", local_hostname="c.test") as client:
        with pytest.raises(LocalProtocolError):
            client.send_message(make_message(), recipients=["bob@example.org\r\nRCPT TO:<x@evil.test>"])
        # Nothing was sent for it, and the connection is still good.
        client.send_message(make_message())
    assert len(server.messages) == 1
    assert not any(b"evil" in line for line in server.lines)


# --- trace -----------------------------------------------------------------------------------------


def test_trace_to_the_default_logger(smtpd_factory, caplog):
    server = smtpd_factory()
    caplog.set_level(logging.INFO, logger="smtp_sansio.trace")
    send_message(
        make_message(), host=LOOPBACK, port=server.port, tls="none", trace=True, local_hostname="c.test"
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "smtp_sansio.trace"]
    assert any(line.startswith("S: 220") for line in lines)
    assert "C: EHLO c.test" in lines
    assert any(line.startswith("C: MAIL FROM:<alice@example.org>") for line in lines)
    assert any(line.startswith("S: 250") for line in lines)
    assert lines.index("C: EHLO c.test") > 0


def test_trace_to_a_given_logger(smtpd_factory, caplog):
    server = smtpd_factory()
    logger = logging.getLogger("test.smtp.trace")
    caplog.set_level(logging.INFO, logger="test.smtp.trace")
    send_message(
        make_message(), host=LOOPBACK, port=server.port, tls="none", trace=logger, local_hostname="c.test"
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "test.smtp.trace"]
    assert "C: EHLO c.test" in lines
    assert not [r for r in caplog.records if r.name == "smtp_sansio.trace"]


def test_no_trace_by_default(smtpd_factory, caplog):
    server = smtpd_factory()
    caplog.set_level(logging.DEBUG)
    send_message(make_message(), host=LOOPBACK, port=server.port, tls="none", local_hostname="c.test")
    assert not [r for r in caplog.records if r.name.startswith("smtp_sansio")]


def test_starttls_trace_is_readable(smtpd_factory, tls_options, caplog):
    server = smtpd_factory(starttls=True)
    caplog.set_level(logging.INFO, logger="smtp_sansio.trace")
    send_message(make_message(), port=server.port, trace=True, **tls_options)
    lines = [r.getMessage() for r in caplog.records if r.name == "smtp_sansio.trace"]
    assert "C: STARTTLS" in lines
    assert lines.count("C: EHLO client.test") == 2
    assert all(line[:3] in ("C: ", "S: ", "*: ") or line.startswith("* ") for line in lines)
