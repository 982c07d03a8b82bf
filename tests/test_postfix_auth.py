"""Authentication against a real Postfix with Cyrus SASL (the ``postfix`` fixture of postfix.py).

Every mechanism the project implements and Postfix offers is run with the blocking adapter over
STARTTLS (the submission port) and implicit TLS (the submissions port); Postfix's log then shows the
mechanism and the user it authenticated (``sasl_method=... sasl_username=...``) and the delivery of
the message sent after it.  Refusals are checked too: a wrong password, no AUTH, plaintext.
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from email.message import EmailMessage

import pytest
from postfix import queue_id_of

from smtp_sansio import (
    DEFAULT_MECHANISMS,
    SEED_MECHANISMS,
    AuthenticationError,
    PermanentReplyError,
    SecurityError,
)
from smtp_sansio.adapters.sync import SMTPClient, send_message

pytestmark = pytest.mark.postfix

# Short timeouts, so that a client and a server waiting for each other fail a test quickly.
CLIENT = {"local_hostname": "client.test", "timeout": 20}


def message(recipient: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = recipient
    msg["Subject"] = f"auth test {uuid.uuid4().hex}"
    msg.set_content("Sent after authenticating.\n")
    return msg


def recipient() -> str:
    return f"auth-{uuid.uuid4().hex[:12]}@example.net"


def assert_authenticated_and_delivered(postfix, reply_text: str, mechanism: str, user: str, to: str) -> None:
    queue_id = queue_id_of(reply_text)
    postfix.wait_for_log(
        rf": {queue_id}: client=.*, sasl_method={re.escape(mechanism)}, "
        rf"sasl_username={user}@{re.escape(postfix.realm)}$"
    )
    lines = postfix.wait_for_delivery(queue_id, 1)
    assert f"to=<{to}>" in lines[0]


def ports(postfix):
    return [("starttls", postfix.submission_port), ("implicit", postfix.submissions_port)]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@pytest.mark.parametrize("mechanism", DEFAULT_MECHANISMS)
def test_every_password_mechanism(postfix, certs, tls, mechanism):
    assert mechanism in postfix.mechanisms
    port = dict(ports(postfix))[tls]
    to = recipient()
    with SMTPClient(postfix.host, port, tls=tls, ssl_context=certs.client_context(), username="alice",
                    password=postfix.users["alice"], auth_mechanisms=[mechanism], **CLIENT) as client:
        assert client.authenticated == mechanism
        result = client.send_message(message(to))
    assert result.accepted == (to,)
    assert_authenticated_and_delivered(postfix, result.reply.text, mechanism, "alice", to)


def test_the_default_choice_is_the_strongest_offered(postfix, certs):
    to = recipient()
    with SMTPClient(postfix.host, postfix.submission_port, ssl_context=certs.client_context(),
                    username="bob", password=postfix.users["bob"], **CLIENT) as client:
        assert client.authenticated == "SCRAM-SHA-256"
        result = client.send_message(message(to))
    assert_authenticated_and_delivered(postfix, result.reply.text, "SCRAM-SHA-256", "bob", to)


def test_the_seed_order(postfix, certs):
    to = recipient()
    result = send_message(
        message(to), host=postfix.host, port=postfix.submission_port, ssl_context=certs.client_context(),
        username="alice", password=postfix.users["alice"], auth_mechanisms=SEED_MECHANISMS, **CLIENT,
    )
    assert_authenticated_and_delivered(postfix, result.reply.text, "CRAM-MD5", "alice", to)


def test_credentials_table_and_netrc(postfix, certs, tmp_path):
    # The seed's table, matched by host and port; then the same in an authinfo file.
    table = [("other.example", postfix.submission_port, "bob", "nope"),
             (postfix.host, "999", "bob", "nope"),
             (postfix.host, postfix.submission_port, "alice", postfix.users["alice"])]
    to = recipient()
    result = send_message(message(to), host=postfix.host, port=postfix.submission_port,
                          ssl_context=certs.client_context(), credentials=table, **CLIENT)
    assert_authenticated_and_delivered(postfix, result.reply.text, "SCRAM-SHA-256", "alice", to)

    authinfo = tmp_path / "authinfo"
    authinfo.write_text(f'machine {postfix.host} port {postfix.submissions_port} login bob '
                        f'password "{postfix.users["bob"]}"\n')
    authinfo.chmod(0o600)
    to = recipient()
    result = send_message(message(to), host=postfix.host, port=postfix.submissions_port, tls="implicit",
                          ssl_context=certs.client_context(), credentials=str(authinfo), **CLIENT)
    assert_authenticated_and_delivered(postfix, result.reply.text, "SCRAM-SHA-256", "bob", to)


def test_a_missing_password_is_asked_for(postfix, certs):
    asked = []

    def ask(what, host, port):
        asked.append((what, host, port))
        return postfix.users["alice"]

    to = recipient()
    table = [(postfix.host, None, "alice", None)]
    result = send_message(message(to), host=postfix.host, port=postfix.submission_port,
                          ssl_context=certs.client_context(), credentials=table, ask=ask, **CLIENT)
    assert asked == [("password", postfix.host, postfix.submission_port)]
    assert_authenticated_and_delivered(postfix, result.reply.text, "SCRAM-SHA-256", "alice", to)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_a_wrong_password_is_an_authentication_error(postfix, certs, mechanism):
    since = postfix.log_position()
    with pytest.raises(AuthenticationError, match="refused the credentials of alice") as info:
        send_message(message(recipient()), host=postfix.host, port=postfix.submission_port,
                     ssl_context=certs.client_context(), username="alice", password="wrong-password",
                     auth_mechanisms=[mechanism, "LOGIN"], **CLIENT)
    assert info.value.reply is not None and info.value.reply.code == 535
    assert "wrong-password" not in str(info.value)
    # One AUTH only, on this connection: no falling through to LOGIN.  (The log is the session's:
    # other tests' failed logins are in it too.)
    counts = postfix.connection_of(rf"SASL {re.escape(mechanism)} authentication failed", since=since)
    assert counts["auth"] == "0/1"


def test_without_auth_the_relay_is_denied(postfix, certs):
    to = recipient()
    with pytest.raises(PermanentReplyError) as info:
        send_message(message(to), host=postfix.host, port=postfix.submission_port,
                     ssl_context=certs.client_context(), **CLIENT)
    assert info.value.refused[to].code == 554


def test_no_credentials_in_plaintext(postfix, certs):
    # Postfix offers AUTH only after TLS here; with TLS off the client refuses before AUTH anyway.
    with pytest.raises(SecurityError, match="over plaintext"):
        send_message(message(recipient()), host=postfix.host, port=postfix.smtp_port, tls="none",
                     username="alice", password=postfix.users["alice"], **CLIENT)


def test_allow_insecure_auth_still_needs_the_server_to_offer_auth(postfix):
    # smtpd_tls_auth_only: no AUTH before TLS, so even the explicit opt-in finds nothing to use.
    with pytest.raises(AuthenticationError, match="does not offer AUTH"):
        send_message(message(recipient()), host=postfix.host, port=postfix.smtp_port, tls="none",
                     username="alice", password=postfix.users["alice"], allow_insecure_auth=True, **CLIENT)


def test_the_trace_of_a_real_exchange_holds_no_secret(postfix, certs, caplog):
    caplog.set_level(logging.INFO, logger="smtp_sansio.trace")
    password = postfix.users["alice"]
    for mechanism in DEFAULT_MECHANISMS:
        send_message(message(recipient()), host=postfix.host, port=postfix.submission_port,
                     ssl_context=certs.client_context(), username="alice", password=password,
                     auth_mechanisms=[mechanism], trace=True, **CLIENT)
    shown = "\n".join(record.getMessage() for record in caplog.records)
    plain = base64.b64encode(f"\0alice\0{password}".encode()).decode()
    for secret in (password, base64.b64encode(password.encode()).decode(), plain):
        assert secret not in shown
    assert shown.count("C: AUTH ") == len(DEFAULT_MECHANISMS)
