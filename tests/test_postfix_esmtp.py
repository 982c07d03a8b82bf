"""The session's fast paths against real servers: BDAT, DSN, pipelining across transactions and
streaming against the private Postfix (the ``postfix`` fixture of postfix.py; those tests are marked
``postfix``), LMTP against aiosmtpd's LMTP server started by the test.

The session is driven over a plain socket by :func:`perform`, the loop an adapter runs; Postfix's
log and queue say what arrived.  Postfix is strict here (no bare LF, no pipelining where RFC 2920
forbids it): a client breaking a rule would be disconnected.
"""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from postfix import queue_id_of

from smtp_sansio import (
    Close,
    Done,
    Dsn,
    Envelope,
    PermanentReplyError,
    Read,
    SendResult,
    Session,
    Write,
)

CLIENT_NAME = "client.test"


def address(prefix: str = "rcpt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.org"


def perform(sock: socket.socket, session: Session) -> object:
    """Perform the session's requests until the operation is done (what an adapter does)."""
    while True:
        request = session.next_request()
        if isinstance(request, Write):
            sock.sendall(request.data)
        elif isinstance(request, Read):
            session.receive_data(sock.recv(65536))
        elif isinstance(request, Close):
            sock.close()
        else:
            assert isinstance(request, Done), request
            return request.result


def connect(host: str, port: int, **options: object) -> tuple[socket.socket, Session]:
    sock = socket.create_connection((host, port), timeout=20)
    session = Session(server_hostname=host, local_hostname=CLIENT_NAME, tls="none", timeout=20, **options)
    assert perform(sock, session) is None
    return sock, session


def message(recipient: str, body: bytes = b"Hello.\n") -> bytes:
    return b"From: alice@example.org\nTo: %s\nSubject: esmtp %s\n\n" % (
        recipient.encode(), uuid.uuid4().hex.encode()) + body


def envelope_file(postfix, queue_id: str) -> str:
    """The envelope records of a held message (postcat -e), which is then deleted."""
    config = ["-c", str(postfix.config_directory)]
    shown = subprocess.run(["/usr/sbin/postcat", *config, "-e", "-q", queue_id],
                           capture_output=True, check=True, text=True)
    return shown.stdout


@pytest.mark.postfix
def test_bdat_message_arrives_intact(postfix):
    recipient = address("hold")
    body = b".leading dot\n..two dots\n.\nbare\rcr\n" + b"line of text\n" * 40
    sock, session = connect(postfix.host, postfix.smtp_port, chunking=True, chunk_size=128)
    assert "CHUNKING" in session.capabilities
    envelope = Envelope(sender="alice@example.org", recipients=(recipient,))
    session.send_message(envelope, message(recipient, body))
    result = perform(sock, session)
    session.quit()
    perform(sock, session)
    assert isinstance(result, SendResult) and result.accepted == (recipient,)
    queue_id = queue_id_of(result.reply.text)
    _, _, stored = postfix.pop_held_message(queue_id).partition(b"\n\n")
    # Not dot-stuffed (BDAT counts octets), line endings normalised (Postfix refuses bare LF here).
    assert stored == body.replace(b"\r", b"\n")
    counts = postfix.queue_connection(queue_id)
    chunks = int(counts["bdat"])
    assert chunks > 4 and "data" not in counts
    assert counts["commands"] == str(3 + chunks + 1)  # EHLO, MAIL, RCPT, the chunks, QUIT


@pytest.mark.postfix
def test_dsn_parameters_are_accepted(postfix):
    recipient = address("hold")
    dsn = Dsn(notify=("SUCCESS", "FAILURE"), ret="HDRS", envid="env+id=42",
              orcpt={recipient: "original+1@example.org"})
    sock, session = connect(postfix.host, postfix.smtp_port)
    assert "DSN" in session.capabilities
    envelope = Envelope(sender="alice@example.org", recipients=(recipient,))
    session.send_message(envelope, message(recipient), dsn=dsn)
    result = perform(sock, session)
    session.quit()
    perform(sock, session)
    assert isinstance(result, SendResult) and result.accepted == (recipient,)
    queue_id = queue_id_of(result.reply.text)
    records = envelope_file(postfix, queue_id)
    postfix.pop_held_message(queue_id)
    # Postfix decoded the xtext: the values are what the request said (RFC 3461 section 4).
    assert "named_attribute: envelope_id=env+id=42\n" in records
    assert "named_attribute: dsn_orig_rcpt=rfc822;original+1@example.org\n" in records
    assert "named_attribute: ret_flags=2\n" in records  # Postfix's DSN_RET_HDRS
    assert "named_attribute: notify_flags=6\n" in records  # DSN_NOTIFY_SUCCESS (2) | _FAILURE (4)


@pytest.mark.postfix
@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
def test_messages_pipelined_across_transactions(postfix, chunking):
    recipients = [address("first"), address("refuse"), address("third"), address("fourth")]
    sock, session = connect(postfix.host, postfix.smtp_port, chunking=chunking, max_in_flight=5)
    batch = [(Envelope(sender="alice@example.org", recipients=(r,)), message(r)) for r in recipients]
    # A streamed message too: chunks read as they are sent.
    batch[3] = (batch[3][0], iter([message(recipients[3])[:20], message(recipients[3])[20:]]))
    session.send_messages(batch)
    outcomes = perform(sock, session)
    session.quit()
    perform(sock, session)
    first, refused, third, fourth = outcomes
    assert isinstance(refused, PermanentReplyError) and refused.code == 550
    accepted = [o.accepted for o in (first, third, fourth)]
    assert accepted == [(recipients[0],), (recipients[2],), (recipients[3],)]
    queue_ids = [queue_id_of(o.reply.text) for o in (first, third, fourth)]
    for queue_id in queue_ids:
        postfix.wait_for_delivery(queue_id, 1)
    counts = postfix.queue_connection(queue_ids[0])
    verb = "bdat" if chunking else "data"
    # One connection for all four messages; a refused recipient costs one RSET (nothing to send).
    assert counts["mail"] == "4" and counts["rcpt"] == "3/4" and counts["rset"] == "1"
    # With DATA the refused message's pipelined DATA was refused too (RFC 2920 section 3.1); with
    # BDAT nothing was sent for it, the MAIL and RCPT replies came first.
    assert counts[verb] == ("3" if chunking else "3/4")


# --- LMTP, against aiosmtpd's LMTP server -------------------------------------------------------------


class _PerRecipient:
    """An aiosmtpd handler answering the data once per recipient (RFC 2033 section 4.2)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        delivered = [r for r in envelope.rcpt_tos if not r.startswith("full-")]
        self.messages.append((delivered, envelope.original_content))
        return "\r\n".join(
            "552 5.2.2 mailbox full" if r.startswith("full-") else f"250 2.1.5 <{r}> delivered"
            for r in envelope.rcpt_tos
        )


@pytest.fixture
def lmtp_server() -> Iterator[tuple[int, _PerRecipient]]:
    lmtp = pytest.importorskip("aiosmtpd.lmtp")
    controller_module = pytest.importorskip("aiosmtpd.controller")

    class LMTPController(controller_module.Controller):
        def factory(self):
            return lmtp.LMTP(self.handler)

    handler = _PerRecipient()
    with socket.socket() as probe:  # a port the kernel chose; the controller needs a fixed one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = LMTPController(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


def test_lmtp_against_aiosmtpd(lmtp_server):
    port, handler = lmtp_server
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    session = Session(server_hostname="127.0.0.1", local_hostname=CLIENT_NAME, tls="none", lmtp=True,
                      timeout=20)
    assert perform(sock, session) is None
    recipients = ("a@example.org", "full-b@example.org", "c@example.org")
    session.send_message(Envelope(sender="alice@example.org", recipients=recipients), b"Subject: x\n\nhi\n")
    result = perform(sock, session)
    session.send_message(Envelope(sender="alice@example.org", recipients=("full-x@example.org",)), b"x\n")
    with pytest.raises(PermanentReplyError, match="mailbox full"):
        perform(sock, session)
    session.quit()
    perform(sock, session)
    assert result.accepted == ("a@example.org", "c@example.org")
    assert result.refused["full-b@example.org"].code == 552
    assert result.recipient_replies["c@example.org"].text == "2.1.5 <c@example.org> delivered"
    assert handler.messages[0] == (["a@example.org", "c@example.org"], b"Subject: x\r\n\r\nhi\r\n")
