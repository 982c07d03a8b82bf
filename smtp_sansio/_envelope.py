"""Envelopes: who a message is from and who it goes to, as SMTP sees it.

The envelope (RFC 5321 section 2.3.1) is what MAIL FROM and RCPT TO carry; the header section of the
message is something else, and the two may differ (Bcc recipients, mailing lists, resending).  This
module builds an :class:`Envelope` directly, or derives it from a message's headers the way
``sendmail -t`` and :meth:`smtplib.SMTP.send_message` do, and returns the message bytes to transmit
with every Bcc and Resent-Bcc field removed.

Header sections are read with the same line-ending rule as :class:`~smtp_sansio._data.DataEncoder`
(CRLF, bare CR and bare LF all end a line).  The fields found here are therefore exactly the fields
the server will see once the encoder has normalised the line endings: a Bcc field hidden behind a
bare CR cannot survive the stripping and reappear on the wire.
"""

from __future__ import annotations

import copy
import email.errors
import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.policy import EmailPolicy, Policy

from ._abnf import FORBIDDEN_CONTROL
from ._errors import LocalProtocolError

__all__ = [
    "Envelope",
    "dedupe_addresses",
    "envelope_from_bytes",
    "envelope_from_message",
    "message_needs_smtputf8",
    "needs_smtputf8",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """The reverse-path and forward-paths of one mail transaction.

    Only what would let an address break out of its command line is checked here: every address
    must be a ``str`` without control characters (C0, DEL, C1, U+2028, U+2029) and must be valid
    Unicode (no lone surrogates).  The full address grammar and the RFC 5321 length limits are
    checked by the MAIL and RCPT commands built from the envelope.

    Attributes:
        sender: the reverse-path for MAIL FROM, without angle brackets; ``""`` is the null
            reverse-path ``<>`` of bounces (RFC 5321 section 4.5.5).
        recipients: the forward-paths for RCPT TO, at least one.  A list is accepted and stored
            as a tuple.

    Raises:
        LocalProtocolError: a field has the wrong type, there are no recipients, a recipient is
            empty, or an address contains a control character.
    """

    sender: str
    recipients: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.sender, str):
            raise LocalProtocolError(f"sender must be a str, not {type(self.sender).__name__}")
        _check_address("sender", self.sender)
        recipients: object = self.recipients
        if isinstance(recipients, list):
            recipients = tuple(recipients)
            object.__setattr__(self, "recipients", recipients)
        if not isinstance(recipients, tuple):
            raise LocalProtocolError(f"recipients must be a tuple of str, not {type(recipients).__name__}")
        if not recipients:
            raise LocalProtocolError("an envelope needs at least one recipient")
        for recipient in recipients:
            if not isinstance(recipient, str):
                raise LocalProtocolError(f"recipients must be str, not {type(recipient).__name__}")
            if not recipient:
                raise LocalProtocolError("a recipient address cannot be empty")
            _check_address("recipient", recipient)


def needs_smtputf8(envelope: Envelope) -> bool:
    """Tell whether an envelope can only be sent with the SMTPUTF8 extension (RFC 6531 section 3.4).

    Args:
        envelope: the envelope to check.

    Returns:
        ``True`` if the sender or any recipient contains a non-ASCII character.
    """
    return not envelope.sender.isascii() or not all(r.isascii() for r in envelope.recipients)


def message_needs_smtputf8(data: bytes) -> bool:
    """Tell whether a message's header section contains UTF-8, which needs SMTPUTF8 (RFC 6532 section 3).

    Only the header section counts: 8-bit octets in the body need 8BITMIME instead (RFC 6152).

    Args:
        data: the message as it will be transmitted.

    Returns:
        ``True`` if any octet of the header section is outside US-ASCII.
    """
    # Most mail is ASCII throughout; only other mail needs the header section found.
    return not data.isascii() and not data[: _parse_header_section(data)[1]].isascii()


def envelope_from_bytes(
    data: bytes, *, sender: str | None = None, recipients: Iterable[str] | None = None
) -> tuple[Envelope, bytes]:
    """Derive the envelope from a message's header section, and strip its Bcc fields.

    Without ``sender``, the sender is the first address in the Sender field, or if that has
    none, in the From field.  Without ``recipients``, they are the addresses of every To, then Cc,
    then Bcc field.  If the message has Resent-* fields it was resent, and the newest resent block
    counts instead (RFC 5322 section 3.6.6): Resent-Sender, else Resent-From, and Resent-To,
    Resent-Cc, Resent-Bcc.  That block is the first run of Resent-* fields in the header section;
    it ends at the first other field or at a Resent-* field name already seen in it, since each may
    appear once per block.  Only the addr-spec of each address is kept (no display name or
    comment); groups contribute their members, an empty group nothing.  Recipients, derived or
    given, lose duplicates (the local part compared exactly, the domain without regard to case),
    keeping the first.

    The returned bytes are ``data`` with every Bcc and Resent-Bcc field, continuation lines
    included, removed -- whether or not the recipients came from the headers -- and every other
    octet unchanged.  The header section ends at the first empty line, where CRLF, bare LF and bare
    CR all end a line (as in the DATA encoder); a line there that is neither a field nor a
    continuation line is kept as it is and does not end the section.

    Args:
        data: the message, with any line endings.
        sender: the reverse-path to use instead of the headers' (``""`` for the null path).
        recipients: the recipients to use instead of the headers'.

    Returns:
        The envelope and the message bytes to transmit.

    Raises:
        LocalProtocolError: no sender or no recipient was found; an address, or a header field it
            came from, contains a control character; an address is not valid UTF-8; an argument
            has the wrong type.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise LocalProtocolError(f"message data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    fields, _ = _parse_header_section(data)
    envelope = _make_envelope(fields, sender, recipients)
    kept = [data[start:end] for start, end in _kept_ranges(data, fields)]
    return envelope, b"".join(kept)


def envelope_from_message(
    message: Message, *, sender: str | None = None, recipients: Iterable[str] | None = None
) -> tuple[Envelope, bytes]:
    """Derive the envelope from an :mod:`email` message, and serialise it without Bcc fields.

    The message is serialised from a deep copy (the caller's object is never changed) with
    :class:`email.generator.BytesGenerator`, its own policy with CRLF line endings, and no
    ``>From`` mangling; the envelope and the stripping then follow :func:`envelope_from_bytes` on
    those bytes.

    With an :class:`email.policy.EmailPolicy` (the policy of :class:`email.message.EmailMessage`),
    header fields are written as raw UTF-8 (``utf8=True``, RFC 6532) only when that is needed: when
    the envelope, or an address in an address field (From, To, Cc, Reply-To, ...), is not ASCII.
    Otherwise non-ASCII text such as a Subject or a display name is written as RFC 2047 encoded
    words, so the message can go to servers without SMTPUTF8.  RFC 2047 cannot express a non-ASCII
    addr-spec (its section 5), which is why such an address switches to UTF-8.

    Args:
        message: the message; it is not modified.
        sender: the reverse-path to use instead of the headers'.
        recipients: the recipients to use instead of the headers'.

    Returns:
        The envelope and the message bytes to transmit.

    Raises:
        LocalProtocolError: as for :func:`envelope_from_bytes`, or the message cannot be
            serialised.
    """
    if not isinstance(message, Message):
        raise LocalProtocolError(f"message must be an email.message.Message, not {type(message).__name__}")
    work = copy.deepcopy(message)
    policy = work.policy
    if not isinstance(policy, EmailPolicy):
        return envelope_from_bytes(
            _serialise(work, policy.clone(linesep="\r\n")), sender=sender, recipients=recipients
        )
    envelope, data = envelope_from_bytes(
        _serialise(work, policy.clone(linesep="\r\n", utf8=True)), sender=sender, recipients=recipients
    )
    if not message_needs_smtputf8(data) or needs_smtputf8(envelope) or _header_addresses_need_utf8(data):
        return envelope, data
    _, data = envelope_from_bytes(
        _serialise(work, policy.clone(linesep="\r\n", utf8=False)),
        sender=envelope.sender,
        recipients=envelope.recipients,
    )
    return envelope, data


# --- addresses -------------------------------------------------------------------------------------


def _check_address(what: str, address: str) -> None:
    found = FORBIDDEN_CONTROL.search(address)
    if found:
        raise LocalProtocolError(
            f"{what} address contains the control character {found.group()!r}: {address!r}"
        )
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: text decoded with surrogateescape from octets that are not UTF-8.
        raise LocalProtocolError(f"{what} address is not valid UTF-8: {address!r}") from None


def dedupe_addresses(addresses: Iterable[str]) -> tuple[str, ...]:
    """The addresses without repeats, first occurrence kept, in order.

    The local part is compared exactly (it may be case-sensitive, RFC 5321 section 2.4), the domain
    without regard to case.
    """
    seen: set[tuple[str, str | None]] = set()
    unique: list[str] = []
    for address in addresses:
        local, at, domain = address.rpartition("@")
        key = (local, domain.lower()) if at else (address, None)
        if key not in seen:
            seen.add(key)
            unique.append(address)
    return tuple(unique)


def _addresses(name: str, value: str) -> list[str]:
    # A control character in the field itself (other than the HTAB of folding) is refused before
    # parsing: email.utils.getaddresses treats some of them as white space and would quietly turn
    # "a@b<CR>RCPT TO:<c@d>" into two addresses.
    found = FORBIDDEN_CONTROL.search(value.replace("\t", " "))
    if found:
        raise LocalProtocolError(f"the {name} header field contains the control character {found.group()!r}")
    addresses = [address for _, address in email.utils.getaddresses([value]) if address]
    for address in addresses:
        _check_address(f"{name} header", address)
    return addresses


_SENDER_FIELDS = ("sender", "from")
_RECIPIENT_FIELDS = ("to", "cc", "bcc")
_RESENT_PREFIX = "resent-"


def _make_envelope(fields: list[_Field], sender: str | None, recipients: Iterable[str] | None) -> Envelope:
    source, prefix = _newest_resent_block(fields), _RESENT_PREFIX
    if source is None:
        source, prefix = fields, ""
    if sender is None:
        sender = _first_sender(source, prefix)
    if recipients is None:
        found = [
            address
            for wanted in _RECIPIENT_FIELDS
            for field in source
            if field.name == prefix + wanted
            for address in _addresses(field.display_name, field.value)
        ]
        if not found:
            what = "Resent-To, Resent-Cc or Resent-Bcc" if prefix else "To, Cc or Bcc"
            raise LocalProtocolError(f"no recipients: the message has no address in {what}")
        recipients = found
    elif isinstance(recipients, str | bytes):
        raise LocalProtocolError("recipients must be an iterable of addresses, not a single string")
    else:
        try:
            recipients = tuple(recipients)
        except TypeError:
            raise LocalProtocolError(
                f"recipients must be an iterable of str, not {type(recipients).__name__}"
            ) from None
    # Built once to validate the types before comparing the addresses, then with duplicates removed.
    envelope = Envelope(sender=sender, recipients=tuple(recipients))
    return Envelope(sender=envelope.sender, recipients=dedupe_addresses(envelope.recipients))


def _first_sender(source: list[_Field], prefix: str) -> str:
    for wanted in _SENDER_FIELDS:
        for field in source:
            if field.name == prefix + wanted:
                addresses = _addresses(field.display_name, field.value)
                if addresses:
                    return addresses[0]
    what = "Resent-Sender or Resent-From" if prefix else "Sender or From"
    raise LocalProtocolError(f"no sender: the message has no address in {what}")


def _newest_resent_block(fields: list[_Field]) -> list[_Field] | None:
    # RFC 5322 section 3.6.6: each resend prepends a block of Resent-* fields (with trace fields),
    # so the first block in the header section is the newest.  A block holds each Resent-* field at
    # most once (RFC 5322 section 3.6, table of field counts), so a repeated name starts the next.
    start = next((i for i, field in enumerate(fields) if field.name.startswith(_RESENT_PREFIX)), None)
    if start is None:
        return None
    block: list[_Field] = []
    for field in fields[start:]:
        if not field.name.startswith(_RESENT_PREFIX) or any(f.name == field.name for f in block):
            break
        block.append(field)
    return block


# Address fields whose addr-specs RFC 2047 cannot encode: the EmailPolicy header registry's address
# headers plus the common non-standard ones.  Bcc fields are not here: they are never transmitted.
_ADDRESS_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
        "disposition-notification-to",
        "mail-followup-to",
        "mail-reply-to",
        "return-receipt-to",
        "errors-to",
    }
)


def _header_addresses_need_utf8(data: bytes) -> bool:
    fields, _ = _parse_header_section(data)
    values = [field.value for field in fields if field.name in _ADDRESS_FIELDS]
    return any(not address.isascii() for _, address in email.utils.getaddresses(values))


# --- the header section ----------------------------------------------------------------------------

# The line endings DataEncoder turns into CRLF: CRLF first, so it counts as one.
_LINE_END = re.compile(rb"\r\n|\r|\n")
# RFC 5322 section 3.6.8:  field-name = 1*ftext ;  ftext = %d33-57 / %d59-126
# and section 4.5.8 (obsolete syntax):  obs-optional = field-name *WSP ":" unstructured CRLF
_FIELD_START = re.compile(rb"([!-9;-~]+)[ \t]*:")
# Fields that must never be transmitted (RFC 5322 section 3.6.3: Bcc is for the sender only).
_STRIPPED_FIELDS = frozenset({"bcc", "resent-bcc"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Field:
    # One header field, or one line that is not a field (name ""), with its continuation lines.
    name: str  # lower case
    display_name: str  # as written, for error messages
    value: str  # unfolded (RFC 5322 section 3.2.2), decoded as UTF-8 with surrogateescape
    start: int  # offset of its first octet in the message
    end: int  # offset just past its last line ending


def _parse_header_section(data: bytes) -> tuple[list[_Field], int]:
    # Returns the fields and the offset where the header section ends (the start of the empty line
    # that separates it from the body, or the end of the message).
    fields: list[_Field] = []
    lines: list[tuple[int, int, int]] = []  # (start, end of text, end with line ending)

    def close_field() -> None:
        if not lines:
            return
        first_start, first_text_end, _ = lines[0]
        head = data[first_start:first_text_end]
        match = _FIELD_START.match(head)
        raw_name = match.group(1) if match else b""
        # Unfolding: drop the line endings between a field's lines, keep everything else.
        raw_value = head[match.end() :] if match else head
        raw_value += b"".join(data[start:text_end] for start, text_end, _ in lines[1:])
        name = raw_name.decode("ascii")
        fields.append(
            _Field(
                name=name.lower(),
                display_name=name,
                value=raw_value.decode("utf-8", "surrogateescape"),
                start=first_start,
                end=lines[-1][2],
            )
        )
        lines.clear()

    position = 0
    while position < len(data):
        line_end = _LINE_END.search(data, position)
        text_end, next_line = (line_end.start(), line_end.end()) if line_end else (len(data), len(data))
        if text_end == position:
            break  # the empty line: the body follows it
        # A line that starts with white space continues the field before it (RFC 5322 3.2.2).
        if data[position] not in b" \t":
            close_field()
        lines.append((position, text_end, next_line))
        position = next_line
    close_field()
    return fields, position


def _kept_ranges(data: bytes, fields: list[_Field]) -> list[tuple[int, int]]:
    kept: list[tuple[int, int]] = []
    position = 0
    for field in fields:
        if field.name in _STRIPPED_FIELDS:
            kept.append((position, field.start))
            position = field.end
    kept.append((position, len(data)))
    return kept


# --- serialising -----------------------------------------------------------------------------------


class _Sink:
    # The file BytesGenerator writes to; an in-memory list, so the core opens no file-like object.
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)


def _serialise(message: Message, policy: Policy) -> bytes:
    sink = _Sink()
    try:
        # mangle_from_=False: ">From " quoting is for mbox files, not SMTP; compat32 turns it on.
        BytesGenerator(sink, mangle_from_=False, policy=policy).flatten(message)
    except (ValueError, email.errors.MessageError) as exc:
        # The header registry refuses, for instance, an address with a CR or LF in it.
        raise LocalProtocolError(f"the message cannot be serialised: {exc}") from exc
    return b"".join(sink.parts)
