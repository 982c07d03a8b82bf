"""The one exception hierarchy of smtp-sansio.

Every error the project raises derives from :class:`SMTPError`, so ``except SMTPError`` is always
enough.  The split follows who is at fault:

* :class:`LocalProtocolError` -- the caller asked for something SMTP cannot express (a CR in an
  address, a command in the wrong state).  Raised before a single byte is produced.
* :class:`RemoteProtocolError` -- the server broke the protocol (malformed reply, reply nobody asked
  for, endless line).  The connection is unusable afterwards.
* :class:`ReplyError` -- a well-formed reply that says no; :class:`TransientReplyError` for 4xx,
  :class:`PermanentReplyError` for 5xx (RFC 5321 section 4.2.1).
* :class:`SecurityError` -- TLS required but unavailable, bytes injected around STARTTLS, credentials
  that would travel in plaintext.
* :class:`AuthenticationError` -- the server refused the credentials.
* :class:`SMTPTimeoutError` -- a phase took longer than allowed; also a :class:`TimeoutError`.
* :class:`SMTPConnectError` -- the server could not be reached; also a :class:`ConnectionError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._replies import Reply

__all__ = [
    "AuthenticationError",
    "LocalProtocolError",
    "PermanentReplyError",
    "RemoteProtocolError",
    "ReplyError",
    "SMTPConnectError",
    "SMTPError",
    "SMTPTimeoutError",
    "SecurityError",
    "TransientReplyError",
]


class SMTPError(Exception):
    """Base class of every error raised by smtp-sansio."""


class LocalProtocolError(SMTPError):
    """The caller asked for something invalid; nothing was sent because of it."""


class RemoteProtocolError(SMTPError):
    """The server violated the protocol; the connection cannot be used any more."""


class SecurityError(SMTPError):
    """A security requirement could not be met (TLS, STARTTLS injection, plaintext credentials)."""


class SMTPTimeoutError(SMTPError, TimeoutError):
    """A protocol phase exceeded its timeout; the connection has been closed.

    Attributes:
        phase: the name of the phase that timed out (``"greeting"``, ``"mail"``, ...).
    """

    def __init__(self, message: str, *, phase: str) -> None:
        super().__init__(message)
        self.phase = phase

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments and read-only mappings need help to cross a process boundary
        # (a queue worker in a process pool, say).
        return (_rebuild, (type(self), (str(self),), {"phase": self.phase}))


class SMTPConnectError(SMTPError, ConnectionError):
    """The server could not be reached (refused, unreachable, name not found)."""


class ReplyError(SMTPError):
    """The server answered a command with a negative reply.

    Attributes:
        reply: the :class:`~smtp_sansio.Reply` the server sent.
        command: the command line it answered, redacted like the trace (``None`` for the greeting).
        refused: when the error is that recipients were refused, each refused recipient with the
            reply it got; otherwise empty.
    """

    def __init__(
        self, reply: Reply, command: str | None = None, *, refused: Mapping[str, Reply] | None = None
    ) -> None:
        self.reply = reply
        self.command = command
        self.refused: Mapping[str, Reply] = MappingProxyType(dict(refused or {}))
        answered = f" to {command}" if command else ""
        super().__init__(f"server replied {reply.code}{answered}: {reply.text_oneline}")

    @property
    def code(self) -> int:
        """The three-digit reply code."""
        return self.reply.code

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), (self.reply, self.command), {"refused": dict(self.refused)}))


class TransientReplyError(ReplyError):
    """A 4xx reply: the same request may succeed later (RFC 5321 section 4.2.1)."""


class PermanentReplyError(ReplyError):
    """A 5xx reply: repeating the same request will fail again (RFC 5321 section 4.2.1)."""


class AuthenticationError(SMTPError):
    """Authentication failed, for good: the server refused the credentials (535 or another 5xx to
    AUTH), does not offer AUTH, offers no usable mechanism, or misbehaved during the exchange (a
    SCRAM server that did not prove it knows the password, say).  A temporary failure of the
    server (454 or another 4xx) is a :class:`TransientReplyError` instead.

    Attributes:
        reply: the server's reply when it refused (535, 534, ...), else ``None``.
    """

    def __init__(self, message: str, *, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), (str(self),), {"reply": self.reply}))


def _rebuild(cls: type[SMTPError], args: tuple[object, ...], kwargs: dict[str, object]) -> SMTPError:
    """Unpickle an error whose constructor takes keyword-only arguments."""
    return cls(*args, **kwargs)
