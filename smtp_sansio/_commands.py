"""SMTP commands as values that cannot be built invalid.

Every command is a frozen, slotted, keyword-only dataclass whose constructor checks its arguments
against the grammar in :mod:`._abnf` and the length limits of RFC 5321 section 4.5.3.1.  A command
that exists can be encoded, so nothing malformed ever reaches the wire: a CR or LF in an address
raises :class:`LocalProtocolError` here, not after half a command was sent.

Each command knows:

* ``verb``, its name; ``state_input()``, the name the state table (:mod:`._state`) uses for it
  (the same, except ``BDAT-LAST`` for the last chunk of a CHUNKING transaction);
* ``encode()``, its bytes on the wire;
* ``trace_text()``, its line for the protocol trace, with secrets redacted;
* ``phase``, the timeout phase of RFC 5321 section 4.5.3.2 its reply falls under.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from ._abnf import (
    ADDRESS_LITERAL,
    DOMAIN,
    DOMAIN_UTF8,
    ESMTP_KEYWORD,
    ESMTP_VALUE,
    ESMTP_VALUE_UTF8,
    FORBIDDEN_CONTROL,
    LOCAL_PART,
    LOCAL_PART_UTF8,
    SASL_MECHANISM,
    TEXT_ARGUMENT,
)
from ._errors import LocalProtocolError

__all__ = [
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "Ehlo",
    "Helo",
    "Lhlo",
    "Mail",
    "Noop",
    "Quit",
    "Rcpt",
    "Rset",
    "Starttls",
    "Verb",
    "Vrfy",
    "validate_domain",
    "validate_mailbox",
]

# RFC 5321 section 4.5.3.1: size limits, in octets.
MAX_LOCAL_PART = 64  # 4.5.3.1.1
MAX_DOMAIN = 255  # 4.5.3.1.2
MAX_PATH = 256  # 4.5.3.1.3, including the angle brackets
MAX_COMMAND_LINE = 512  # 4.5.3.1.4, including the CRLF
REDACTED = "<redacted>"

EsmtpParameters = Mapping[str, str | None]


def _octets(text: str) -> int:
    return len(text.encode("utf-8"))


def _reject_controls(what: str, value: object) -> None:
    # Also the type check of every text argument: anything but str would be formatted into the
    # line by its repr ("MAIL FROM:<None>").
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a str, not {type(value).__name__}")
    found = FORBIDDEN_CONTROL.search(value)
    if found is not None:
        raise LocalProtocolError(f"{what} contains the control character {found.group()!r}: {value!r}")


def _require_bytes_or_none(what: str, value: object) -> None:
    if value is not None and not isinstance(value, bytes):
        raise LocalProtocolError(f"{what} must be bytes, not {type(value).__name__}")


def validate_domain(domain: str, *, smtputf8: bool = False, what: str = "domain") -> None:
    """Check a domain or address literal against RFC 5321 (and RFC 6531 when ``smtputf8``).

    Raises:
        LocalProtocolError: naming what is wrong.
    """
    _reject_controls(what, domain)
    _check_domain(domain, smtputf8=smtputf8, what=what)


def _check_domain(domain: str, *, smtputf8: bool, what: str) -> None:
    # validate_domain() for a str already known to hold no control character.
    grammar = DOMAIN_UTF8 if smtputf8 else DOMAIN
    if not ADDRESS_LITERAL.fullmatch(domain) and not grammar.fullmatch(domain):
        if not smtputf8 and not domain.isascii():
            raise LocalProtocolError(f"{what} {domain!r} is not ASCII and the server does not offer SMTPUTF8")
        raise LocalProtocolError(f"{what} {domain!r} is not a valid domain name or address literal")
    # The limit holds for "a domain name or number" alike (RFC 5321 section 4.5.3.1.2).
    if _octets(domain) > MAX_DOMAIN:
        raise LocalProtocolError(f"{what} is longer than {MAX_DOMAIN} octets (RFC 5321 4.5.3.1.2)")


def validate_mailbox(address: str, *, smtputf8: bool = False, what: str = "address") -> None:
    """Check ``local-part@domain`` against RFC 5321 section 4.1.2 and its length limits.

    Raises:
        LocalProtocolError: naming what is wrong.
    """
    _reject_controls(what, address)
    _check_mailbox(address, smtputf8=smtputf8, what=what)


def _check_mailbox(address: str, *, smtputf8: bool, what: str) -> None:
    # validate_mailbox() for a str already known to hold no control character: the MAIL and RCPT
    # constructors check that first, for the null reverse-path and <Postmaster> too.
    local, at, domain = address.rpartition("@")
    if not at or not local:
        raise LocalProtocolError(f"{what} {address!r} has no local part and domain (local@domain)")
    if not smtputf8 and not local.isascii():
        raise LocalProtocolError(f"{what} {address!r} is not ASCII and the server does not offer SMTPUTF8")
    grammar = LOCAL_PART_UTF8 if smtputf8 else LOCAL_PART
    if not grammar.fullmatch(local):
        raise LocalProtocolError(f"{what} {address!r} has an invalid local part")
    if _octets(local) > MAX_LOCAL_PART:
        raise LocalProtocolError(f"{what} {address!r}: local part longer than {MAX_LOCAL_PART} octets")
    # A part of the address, so it has no control character either.
    _check_domain(domain, smtputf8=smtputf8, what=f"{what} domain")
    if _octets(address) + 2 > MAX_PATH:
        raise LocalProtocolError(f"{what} {address!r} is longer than a {MAX_PATH}-octet path allows")


def _validate_parameters(parameters: EsmtpParameters, *, smtputf8: bool) -> None:
    value_grammar = ESMTP_VALUE_UTF8 if smtputf8 else ESMTP_VALUE
    for keyword, value in parameters.items():
        _reject_controls("ESMTP parameter keyword", keyword)
        if not ESMTP_KEYWORD.fullmatch(keyword):
            raise LocalProtocolError(f"invalid ESMTP parameter keyword {keyword!r}")
        if value is not None:
            _reject_controls(f"value of ESMTP parameter {keyword}", value)
        if value is not None and not value_grammar.fullmatch(value):
            raise LocalProtocolError(f"invalid value {value!r} for ESMTP parameter {keyword}")


def _format_parameters(parameters: EsmtpParameters) -> str:
    # Mail-parameters = esmtp-param *(SP esmtp-param); esmtp-param = esmtp-keyword ["=" esmtp-value]
    if not parameters:
        return ""  # most RCPTs have none, and each command line is built more than once
    return "".join(f" {key}" if value is None else f" {key}={value}" for key, value in parameters.items())


def _check_line(line: str) -> bytes:
    # Called when a command is built as well as when it is encoded, so that a command that exists is
    # one that can be sent (RFC 5321 section 4.5.3.1.4).
    encoded = line.encode("utf-8") + b"\r\n"
    if len(encoded) > MAX_COMMAND_LINE:
        raise LocalProtocolError(f"command longer than {MAX_COMMAND_LINE} octets (RFC 5321 4.5.3.1.4)")
    return encoded


def _frozen_parameters(parameters: EsmtpParameters) -> Mapping[str, str | None]:
    return MappingProxyType(dict(parameters))


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Base class of all commands.

    Subclasses set ``verb`` (the state-table input) and ``phase`` (the timeout phase) and
    implement :meth:`line`.
    """

    verb: ClassVar[str] = ""
    phase: ClassVar[str] = "command"

    def line(self) -> str:
        """The command line without CRLF."""
        return self.verb

    def state_input(self) -> str:
        """The input this command is in the state tables of :mod:`._state`; usually :attr:`verb`."""
        return self.verb

    def encode(self) -> bytes:
        """The command as bytes on the wire, CRLF included.

        Raises:
            LocalProtocolError: if the line exceeds 512 octets (RFC 5321 section 4.5.3.1.4).
        """
        return _check_line(self.line())

    def trace_text(self) -> str:
        """The line as shown in traces and error messages; secrets are replaced by a marker."""
        return self.line()


@dataclass(frozen=True, slots=True, kw_only=True)
class _HelloCommand(Command):
    """EHLO, HELO and LHLO share their one argument: the client's domain or address literal."""

    domain: str

    def __post_init__(self) -> None:
        validate_domain(self.domain, what=f"{self.verb} name")
        _check_line(self.line())

    def line(self) -> str:
        return f"{self.verb} {self.domain}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Ehlo(_HelloCommand):
    """EHLO: open an ESMTP session (RFC 5321 section 4.1.1.1)."""

    verb: ClassVar[str] = "EHLO"


@dataclass(frozen=True, slots=True, kw_only=True)
class Helo(_HelloCommand):
    """HELO: open a plain SMTP session, the fallback when EHLO is refused."""

    verb: ClassVar[str] = "HELO"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lhlo(_HelloCommand):
    """LHLO: open an LMTP session (RFC 2033 section 4.1)."""

    verb: ClassVar[str] = "LHLO"


@dataclass(frozen=True, slots=True, kw_only=True)
class Starttls(Command):
    """STARTTLS: ask to negotiate TLS (RFC 3207 section 4)."""

    verb: ClassVar[str] = "STARTTLS"
    phase: ClassVar[str] = "starttls"


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth(Command):
    """AUTH: start a SASL exchange (RFC 4954 section 4).

    Attributes:
        mechanism: the SASL mechanism name (upper-case letters, digits, ``-`` and ``_``).
        initial_response: the client's first message, sent base64-encoded on the same line;
            ``b""`` is sent as ``=``; ``None`` sends none.
    """

    verb: ClassVar[str] = "AUTH"
    phase: ClassVar[str] = "auth"
    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # sasl-mech = 1*20(UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE)   (RFC 4422 section 3.1)
        _reject_controls("SASL mechanism", self.mechanism)
        if not SASL_MECHANISM.fullmatch(self.mechanism):
            raise LocalProtocolError(f"invalid SASL mechanism name {self.mechanism!r}")
        _require_bytes_or_none("initial response", self.initial_response)
        _check_line(self.line())

    def line(self) -> str:
        if self.initial_response is None:
            return f"AUTH {self.mechanism}"
        encoded = base64.b64encode(self.initial_response).decode("ascii") or "="
        return f"AUTH {self.mechanism} {encoded}"

    def trace_text(self) -> str:
        if self.initial_response is None:
            return f"AUTH {self.mechanism}"
        return f"AUTH {self.mechanism} {REDACTED}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResponse(Command):
    """A client response to a 334 challenge, or ``*`` to cancel (RFC 4954 section 4)."""

    verb: ClassVar[str] = "AUTH-RESPONSE"
    phase: ClassVar[str] = "auth"
    data: bytes = field(default=b"", repr=False)
    cancel: bool = False

    def line(self) -> str:
        return "*" if self.cancel else base64.b64encode(self.data).decode("ascii")

    def encode(self) -> bytes:
        # A SASL response may legitimately exceed 512 octets (RFC 4954 section 4 lifts the
        # limit for AUTH continuation lines), so no command-length check here.
        return self.line().encode("ascii") + b"\r\n"

    def trace_text(self) -> str:
        return "*" if self.cancel else REDACTED


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail(Command):
    """MAIL FROM: open a transaction (RFC 5321 section 4.1.1.2).

    Attributes:
        sender: the reverse-path mailbox, or ``""`` for the null reverse-path ``<>``.
        parameters: ESMTP parameters, keyword to value (``None`` for a bare keyword).
        smtputf8: allow non-ASCII (RFC 6531); the caller adds the SMTPUTF8 parameter.
    """

    verb: ClassVar[str] = "MAIL"
    phase: ClassVar[str] = "mail"
    sender: str
    parameters: EsmtpParameters = field(default_factory=lambda: MappingProxyType({}))
    smtputf8: bool = False

    def __post_init__(self) -> None:
        _reject_controls("sender", self.sender)
        if self.sender:
            _check_mailbox(self.sender, smtputf8=self.smtputf8, what="sender")
        _validate_parameters(self.parameters, smtputf8=self.smtputf8)
        object.__setattr__(self, "parameters", _frozen_parameters(self.parameters))
        _check_line(self.line())

    def line(self) -> str:
        return f"MAIL FROM:<{self.sender}>{_format_parameters(self.parameters)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rcpt(Command):
    """RCPT TO: add a recipient (RFC 5321 section 4.1.1.3).

    Attributes:
        recipient: the forward-path mailbox (``Postmaster`` without a domain is allowed).
        parameters: ESMTP parameters, keyword to value.
        smtputf8: allow non-ASCII (RFC 6531).
    """

    verb: ClassVar[str] = "RCPT"
    phase: ClassVar[str] = "rcpt"
    recipient: str
    parameters: EsmtpParameters = field(default_factory=lambda: MappingProxyType({}))
    smtputf8: bool = False

    def __post_init__(self) -> None:
        _reject_controls("recipient", self.recipient)
        # Forward-path allows the bare "<Postmaster>" (RFC 5321 section 4.1.1.3).
        if self.recipient.lower() != "postmaster":
            _check_mailbox(self.recipient, smtputf8=self.smtputf8, what="recipient")
        _validate_parameters(self.parameters, smtputf8=self.smtputf8)
        object.__setattr__(self, "parameters", _frozen_parameters(self.parameters))
        _check_line(self.line())

    def line(self) -> str:
        return f"RCPT TO:<{self.recipient}>{_format_parameters(self.parameters)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Data(Command):
    """DATA: ask to send the message content (RFC 5321 section 4.1.1.4)."""

    verb: ClassVar[str] = "DATA"
    phase: ClassVar[str] = "data"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rset(Command):
    """RSET: abort the current transaction (RFC 5321 section 4.1.1.5)."""

    verb: ClassVar[str] = "RSET"


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    """NOOP: ask for a 250 and nothing else (RFC 5321 section 4.1.1.9)."""

    verb: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit(Command):
    """QUIT: end the session (RFC 5321 section 4.1.1.10)."""

    verb: ClassVar[str] = "QUIT"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verb(Command):
    """VERB: ask a Sendmail-family server for verbose delivery, as Emacs' ``smtpmail-debug-verb``.

    Not in any RFC; servers that do not know it answer 500 or 502, which is harmless.
    """

    verb: ClassVar[str] = "VERB"


@dataclass(frozen=True, slots=True, kw_only=True)
class Vrfy(Command):
    """VRFY: ask whether a mailbox exists (RFC 5321 section 4.1.1.6)."""

    verb: ClassVar[str] = "VRFY"
    argument: str

    def __post_init__(self) -> None:
        _reject_controls("VRFY argument", self.argument)
        if not TEXT_ARGUMENT.fullmatch(self.argument):
            raise LocalProtocolError(f"invalid VRFY argument {self.argument!r}")
        _check_line(self.line())

    def line(self) -> str:
        return f"VRFY {self.argument}"


#: The largest BDAT chunk this package builds: far above any sensible chunk size, and small enough
#: that a size never needs more digits than a server is likely to parse (RFC 3030 section 2 sets no
#: limit; ``chunk-size = 1*DIGIT``).
MAX_CHUNK_SIZE = 2**31 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Bdat(Command):
    """BDAT: the command line announcing one chunk of message data (RFC 3030 section 2)::

        bdat-cmd   ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF
        chunk-size ::= 1*DIGIT
        end-marker ::= "LAST"

    Exactly ``size`` octets of data follow the line, with no transformation at all (no
    dot-stuffing, no terminator); :meth:`Connection.send_bdat` frames them.

    Attributes:
        size: the number of octets in the chunk; ``0`` is allowed (for an empty last chunk).
        last: the chunk ends the message (``LAST``); its reply is the reply to the whole message.
    """

    verb: ClassVar[str] = "BDAT"
    phase: ClassVar[str] = "data_block"
    size: int
    last: bool = False

    def __post_init__(self) -> None:
        size: object = self.size
        if isinstance(size, bool) or not isinstance(size, int):
            raise LocalProtocolError(f"BDAT chunk size must be an int, not {type(size).__name__}")
        if not 0 <= size <= MAX_CHUNK_SIZE:
            raise LocalProtocolError(f"BDAT chunk size must be from 0 to {MAX_CHUNK_SIZE}, not {self.size}")
        if not isinstance(self.last, bool):
            raise LocalProtocolError(f"BDAT last must be a bool, not {type(self.last).__name__}")

    def line(self) -> str:
        return f"BDAT {self.size} LAST" if self.last else f"BDAT {self.size}"

    def state_input(self) -> str:
        """``BDAT-LAST`` for the chunk that ends the message, else ``BDAT``."""
        return "BDAT-LAST" if self.last else "BDAT"
