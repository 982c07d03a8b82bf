"""Delivery Status Notification requests (RFC 3461) and the xtext encoding they travel in.

A client asks for DSNs with four ESMTP parameters, allowed only when the server announced ``DSN``
in its EHLO reply (RFC 3461 section 4):

* ``RET=FULL|HDRS`` on MAIL: return the whole message or only its headers in a failure DSN
  (section 4.3);
* ``ENVID=xtext`` on MAIL: an envelope identifier the DSN will quote back (section 4.4);
* ``NOTIFY=NEVER`` or ``NOTIFY=SUCCESS,FAILURE,DELAY`` (any of the three) on RCPT: when to report
  (section 4.1);
* ``ORCPT=addr-type;xtext`` on RCPT: the original recipient address, quoted back in the DSN
  (section 4.2).

:class:`Dsn` holds a request and checks it when it is built, so an invalid one never reaches the
wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ._errors import LocalProtocolError

__all__ = ["NOTIFY_VALUES", "Dsn", "xtext_decode", "xtext_encode"]

#: The conditions NOTIFY may list (RFC 3461 section 4.1); NEVER must stand alone.
NOTIFY_VALUES: frozenset[str] = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})

# RFC 3461 section 4.4: "The ENVID parameter ... MUST NOT exceed 100 characters" (the xtext form).
MAX_ENVID = 100
# RFC 3461 section 4.2: "the ORCPT parameter ... MUST NOT exceed 500 characters" (the whole value).
MAX_ORCPT = 500


def xtext_encode(text: str) -> str:
    """Encode ``text`` as xtext (RFC 3461 section 4)::

        xtext   = *( xchar / hexchar )
        xchar   = any ASCII CHAR between "!" (33) and "~" (126) inclusive, except "+" and "="
        hexchar = "+" 2(%x30-39 / %x41-46)   ; an octet as two upper-case hexadecimal digits

    Raises:
        LocalProtocolError: ``text`` is not a str or is not ASCII (xtext carries US-ASCII only).
    """
    if not isinstance(text, str):
        raise LocalProtocolError(f"xtext must be made from a str, not {type(text).__name__}")
    if not text.isascii():
        raise LocalProtocolError(f"{text!r} is not ASCII: xtext (RFC 3461 section 4) cannot carry it")
    return "".join(
        char if 33 <= ord(char) <= 126 and char not in "+=" else f"+{ord(char):02X}" for char in text
    )


def xtext_decode(xtext: str) -> str:
    """Decode xtext (RFC 3461 section 4); the inverse of :func:`xtext_encode`.

    Raises:
        LocalProtocolError: ``xtext`` is not valid xtext.
    """
    out: list[str] = []
    index = 0
    while index < len(xtext):
        char = xtext[index]
        if char == "+":
            digits = xtext[index + 1 : index + 3]
            if len(digits) != 2 or any(d not in "0123456789ABCDEF" for d in digits):
                raise LocalProtocolError(
                    f"invalid xtext {xtext!r}: '+' must be followed by two upper-case hex digits"
                )
            out.append(chr(int(digits, 16)))
            index += 3
            continue
        if not 33 <= ord(char) <= 126 or char == "=":
            raise LocalProtocolError(f"invalid xtext {xtext!r}: {char!r} must be hex-encoded")
        out.append(char)
        index += 1
    return "".join(out)


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Dsn:
    """A request for Delivery Status Notifications (RFC 3461), checked when built.

    Attributes:
        notify: for every recipient, when to send a DSN: ``("NEVER",)`` or any of ``"SUCCESS"``,
            ``"FAILURE"``, ``"DELAY"`` (section 4.1); ``None`` leaves it to the server (usually
            ``FAILURE,DELAY``).  Case does not matter; a string is taken as one value.
        ret: ``"FULL"`` or ``"HDRS"``, what a failure DSN returns of the message (section 4.3).
        envid: an envelope identifier quoted back in every DSN (section 4.4); printable ASCII, at
            most 100 characters once xtext-encoded.
        orcpt: recipient (the forward-path as sent, after any sendto domain was added) to its
            original address, sent as ``ORCPT=rfc822;<xtext>`` (section 4.2).  ASCII addresses only.

    Raises:
        LocalProtocolError: a value is not allowed (NEVER together with another condition, an
            unknown condition or RET, an ENVID or ORCPT too long or not printable ASCII).
    """

    notify: tuple[str, ...] | None = None
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    orcpt: Mapping[str, str] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        notify: object = self.notify
        if isinstance(notify, str):
            notify = (notify,)
        if notify is not None:
            if not isinstance(notify, tuple | list) or not notify:
                raise LocalProtocolError("DSN notify must be a non-empty tuple of conditions")
            for value in notify:
                if not isinstance(value, str) or value.upper() not in NOTIFY_VALUES:
                    raise LocalProtocolError(
                        f"unknown DSN NOTIFY condition {value!r} (NEVER, SUCCESS, FAILURE or DELAY)"
                    )
            conditions = tuple(dict.fromkeys(value.upper() for value in notify))
            # RFC 3461 section 4.1: "NEVER" must not be combined with any other condition.
            if "NEVER" in conditions and len(conditions) > 1:
                raise LocalProtocolError("DSN NOTIFY=NEVER cannot be combined with others (RFC 3461 4.1)")
            object.__setattr__(self, "notify", conditions)
        given_ret: object = self.ret
        if given_ret is not None:
            ret = given_ret.upper() if isinstance(given_ret, str) else given_ret
            if ret not in ("FULL", "HDRS"):
                raise LocalProtocolError(f"DSN RET must be FULL or HDRS (RFC 3461 4.3), not {self.ret!r}")
            object.__setattr__(self, "ret", ret)
        envid: object = self.envid
        if envid is not None:
            if not isinstance(envid, str) or not envid or not all(32 <= ord(char) <= 126 for char in envid):
                raise LocalProtocolError(f"DSN ENVID must be printable ASCII (RFC 3461 4.4): {envid!r}")
            if len(xtext_encode(envid)) > MAX_ENVID:
                raise LocalProtocolError(f"DSN ENVID is over {MAX_ENVID} characters as xtext (RFC 3461 4.4)")
        orcpt: object = self.orcpt
        if not isinstance(orcpt, Mapping):
            raise LocalProtocolError(f"DSN orcpt must be a mapping, not {type(orcpt).__name__}")
        for recipient, original in orcpt.items():
            if not isinstance(recipient, str) or not isinstance(original, str) or not original:
                raise LocalProtocolError("DSN orcpt must map recipient strings to non-empty address strings")
            if len(_orcpt_value(original)) > MAX_ORCPT:
                raise LocalProtocolError(f"DSN ORCPT for {recipient!r} is longer than {MAX_ORCPT} characters")
        object.__setattr__(self, "orcpt", MappingProxyType(dict(self.orcpt)))

    def mail_parameters(self) -> dict[str, str | None]:
        """The parameters for MAIL FROM: ``RET`` and ``ENVID`` when set (RFC 3461 4.3, 4.4)."""
        parameters: dict[str, str | None] = {}
        if self.ret is not None:
            parameters["RET"] = self.ret
        if self.envid is not None:
            parameters["ENVID"] = xtext_encode(self.envid)
        return parameters

    def rcpt_parameters(self, recipient: str) -> dict[str, str | None]:
        """The parameters for ``RCPT TO:<recipient>``: ``NOTIFY`` and ``ORCPT`` when set (4.1, 4.2)."""
        parameters: dict[str, str | None] = {}
        if self.notify is not None:
            parameters["NOTIFY"] = ",".join(self.notify)
        original = self.orcpt.get(recipient)
        if original is not None:
            parameters["ORCPT"] = _orcpt_value(original)
        return parameters


def _orcpt_value(original: str) -> str:
    # orcpt-parameter = "ORCPT=" original-recipient-address
    # original-recipient-address = addr-type ";" xtext     (RFC 3461 section 4.2)
    return "rfc822;" + xtext_encode(original)
