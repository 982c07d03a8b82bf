"""Service extensions announced in an EHLO reply (RFC 5321 section 4.1.1.1)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ._abnf import ESMTP_KEYWORD
from ._replies import Reply

__all__ = ["Capabilities"]

_SIZE_VALUE = re.compile(r"[0-9]{1,20}")


def _empty() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What the server said it supports.

    Attributes:
        server_name: the domain the server named on the first line of its EHLO reply.
        extensions: each announced keyword, upper-cased, with its parameters.
        esmtp: False when the session fell back to HELO, so no extension may be used.
    """

    server_name: str = ""
    extensions: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    esmtp: bool = False

    @classmethod
    def from_ehlo_reply(cls, reply: Reply) -> Capabilities:
        """Parse a positive EHLO reply (RFC 5321 section 4.1.1.1)::

            ehlo-ok-rsp  = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
                         / ( "250-" Domain [ SP ehlo-greet ] CRLF
                             *( "250-" ehlo-line CRLF )
                             "250" SP ehlo-line CRLF )
            ehlo-line    = ehlo-keyword *( SP ehlo-param )

        Lines that are not a valid ehlo-line are skipped rather than refused: a client gains
        nothing by rejecting a server over an extension it does not recognise.  The legacy
        ``AUTH=LOGIN PLAIN`` form, still sent by old Microsoft and Sendmail servers, counts as
        ``AUTH``.
        """
        text = [line.decode("utf-8", "replace") for line in reply.lines]
        server_name = text[0].split(" ", 1)[0] if text[0] else ""
        extensions: dict[str, tuple[str, ...]] = {}
        for line in text[1:]:
            if not line.strip():
                continue
            keyword, *params = line.split()
            legacy_auth = keyword.upper().startswith("AUTH=")
            if legacy_auth:
                params = [keyword[5:], *params]
                keyword = "AUTH"
            if not ESMTP_KEYWORD.fullmatch(keyword):
                continue
            keyword = keyword.upper()
            if keyword in extensions and keyword == "AUTH":
                merged = dict.fromkeys([*extensions[keyword], *params])
                extensions[keyword] = tuple(merged)
            else:
                extensions[keyword] = tuple(params)
        return cls(server_name=server_name, extensions=MappingProxyType(extensions), esmtp=True)

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self.extensions

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        """The SASL mechanisms offered with AUTH, upper-cased, in the server's order."""
        # Upper-cased first, then deduplicated: "AUTH login" and "AUTH=LOGIN" name one mechanism.
        mechanisms = (mechanism.upper() for mechanism in self.extensions.get("AUTH", ()) if mechanism)
        return tuple(dict.fromkeys(mechanisms))

    @property
    def size_limit(self) -> int | None:
        """The SIZE limit in octets (RFC 1870 section 4); ``0`` for "no fixed limit", ``None`` if absent."""
        params = self.extensions.get("SIZE")
        if params is None:
            return None
        # size-param = "SIZE" [SP 1*20DIGIT]: ASCII digits only (str.isdigit also takes "²"), and at
        # most 20 of them, so a hostile server cannot make int() refuse or work hard.
        if params and _SIZE_VALUE.fullmatch(params[0]):
            return int(params[0])
        return 0
