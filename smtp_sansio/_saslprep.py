"""SASLprep (RFC 4013): the stringprep profile (RFC 3454) for user names and passwords.

SCRAM (RFC 5802) hashes the prepared password, so a client and a server that prepare the same
password differently compute different keys: "I\\u00adX" (with a soft hyphen) and "IX" must be the
same password.  The tables are the standard library's :mod:`stringprep`, which implements the
appendices of RFC 3454 on Unicode 3.2, the version stringprep is defined on (RFC 3454 section 3);
normalization uses the same version for the same reason.

Error messages name the kind of character that was refused, never the string itself: the string is
usually a password.
"""

from __future__ import annotations

import stringprep
import unicodedata
from collections.abc import Callable

from ._errors import LocalProtocolError

__all__ = ["saslprep"]

# RFC 4013 section 2.3: the prohibited output, one RFC 3454 table each.  Its first table, C.1.2
# (non-ASCII spaces), cannot match here: the mapping step has already made those spaces U+0020.
_PROHIBITED: tuple[tuple[Callable[[str], bool], str], ...] = (
    (stringprep.in_table_c21_c22, "a control character (RFC 3454 tables C.2.1 and C.2.2)"),
    (stringprep.in_table_c3, "a private-use character (RFC 3454 table C.3)"),
    (stringprep.in_table_c4, "a non-character code point (RFC 3454 table C.4)"),
    (stringprep.in_table_c5, "a surrogate code point (RFC 3454 table C.5)"),
    (stringprep.in_table_c6, "a character inappropriate for plain text (RFC 3454 table C.6)"),
    (stringprep.in_table_c7, "a character inappropriate for canonical representation (RFC 3454 table C.7)"),
    (stringprep.in_table_c8, "a display-changing or deprecated character (RFC 3454 table C.8)"),
    (stringprep.in_table_c9, "a tagging character (RFC 3454 table C.9)"),
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """Prepare a user name or password with the SASLprep profile (RFC 4013).

    Args:
        text: the string to prepare.
        allow_unassigned: treat ``text`` as a "query" rather than a "stored" string (RFC 3454
            section 7), so that code points unassigned in Unicode 3.2 pass.  RFC 5802 section 5.1
            asks for this for SCRAM user names; passwords are stored strings (RFC 5802 section 2.2).

    Returns:
        The prepared string (which may be empty: "\\u00ad" prepares to "").

    Raises:
        LocalProtocolError: ``text`` is not a str, contains prohibited output (RFC 4013 section
            2.3), violates the bidirectional rules (section 2.4), or contains an unassigned code
            point and ``allow_unassigned`` is false (section 2.5).
    """
    if not isinstance(text, str):
        raise LocalProtocolError(f"SASLprep needs a str, not {type(text).__name__}")
    # Section 2.1: non-ASCII spaces (C.1.2) become SPACE, "commonly mapped to nothing" (B.1) goes.
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char for char in text if not stringprep.in_table_b1(char)
    )
    # Section 2.2: Unicode normalization form KC, of the Unicode version stringprep is built on.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for char in prepared:
        for in_table, description in _PROHIBITED:
            if in_table(char):
                raise LocalProtocolError(f"SASLprep: the string contains {description}")
        # Section 2.5 and RFC 3454 section 7: stored strings may not use unassigned code points,
        # whose normalization a later Unicode version could change.
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise LocalProtocolError(
                "SASLprep: the string contains a code point unassigned in Unicode 3.2 (RFC 3454 table A.1)"
            )
    # Section 2.4, by way of RFC 3454 section 6: a string with right-to-left characters (D.1) may
    # contain no left-to-right ones (D.2), and must begin and end with a right-to-left character.
    if any(stringprep.in_table_d1(char) for char in prepared):
        if any(stringprep.in_table_d2(char) for char in prepared):
            raise LocalProtocolError(
                "SASLprep: the string mixes right-to-left and left-to-right characters (RFC 3454 section 6)"
            )
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise LocalProtocolError(
                "SASLprep: a right-to-left string must begin and end with a right-to-left character "
                "(RFC 3454 section 6)"
            )
    return prepared
