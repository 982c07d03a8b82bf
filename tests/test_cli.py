"""The ``smtp-sansio`` command line, in-process and as a real process, against loopback servers."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from servers import ESMTP_RULES, LOOPBACK

from smtp_sansio.adapters import cli

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Cc: dave@example.org\r\n"
    b"Bcc: carol@example.org\r\n"
    b"Subject: from the command line\r\n"
    b"\r\n"
    b"Hello.\r\n"
    b".a dotted line\r\n"
)


@pytest.fixture
def run(monkeypatch, capsys):
    """Run ``main(argv)`` with ``stdin`` as standard input; return (status, stdout, stderr)."""

    def run(argv: list[str], stdin: bytes = MESSAGE) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        status = cli.main(argv)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def plain(port: int, *args: str) -> list[str]:
    return [
        "send",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--tls",
        "none",
        "--local-domain",
        "c.test",
        *args,
    ]


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("smtp-sansio: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# --- sending ---------------------------------------------------------------------------------------


def test_recipients_from_arguments(smtpd_factory, run):
    server = smtpd_factory()
    status, out, err = run(plain(server.port, "-f", "sender@example.org", "x@example.net", "y@example.net"))
    assert (status, out, err) == (0, "", "")
    [received] = server.messages
    assert received.mail_from == "sender@example.org"
    assert received.rcpt_tos == ("x@example.net", "y@example.net")  # not the header addresses
    assert b"Bcc" not in received.content
    assert b"\r\n.a dotted line\r\n" in received.content


def test_git_send_email_style(smtpd_factory, run):
    # git send-email runs: sendmail -i [-f FROM] RCPT...
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "-i", "-f", "me@example.org", "bob@example.org"))
    assert status == 0, err
    assert server.messages[0].mail_from == "me@example.org"


def test_mutt_style(smtpd_factory, run):
    # mutt runs: sendmail -oem -oi [-f FROM] -- RCPT...
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "-oem", "-oi", "-fme@example.org", "--", "bob@example.org"))
    assert status == 0, err
    assert server.messages[0].mail_from == "me@example.org"
    assert server.messages[0].rcpt_tos == ("bob@example.org",)


def test_options_after_recipients(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run([*plain(server.port), "bob@example.org", "-f", "me@example.org", "-i"])
    assert status == 0, err
    assert server.messages[0].mail_from == "me@example.org"


def test_sender_from_headers(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "bob@example.org"))
    assert status == 0, err
    assert server.messages[0].mail_from == "alice@example.org"


def test_dash_t_takes_recipients_from_headers_plus_arguments(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "-t", "extra@example.net"))
    assert status == 0, err
    [received] = server.messages
    assert received.rcpt_tos == (
        "bob@example.org",
        "dave@example.org",
        "carol@example.org",
        "extra@example.net",
    )
    assert b"carol" not in received.content


def test_dash_t_without_header_recipients_uses_arguments(smtpd_factory, run):
    server = smtpd_factory()
    message = b"From: alice@example.org\r\nSubject: no To\r\n\r\nbody\r\n"
    status, _, err = run(plain(server.port, "-t", "only@example.net"), stdin=message)
    assert status == 0, err
    assert server.messages[0].rcpt_tos == ("only@example.net",)


def test_sendto_domain(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "--sendto-domain", "example.org", "bob"))
    assert status == 0, err
    assert server.messages[0].rcpt_tos == ("bob@example.org",)


def test_starttls_with_cafile(smtpd_factory, certs, run, tmp_path):
    server = smtpd_factory(require_starttls=True)
    cafile = certs.write_ca(tmp_path / "ca.pem")
    argv = ["send", "--host", LOOPBACK, "--port", str(server.port), "--cafile", str(cafile)]
    status, _, err = run([*argv, "--local-domain", "c.test", "bob@example.org"])
    assert status == 0, err
    assert len(server.messages) == 1


def test_trace_goes_to_stderr(smtpd_factory, run):
    server = smtpd_factory()
    status, out, err = run(plain(server.port, "--trace", "bob@example.org"))
    assert status == 0
    assert out == ""
    lines = err.splitlines()
    assert any(line.startswith("S: 220") for line in lines)
    assert "C: EHLO c.test" in lines
    assert any(line.startswith("C: RCPT TO:<bob@example.org>") for line in lines)


def test_verb_option(smtpd_factory, run):
    server = smtpd_factory(verb=True)
    status, _, err = run(plain(server.port, "--verb", "bob@example.org"))
    assert status == 0, err
    assert "VERB" in server.commands()


def test_partial_refusal_warns_and_succeeds(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "ok@example.org", "refuse-me@example.org", "later@example.org"))
    assert status == 0
    lines = err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("smtp-sansio: warning: recipient ") for line in lines)
    assert any("refuse-me@example.org" in line and "550 5.1.1" in line for line in lines)
    assert any("later@example.org" in line and "450 4.2.1" in line for line in lines)
    assert server.messages[0].rcpt_tos == ("ok@example.org",)


# --- exit statuses ---------------------------------------------------------------------------------


def test_all_refused_is_67(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "refuse1@example.org", "refuse2@example.org"))
    assert status == 67
    assert_one_error_line(err, "refuse1@example.org", "refuse2@example.org", "550")
    assert server.messages == []


@pytest.mark.parametrize(
    "recipient",
    ["bob@example.org\r\nRCPT TO:<evil@example.net>", "bob@example.org\nx", "b\u00f8b@example.org"],
    ids=["crlf", "lf", "non-ascii"],
)
def test_bad_address_is_65(scripted_server, run, recipient):
    server = scripted_server(rules=ESMTP_RULES)  # no SMTPUTF8
    status, _, err = run(plain(server.port, "-f", "me@example.org", recipient))
    assert status == 65
    assert_one_error_line(err)
    server.stop()
    assert not server.received(b"RCPT")
    assert not any(b"evil" in line for line in server.lines)


def test_no_sender_is_65(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "bob@example.org"), stdin=b"Subject: anonymous\r\n\r\nbody\r\n")
    assert status == 65
    assert_one_error_line(err, "sender")
    assert server.commands() == []  # nothing was even connected for


def test_dash_t_without_any_recipient_is_65(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(plain(server.port, "-t"), stdin=b"From: a@example.org\r\n\r\nbody\r\n")
    assert status == 65
    assert_one_error_line(err, "recipient")


def test_unreachable_is_75(run):
    status, _, err = run(plain(free_port(), "bob@example.org"))
    assert status == 75
    assert_one_error_line(err, "cannot connect")


def test_timeout_is_75(scripted_server, run):
    server = scripted_server(greeting=None)
    status, _, err = run(plain(server.port, "--timeout", "0.3", "bob@example.org"))
    assert status == 75
    assert_one_error_line(err, "timed out")


def test_stripped_starttls_is_77(smtpd_factory, certs, run, tmp_path):
    server = smtpd_factory()
    cafile = certs.write_ca(tmp_path / "ca.pem")
    argv = [
        "send",
        "--host",
        LOOPBACK,
        "--port",
        str(server.port),
        "--cafile",
        str(cafile),
        "bob@example.org",
    ]
    status, _, err = run(argv)
    assert status == 77
    assert_one_error_line(err)
    assert "MAIL" not in server.commands()


def test_untrusted_certificate_is_77(smtpd_factory, run):
    server = smtpd_factory(starttls=True)
    status, _, err = run(["send", "--host", LOOPBACK, "--port", str(server.port), "bob@example.org"])
    assert status == 77
    assert_one_error_line(err, "certificate")


def test_permanent_greeting_is_69(scripted_server, run):
    server = scripted_server(greeting=b"554 5.7.1 go away\r\n")
    status, _, err = run(plain(server.port, "bob@example.org"))
    assert status == 69
    assert_one_error_line(err, "554")


def test_transient_reply_is_75(smtpd_factory, run):
    server = smtpd_factory(mail_421=True)
    status, _, err = run(plain(server.port, "bob@example.org"))
    assert status == 75
    assert_one_error_line(err, "421")


def test_protocol_violation_is_76(scripted_server, run):
    server = scripted_server(greeting=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    status, _, err = run(plain(server.port, "bob@example.org"))
    assert status == 76
    assert_one_error_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["send"],  # no recipients
        ["send", "--no-such-option", "bob@example.org"],
        ["send", "-oQ/tmp", "bob@example.org"],
        ["send", "--tls", "sometimes", "bob@example.org"],
        ["send", "--port", "no-such-service", "bob@example.org"],
        ["send", "--port", "99999", "bob@example.org"],
        ["send", "--timeout", "soon", "bob@example.org"],
        ["demo", "--extra"],
    ],
)
def test_usage_errors_are_64(run, argv):
    status, _, err = run(argv)
    assert status == 64
    assert_one_error_line(err)


def test_missing_cafile_is_66(run, tmp_path):
    status, _, err = run(["send", "--cafile", str(tmp_path / "missing.pem"), "bob@example.org"])
    assert status == 66
    assert_one_error_line(err, "missing.pem")


def test_help_is_0(run):
    status, out, _ = run(["send", "--help"])
    assert status == 0
    assert "-t" in out
    assert "--sendto-domain" in out


# --- demo ------------------------------------------------------------------------------------------


def test_demo(run):
    status, out, err = run(["demo"], stdin=b"")
    assert status == 0, err
    lines = [line.strip() for line in out.splitlines()]
    assert any(line.startswith("S: 220") for line in lines)
    assert any(line.startswith("C: EHLO") for line in lines)
    assert "C: STARTTLS" in lines
    assert "| Subject: Hello from smtp-sansio" in lines
    assert "MAIL FROM:<alice@example.org>" in lines
    assert "RCPT TO:<carol@example.org>" in lines
    assert "Bcc" not in "\n".join(line for line in lines if line.startswith("|"))
    # The same message through each adapter, each with its dialogue.
    headings = [line for line in lines if line[:3] in ("1. ", "2. ", "3. ")]
    assert [heading.split(",")[1].split(":")[0].strip() for heading in headings] == [
        f"smtp_sansio.adapters.{name}" for name in ("sync", "asyncio", "trio")
    ]
    assert lines.count("C: STARTTLS") == 3
    assert lines.count("final reply: 250 2.0.0 message accepted for the demo") == 3
    assert lines.count("The server received the same envelope and message.") == 2
    assert err == ""


# --- as a process ----------------------------------------------------------------------------------


def test_python_dash_m(smtpd_factory):
    server = smtpd_factory()
    process = subprocess.run(
        [sys.executable, "-m", "smtp_sansio.adapters.cli", *plain(server.port, "-i", "bob@example.org")],
        input=MESSAGE,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert server.messages[0].rcpt_tos == ("bob@example.org",)


def test_console_script_exit_status():
    script = Path(sys.executable).with_name("smtp-sansio")
    if not script.exists():
        pytest.skip("the smtp-sansio console script is not installed next to this interpreter")
    process = subprocess.run(
        [str(script), "send", "--host", LOOPBACK, "--port", str(free_port()), "bob@example.org"],
        input=MESSAGE,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "SMTPSERVER": ""},
    )
    assert process.returncode == 75
    assert process.stderr.decode().startswith("smtp-sansio: cannot connect")
    assert b"Traceback" not in process.stderr


def test_demo_as_a_process():
    process = subprocess.run(
        [sys.executable, "-m", "smtp_sansio.adapters.cli", "demo"],
        capture_output=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert process.returncode == 0, process.stderr
    assert b"S: 220" in process.stdout
    assert process.stderr == b""
