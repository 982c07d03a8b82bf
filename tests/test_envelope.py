"""Tests for envelopes: validation, deriving them from headers, and stripping Bcc."""

from __future__ import annotations

import copy
import email
import email.policy
import re
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_sansio._data import encode_data
from smtp_sansio._envelope import (
    Envelope,
    envelope_from_bytes,
    envelope_from_message,
    message_needs_smtputf8,
    needs_smtputf8,
)
from smtp_sansio._errors import LocalProtocolError

# --- Envelope --------------------------------------------------------------------------------------


def test_envelope_basics() -> None:
    envelope = Envelope(sender="a@example.org", recipients=("b@example.org",))
    assert envelope.sender == "a@example.org"
    assert envelope.recipients == ("b@example.org",)
    with pytest.raises(AttributeError):
        envelope.sender = "c@example.org"  # type: ignore[misc]


def test_null_sender_is_allowed() -> None:
    assert Envelope(sender="", recipients=("b@example.org",)).sender == ""


def test_list_of_recipients_becomes_a_tuple() -> None:
    envelope = Envelope(sender="a@x", recipients=["b@x", "c@x"])  # type: ignore[arg-type]
    assert envelope.recipients == ("b@x", "c@x")
    assert hash(envelope) == hash(Envelope(sender="a@x", recipients=("b@x", "c@x")))


@pytest.mark.parametrize(
    ("sender", "recipients", "message"),
    [
        (None, ("b@x",), "sender must be a str"),
        (b"a@x", ("b@x",), "sender must be a str"),
        ("a@x", (), "at least one recipient"),
        ("a@x", [], "at least one recipient"),
        ("a@x", "b@x", "must be a tuple"),
        ("a@x", {"b@x"}, "must be a tuple"),
        ("a@x", (b"b@x",), "recipients must be str"),
        ("a@x", ("",), "cannot be empty"),
    ],
)
def test_envelope_rejects_bad_types(sender: object, recipients: object, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        Envelope(sender=sender, recipients=recipients)  # type: ignore[arg-type]


INJECTIONS = [
    "a@x\r\nRCPT TO:<evil@x>",
    "a@x\rRCPT TO:<evil@x>",
    "a@x\nDATA",
    "a@x\x00",
    "a\t@x",
    "a@x\x1b",
    "a@x\x7f",
    "a@x\x85",  # NEL, a C1 control that splitlines() treats as a line break
    "a@x\u2028b",
    "a@x\u2029b",
]


@pytest.mark.parametrize("address", INJECTIONS)
def test_envelope_rejects_control_characters(address: str) -> None:
    with pytest.raises(LocalProtocolError, match="control character"):
        Envelope(sender=address, recipients=("b@x",))
    with pytest.raises(LocalProtocolError, match="control character"):
        Envelope(sender="a@x", recipients=("b@x", address))


def test_envelope_rejects_lone_surrogates() -> None:
    with pytest.raises(LocalProtocolError, match="not valid UTF-8"):
        Envelope(sender="a@x", recipients=("b\udcff@x",))


def test_needs_smtputf8() -> None:
    assert not needs_smtputf8(Envelope(sender="a@x", recipients=("b@x",)))
    assert not needs_smtputf8(Envelope(sender="", recipients=("b@x",)))
    assert needs_smtputf8(Envelope(sender="jösé@x", recipients=("b@x",)))
    assert needs_smtputf8(Envelope(sender="a@x", recipients=("b@x", "c@exämple.org")))


# --- deriving from bytes ---------------------------------------------------------------------------


def test_from_and_to() -> None:
    data = b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
    envelope, out = envelope_from_bytes(data)
    assert envelope == Envelope(sender="alice@example.org", recipients=("bob@example.org",))
    assert out == data


def test_sender_field_wins_over_from() -> None:
    data = b"From: a@x, b@x\r\nSender: secretary@x\r\nTo: c@x\r\n\r\n"
    assert envelope_from_bytes(data)[0].sender == "secretary@x"


def test_empty_sender_field_falls_back_to_from() -> None:
    data = b"Sender: undisclosed:;\r\nFrom: a@x\r\nTo: c@x\r\n\r\n"
    assert envelope_from_bytes(data)[0].sender == "a@x"


def test_first_from_address_when_several() -> None:
    assert envelope_from_bytes(b"From: a@x, b@x\r\nTo: c@x\r\n\r\n")[0].sender == "a@x"


def test_recipients_to_then_cc_then_bcc() -> None:
    data = b"Bcc: e@x\r\nFrom: a@x\r\nCc: d@x\r\nTo: b@x, c@x\r\nTo: f@x\r\n\r\n"
    assert envelope_from_bytes(data)[0].recipients == ("b@x", "c@x", "f@x", "d@x", "e@x")


@pytest.mark.parametrize(
    ("field", "address"),
    [
        (b"Alice <alice@example.org>", "alice@example.org"),
        (b'"Smith, Alice" <alice@example.org>', "alice@example.org"),
        (b"alice@example.org (Alice Smith)", "alice@example.org"),
        (b"=?utf-8?q?Al=C3=AFce?= <alice@example.org>", "alice@example.org"),
        (b"<alice@example.org>", "alice@example.org"),
        (b'"quoted local"@example.org', '"quoted local"@example.org'),
        (b"Friends: alice@example.org;", "alice@example.org"),
    ],
)
def test_only_the_addr_spec_is_kept(field: bytes, address: str) -> None:
    envelope, _ = envelope_from_bytes(b"From: " + field + b"\r\nTo: " + field + b"\r\n\r\n")
    assert envelope == Envelope(sender=address, recipients=(address,))


def test_groups() -> None:
    data = b"From: a@x\r\nTo: undisclosed-recipients:;\r\nCc: team: b@x, c@x;, d@x\r\n\r\n"
    assert envelope_from_bytes(data)[0].recipients == ("b@x", "c@x", "d@x")


def test_only_an_empty_group_means_no_recipients() -> None:
    with pytest.raises(LocalProtocolError, match=r"no recipients: .* To, Cc or Bcc"):
        envelope_from_bytes(b"From: a@x\r\nTo: undisclosed-recipients:;\r\n\r\n")


def test_folded_fields_are_unfolded() -> None:
    data = b"From: a@x\r\nTo: b@x,\r\n c@x,\n\td@x,\r e@x\r\n\r\n"
    assert envelope_from_bytes(data)[0].recipients == ("b@x", "c@x", "d@x", "e@x")


def test_duplicates_removed_domain_case_insensitive() -> None:
    data = b"From: a@x\r\nTo: b@Example.org, B@example.org, b@example.ORG\r\nCc: b@example.org\r\n\r\n"
    assert envelope_from_bytes(data)[0].recipients == ("b@Example.org", "B@example.org")


def test_explicit_recipients_are_deduplicated_too() -> None:
    envelope, _ = envelope_from_bytes(
        b"From: a@x\r\n\r\n", recipients=["b@x", "b@X", "postmaster", "postmaster", "c@"]
    )
    assert envelope.recipients == ("b@x", "postmaster", "c@")


@pytest.mark.parametrize(
    "data",
    [
        b"To: b@x\r\n\r\n",
        b"From: <>\r\nTo: b@x\r\n\r\n",
        b"From: nobody:;\r\nTo: b@x\r\n\r\n",
        b"",
        b"\r\nFrom: a@x\r\nTo: b@x\r\n",  # after the empty line: body, not headers
    ],
)
def test_no_sender(data: bytes) -> None:
    with pytest.raises(LocalProtocolError, match=r"no sender: .* Sender or From"):
        envelope_from_bytes(data)


def test_no_recipients() -> None:
    with pytest.raises(LocalProtocolError, match="no recipients"):
        envelope_from_bytes(b"From: a@x\r\nSubject: x\r\n\r\nTo: b@x\r\n")


def test_explicit_sender_and_recipients_need_no_headers() -> None:
    envelope, out = envelope_from_bytes(b"Subject: x\r\n\r\nbody", sender="", recipients=("b@x",))
    assert envelope == Envelope(sender="", recipients=("b@x",))
    assert out == b"Subject: x\r\n\r\nbody"


def test_explicit_values_win_over_headers() -> None:
    data = b"From: a@x\r\nTo: b@x\r\nBcc: c@x\r\n\r\n"
    envelope, out = envelope_from_bytes(data, sender="s@y", recipients=iter(["r@y"]))
    assert envelope == Envelope(sender="s@y", recipients=("r@y",))
    assert out == b"From: a@x\r\nTo: b@x\r\n\r\n"


@pytest.mark.parametrize(
    ("recipients", "message"),
    [
        ("b@x", "not a single string"),
        (b"b@x", "not a single string"),
        (42, "must be an iterable"),
        ([], "at least one recipient"),
        ([b"b@x"], "must be str"),
        (["b@x\r\nDATA"], "control character"),
    ],
)
def test_explicit_recipients_are_validated(recipients: object, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        envelope_from_bytes(b"From: a@x\r\n\r\n", recipients=recipients)  # type: ignore[arg-type]


def test_explicit_sender_is_validated() -> None:
    with pytest.raises(LocalProtocolError, match="control character"):
        envelope_from_bytes(b"To: b@x\r\n\r\n", sender="a@x\r\nRSET")


def test_data_must_be_bytes() -> None:
    with pytest.raises(LocalProtocolError, match="must be bytes"):
        envelope_from_bytes("From: a@x\r\nTo: b@x\r\n\r\n")  # type: ignore[arg-type]
    envelope, out = envelope_from_bytes(bytearray(b"From: a@x\r\nTo: b@x\r\n\r\n"))
    assert envelope.recipients == ("b@x",)
    assert isinstance(out, bytes)


# --- Resent-* --------------------------------------------------------------------------------------

RESENT = (
    b"Resent-Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Resent-From: new-from@x\r\n"
    b"Resent-Sender: new-sender@x\r\n"
    b"Resent-To: new-to@x\r\n"
    b"Resent-Cc: new-cc@x\r\n"
    b"Resent-Bcc: new-bcc@x\r\n"
    b"Received: from somewhere\r\n"
    b"Resent-Date: Sun, 31 Dec 2023 10:00:00 +0000\r\n"
    b"Resent-From: old-from@x\r\n"
    b"Resent-To: old-to@x\r\n"
    b"Resent-Bcc: old-bcc@x\r\n"
    b"From: from@x\r\n"
    b"Sender: sender@x\r\n"
    b"To: to@x\r\n"
    b"Bcc: bcc@x\r\n"
    b"\r\n"
    b"body\r\n"
)


def test_newest_resent_block_wins() -> None:
    envelope, out = envelope_from_bytes(RESENT)
    assert envelope == Envelope(sender="new-sender@x", recipients=("new-to@x", "new-cc@x", "new-bcc@x"))
    assert b"Bcc" not in out
    assert out == RESENT.replace(b"Resent-Bcc: new-bcc@x\r\n", b"").replace(
        b"Resent-Bcc: old-bcc@x\r\n", b""
    ).replace(b"Bcc: bcc@x\r\n", b"")


def test_resent_from_when_no_resent_sender() -> None:
    data = b"Resent-From: r@x\r\nResent-To: t@x\r\nFrom: f@x\r\nSender: s@x\r\nTo: o@x\r\n\r\n"
    assert envelope_from_bytes(data)[0] == Envelope(sender="r@x", recipients=("t@x",))


def test_adjacent_resent_blocks_split_at_a_repeated_name() -> None:
    data = (
        b"Resent-From: new@x\r\nResent-To: new-to@x\r\n"
        b"Resent-From: old@x\r\nResent-To: old-to@x\r\nResent-Sender: old-sender@x\r\n"
        b"From: f@x\r\nTo: t@x\r\n\r\n"
    )
    assert envelope_from_bytes(data)[0] == Envelope(sender="new@x", recipients=("new-to@x",))


def test_resent_block_without_recipients_does_not_fall_back() -> None:
    data = b"Resent-From: r@x\r\nFrom: f@x\r\nTo: t@x\r\n\r\n"
    with pytest.raises(LocalProtocolError, match="Resent-To, Resent-Cc or Resent-Bcc"):
        envelope_from_bytes(data)


def test_resent_block_without_sender_does_not_fall_back() -> None:
    data = b"Resent-To: r@x\r\nFrom: f@x\r\nTo: t@x\r\n\r\n"
    with pytest.raises(LocalProtocolError, match="Resent-Sender or Resent-From"):
        envelope_from_bytes(data)


def test_resent_case_insensitive_names() -> None:
    data = b"RESENT-FROM: r@x\r\nresent-to: t@x\r\nFrom: f@x\r\nTo: o@x\r\n\r\n"
    assert envelope_from_bytes(data)[0] == Envelope(sender="r@x", recipients=("t@x",))


# --- Bcc stripping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "stripped"),
    [
        (b"From: a@x\r\nBcc: b@x\r\nTo: c@x\r\n\r\nbody", b"From: a@x\r\nTo: c@x\r\n\r\nbody"),
        (b"From: a@x\r\nBCC: b@x\r\nTo: c@x\r\n\r\n", b"From: a@x\r\nTo: c@x\r\n\r\n"),
        (b"From: a@x\r\nbcc : b@x\r\nTo: c@x\r\n\r\n", b"From: a@x\r\nTo: c@x\r\n\r\n"),
        (b"From: a@x\r\nBcc:\r\nTo: c@x\r\n\r\n", b"From: a@x\r\nTo: c@x\r\n\r\n"),
        # Folded, with every kind of line ending.
        (
            b"From: a@x\r\nBcc: b@x,\r\n c@x,\n\td@x,\r e@x\r\nTo: c@x\r\n\r\n",
            b"From: a@x\r\nTo: c@x\r\n\r\n",
        ),
        # Bare LF messages keep their LFs.
        (b"From: a@x\nBcc: b@x,\n c@x\nTo: c@x\n\nbody\n", b"From: a@x\nTo: c@x\n\nbody\n"),
        # A Bcc behind a bare CR is a field of its own once the line endings are normalised.
        (
            b"From: a@x\r\nSubject: hi\rBcc: b@x\r\nTo: c@x\r\n\r\n",
            b"From: a@x\r\nSubject: hi\rTo: c@x\r\n\r\n",
        ),
        (b"From: a@x\r\nSubject: hi\nBcc: b@x\r\n\r\n", b"From: a@x\r\nSubject: hi\n\r\n"),
        # Last line of the message, with or without a line ending.
        (b"From: a@x\r\nTo: c@x\r\nBcc: b@x", b"From: a@x\r\nTo: c@x\r\n"),
        (b"From: a@x\r\nTo: c@x\r\nBcc: b@x\r\n", b"From: a@x\r\nTo: c@x\r\n"),
        # Several, and Resent-Bcc.
        (
            b"Bcc: b@x\r\nFrom: a@x\r\nBcc: d@x\r\nTo: c@x\r\nResent-Bcc: e@x\r\n\r\n",
            b"From: a@x\r\nTo: c@x\r\n\r\n",
        ),
        # Look-alikes are other fields.
        (
            b"From: a@x\r\nX-Bcc: b@x\r\nBccx: b@x\r\nTo: c@x\r\n\r\n",
            b"From: a@x\r\nX-Bcc: b@x\r\nBccx: b@x\r\nTo: c@x\r\n\r\n",
        ),
        # In the body it is text, kept byte for byte.
        (
            b"From: a@x\r\nTo: c@x\r\n\r\nBcc: b@x\r\n \r\nBcc: z\n",
            b"From: a@x\r\nTo: c@x\r\n\r\nBcc: b@x\r\n \r\nBcc: z\n",
        ),
        (
            b"From: a@x\r\nTo: c@x\n\nBcc: b@x\r\n",
            b"From: a@x\r\nTo: c@x\n\nBcc: b@x\r\n",
        ),
        # A line that is not a field does not end the header section; a Bcc after it is stripped.
        (
            b"From a@x Mon Jan  1 00:00:00 2024\r\nFrom: a@x\r\nnot a field\r\nBcc: b@x\r\nTo: c@x\r\n\r\n",
            b"From a@x Mon Jan  1 00:00:00 2024\r\nFrom: a@x\r\nnot a field\r\nTo: c@x\r\n\r\n",
        ),
    ],
)
def test_bcc_stripping(data: bytes, stripped: bytes) -> None:
    _, out = envelope_from_bytes(data, sender="a@x", recipients=["c@x"])
    assert out == stripped


def test_bcc_recipients_are_used_and_stripped() -> None:
    data = b"From: a@x\r\nTo: b@x\r\nBcc: hidden@x,\r\n other-hidden@x\r\n\r\nbody"
    envelope, out = envelope_from_bytes(data)
    assert envelope.recipients == ("b@x", "hidden@x", "other-hidden@x")
    assert b"hidden" not in out


def test_body_is_preserved_exactly() -> None:
    body = b"line\r\nbare lf\nbare cr\r.\r\nBcc: x\r\n\x00\xff\r\n"
    data = b"From: a@x\r\nBcc: b@x\r\nTo: c@x\r\n\r\n" + body
    _, out = envelope_from_bytes(data)
    assert out == b"From: a@x\r\nTo: c@x\r\n\r\n" + body


header_lines = st.lists(
    st.tuples(
        st.sampled_from(
            [b"Bcc: b@x", b"bcc:b@x", b"Resent-Bcc : r@x", b"To: t@x", b"From: f@x", b" folded b@x",
             b"\tfolded", b"X-Note: Bcc: y@x", b"junk line", b"Subject: hi", b"Bcc:"]
        ),
        st.sampled_from([b"\r\n", b"\n", b"\r"]),
    ),
    max_size=12,
).map(lambda lines: b"".join(text + ending for text, ending in lines))


@given(header_lines, st.sampled_from([b"\r\n", b"\n", b"\r", b""]), st.binary(max_size=40))
@settings(max_examples=500)
def test_no_bcc_reaches_the_wire(headers: bytes, separator: bytes, body: bytes) -> None:
    data = headers + separator + body.replace(b"\0", b"")
    _, out = envelope_from_bytes(data, sender="a@x", recipients=["b@x"])
    wire = encode_data(out, max_line_length=None)
    # What a receiver parses after the DATA encoder normalised the line endings.
    parsed = BytesHeaderParser(policy=email.policy.compat32).parsebytes(wire)
    assert parsed.get_all("Bcc") is None
    assert parsed.get_all("Resent-Bcc") is None
    # Nothing but Bcc fields went away: the output is the input with whole lines removed, each of
    # them a Bcc or Resent-Bcc line or a continuation line.
    position = 0
    for line in re.findall(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", data):
        if out.startswith(line, position):
            position += len(line)
        else:
            assert re.match(rb"(?i)(resent-)?bcc[ \t]*:|[ \t]", line), line
    assert position == len(out)


# --- injection through headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"From: a@x\r\nTo: <b@x\x00>\r\n\r\n",
        b"From: a@x\r\nTo: b@x\x00RCPT TO:<evil@x>\r\n\r\n",
        b"From: a@x\r\nTo: b@x\x0bc@x\r\n\r\n",
        b"From: a@x\r\nTo: b@x\x1b\r\n\r\n",
        b"From: a@x\r\nCc: b@x\x7f\r\n\r\n",
        b"From: a@x\r\nBcc: \"b\x00\"@x\r\n\r\n",
        b"From: a@x\x00\r\nTo: b@x\r\n\r\n",
        b"Sender: a@x\x01\r\nFrom: a@x\r\nTo: b@x\r\n\r\n",
        b"Resent-From: r@x\r\nResent-To: t@x\x00\r\nTo: b@x\r\n\r\n",
        "From: a@x\r\nTo: b@x\u2028RCPT TO:<evil@x>\r\n\r\n".encode(),
        "From: a@x\r\nTo: b@x\x85c\r\n\r\n".encode(),
    ],
)
def test_control_characters_in_header_addresses(data: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="control character"):
        envelope_from_bytes(data)


def test_bare_cr_in_a_header_is_a_line_break_not_part_of_an_address() -> None:
    # The receiver, after normalisation, sees "RCPT TO:<evil@x>" as a line of its own: not a field,
    # and certainly not a command.  The envelope gets only b@x.
    envelope, _ = envelope_from_bytes(b"From: a@x\r\nTo: b@x\rRCPT TO:<evil@x>\r\n\r\n")
    assert envelope.recipients == ("b@x",)


def test_non_utf8_address_in_header() -> None:
    with pytest.raises(LocalProtocolError, match="not valid UTF-8"):
        envelope_from_bytes(b"From: a@x\r\nTo: b\xff@x\r\n\r\n")


def test_non_utf8_display_name_is_fine() -> None:
    envelope, _ = envelope_from_bytes(b"From: M\xfcller <a@x>\r\nTo: b@x\r\n\r\n")
    assert envelope.sender == "a@x"


def test_utf8_addresses_from_headers() -> None:
    envelope, _ = envelope_from_bytes("From: jösé@exämple.org\r\nTo: b@x\r\n\r\n".encode())
    assert envelope.sender == "jösé@exämple.org"
    assert needs_smtputf8(envelope)


def test_unused_fields_are_not_checked() -> None:
    # Explicit recipients: the To field is not read, so its garbage does not matter (it is data).
    envelope, _ = envelope_from_bytes(b"From: a@x\r\nTo: b@x\x00\r\n\r\n", recipients=["c@x"])
    assert envelope.recipients == ("c@x",)


# --- message_needs_smtputf8 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"From: a@x\r\n\r\nbody \xc3\xa9", False),
        (b"Subject: caf\xc3\xa9\r\n\r\nbody", True),
        (b"Subject: x\r\n \xc3\xa9\r\n\r\n", True),
        (b"", False),
        (b"\r\nSubject: caf\xc3\xa9", False),
    ],
)
def test_message_needs_smtputf8(data: bytes, expected: bool) -> None:
    assert message_needs_smtputf8(data) is expected


# --- deriving from email.message objects -----------------------------------------------------------


def make_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "Bob <bob@example.org>, carol@example.org"
    message["Cc"] = "dave@example.org"
    message["Bcc"] = "eve@example.org, " + "x" * 60 + "@example.org, " + "y" * 60 + "@example.org"
    message["Subject"] = "hello"
    message.set_content("Hi.\n.\nFrom here on.\n")
    return message


def test_from_message() -> None:
    message = make_message()
    envelope, data = envelope_from_message(message)
    assert envelope == Envelope(
        sender="alice@example.org",
        recipients=(
            "bob@example.org",
            "carol@example.org",
            "dave@example.org",
            "eve@example.org",
            "x" * 60 + "@example.org",
            "y" * 60 + "@example.org",
        ),
    )
    # SMTP policy: CRLF line endings throughout, no ">From" mangling, no Bcc (folded as it was).
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r\nFrom here on.\r\n" in data
    assert b"Bcc" not in data and b"eve" not in data and b"yyyy" not in data
    assert data.startswith(
        b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>, carol@example.org\r\n"
    )


def test_the_callers_message_is_not_changed() -> None:
    message = make_message()
    message.make_mixed()
    message.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream")
    before = message.as_bytes()
    items = copy.deepcopy(message.items())
    policy = message.policy
    _, data = envelope_from_message(message, sender="s@x", recipients=["r@x"])
    assert message.as_bytes() == before
    assert message.items() == items
    assert message["Bcc"] is not None
    assert message.policy is policy
    assert b"Bcc" not in data


def test_multipart_without_boundaries_is_not_changed() -> None:
    # The generator invents missing boundaries and writes them into the message it serialises.
    outer = Message()
    outer["From"] = "a@x"
    outer["To"] = "b@x"
    outer.set_type("multipart/mixed")
    inner = Message()
    inner.set_type("multipart/alternative")
    leaf = Message()
    leaf.set_payload("hi\n")
    inner.attach(leaf)
    outer.attach(inner)
    _, data = envelope_from_message(outer)
    assert outer.get_boundary() is None
    assert inner.get_boundary() is None
    assert data.count(b"boundary=") == 2


def test_compat32_message() -> None:
    message = Message()
    message["From"] = "a@example.org"
    message["To"] = "b@example.org"
    message["Bcc"] = "c@example.org"
    message.set_payload("From the start\n")
    envelope, data = envelope_from_message(message)
    assert envelope == Envelope(sender="a@example.org", recipients=("b@example.org", "c@example.org"))
    assert data == b"From: a@example.org\r\nTo: b@example.org\r\n\r\nFrom the start\r\n"


def test_parsed_message_keeps_its_lines() -> None:
    raw = b"From: a@x\nTo: b@x\nBcc: c@x,\n d@x\nSubject: =?utf-8?q?caf=C3=A9?=\n\nFrom me\n"
    for policy in (email.policy.compat32, email.policy.default):
        message = email.message_from_bytes(raw, policy=policy)
        envelope, data = envelope_from_message(message)
        assert envelope.recipients == ("b@x", "c@x", "d@x")
        assert data == b"From: a@x\r\nTo: b@x\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nFrom me\r\n"


def test_non_ascii_text_alone_uses_encoded_words() -> None:
    # No SMTPUTF8 needed: RFC 2047 can carry a Subject and display names.
    message = make_message()
    message.replace_header("From", "José <jose@example.org>")
    message.replace_header("Subject", "café")
    envelope, data = envelope_from_message(message)
    assert not needs_smtputf8(envelope)
    assert not message_needs_smtputf8(data)
    assert b"Subject: =?utf-8?q?caf=C3=A9?=\r\n" in data


def test_non_ascii_envelope_uses_the_utf8_policy() -> None:
    message = make_message()
    message.replace_header("To", "Jösé <jösé@exämple.org>")
    message.replace_header("Subject", "café")
    envelope, data = envelope_from_message(message)
    assert needs_smtputf8(envelope)
    assert message_needs_smtputf8(data)
    assert "To: Jösé <jösé@exämple.org>\r\n".encode() in data
    assert "Subject: café\r\n".encode() in data


def test_non_ascii_header_address_uses_the_utf8_policy_even_with_explicit_envelope() -> None:
    # RFC 2047 cannot encode an addr-spec, so Reply-To forces UTF-8 headers too.
    message = make_message()
    message["Reply-To"] = "jösé@exämple.org"
    envelope, data = envelope_from_message(message, sender="a@x", recipients=["b@x"])
    assert not needs_smtputf8(envelope)
    assert "Reply-To: jösé@exämple.org\r\n".encode() in data
    assert b"=?utf-8?" not in data


def test_message_with_crlf_in_a_decoded_display_name() -> None:
    # The header registry refuses to build this address; that becomes a LocalProtocolError.
    raw = b"From: a@x\r\nTo: " + b"=?utf-8?q?evil=0D=0A?= <b@x>, " * 4 + b"c@x\r\n\r\nbody\r\n"
    message = email.message_from_bytes(raw, policy=email.policy.default)
    with pytest.raises(LocalProtocolError):
        envelope_from_message(message)


def test_compat32_header_with_injected_field() -> None:
    # compat32 lets a value carry CRLF.  The generator refuses a continuation that looks like a
    # field; should it not, the injected Bcc would be a field on the wire, and stripped.
    message = Message()
    message["From"] = "a@x"
    message["To"] = "b@x\r\nBcc: hidden@x"
    message.set_payload("body\n")
    try:
        envelope, data = envelope_from_message(message)
    except LocalProtocolError as exc:
        assert "embedded header" in str(exc)
    else:  # depends on the Python version
        assert envelope.recipients == ("b@x", "hidden@x")
        assert b"hidden" not in data


def test_compat32_header_with_injected_command() -> None:
    # A line that is not a field stays a line of data; it never reaches the envelope.
    message = Message()
    message["From"] = "a@x"
    message["To"] = "b@x"
    message["Cc"] = "c@x\r\nRCPT TO:<evil@x>"
    message.set_payload("body\n")
    envelope, data = envelope_from_message(message)
    assert envelope.recipients == ("b@x", "c@x")
    assert b"\r\nRCPT TO:<evil@x>\r\n" in data


def test_message_type_is_checked() -> None:
    with pytest.raises(LocalProtocolError, match=r"email\.message\.Message"):
        envelope_from_message(b"From: a@x\r\n\r\n")  # type: ignore[arg-type]


def test_message_without_sender() -> None:
    message = EmailMessage()
    message["To"] = "b@x"
    with pytest.raises(LocalProtocolError, match="no sender"):
        envelope_from_message(message)
