"""Tests for the exception hierarchy and the result values a Session reports."""

from __future__ import annotations

import dataclasses

import pytest

from smtp_sansio import (
    AuthenticationError,
    LocalProtocolError,
    PermanentReplyError,
    RemoteProtocolError,
    Reply,
    ReplyError,
    SecurityError,
    SendResult,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
    TraceLine,
    TransientReplyError,
)

REFUSED = Reply(code=550, lines=(b"5.1.1 no such user",), enhanced_status="5.1.1")


@pytest.mark.parametrize(
    "cls",
    [LocalProtocolError, RemoteProtocolError, SecurityError, ReplyError, TransientReplyError,
     PermanentReplyError, AuthenticationError, SMTPTimeoutError, SMTPConnectError],
)
def test_every_error_is_an_smtp_error(cls: type[Exception]) -> None:
    assert issubclass(cls, SMTPError)
    assert issubclass(SMTPError, Exception)


def test_reply_error_subclasses() -> None:
    assert issubclass(TransientReplyError, ReplyError)
    assert issubclass(PermanentReplyError, ReplyError)
    assert not issubclass(TransientReplyError, PermanentReplyError)
    assert not issubclass(ReplyError, RemoteProtocolError | LocalProtocolError)


def test_reply_error_attributes() -> None:
    error = PermanentReplyError(REFUSED, "RCPT TO:<bob@example.org>", refused={"bob@example.org": REFUSED})
    assert error.reply is REFUSED
    assert error.code == 550
    assert error.command == "RCPT TO:<bob@example.org>"
    assert dict(error.refused) == {"bob@example.org": REFUSED}
    assert str(error) == "server replied 550 to RCPT TO:<bob@example.org>: 5.1.1 no such user"


def test_reply_error_defaults() -> None:
    reply = Reply(code=421, lines=(b"mx closing",))
    error = TransientReplyError(reply)
    assert error.command is None
    assert dict(error.refused) == {}
    assert str(error) == "server replied 421: mx closing"


def test_reply_error_refused_is_a_read_only_copy() -> None:
    refused = {"bob@example.org": REFUSED}
    error = ReplyError(REFUSED, "RCPT TO:<bob@example.org>", refused=refused)
    refused["carol@example.org"] = REFUSED
    assert list(error.refused) == ["bob@example.org"]
    with pytest.raises(TypeError):
        error.refused["x"] = REFUSED  # type: ignore[index]


def test_reply_error_message_is_one_printable_line() -> None:
    reply = Reply(code=554, lines=(b"first\r", b"second \x1b[31m", b"\xff\xfe"))
    message = str(PermanentReplyError(reply, "DATA"))
    assert "\n" not in message and "\r" not in message
    assert message.isprintable()
    assert message.startswith("server replied 554 to DATA: first")


def test_timeout_error() -> None:
    error = SMTPTimeoutError("no greeting within 300 seconds", phase="greeting")
    assert isinstance(error, TimeoutError)
    assert isinstance(error, OSError)
    assert isinstance(error, SMTPError)
    assert error.phase == "greeting"
    assert str(error) == "no greeting within 300 seconds"
    with pytest.raises(TypeError):
        SMTPTimeoutError("x")  # type: ignore[call-arg]


def test_connect_error() -> None:
    error = SMTPConnectError("connection refused")
    assert isinstance(error, ConnectionError)
    assert isinstance(error, OSError)
    assert isinstance(error, SMTPError)


def test_authentication_error() -> None:
    reply = Reply(code=535, lines=(b"5.7.8 bad credentials",), enhanced_status="5.7.8")
    error = AuthenticationError("the server refused the credentials", reply=reply)
    assert error.reply is reply
    assert str(error) == "the server refused the credentials"
    assert AuthenticationError("no usable mechanism").reply is None
    assert not isinstance(error, ReplyError)


# -- results ----------------------------------------------------------------------------------


def test_send_result() -> None:
    final = Reply(code=250, lines=(b"2.0.0 queued as 4F2",), enhanced_status="2.0.0")
    refused = {"carol@example.org": REFUSED}
    result = SendResult(accepted=("bob@example.org",), refused=refused, reply=final)
    refused["dave@example.org"] = REFUSED
    assert result.accepted == ("bob@example.org",)
    assert dict(result.refused) == {"carol@example.org": REFUSED}
    assert result.reply is final
    with pytest.raises(TypeError):
        result.refused["x"] = REFUSED  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.accepted = ()  # type: ignore[misc]


def test_send_result_defaults() -> None:
    result = SendResult(accepted=("a@example.org",), reply=Reply(code=250))
    assert dict(result.refused) == {}
    with pytest.raises(TypeError):
        SendResult(("a@example.org",), {}, Reply(code=250))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("direction", "text", "shown"),
    [("C", "EHLO client.example.org", "C: EHLO client.example.org"),
     ("S", "250-PIPELINING", "S: 250-PIPELINING"),
     ("*", "TLS established", "*: TLS established"),
     ("C", "", "C: ")],
)
def test_trace_line(direction: str, text: str, shown: str) -> None:
    line = TraceLine(direction=direction, text=text)  # type: ignore[arg-type]
    assert str(line) == shown
    assert (line.direction, line.text) == (direction, text)
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "error",
    [
        SMTPTimeoutError("timed out during mail", phase="mail"),
        PermanentReplyError(REFUSED, "RCPT (all 1 recipients refused)", refused={"a@example.org": REFUSED}),
        TransientReplyError(Reply(code=421, lines=(b"bye",)), None),
        AuthenticationError("credentials refused", reply=REFUSED),
        AuthenticationError("no usable mechanism"),
        SecurityError("STARTTLS refused"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_pickling(error: SMTPError) -> None:
    # An error may have to cross a process boundary (a queue worker in a process pool).
    import pickle

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    for attribute in ("phase", "reply", "command"):
        assert getattr(copy, attribute, None) == getattr(error, attribute, None)
    assert dict(getattr(copy, "refused", {})) == dict(getattr(error, "refused", {}))
