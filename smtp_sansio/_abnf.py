"""The SMTP grammar, as compiled regular expressions.

Each pattern stands under the ABNF rule it implements, quoted from RFC 5321 section 4.1.2 (command
arguments), section 4.2 (replies), RFC 6531 section 3.3 (the SMTPUTF8 extensions of those rules) and
RFC 3463 section 2 (enhanced status codes).  Patterns are matched with ``fullmatch`` only, against
``str`` for command arguments and ``bytes`` for replies.  Nothing else in the package writes a regex
for a protocol element.
"""

from __future__ import annotations

import re

__all__ = [
    "ADDRESS_LITERAL",
    "DOMAIN",
    "DOMAIN_UTF8",
    "ENHANCED_STATUS",
    "ESMTP_KEYWORD",
    "ESMTP_VALUE",
    "ESMTP_VALUE_UTF8",
    "FORBIDDEN_CONTROL",
    "LOCAL_PART",
    "LOCAL_PART_UTF8",
    "REPLY_LINE",
    "SASL_MECHANISM",
    "TEXT_ARGUMENT",
]

# UTF8-non-ascii (RFC 6531 section 3.3, by way of RFC 6532 section 3.1), as decoded characters:
# anything above U+007F except the C1 controls, the Unicode line and paragraph separators, which
# would let an argument span lines in a receiver that splits on them, and the surrogates, which are
# not characters and cannot be encoded in UTF-8 (a lone one comes from bytes decoded with
# surrogateescape).
_UTF8_NON_ASCII = "\u00a0-\u2027\u202a-\ud7ff\ue000-\U0010ffff"

# atext (RFC 5322 section 3.2.3) = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
#         "-" / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"

# Dot-string     = Atom *("."  Atom)
# Atom           = 1*atext
# Quoted-string  = DQUOTE *QcontentSMTP DQUOTE
# QcontentSMTP   = qtextSMTP / quoted-pairSMTP
# quoted-pairSMTP  = %d92 %d32-126
# qtextSMTP      = %d32-33 / %d35-91 / %d93-126
# Local-part     = Dot-string / Quoted-string
LOCAL_PART = re.compile(
    rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*"
    r'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
)

# RFC 6531 section 3.3:  atext =/ UTF8-non-ascii ;  qtextSMTP =/ UTF8-non-ascii
LOCAL_PART_UTF8 = re.compile(
    rf"[{_ATEXT}{_UTF8_NON_ASCII}]+(?:\.[{_ATEXT}{_UTF8_NON_ASCII}]+)*"
    rf'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8_NON_ASCII}]|\\[\x20-\x7e])*"'
)

# Domain         = sub-domain *("." sub-domain)
# sub-domain     = Let-dig [Ldh-str]
# Let-dig        = ALPHA / DIGIT
# Ldh-str        = *( ALPHA / DIGIT / "-" ) Let-dig
_SUB_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
DOMAIN = re.compile(rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*")

# RFC 6531 section 3.3:  sub-domain =/ U-label
# A U-label is checked here only for its characters; IDNA validity is the resolver's business.
DOMAIN_UTF8 = re.compile(
    rf"[A-Za-z0-9{_UTF8_NON_ASCII}](?:[A-Za-z0-9{_UTF8_NON_ASCII}-]*[A-Za-z0-9{_UTF8_NON_ASCII}])?"
    rf"(?:\.[A-Za-z0-9{_UTF8_NON_ASCII}](?:[A-Za-z0-9{_UTF8_NON_ASCII}-]*[A-Za-z0-9{_UTF8_NON_ASCII}])?)*"
)

# address-literal  = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]"
# IPv4-address-literal  = Snum 3("."  Snum)
# IPv6-address-literal  = "IPv6:" IPv6-addr
# General-address-literal  = Standardized-tag ":" 1*dcontent
# dcontent       = %d33-90 / %d94-126
# The IPv4 and IPv6 forms are instances of the general form (with tag "IPv6"), except IPv4 which
# has no tag; exact address validity is left to the address parser of whoever builds the literal.
_SNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
ADDRESS_LITERAL = re.compile(
    rf"\[(?:{_SNUM}(?:\.{_SNUM}){{3}}"
    r"|IPv6:[0-9A-Fa-f:.]+"
    r"|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?:[\x21-\x5a\x5e-\x7e]+)\]"
)

# esmtp-keyword  = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")

# esmtp-value    = 1*(%d33-60 / %d62-126)
#                ; any CHAR excluding "=", SP, and control characters.
ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")

# RFC 6531 section 3.3:  esmtp-value =/ UTF8-non-ascii
ESMTP_VALUE_UTF8 = re.compile(rf"[\x21-\x3c\x3e-\x7e{_UTF8_NON_ASCII}]+")

# sasl-mech    = 1*20mech-char
# mech-char    = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE        (RFC 4422 section 3.1)
SASL_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")

# Arguments of VRFY, VERB and the like: String = Atom / Quoted-string (RFC 5321 section 4.1.2),
# loosened to any printable ASCII with single spaces, which every server accepts for VRFY.
TEXT_ARGUMENT = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")

# Control characters no command argument may carry: CR and LF would end the command early and
# smuggle in another (CPython gh-87290), NUL truncates in C servers, the rest have no use in SMTP.
FORBIDDEN_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]")

# Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
#                  Reply-code [ SP textstring ] CRLF
# Reply-code     = %x32-35 %x30-35 %x30-39
# textstring     = 1*(%d09 / %d32-126)
# Matched per line, without its line ending.  The text is taken as any bytes but CR and LF:
# servers send UTF-8 and Latin-1 text in the wild, and refusing it would gain nothing.  Group 1 is
# the code, group 2 the separator ("-" continues, " " or nothing ends), group 3 the text.
REPLY_LINE = re.compile(rb"([2-5][0-5][0-9])(?:([- ])([^\r\n]*))?")

# status-code    = class "." subject "." detail       (RFC 3463 section 2)
# class          = "2" / "4" / "5"
# subject        = 1*3digit
# detail         = 1*3digit
# As it appears at the start of reply text when ENHANCEDSTATUSCODES is in use (RFC 2034 section 4).
ENHANCED_STATUS = re.compile(rb"([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$)")
