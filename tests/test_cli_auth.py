"""``smtp-sansio send`` with authentication, in-process and as a real process.

The peers are the private Postfix of postfix.py (its submission port: STARTTLS required, Cyrus SASL,
relay only after AUTH; its log names the mechanism and user of each message) and, for what Postfix
is not set up for here (OAuth tokens, client certificates, AUTH without TLS), the aiosmtpd server
of test_adapter_auth.py, which records what it received.  Exit statuses are those of sysexits.h:
77 for security, authentication and credential failures, 64 for usage errors.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import io
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from postfix import queue_id_of
from test_adapter_auth import OAUTH_USER, USERS, AuthServer, running_auth_smtpd

from smtp_sansio.adapters import cli

MESSAGE = b"From: Alice <alice@example.org>\r\nSubject: authenticated\r\n\r\nHello.\r\n"


@pytest.fixture
def run(monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``main(argv)`` in-process with ``stdin`` as standard input; return (status, stdout, stderr).

    A question at the terminal would hang an in-process test whose runner has one: here it fails
    the test instead (the command line test that asks runs as a process without a terminal).
    """

    def no_terminal(prompt: str = "") -> str:
        raise AssertionError(f"the command asked at the terminal: {prompt!r}")

    monkeypatch.setattr(getpass, "getpass", no_terminal)

    def run(argv: list[str], stdin: bytes = MESSAGE) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        status = cli.main(argv)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def run_process(argv: list[str], stdin: bytes = MESSAGE) -> subprocess.CompletedProcess[bytes]:
    """Run the command as a real process, in a session of its own: without a controlling terminal."""
    return subprocess.run(
        [sys.executable, "-m", "smtp_sansio.adapters.cli", *argv],
        input=stdin, capture_output=True, timeout=60, check=False, start_new_session=True,
    )


@pytest.fixture
def smtpd(certs) -> Iterator[Callable[..., AuthServer]]:
    """Start aiosmtpd servers of test_adapter_auth.py (its options); all are stopped at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda **options: stack.enter_context(running_auth_smtpd(certs, **options))


@pytest.fixture
def cafile(certs, tmp_path):
    return certs.write_ca(tmp_path / "ca.pem")


def to(host: str, port: int, cafile: Any, *args: str) -> list[str]:
    """``send`` to host:port over STARTTLS verified with ``cafile``, then ``args``."""
    return ["send", "--host", host, "--port", str(port), "--cafile", str(cafile),
            "--local-domain", "client.test", "--timeout", "20", *args]


def recipient() -> str:
    return f"cli-auth-{uuid.uuid4().hex[:12]}@example.net"


def password_cmd(password: str) -> list[str]:
    return ["--password-cmd", f"printf %s {shlex.quote(password)}"]


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("smtp-sansio: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_no_secret(text: str, user: str, password: str) -> None:
    for secret in (password, base64.b64encode(password.encode()).decode(),
                   base64.b64encode(f"\0{user}\0{password}".encode()).decode()):
        assert secret not in text


def assert_sent_as(postfix, trace: str, mechanism: str, user: str) -> None:
    """Postfix logged the message of this trace as authenticated with ``mechanism`` by ``user``."""
    queue_id = queue_id_of(trace)
    postfix.wait_for_log(rf": {queue_id}: client=.*, sasl_method={re.escape(mechanism)}, "
                         rf"sasl_username={user}@{re.escape(postfix.realm)}$")
    postfix.wait_for_delivery(queue_id, 1)


# --- against Postfix ----------------------------------------------------------------------------------


@pytest.mark.postfix
def test_user_and_password_command_as_a_real_process(postfix, cafile):
    password = postfix.users["alice"]
    argv = to(postfix.host, postfix.submission_port, cafile, "--user", "alice", *password_cmd(password),
              "--trace", recipient())
    process = run_process(argv)
    err = process.stderr.decode()
    assert process.returncode == 0, err
    assert process.stdout == b""
    assert "C: AUTH SCRAM-SHA-256 <redacted>" in err  # the strongest of Postfix's mechanisms
    assert_sent_as(postfix, err, "SCRAM-SHA-256", "alice")
    assert_no_secret(err, "alice", password)


@pytest.mark.postfix
def test_the_seed_order_picks_cram_md5(postfix, cafile, run):
    password = postfix.users["bob"]
    status, out, err = run(to(postfix.host, postfix.submission_port, cafile, "--user", "bob",
                              *password_cmd(password), "--auth", "CRAM-MD5,PLAIN,LOGIN", "--trace",
                              recipient()))
    assert (status, out) == (0, ""), err
    assert "C: AUTH CRAM-MD5" in err
    assert_sent_as(postfix, err, "CRAM-MD5", "bob")
    assert_no_secret(err, "bob", password)


@pytest.mark.postfix
def test_netrc_file(postfix, cafile, run, tmp_path):
    authinfo = tmp_path / "authinfo"
    authinfo.write_text(f"machine {postfix.host} port 1 login alice password wrong\n"
                        f'machine {postfix.host} port {postfix.submission_port} login bob '
                        f'password "{postfix.users["bob"]}"\n')
    authinfo.chmod(0o600)
    status, _, err = run(to(postfix.host, postfix.submission_port, cafile, "--netrc", str(authinfo),
                            "--trace", recipient()))
    assert status == 0, err
    assert_sent_as(postfix, err, "SCRAM-SHA-256", "bob")
    assert_no_secret(err, "bob", postfix.users["bob"])


@pytest.mark.postfix
def test_netrc_without_a_file_name_reads_the_netrc_variable(postfix, cafile, run, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {postfix.host} login alice password {postfix.users['alice']}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    status, _, err = run(to(postfix.host, postfix.submission_port, cafile, "--netrc", "--trace", recipient()))
    assert status == 0, err
    assert_sent_as(postfix, err, "SCRAM-SHA-256", "alice")


@pytest.mark.postfix
def test_a_wrong_password_is_77(postfix, cafile, run):
    since = postfix.log_position()
    status, out, err = run(to(postfix.host, postfix.submission_port, cafile, "--user", "alice",
                              *password_cmd("not-Alices-password"), "--auth", "PLAIN", recipient()))
    assert (status, out) == (77, "")
    assert_one_error_line(err, "refused the credentials of alice with PLAIN", "535")
    postfix.wait_for_log(r"SASL PLAIN authentication failed", since=since)
    assert_no_secret(err, "alice", "not-Alices-password")


# --- against aiosmtpd ---------------------------------------------------------------------------------


def test_a_netrc_others_can_read_is_77_before_connecting(smtpd, cafile, run, tmp_path):
    server = smtpd()
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {server.host} login alice password {USERS['alice']}\n")
    netrc.chmod(0o644)
    status, out, err = run(to(server.host, server.port, cafile, "--netrc", str(netrc), recipient()))
    assert (status, out) == (77, "")
    assert_one_error_line(err, str(netrc), "accessible to the group or others", "chmod 600")
    assert USERS["alice"] not in err
    assert server.connections_made() == 0


def test_a_missing_password_without_a_terminal_is_one_line_not_a_hang(smtpd, cafile):
    # Standard input is the message (a pipe) and the process has no controlling terminal: there is
    # nobody to ask, and the command must say so at once (run_process gives up after 60 s).
    server = smtpd()
    process = run_process(to(server.host, server.port, cafile, "--user", "alice", recipient()))
    err = process.stderr.decode()
    assert process.returncode == 77, err
    assert_one_error_line(err, "no password for", "no terminal", "--password-cmd")
    assert process.stdout == b""
    assert server.connections_made() == 0


def test_an_unknown_mechanism_is_64(smtpd, cafile, run):
    server = smtpd()
    status, _, err = run(to(server.host, server.port, cafile, "--user", "alice",
                            *password_cmd(USERS["alice"]), "--auth", "NOPE", recipient()))
    assert status == 64
    assert_one_error_line(err, "unknown SASL mechanism 'NOPE'")
    assert server.connections_made() == 0


def test_a_client_key_without_a_certificate_is_64(run, tmp_path):
    key = tmp_path / "client.key"
    key.write_text("")
    status, _, err = run(["send", "--client-key", str(key), "bob@example.org"])
    assert status == 64
    assert_one_error_line(err, "--client-key needs --client-cert")


@pytest.mark.parametrize(
    "arguments",
    [["--password", "hunter2-Secret"], ["--password=hunter2-Secret"], ["--pass=hunter2-Secret"],
     ["--password"]],
)
def test_a_password_is_never_taken_as_an_argument(smtpd, cafile, run, arguments):
    server = smtpd()
    status, _, err = run(to(server.host, server.port, cafile, "--user", "alice", *arguments, recipient()))
    assert status == 64
    assert_one_error_line(err, "is not accepted", "--password-cmd")
    assert "hunter2" not in err  # not even repeated in the error
    assert server.connections_made() == 0


def test_the_help_offers_no_password_option(run):
    status, out, _ = run(["send", "--help"])
    assert status == 0
    assert "--password-cmd" in out
    assert re.search(r"--password(?!-cmd)\b", out) is None
    assert "--pass " not in out


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_oauth_token_command(smtpd, cafile, run, mechanism):
    server = smtpd()
    token = f"ya29.{uuid.uuid4().hex}"
    server.handler.tokens[token] = OAUTH_USER
    status, _, err = run(to(server.host, server.port, cafile, "--user", OAUTH_USER, "--oauth-token-cmd",
                            f"printf %s {token}", "--auth", mechanism, "--trace", recipient()))
    assert status == 0, err
    [attempt] = server.attempts
    assert (attempt.mechanism, attempt.identity, attempt.secret, attempt.accepted) == (
        mechanism, OAUTH_USER, token, True
    )
    assert server.messages[0].auth == (mechanism, OAUTH_USER)
    assert token not in err


@pytest.mark.parametrize("form", ["--client-cert with --client-key", "--client-cert alone"])
def test_client_certificate(smtpd, cafile, run, certs, tmp_path, form):
    server = smtpd(client_certs="required")
    leaf = certs.ca.issue_cert("alice@example.org")
    cert, key, both = tmp_path / "alice.crt", tmp_path / "alice.key", tmp_path / "alice.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(both))
    key.chmod(0o600)
    both.chmod(0o600)
    option = ["--client-cert", str(both)]
    if "key" in form:
        option = ["--client-cert", str(cert), "--client-key", str(key)]
    status, _, err = run(to(server.host, server.port, cafile, *option, recipient()))
    assert status == 0, err
    assert server.messages[0].peer == "alice@example.org"
    assert "AUTH" not in server.commands()

    # The same certificate, used for EXTERNAL when asked to.
    status, _, err = run(to(server.host, server.port, cafile, *option, "--auth", "EXTERNAL", recipient()))
    assert status == 0, err
    assert server.messages[1].auth == ("EXTERNAL", "alice@example.org")


def test_a_client_key_others_can_read_is_77(smtpd, cafile, run, certs, tmp_path):
    server = smtpd(client_certs="optional")
    leaf = certs.ca.issue_cert("alice@example.org")
    cert, key = tmp_path / "alice.crt", tmp_path / "alice.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o644)
    status, _, err = run(to(server.host, server.port, cafile, "--client-cert", str(cert),
                            "--client-key", str(key), recipient()))
    assert status == 77
    assert_one_error_line(err, str(key), "accessible to the group or others")
    assert server.connections_made() == 0


def test_plaintext_only_with_allow_insecure_auth(smtpd, run):
    server = smtpd(starttls=False, auth_require_tls=False)
    argv = ["send", "--host", server.host, "--port", str(server.port), "--tls", "none", "--local-domain",
            "client.test", "--user", "alice", *password_cmd(USERS["alice"]), "--auth", "PLAIN"]
    status, _, err = run([*argv, recipient()])
    assert status == 77
    assert_one_error_line(err, "refusing to send credentials", "over plaintext")
    assert "AUTH" not in server.commands()

    status, _, err = run([*argv, "--allow-insecure-auth", recipient()])
    assert status == 0, err
    assert server.commands().count("AUTH") == 1
    assert [message.auth for message in server.messages] == [("PLAIN", "alice")]
