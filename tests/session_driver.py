"""A script driver for the sans-IO Session, shared by the session test files.

The session performs no I/O, so the tests are its adapter.  A script lists, in order, the exact
bytes the client must write and the bytes the server answers with; :class:`Driver` checks each Write
request against the next client step and feeds the server steps on Read requests -- whole, byte by
byte, or with every CR and its LF in separate reads.  StartTLS is answered by ``tls_established``
without any TLS (real TLS is tested against aiosmtpd and Postfix in the adapter tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from smtp_sansio import (
    Capabilities,
    Close,
    Done,
    Envelope,
    LocalProtocolError,
    Read,
    Request,
    Session,
    SMTPError,
    StartTLS,
    Write,
)

SERVER = "mail.example.org"
LOCAL = "client.example.org"
ALICE = "alice@example.org"
BOB = "bob@example.net"
CAROL = "carol@example.net"
GREETING = b"220 mail.example.org ESMTP ready\r\n"
EHLO = b"EHLO client.example.org\r\n"
QUIT = b"QUIT\r\n"
MESSAGE = b"Subject: hi\r\n\r\nHello Bob.\r\n"
ENVELOPE = Envelope(sender=ALICE, recipients=(BOB,))

# --- the script driver -------------------------------------------------------------------------------

Step = tuple[str, object]
Split = Callable[[bytes], list[bytes]]


def C(data: bytes) -> Step:
    """The client must write exactly ``data``, in one Write."""
    return ("C", data)


def S(data: bytes) -> Step:
    """The server sends ``data``; consecutive server steps arrive together, then are split."""
    return ("S", data)


def TLS(verified: bool = True) -> Step:
    """The client must ask for a TLS handshake; it is reported done with ``verified``."""
    return ("TLS", verified)


CLOSE: Step = ("CLOSE", None)
EOF: Step = ("EOF", None)  # the server closes the connection: the next read gets b""


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def cr_lf_apart(data: bytes) -> list[bytes]:
    return [piece for piece in re.split(rb"(?<=\r)", data) if piece]


@pytest.fixture(params=[whole, bytewise, cr_lf_apart], ids=["whole", "bytewise", "cr-lf-apart"])
def split(request: pytest.FixtureRequest) -> Split:
    return request.param


class Driver:
    """Drive a session through a script, recording every request and every write."""

    def __init__(self, session: Session, split: Split = whole) -> None:
        self.session = session
        self.split = split
        self.requests: list[Request] = []
        self.written: list[bytes] = []
        self.at_tls: tuple[Capabilities, bool] | None = None  # capabilities and encrypted at StartTLS

    def run(self, *steps: Step, stop_at: type | None = None) -> object:
        """Run the script to the end of the operation; return its result or raise its error.

        With ``stop_at``, return the first request of that type instead of performing it.
        """
        script = list(steps)
        pending: list[bytes] = []  # server bytes not yet fed
        while True:
            try:
                request = self.session.next_request()
            except SMTPError:
                if self.session.closed:
                    # A fatal error is only ever raised once the connection was asked to close.
                    assert self.requests, "a fatal error before any request"
                    assert isinstance(self.requests[-1], Close), f"error raised after {self.requests[-1]!r}"
                assert not script and not pending, f"the session failed before the script ended: {script}"
                raise
            self.requests.append(request)
            if stop_at is not None and isinstance(request, stop_at):
                assert not script and not pending, f"stopped before the end of the script: {script}"
                return request
            if isinstance(request, Write):
                assert not pending, f"the client wrote {request.data!r} before reading {pending!r}"
                assert request.data == self._take(script, "C", request)
                self.written.append(request.data)
            elif isinstance(request, Read):
                if not pending:
                    if script and script[0] == EOF:
                        script.pop(0)
                        self.session.receive_data(b"")
                        continue
                    data = self._take(script, "S", request)
                    while script and script[0][0] == "S":
                        data += script.pop(0)[1]
                    pending = self.split(data)
                self.session.receive_data(pending.pop(0))
            elif isinstance(request, StartTLS):
                assert not pending
                verified = self._take(script, "TLS", request)
                self.at_tls = (self.session.capabilities, self.session.encrypted)
                self.session.tls_established(verified=verified)
            elif isinstance(request, Close):
                self._take(script, "CLOSE", request)
            else:
                assert isinstance(request, Done)
                assert not script and not pending, f"done before the end of the script: {script}"
                return request.result

    @staticmethod
    def _take(script: list[Step], kind: str, request: Request) -> object:
        assert script, f"the session asked for {request!r} after the end of the script"
        expected_kind, value = script.pop(0)
        assert expected_kind == kind, f"the session asked for {request!r}; the script says {expected_kind}"
        return value


def make_session(**options: object) -> Session:
    return Session(**{"server_hostname": SERVER, "local_hostname": LOCAL, "tls": "none", **options})


def ehlo_reply(*extensions: str) -> bytes:
    lines = [SERVER, *extensions]
    return b"".join(
        b"250%s%s\r\n" % (b"-" if i < len(lines) - 1 else b" ", line.encode()) for i, line in enumerate(lines)
    )


def ready_session(*extensions: str, split: Split = whole, **options: object) -> Driver:
    """A session whose handshake (greeting, EHLO with ``extensions``) is done."""
    driver = Driver(make_session(**options), split)
    assert driver.run(S(GREETING), C(EHLO), S(ehlo_reply(*extensions))) is None
    assert driver.session.ready
    return driver


def plain_steps(*recipients: str, body: bytes = MESSAGE, mail: bytes = b"MAIL FROM:<alice@example.org>"
                ) -> list[Step]:
    """A successful transaction without pipelining; ``body`` must already be in wire form."""
    steps = [C(mail + b"\r\n"), S(b"250 2.1.0 ok\r\n")]
    for recipient in recipients or (BOB,):
        steps += [C(b"RCPT TO:<%s>\r\n" % recipient.encode()), S(b"250 2.1.5 ok\r\n")]
    return [*steps, C(b"DATA\r\n"), S(b"354 go ahead\r\n"), C(body + b".\r\n"), S(b"250 2.0.0 queued\r\n")]


def assert_dead(session: Session) -> None:
    """After a fatal error every call refuses, naming it; quit() is Done at once."""
    calls: list[Callable[[], object]] = [
        session.next_request,
        lambda: session.receive_data(b"250 ok\r\n"),
        lambda: session.tls_established(verified=True),
        lambda: session.send_message(ENVELOPE, MESSAGE),
    ]
    for call in calls:
        with pytest.raises(LocalProtocolError, match="no longer usable"):
            call()
    assert session.closed
    assert not session.ready
    session.quit()
    assert session.next_request() == Done(result=None)
    with pytest.raises(LocalProtocolError, match="no longer usable"):
        session.next_request()
