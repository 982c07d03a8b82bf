"""What a :class:`~smtp_sansio.Session` reports: the outcome of a message, and the protocol trace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ._errors import SMTPError
from ._replies import Reply

__all__ = ["SendResult", "TraceDirection", "TraceLine", "Unsent"]

#: ``"C"`` for what the client sent, ``"S"`` for what the server sent, ``"*"`` for a note of the
#: session's own (TLS established, STARTTLS skipped, ...).
TraceDirection = Literal["C", "S", "*"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceLine:
    """One line of the protocol trace, as Emacs' ``smtpmail-debug-info`` shows it.

    Secrets never appear: AUTH arguments and SASL responses are replaced by ``<redacted>``, and
    message content is summarised by its size rather than copied.

    Attributes:
        direction: who sent it (see :data:`TraceDirection`).
        text: the line without its line ending; non-UTF-8 bytes from the server appear as
            backslash escapes.
    """

    direction: TraceDirection
    text: str

    def __str__(self) -> str:
        return f"{self.direction}: {self.text}"


def _no_refusals() -> Mapping[str, Reply]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    """The outcome of one message that the server accepted for at least one recipient.

    Attributes:
        accepted: the recipients the server accepted, in the order they were sent (after the
            sendto domain was applied).
        refused: each recipient the server refused, with its reply (``code``,
            ``enhanced_status``, ``text``).
        reply: the server's reply to the end of the message data, the one that took
            responsibility for delivery (RFC 5321 section 4.1.1.4); in LMTP, the first positive
            one of the per-recipient replies.
        recipient_replies: LMTP only (RFC 2033 section 4.2): each recipient in ``accepted`` with its
            own reply to the end of the data.  A recipient accepted by RCPT whose delivery then
            failed is in ``refused`` with that reply.  Empty for SMTP, where one reply covers all.
    """

    accepted: tuple[str, ...]
    refused: Mapping[str, Reply] = field(default_factory=_no_refusals)
    reply: Reply
    recipient_replies: Mapping[str, Reply] = field(default_factory=_no_refusals)

    def __post_init__(self) -> None:
        object.__setattr__(self, "refused", MappingProxyType(dict(self.refused)))
        object.__setattr__(self, "recipient_replies", MappingProxyType(dict(self.recipient_replies)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsent:
    """A message of :meth:`~smtp_sansio.Session.send_messages` that the connection ended before finishing.

    Attributes:
        error: what ended the connection (a 421 reply, a protocol violation, the server hanging
            up, content that could not be sent).
        data_sent: the end of the message data was written but its reply never came: the server
            may have accepted the message (RFC 5321 section 6.1 warns of the duplicate a retry may
            then cause).  ``False``: the message was certainly not delivered.
    """

    error: SMTPError
    data_sent: bool = False
