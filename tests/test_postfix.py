"""The blocking adapter against a real Postfix on loopback (the ``postfix`` fixture of postfix.py).

Every test sends its own message, with recipients nobody else uses, and then reads Postfix's log
for what happened to it: the queue ID comes from the reply to the end of the data (``250 2.0.0 Ok:
queued as ...``), the deliveries (``status=sent``, by the discard transport) and the command counts
of the connection (``disconnect from ... ehlo=2 starttls=1 mail=1 ...``) are found through it.
Postfix's own restrictions (bare LF refused, no pipelining where RFC 2920 forbids it) are part of
the check: a client that broke them would be disconnected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import smtplib
import socket
import ssl
import uuid
from email.message import EmailMessage

import pytest
from postfix import HOSTNAME, MECH_LIST, SIZE_LIMIT, queue_id_of

from smtp_sansio import LocalProtocolError, PermanentReplyError, SecurityError
from smtp_sansio.adapters.sync import SMTPClient, send_message

pytestmark = pytest.mark.postfix

CLIENT_NAME = "client.test"
# The options of every client of the project: the EHLO name, and timeouts short enough that a
# client and a server waiting for each other fail the test quickly.
CLIENT = {"local_hostname": CLIENT_NAME, "timeout": 20}


def address(prefix: str = "rcpt", domain: str = "example.org") -> str:
    """A recipient no other test uses; the prefix may trigger the plain port's access table."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@{domain}"


def make_message(*, to: str, subject: str | None = None, body: str = "Hello from the test suite.\n",
                 sender: str = "alice@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject or f"test {uuid.uuid4().hex}"
    message.set_content(body)
    return message


def deliveries(lines: list[str]) -> list[str]:
    """The recipients of ``status=sent`` log lines, in log order."""
    return [re.search(r" to=<([^>]*)>", line).group(1) for line in lines]


def client_port(line: str) -> int:
    """The client's port in an smtpd log line (``localhost[127.0.0.1]:PORT``)."""
    return int(re.search(r"\[127\.0\.0\.1\]:(\d+)", line).group(1))


@pytest.fixture
def tls_context(certs):
    """A client context that trusts the suite's CA only, and checks the host name."""
    return certs.client_context()


# --- the fixture itself, checked with an independent client (smtplib) ------------------------------


def test_instance_advertises_auth_after_tls_only(postfix, tls_context):
    for port in (postfix.smtp_port, postfix.submission_port):
        with smtplib.SMTP(postfix.host, port, local_hostname=CLIENT_NAME, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            assert not client.has_extn("auth")  # smtpd_tls_auth_only: no AUTH in plaintext
            client.starttls(context=tls_context)
            client.ehlo()
            assert client.esmtp_features["auth"].split() == list(postfix.mechanisms)
    assert set(postfix.mechanisms) == set(MECH_LIST)


@pytest.mark.parametrize(("user", "mechanism"), [("alice", "PLAIN"), ("bob", "LOGIN"), ("alice", "CRAM-MD5")])
def test_instance_accepts_auth_and_then_relays(postfix, tls_context, user, mechanism):
    # Later AUTH tests rely on this: the sasldb, the realm and the relay restrictions are right.
    recipient = address()
    port = postfix.submission_port
    with smtplib.SMTP(postfix.host, port, local_hostname=CLIENT_NAME, timeout=10) as client:
        client.starttls(context=tls_context)
        client.ehlo()
        client.user, client.password = user, postfix.users[user]
        authenticator = {
            "PLAIN": client.auth_plain, "LOGIN": client.auth_login, "CRAM-MD5": client.auth_cram_md5
        }
        code, text = client.auth(mechanism, authenticator[mechanism])
        assert code == 235
        assert text.startswith(b"2.7.0")
        assert client.mail("alice@example.org")[0] == 250
        assert client.rcpt(recipient)[0] == 250
        code, text = client.data(f"To: {recipient}\r\nSubject: auth check\r\n\r\nHi.\r\n")
        assert code == 250
    queue_id = queue_id_of(text.decode())
    # The client sent the plain name; smtpd_sasl_local_domain put it in the realm of the sasldb.
    postfix.wait_for_log(
        rf": {queue_id}: client=.*, sasl_method={mechanism}, sasl_username={user}@{re.escape(postfix.realm)}$"
    )
    assert deliveries(postfix.wait_for_delivery(queue_id, 1)) == [recipient]


def scram(hash_name: str, user: str, password: str):
    """A minimal RFC 5802 SCRAM client for smtplib's ``auth()``, checking the server's signature."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    client_first_bare = f"n={user},r={nonce}"
    state: dict[str, str] = {}

    def respond(challenge: bytes | None = None) -> str:
        if challenge is None:
            return "n,," + client_first_bare
        text = challenge.decode()
        if "server_signature" in state:
            assert text == "v=" + state["server_signature"]  # the server knows the password too
            state["verified"] = "yes"
            return ""
        fields = dict(item.split("=", 1) for item in text.split(","))
        assert fields["r"].startswith(nonce)
        salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), base64.b64decode(fields["s"]),
                                     int(fields["i"]))
        client_key = hmac.digest(salted, b"Client Key", hash_name)
        client_final_bare = f"c=biws,r={fields['r']}"
        message = f"{client_first_bare},{text},{client_final_bare}".encode()
        signature = hmac.digest(hashlib.new(hash_name, client_key).digest(), message, hash_name)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", hash_name)
        state["server_signature"] = base64.b64encode(hmac.digest(server_key, message, hash_name)).decode()
        return f"{client_final_bare},p={base64.b64encode(proof).decode()}"

    return respond, state


@pytest.mark.parametrize(("user", "mechanism", "hash_name"),
                         [("alice", "SCRAM-SHA-256", "sha256"), ("bob", "SCRAM-SHA-1", "sha1")])
def test_instance_accepts_scram(postfix, tls_context, user, mechanism, hash_name):
    respond, state = scram(hash_name, user, postfix.users[user])
    port = postfix.submission_port
    with smtplib.SMTP(postfix.host, port, local_hostname=CLIENT_NAME, timeout=10) as client:
        client.starttls(context=tls_context)
        client.ehlo()
        code, _ = client.auth(mechanism, respond)
    assert code == 235
    assert state.get("verified") == "yes"


def test_instance_refuses_a_wrong_password(postfix, tls_context):
    with smtplib.SMTP_SSL(postfix.host, postfix.submissions_port, local_hostname=CLIENT_NAME,
                          context=tls_context, timeout=10) as client:
        client.ehlo()
        client.user, client.password = "alice", "not-her-password"
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.auth("PLAIN", client.auth_plain)
    assert caught.value.smtp_code == 535
    postfix.wait_for_log(r"postfix/submissions/smtpd\[\d+\]: warning: .*: SASL PLAIN authentication failed")


def test_instance_refuses_bare_lf(postfix):
    # The check that makes the line-ending tests below meaningful: Postfix refuses a bare LF.
    with socket.create_connection((postfix.host, postfix.smtp_port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        rcpt = f"RCPT TO:<{address()}>".encode()
        for command in (b"HELO c.test", b"MAIL FROM:<a@example.org>", rcpt, b"DATA"):
            sock.sendall(command + b"\r\n")
            assert reader.readline()[:1] in (b"2", b"3")
        sock.sendall(b"Subject: bare\r\n\r\nline one\nline two\r\n.\r\n")
        reply = reader.readline()
        reader.close()
    assert reply.startswith(b"550 5.5.2 ")
    assert b"bare <LF>" in reply


def test_instance_refuses_improper_pipelining(postfix):
    # RFC 2920 section 3.1: EHLO ends a group; a client must wait for its reply.
    with socket.create_connection((postfix.host, postfix.smtp_port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n")
        reply = reader.readline()
        reader.close()
    assert reply == b"554 5.5.0 Error: SMTP protocol synchronization\r\n"


# --- TLS modes on the plain port ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_starttls_verified(postfix, tls_context, host):
    recipient = address()
    result = send_message(make_message(to=recipient), host=host, port=postfix.smtp_port, tls="starttls",
                          ssl_context=tls_context, **CLIENT)
    assert result.accepted == (recipient,)
    assert dict(result.refused) == {}
    assert (result.reply.code, result.reply.enhanced_status) == (250, "2.0.0")
    queue_id = queue_id_of(result.reply.text)
    assert deliveries(postfix.wait_for_delivery(queue_id, 1)) == [recipient]
    # EHLO again after TLS (RFC 3207 section 4.2), then one transaction and QUIT.
    assert postfix.queue_connection(queue_id) == {
        "ehlo": "2", "starttls": "1", "mail": "1", "rcpt": "1", "bdat": "1", "quit": "1", "commands": "7"
    }
    postfix.wait_for_log(rf"postfix/smtp/smtpd\[\d+\]: \w+ TLS connection established from .*\]:"
                         rf"{_port_of(postfix, queue_id)}: TLSv1\.[23] ")


def _port_of(postfix, queue_id: str) -> int:
    return client_port(postfix.wait_for_log(rf": {queue_id}: client=").string)


def test_plaintext(postfix):
    recipient = address()
    result = send_message(make_message(to=recipient), host=postfix.host, port=postfix.smtp_port, tls="none",
                          **CLIENT)
    assert result.accepted == (recipient,)
    queue_id = queue_id_of(result.reply.text)
    assert deliveries(postfix.wait_for_delivery(queue_id, 1)) == [recipient]
    assert postfix.queue_connection(queue_id) == {
        "ehlo": "1", "mail": "1", "rcpt": "1", "bdat": "1", "quit": "1", "commands": "5"
    }


def test_opportunistic_upgrades_when_offered(postfix, tls_context):
    recipient = address()
    result = send_message(make_message(to=recipient), host=postfix.host, port=postfix.smtp_port,
                          tls="opportunistic", ssl_context=tls_context, **CLIENT)
    queue_id = queue_id_of(result.reply.text)
    assert deliveries(postfix.wait_for_delivery(queue_id, 1)) == [recipient]
    assert postfix.queue_connection(queue_id)["starttls"] == "1"


def test_untrusted_certificate(postfix):
    # The system's CAs do not include the suite's: the handshake fails, and nothing follows it.
    position = postfix.log_position()
    with pytest.raises(SecurityError, match=r"certificate of 127\.0\.0\.1 not accepted"):
        send_message(make_message(to=address()), host=postfix.host, port=postfix.smtp_port, tls="starttls",
                     ssl_context=ssl.create_default_context(), **CLIENT)
    counts = postfix.connection_of(r"postfix/smtp/smtpd\[\d+\]: SSL_accept error from ", since=position)
    assert counts == {"ehlo": "1", "starttls": "0/1", "commands": "1/2"}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_certificate_for_another_name(postfix, tls_context, host):
    # wrong_name_port presents a certificate of the trusted CA for wrong.example only.
    position = postfix.log_position()
    with pytest.raises(SecurityError, match=rf"certificate of {re.escape(host)} not accepted: .*mismatch"):
        send_message(make_message(to=address()), host=host, port=postfix.wrong_name_port, tls="starttls",
                     ssl_context=tls_context, **CLIENT)
    # No QUIT or anything else in plaintext after the failed handshake.
    counts = postfix.connection_of(r"postfix/wrongname/smtpd\[\d+\]: SSL_accept error from ", since=position)
    assert counts == {"ehlo": "1", "starttls": "0/1", "commands": "1/2"}


# --- submission ports without AUTH ----------------------------------------------------------------


def _relay_denied(postfix, recipient: str, service: str):
    line = postfix.wait_for_log(
        rf"postfix/{service}/smtpd\[\d+\]: NOQUEUE: reject: RCPT from \S+: "
        rf"554 5\.7\.1 <{re.escape(recipient)}>: Recipient address rejected: Access denied;"
    ).string
    return line, postfix.connection_of(re.escape(line))


def test_submission_without_auth_is_denied_relay(postfix, tls_context):
    recipient = address()
    with pytest.raises(PermanentReplyError) as caught:
        send_message(make_message(to=recipient), host=postfix.host, port=postfix.submission_port,
                     tls="starttls", ssl_context=tls_context, **CLIENT)
    error = caught.value
    assert error.code == 554
    assert list(error.refused) == [recipient]
    reply = error.refused[recipient]
    assert (reply.code, reply.enhanced_status) == (554, "5.7.1")
    assert reply.text == f"5.7.1 <{recipient}>: Recipient address rejected: Access denied"
    _, counts = _relay_denied(postfix, recipient, "submission")
    # No data was sent (BDAT waits for a recipient to be accepted); the transaction was reset.
    assert counts == {
        "ehlo": "2", "starttls": "1", "mail": "1", "rcpt": "0/1", "rset": "1", "quit": "1", "commands": "6/7",
    }


def test_submissions_implicit_tls_without_auth_is_denied_relay(postfix, tls_context):
    recipient = address()
    with pytest.raises(PermanentReplyError) as caught:
        send_message(make_message(to=recipient), host=postfix.host, port=postfix.submissions_port,
                     tls="implicit", ssl_context=tls_context, **CLIENT)
    reply = caught.value.refused[recipient]
    assert (reply.code, reply.enhanced_status) == (554, "5.7.1")
    line, counts = _relay_denied(postfix, recipient, "submissions")
    assert counts == {
        "ehlo": "1", "mail": "1", "rcpt": "0/1", "rset": "1", "quit": "1", "commands": "4/5"
    }
    # TLS from the first byte: the handshake is logged for this connection, and no STARTTLS.
    postfix.wait_for_log(rf"postfix/submissions/smtpd\[\d+\]: \w+ TLS connection established from "
                         rf"\S+\]:{client_port(line)}: ")


def test_submission_in_plaintext_is_refused_mail(postfix):
    # smtpd_tls_security_level = encrypt: the server offers STARTTLS and refuses mail without it.
    with pytest.raises(PermanentReplyError) as caught:
        send_message(make_message(to=address()), host=postfix.host, port=postfix.submission_port, tls="none",
                     **CLIENT)
    assert caught.value.code == 530
    assert caught.value.command.startswith("MAIL FROM:<alice@example.org>")
    assert caught.value.reply.text == "5.7.0 Must issue a STARTTLS command first"


# --- pipelining -----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
def test_fifty_recipients_in_one_pipelined_group(postfix, monkeypatch, chunking):
    writes: list[bytes] = []
    sendall = socket.socket.sendall

    def recording_sendall(sock, data, *args):
        writes.append(bytes(data))
        return sendall(sock, data, *args)

    monkeypatch.setattr(socket.socket, "sendall", recording_sendall)
    recipients = [address(f"many{i:02d}") for i in range(50)]
    with SMTPClient(postfix.host, postfix.smtp_port, tls="none", chunking=chunking, **CLIENT) as client:
        assert "PIPELINING" in client.capabilities
        result = client.send_message(make_message(to=", ".join(recipients)))
    assert result.accepted == tuple(recipients)
    assert dict(result.refused) == {}
    # RFC 2920 section 3.1: MAIL, every RCPT and DATA in one write; with BDAT the chunk follows
    # in the next write, once the replies showed that a recipient was accepted.
    [group] = [chunk for chunk in writes if chunk.startswith(b"MAIL FROM:")]
    assert group.count(b"\r\nRCPT TO:") == 50
    if chunking:
        assert group.endswith(b">\r\n")
        assert writes[writes.index(group) + 1].startswith(b"BDAT ")
    else:
        assert group.endswith(b"\r\nDATA\r\n")
    queue_id = queue_id_of(result.reply.text)
    postfix.wait_for_log(rf": {queue_id}: from=<alice@example.org>, size=\d+, nrcpt=50 ")
    assert sorted(deliveries(postfix.wait_for_delivery(queue_id, 50))) == sorted(recipients)
    assert postfix.queue_connection(queue_id)["rcpt"] == "50"


def test_accepted_and_refused_recipients(postfix):
    refused_first = address("refuse")
    ok = [address("ok1"), address("ok2"), address("ok3")]
    later = address("later")
    refused_last = address("refuse")
    recipients = [refused_first, ok[0], later, ok[1], refused_last, ok[2]]
    result = send_message(make_message(to=", ".join(recipients)), host=postfix.host, port=postfix.smtp_port,
                          tls="none", **CLIENT)
    assert result.accepted == tuple(ok)
    assert list(result.refused) == [refused_first, later, refused_last]
    for recipient in (refused_first, refused_last):
        reply = result.refused[recipient]
        assert (reply.code, reply.enhanced_status) == (550, "5.1.1")
        assert reply.text == (
            f"5.1.1 <{recipient}>: Recipient address rejected: refused by the test access table"
        )
    reply = result.refused[later]
    assert (reply.code, reply.enhanced_status) == (450, "4.2.1")
    assert reply.text == f"4.2.1 <{later}>: Recipient address rejected: deferred by the test access table"

    queue_id = queue_id_of(result.reply.text)
    assert deliveries(postfix.wait_for_delivery(queue_id, 3)) == ok
    # The queue file is opened at the first accepted recipient: the first refusal has no queue ID.
    postfix.wait_for_log(rf": NOQUEUE: reject: RCPT from \S+: 550 5\.1\.1 <{re.escape(refused_first)}>")
    postfix.wait_for_log(rf": {queue_id}: reject: RCPT from \S+: 450 4\.2\.1 <{re.escape(later)}>")
    postfix.wait_for_log(rf": {queue_id}: reject: RCPT from \S+: 550 5\.1\.1 <{re.escape(refused_last)}>")
    assert postfix.queue_connection(queue_id)["rcpt"] == "3/6"


def test_every_recipient_refused(postfix):
    recipients = [address("refuse"), address("refuse")]
    with pytest.raises(PermanentReplyError) as caught:
        send_message(make_message(to=", ".join(recipients)), host=postfix.host, port=postfix.smtp_port,
                     tls="none", **CLIENT)
    assert caught.value.code == 550
    assert list(caught.value.refused) == recipients
    last = re.escape(recipients[1])
    line = postfix.wait_for_log(rf"NOQUEUE: reject: RCPT from \S+: 550 5\.1\.1 <{last}>").string
    counts = postfix.connection_of(re.escape(line))
    # Nothing but an RSET after the refusals: BDAT is only sent once a recipient was accepted.
    assert (counts["rcpt"], counts["rset"]) == ("0/2", "1")
    assert "bdat" not in counts and "data" not in counts


# --- several messages, data transparency, SIZE, SMTPUTF8 --------------------------------------------


def test_several_messages_over_one_connection(postfix, tls_context):
    recipients = [address("first"), address("second"), address("third")]
    with SMTPClient(postfix.host, postfix.smtp_port, tls="starttls", ssl_context=tls_context,
                    **CLIENT) as client:
        results = [client.send_message(make_message(to=recipient)) for recipient in recipients]
    queue_ids = [queue_id_of(result.reply.text) for result in results]
    assert len(set(queue_ids)) == 3
    for queue_id, recipient in zip(queue_ids, recipients, strict=True):
        assert deliveries(postfix.wait_for_delivery(queue_id, 1)) == [recipient]
    assert len({_port_of(postfix, queue_id) for queue_id in queue_ids}) == 1
    assert postfix.queue_connection(queue_ids[0]) == {
        "ehlo": "2", "starttls": "1", "mail": "3", "rcpt": "3", "bdat": "3", "quit": "1", "commands": "13"
    }


def test_leading_dots_and_bare_lf_arrive_intact(postfix):
    # Bare LF line endings in, CRLF on the wire (Postfix refuses bare LF here), dots stuffed
    # (RFC 5321 section 4.5.2) and unstuffed by Postfix; a hold- recipient keeps the message.
    recipient = address("hold")
    body = b".leading dot\n..two dots\n.\n. dot space\nlast line\n"
    data = b"From: alice@example.org\nTo: " + recipient.encode() + b"\nSubject: dots\n\n" + body
    result = send_message(data, host=postfix.host, port=postfix.smtp_port, tls="none",
                          **CLIENT)
    assert result.accepted == (recipient,)
    queue_id = queue_id_of(result.reply.text)
    header, _, stored_body = postfix.pop_held_message(queue_id).partition(b"\n\n")
    assert stored_body == body
    # Postfix's trace field comes first (RFC 5321 section 4.4), with the EHLO name in it.
    assert header.startswith(b"Received: from %s (localhost [127.0.0.1])\n\tby %s " % (
        CLIENT_NAME.encode(), HOSTNAME.encode()))
    assert b"\nFrom: alice@example.org\nTo: %s\nSubject: dots\n" % recipient.encode() in header


def test_size_limit_refused_before_mail(postfix):
    recipient = address("small")
    big = make_message(to=address("big"), body=("y" * 70 + "\n") * (SIZE_LIMIT // 70 + 10))
    with SMTPClient(postfix.host, postfix.smtp_port, tls="none", **CLIENT) as client:
        assert client.capabilities.size_limit == SIZE_LIMIT
        with pytest.raises(LocalProtocolError, match=f"over the server's SIZE limit of {SIZE_LIMIT}"):
            client.send_message(big)
        # The connection is still usable: nothing was sent for the big message.
        result = client.send_message(make_message(to=recipient))
    queue_id = queue_id_of(result.reply.text)
    assert deliveries(postfix.wait_for_delivery(queue_id, 1)) == [recipient]
    # One MAIL on the connection: the small message's.
    assert postfix.queue_connection(queue_id) == {
        "ehlo": "1", "mail": "1", "rcpt": "1", "bdat": "1", "quit": "1", "commands": "5"
    }


def test_smtputf8_addresses(postfix):
    sender = f"发件人-{uuid.uuid4().hex[:8]}@example.org"
    recipient = address("用户", "例え.test")
    with SMTPClient(postfix.host, postfix.smtp_port, tls="none", **CLIENT) as client:
        assert "SMTPUTF8" in client.capabilities
        result = client.send_message(make_message(to=recipient, sender=sender))
    assert result.accepted == (recipient,)
    queue_id = queue_id_of(result.reply.text)
    # Postfix refuses a non-ASCII address unless MAIL declared SMTPUTF8 (553 5.6.7).
    postfix.wait_for_log(rf": {queue_id}: from=<{re.escape(sender)}>, size=\d+, nrcpt=1 ")
    assert deliveries(postfix.wait_for_delivery(queue_id, 1)) == [recipient]
