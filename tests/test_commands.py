"""Tests for the command values and the grammar they are checked against (RFC 5321 section 4.1)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_sansio import (
    PHASES,
    Auth,
    AuthResponse,
    Command,
    Data,
    Ehlo,
    Helo,
    Lhlo,
    LocalProtocolError,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    Starttls,
    Verb,
    Vrfy,
    validate_domain,
    validate_mailbox,
)

# RFC 5321 section 4.5.3.1 limits, in octets.
LOCAL_PART_LIMIT = 64
DOMAIN_LIMIT = 255
PATH_LIMIT = 256  # with the angle brackets
LINE_LIMIT = 512  # with the CRLF


def domain_of(octets: int) -> str:
    """A valid ASCII domain name of exactly ``octets`` octets, in labels of 63."""
    name = (("a" * 62 + "b.") * 5)[:octets]
    return name[:-1] + "c" if name.endswith(".") else name


# -- what goes on the wire --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Ehlo(domain="client.example.org"), b"EHLO client.example.org\r\n"),
        (Helo(domain="client.example.org"), b"HELO client.example.org\r\n"),
        (Lhlo(domain="client.example.org"), b"LHLO client.example.org\r\n"),
        (Ehlo(domain="[192.0.2.1]"), b"EHLO [192.0.2.1]\r\n"),
        (Ehlo(domain="[IPv6:::1]"), b"EHLO [IPv6:::1]\r\n"),
        (Starttls(), b"STARTTLS\r\n"),
        (Auth(mechanism="LOGIN"), b"AUTH LOGIN\r\n"),
        (
            Auth(mechanism="PLAIN", initial_response=b"\0alice\0secret"),
            b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
        ),
        (Auth(mechanism="EXTERNAL", initial_response=b""), b"AUTH EXTERNAL =\r\n"),
        (AuthResponse(data=b"alice"), b"YWxpY2U=\r\n"),
        (AuthResponse(data=b""), b"\r\n"),
        (AuthResponse(), b"\r\n"),
        (AuthResponse(cancel=True), b"*\r\n"),
        (AuthResponse(data=b"ignored", cancel=True), b"*\r\n"),
        (Mail(sender="alice@example.org"), b"MAIL FROM:<alice@example.org>\r\n"),
        (Mail(sender=""), b"MAIL FROM:<>\r\n"),
        (
            Mail(sender="", parameters={"BODY": "8BITMIME", "SMTPUTF8": None, "SIZE": "1000"}),
            b"MAIL FROM:<> BODY=8BITMIME SMTPUTF8 SIZE=1000\r\n",
        ),
        (
            Mail(sender="a@b.example", parameters={"RET": "HDRS", "ENVID": "QQ314159+2Bx"}),
            b"MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ314159+2Bx\r\n",
        ),
        (Rcpt(recipient="bob@example.net"), b"RCPT TO:<bob@example.net>\r\n"),
        (
            Rcpt(recipient="bob@example.net",
                 parameters={"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;b@x"}),
            b"RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@x\r\n",
        ),
        (Rcpt(recipient="Postmaster"), b"RCPT TO:<Postmaster>\r\n"),
        (Rcpt(recipient="postmaster"), b"RCPT TO:<postmaster>\r\n"),
        (
            Rcpt(recipient="POSTMASTER", parameters={"NOTIFY": "NEVER"}),
            b"RCPT TO:<POSTMASTER> NOTIFY=NEVER\r\n",
        ),
        (Rcpt(recipient='"john doe"@example.net'), b'RCPT TO:<"john doe"@example.net>\r\n'),
        (Rcpt(recipient="ops@[192.0.2.1]"), b"RCPT TO:<ops@[192.0.2.1]>\r\n"),
        (Data(), b"DATA\r\n"),
        (Rset(), b"RSET\r\n"),
        (Noop(), b"NOOP\r\n"),
        (Quit(), b"QUIT\r\n"),
        (Verb(), b"VERB\r\n"),
        (Vrfy(argument="bob"), b"VRFY bob\r\n"),
        (Vrfy(argument="Bob Smith <bob@example.net>"), b"VRFY Bob Smith <bob@example.net>\r\n"),
    ],
    ids=repr,
)
def test_encode(command: Command, wire: bytes) -> None:
    assert command.encode() == wire
    if not isinstance(command, Auth | AuthResponse):
        assert command.trace_text() == wire[:-2].decode()


@pytest.mark.parametrize(
    ("command", "phase"),
    [
        (Ehlo(domain="a"), "command"), (Helo(domain="a"), "command"), (Lhlo(domain="a"), "command"),
        (Starttls(), "starttls"), (Auth(mechanism="PLAIN"), "auth"), (AuthResponse(), "auth"),
        (Mail(sender=""), "mail"), (Rcpt(recipient="postmaster"), "rcpt"), (Data(), "data"),
        (Rset(), "command"), (Noop(), "command"), (Quit(), "command"), (Verb(), "command"),
        (Vrfy(argument="x"), "command"),
    ],
    ids=repr,
)
def test_phase_is_a_timeout_phase(command: Command, phase: str) -> None:
    assert command.phase == phase
    assert phase in PHASES


def test_verbs() -> None:
    verbs = [cls.verb for cls in (Ehlo, Helo, Lhlo, Starttls, Auth, AuthResponse, Mail, Rcpt, Data, Rset,
                                  Noop, Quit, Verb, Vrfy)]
    assert verbs == ["EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "AUTH-RESPONSE", "MAIL", "RCPT", "DATA",
                     "RSET", "NOOP", "QUIT", "VERB", "VRFY"]


# -- secrets stay out of traces and reprs (RFC 4954; the trace is shown to users) -----------------


SECRET = b"hunter2-correct-horse"


@pytest.mark.parametrize(
    "command",
    [
        Auth(mechanism="PLAIN", initial_response=b"\0alice\0" + SECRET),
        Auth(mechanism="XOAUTH2", initial_response=b"user=alice\x01auth=Bearer " + SECRET + b"\x01\x01"),
        AuthResponse(data=SECRET),
        AuthResponse(data=b"alice " + SECRET),
    ],
    ids=["plain", "xoauth2", "response", "cram-md5-like"],
)
def test_secrets_are_redacted(command: Auth | AuthResponse) -> None:
    payload = command.initial_response if isinstance(command, Auth) else command.data
    assert payload is not None
    wire = command.encode()
    assert base64.b64encode(payload) in wire  # the secret does go to the server ...
    for shown in (command.trace_text(), repr(command), str(command)):  # ... and nowhere else
        assert "<redacted>" in shown or shown.startswith(type(command).__name__)
        for needle in (SECRET, base64.b64encode(payload), base64.b64encode(SECRET), payload):
            assert needle.decode("latin-1") not in shown


def test_trace_text_of_auth() -> None:
    assert Auth(mechanism="PLAIN", initial_response=b"\0a\0b").trace_text() == "AUTH PLAIN <redacted>"
    assert Auth(mechanism="PLAIN", initial_response=b"").trace_text() == "AUTH PLAIN <redacted>"
    assert Auth(mechanism="LOGIN").trace_text() == "AUTH LOGIN"
    assert AuthResponse(data=b"x").trace_text() == "<redacted>"
    assert AuthResponse(data=b"").trace_text() == "<redacted>"
    assert AuthResponse(cancel=True).trace_text() == "*"


@pytest.mark.parametrize(
    "mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "XOAUTH2", "GSSAPI", "X_Y", "9", "A" * 20]
)
def test_valid_sasl_mechanism(mechanism: str) -> None:
    assert Auth(mechanism=mechanism).encode() == f"AUTH {mechanism}\r\n".encode()


@pytest.mark.parametrize(
    "mechanism",
    ["", "plain", "Plain", "PLAIN ", " PLAIN", "PL AIN", "PLAIN\r\n", "PLAIN\r\nMAIL FROM:<x@y>", "PLAIN\0",
     "A" * 21, "SCRAM.SHA", "PLAIN=", "\u00c9", "\uff30\uff2c\uff21\uff29\uff2e", "LOGIN\u2028"],
)
def test_invalid_sasl_mechanism(mechanism: str) -> None:
    with pytest.raises(LocalProtocolError, match="SASL mechanism"):
        Auth(mechanism=mechanism)


def test_auth_line_limit() -> None:
    # RFC 4954 section 4: AUTH with its initial response is still bound by the 512-octet line.
    exactly = Auth(mechanism="NTLM", initial_response=b"x" * 375)  # "AUTH NTLM " + 500 + CRLF
    assert len(exactly.encode()) == LINE_LIMIT
    with pytest.raises(LocalProtocolError, match="512"):
        Auth(mechanism="NTLM", initial_response=b"x" * 376).encode()


def test_auth_response_has_no_line_limit() -> None:
    # RFC 4954 section 4 lets a SASL response line exceed 512 octets.
    assert AuthResponse(data=b"x" * 3000).encode() == base64.b64encode(b"x" * 3000) + b"\r\n"


# -- values, not objects ------------------------------------------------------------------------


ALL_COMMANDS = [
    Ehlo(domain="a.example"), Helo(domain="a.example"), Lhlo(domain="a.example"), Starttls(),
    Auth(mechanism="PLAIN"), AuthResponse(data=b"x"), Mail(sender=""), Rcpt(recipient="postmaster"),
    Data(), Rset(), Noop(), Quit(), Verb(), Vrfy(argument="x"),
]


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=repr)
def test_commands_are_frozen_and_slotted(command: Command) -> None:
    for field in dataclasses.fields(command):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(command, field.name, "x")
    # A name that is not a field has no slot; CPython 3.11's frozen __setattr__ then fails with a
    # TypeError from super() instead of FrozenInstanceError, so either is accepted.
    with pytest.raises((AttributeError, TypeError)):
        command.anything = "x"  # type: ignore[attr-defined]
    assert not hasattr(command, "__dict__")


@pytest.mark.parametrize(
    ("cls", "argument"),
    [(Ehlo, "a.example"), (Helo, "a.example"), (Lhlo, "a.example"), (Auth, "PLAIN"), (AuthResponse, b"x"),
     (Mail, "a@b.example"), (Rcpt, "a@b.example"), (Vrfy, "bob")],
)
def test_commands_are_keyword_only(cls: type[Command], argument: object) -> None:
    with pytest.raises(TypeError):
        cls(argument)  # type: ignore[call-arg]


@pytest.mark.parametrize("cls", [Mail, Rcpt])
def test_parameters_are_a_read_only_copy(cls: type[Mail | Rcpt]) -> None:
    parameters: dict[str, str | None] = {"NOTIFY": "NEVER"}
    address = {"sender": "a@b.example"} if cls is Mail else {"recipient": "a@b.example"}
    command = cls(**address, parameters=parameters)  # type: ignore[arg-type]
    parameters["X"] = "y"
    assert dict(command.parameters) == {"NOTIFY": "NEVER"}
    with pytest.raises(TypeError):
        command.parameters["X"] = "y"  # type: ignore[index]


# -- forbidden characters, in every argument (CPython gh-87290 and its kin) ------------------------

FORBIDDEN = ["\r", "\n", "\r\n", "\0", "\x01", "\t", "\x0b", "\x0c", "\x1b", "\x1c", "\x1f", "\x7f", "\x80",
             "\x85", "\x9f", "\u2028", "\u2029"]

BUILDERS = {
    "sender local": lambda c: Mail(sender=f"al{c}ice@example.org"),
    "sender at end": lambda c: Mail(sender=f"alice@example.org{c}"),
    "sender quoted": lambda c: Mail(sender=f'"al{c}ice"@example.org'),
    "sender smtputf8": lambda c: Mail(sender=f"j\u00f6rg{c}@b\u00fccher.example", smtputf8=True),
    "sender domain": lambda c: Mail(sender=f"alice@exam{c}ple.org"),
    "sender domain smtputf8": lambda c: Mail(sender=f"alice@b\u00fc{c}cher.example", smtputf8=True),
    "sender literal": lambda c: Mail(sender=f"alice@[192.0.2.1{c}]"),
    "recipient": lambda c: Rcpt(recipient=f"bob{c}@example.net"),
    "recipient injection": lambda c: Rcpt(recipient=f"bob@example.net>{c}RCPT TO:<evil@example.com"),
    "recipient quoted": lambda c: Rcpt(recipient=f'"bob{c}"@example.net'),
    "recipient literal": lambda c: Rcpt(recipient=f"bob@[IPv6:::1{c}]"),
    "recipient postmaster": lambda c: Rcpt(recipient=f"Postmaster{c}"),
    "ehlo": lambda c: Ehlo(domain=f"client{c}.example.org"),
    "ehlo at end": lambda c: Ehlo(domain=f"client.example.org{c}"),
    "ehlo literal": lambda c: Ehlo(domain=f"[192.0.2.1]{c}"),
    "helo": lambda c: Helo(domain=f"client{c}"),
    "lhlo": lambda c: Lhlo(domain=f"client{c}"),
    "esmtp keyword": lambda c: Mail(sender="", parameters={f"SIZE{c}": "1"}),
    "esmtp value": lambda c: Mail(sender="", parameters={"ENVID": f"abc{c}def"}),
    "esmtp value smtputf8": lambda c: Mail(sender="", parameters={"ENVID": f"\u00e9{c}"}, smtputf8=True),
    "rcpt esmtp value": lambda c: Rcpt(recipient="postmaster", parameters={"ORCPT": f"rfc822;a{c}@b"}),
    "rcpt esmtp keyword": lambda c: Rcpt(recipient="postmaster", parameters={f"{c}NOTIFY": None}),
    "vrfy": lambda c: Vrfy(argument=f"bob{c}"),
    "vrfy at start": lambda c: Vrfy(argument=f"{c}bob"),
}


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: "CRLF" if len(c) > 1 else f"U+{ord(c):04X}")
@pytest.mark.parametrize("where", list(BUILDERS))
def test_forbidden_characters_are_refused(where: str, char: str) -> None:
    with pytest.raises(LocalProtocolError):
        BUILDERS[where](char)


@pytest.mark.parametrize("char", ["\r", "\n", "\0", "\x85", "\u2028"])
@pytest.mark.parametrize("validate", [validate_domain, validate_mailbox])
def test_validators_name_the_control_character(validate: object, char: str) -> None:
    with pytest.raises(LocalProtocolError, match="control character"):
        validate(f"a{char}@example.org", smtputf8=True, what="thing")  # type: ignore[operator]


# -- addresses and domains (RFC 5321 section 4.1.2) ---------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["a@b", "alice@example.org", "a.b.c@example.org", "user+tag-x@example.org", "1@2.3",
     "!#$%&'*+-/=?^_`{|}~@example.org", '"john doe"@example.org', '"a\\"b"@example.org',
     '"a\\\\b"@example.org', '"a@b"@example.org', '""@example.org', '"a.b..c"@example.org',
     "alice@[192.0.2.1]", "alice@[255.255.255.255]", "alice@[0.0.0.0]", "alice@[IPv6:::1]",
     "alice@[IPv6:2001:db8::1]", "alice@[IPv6:::ffff:192.0.2.1]", "alice@[x-tag:any-content]",
     "alice@xn--bcher-kva.example", "alice@a-b.c-d.example", "ALICE@EXAMPLE.ORG"],
)
def test_valid_address(address: str) -> None:
    validate_mailbox(address)
    assert Mail(sender=address).encode() == f"MAIL FROM:<{address}>\r\n".encode()
    assert Rcpt(recipient=address).encode() == f"RCPT TO:<{address}>\r\n".encode()


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("alice", "no local part and domain"),
        ("@example.org", "no local part and domain"),
        ("Postmaster", "no local part and domain"),  # only RCPT takes the bare Postmaster
        ("a..b@example.org", "invalid local part"),
        (".a@example.org", "invalid local part"),
        ("a.@example.org", "invalid local part"),
        ("a b@example.org", "invalid local part"),
        ('"unterminated@example.org', "invalid local part"),
        ('a"b@example.org', "invalid local part"),
        ('"a"b"@example.org', "invalid local part"),
        ('"a\\"@example.org', "invalid local part"),
        ("a(b)@example.org", "invalid local part"),
        ("a,b@example.org", "invalid local part"),
        ("a<b@example.org", "invalid local part"),
        ("a>b@example.org", "invalid local part"),
        ("a[b]@example.org", "invalid local part"),
        ("a;b@example.org", "invalid local part"),
        ("a:b@example.org", "invalid local part"),
        ("a\\b@example.org", "invalid local part"),
        ("a@b@example.org", "invalid local part"),
        ("alice@", "not a valid domain"),
        ("alice@.", "not a valid domain"),
        ("alice@example..org", "not a valid domain"),
        ("alice@-example.org", "not a valid domain"),
        ("alice@example-.org", "not a valid domain"),
        ("alice@example.org.", "not a valid domain"),
        ("alice@.example.org", "not a valid domain"),
        ("alice@exa_mple.org", "not a valid domain"),
        ("alice@exa mple.org", "not a valid domain"),
        ("alice@exa*mple.org", "not a valid domain"),
        ("alice@[192.0.2.1", "not a valid domain"),
        ("alice@192.0.2.1]", "not a valid domain"),
        ("alice@[300.0.0.1]", "not a valid domain"),
        ("alice@[1.2.3]", "not a valid domain"),
        ("alice@[01.2.3.4.5]", "not a valid domain"),
        ("alice@[IPv6:]", "not a valid domain"),
        ("alice@[]", "not a valid domain"),
        ("alice@[ab]", "not a valid domain"),
        ("alice@[-x:y]", "not a valid domain"),
        ("alice@[x:a[b]", "not a valid domain"),
    ],
)
def test_invalid_address(address: str, problem: str) -> None:
    with pytest.raises(LocalProtocolError, match=problem):
        validate_mailbox(address)
    with pytest.raises(LocalProtocolError, match=f"sender.*{problem}"):
        Mail(sender=address)
    if address != "Postmaster":
        with pytest.raises(LocalProtocolError, match=f"recipient.*{problem}"):
            Rcpt(recipient=address)


@pytest.mark.parametrize("cls", [Ehlo, Helo, Lhlo])
@pytest.mark.parametrize(
    "domain", ["", "a@b", "client example", "-client", "client_1", "client.", "[192.0.2.1", "[1.2.3]", "*"]
)
def test_invalid_hello_name(cls: type[Ehlo], domain: str) -> None:
    with pytest.raises(LocalProtocolError, match=f"{cls.verb} name"):
        cls(domain=domain)


@pytest.mark.parametrize("argument", ["", " bob", "bob ", "bob  smith", "b\u00f6b", "\u00a0"])
def test_invalid_vrfy_argument(argument: str) -> None:
    with pytest.raises(LocalProtocolError, match="VRFY argument"):
        Vrfy(argument=argument)


@pytest.mark.parametrize(
    "parameters",
    [{"": "1"}, {"-X": "1"}, {"X_Y": "1"}, {"X Y": "1"}, {"X=Y": None}, {"\u00c9": None}, {"X": ""},
     {"X": "a b"}, {"X": "a=b"}, {"X": "\u00e9"}, {"SIZE": " 1"}],
    ids=repr,
)
@pytest.mark.parametrize("cls", [Mail, Rcpt])
def test_invalid_esmtp_parameters(cls: type[Mail | Rcpt], parameters: dict[str, str | None]) -> None:
    address = {"sender": ""} if cls is Mail else {"recipient": "postmaster"}
    with pytest.raises(LocalProtocolError, match="ESMTP parameter"):
        cls(**address, parameters=parameters)  # type: ignore[arg-type]


# -- RFC 5321 section 4.5.3.1 limits: errors at the limit plus one, never truncation ----------------


def test_local_part_limit() -> None:
    at_limit = "a" * LOCAL_PART_LIMIT + "@example.org"
    assert Rcpt(recipient=at_limit).encode() == f"RCPT TO:<{at_limit}>\r\n".encode()
    with pytest.raises(LocalProtocolError, match="local part longer than 64"):
        Rcpt(recipient="a" * (LOCAL_PART_LIMIT + 1) + "@example.org")
    quoted = '"' + "a" * (LOCAL_PART_LIMIT - 2) + '"@example.org'
    validate_mailbox(quoted)  # the quotes count
    with pytest.raises(LocalProtocolError, match="local part longer"):
        validate_mailbox('"' + "a" * (LOCAL_PART_LIMIT - 1) + '"@example.org')


def test_domain_limit() -> None:
    assert len(domain_of(DOMAIN_LIMIT)) == DOMAIN_LIMIT
    validate_domain(domain_of(DOMAIN_LIMIT))
    assert Ehlo(domain=domain_of(DOMAIN_LIMIT)).encode() == f"EHLO {domain_of(DOMAIN_LIMIT)}\r\n".encode()
    with pytest.raises(LocalProtocolError, match="longer than 255 octets"):
        validate_domain(domain_of(DOMAIN_LIMIT + 1))
    with pytest.raises(LocalProtocolError, match="EHLO name is longer than 255 octets"):
        Ehlo(domain=domain_of(DOMAIN_LIMIT + 1))
    with pytest.raises(LocalProtocolError, match="recipient domain is longer than 255 octets"):
        Rcpt(recipient="a@" + domain_of(DOMAIN_LIMIT + 1))


def test_address_literal_limit() -> None:
    literal = "[IPv6:" + "0:" * 124 + "1]"
    assert len(literal) == DOMAIN_LIMIT + 1
    with pytest.raises(LocalProtocolError):
        Ehlo(domain=literal)


def test_path_limit() -> None:
    at_limit = "a" * LOCAL_PART_LIMIT + "@" + domain_of(PATH_LIMIT - 2 - LOCAL_PART_LIMIT - 1)
    assert len(at_limit) + 2 == PATH_LIMIT
    assert Mail(sender=at_limit).encode() == f"MAIL FROM:<{at_limit}>\r\n".encode()
    over = "a" * LOCAL_PART_LIMIT + "@" + domain_of(PATH_LIMIT - 2 - LOCAL_PART_LIMIT)
    with pytest.raises(LocalProtocolError, match="256-octet path"):
        Mail(sender=over)
    with pytest.raises(LocalProtocolError, match="256-octet path"):
        Rcpt(recipient=over)


@pytest.mark.parametrize("cls", [Mail, Rcpt])
def test_command_line_limit(cls: type[Mail | Rcpt]) -> None:
    def build(value_length: int) -> Mail | Rcpt:
        parameters = {"NOTIFY": "NEVER", "X-LONG": "v" * value_length}
        if cls is Mail:
            return Mail(sender="alice@example.org", parameters=parameters)
        return Rcpt(recipient="bob@example.org", parameters=parameters)

    overhead = len(build(1).encode()) - 1  # an esmtp-value has at least one character
    at_limit = build(LINE_LIMIT - overhead).encode()
    assert len(at_limit) == LINE_LIMIT
    assert at_limit.endswith(b"v" * (LINE_LIMIT - overhead) + b"\r\n")
    with pytest.raises(LocalProtocolError, match="longer than 512 octets"):
        build(LINE_LIMIT - overhead + 1).encode()


def test_vrfy_line_limit() -> None:
    assert len(Vrfy(argument="b" * (LINE_LIMIT - 7)).encode()) == LINE_LIMIT
    with pytest.raises(LocalProtocolError, match="longer than 512 octets"):
        Vrfy(argument="b" * (LINE_LIMIT - 6)).encode()


def test_over_long_command_cannot_be_built() -> None:
    # The module promises that a command that exists can be encoded.
    with pytest.raises(LocalProtocolError):
        Mail(sender="", parameters={"X": "v" * LINE_LIMIT})


def test_limits_count_octets_not_characters() -> None:
    validate_mailbox("\u00e9" * 32 + "@example.org", smtputf8=True)  # 64 octets
    with pytest.raises(LocalProtocolError, match="local part longer than 64"):
        validate_mailbox("\u00e9" * 33 + "@example.org", smtputf8=True)  # 33 characters, 66 octets
    validate_domain("\u00e9" * 127 + "a", smtputf8=True)  # 255 octets
    with pytest.raises(LocalProtocolError, match="longer than 255"):
        validate_domain("\u00e9" * 128, smtputf8=True)  # 128 characters, 256 octets


# -- SMTPUTF8 (RFC 6531) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["j\u00f6rg@example.org", "alice@b\u00fccher.example", "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a",
     '"\u00e9 \u00e8"@example.org',
     "\u0434\u0436\u0438\u043c@\u0435\u0445\u0430\u043c\u0440\u043b\u0435.com"],
)
def test_non_ascii_address_needs_smtputf8(address: str) -> None:
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        Mail(sender=address)
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        Rcpt(recipient=address)
    assert Mail(sender=address, smtputf8=True).encode() == f"MAIL FROM:<{address}>\r\n".encode()
    assert Rcpt(recipient=address, smtputf8=True).encode() == f"RCPT TO:<{address}>\r\n".encode()


def test_non_ascii_is_utf8_on_the_wire() -> None:
    assert Mail(sender="j\u00f6rg@b\u00fccher.example", smtputf8=True).encode() == (
        b"MAIL FROM:<j\xc3\xb6rg@b\xc3\xbccher.example>\r\n"
    )
    assert Mail(sender="", parameters={"ENVID": "\u00e9t\u00e9"}, smtputf8=True).encode() == (
        b"MAIL FROM:<> ENVID=\xc3\xa9t\xc3\xa9\r\n"
    )


@pytest.mark.parametrize("domain", ["b\u00fccher.example", "\u00e9", "\u4f8b\u5b50.\u5e7f\u544a"])
def test_non_ascii_domain(domain: str) -> None:
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        validate_domain(domain)
    validate_domain(domain, smtputf8=True)
    with pytest.raises(LocalProtocolError, match=r"EHLO name .* not ASCII"):
        Ehlo(domain=domain)


@pytest.mark.parametrize(
    "domain", ["-b\u00fccher.example", "b\u00fccher..example", "b\u00fc cher", "\u00e9@x"]
)
def test_invalid_non_ascii_domain(domain: str) -> None:
    with pytest.raises(LocalProtocolError, match="not a valid domain"):
        validate_domain(domain, smtputf8=True)


@pytest.mark.parametrize("address", ['"\u00e9\\\u00e9"@example.org', "\u00e9..\u00e8@example.org"])
def test_invalid_non_ascii_local_part(address: str) -> None:
    with pytest.raises(LocalProtocolError, match="invalid local part"):
        validate_mailbox(address, smtputf8=True)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Mail(sender="\udce9@example.org", smtputf8=True),
        lambda: Rcpt(recipient="alice@b\udcfcch.example", smtputf8=True),
        lambda: Mail(sender="", parameters={"ENVID": "\udce9"}, smtputf8=True).encode(),
    ],
    ids=["local-part", "domain", "esmtp-value"],
)
def test_lone_surrogates_are_refused(build: object) -> None:
    # What os.fsdecode() and sys.argv make of bytes that are not UTF-8.
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


# -- property: nothing but one bounded line ever comes out ------------------------------------------

fuzzy = st.one_of(
    st.text(max_size=80),
    st.text(alphabet='ab.-@"\\[]: \u00e9\r\n\0\x85\u2028', max_size=40),
    st.integers(min_value=1, max_value=80).map(lambda n: "l" * n),
)
addresses = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda local, domain: f"{local}@{domain}", fuzzy, st.one_of(fuzzy, st.integers(1, 300).map(domain_of))
    ),
    st.sampled_from(["", "Postmaster", "postmaster", "a@[IPv6:::1]"]),
)
parameter_maps = st.dictionaries(
    st.one_of(st.text(max_size=10), st.sampled_from(["SIZE", "BODY", "X-"])),
    st.one_of(st.none(), st.text(max_size=40), st.integers(0, 520).map(lambda n: "v" * n)),
    max_size=3,
)


@given(
    cls=st.sampled_from([Mail, Rcpt]), address=addresses, parameters=parameter_maps, smtputf8=st.booleans()
)
@settings(max_examples=800)
def test_any_address_gives_one_bounded_line_or_a_local_error(
    cls: type[Mail | Rcpt], address: str, parameters: dict[str, str | None], smtputf8: bool
) -> None:
    try:
        if cls is Mail:
            command: Mail | Rcpt = Mail(sender=address, parameters=parameters, smtputf8=smtputf8)
        else:
            command = Rcpt(recipient=address, parameters=parameters, smtputf8=smtputf8)
        wire = command.encode()
    except LocalProtocolError:
        return
    assert wire.endswith(b"\r\n")
    assert b"\r" not in wire[:-2] and b"\n" not in wire[:-2]
    assert len(wire) <= LINE_LIMIT
    text = wire.decode("utf-8")
    assert len(text.splitlines()) == 1  # no Unicode line break either
    assert f"<{address}>" in text
    if not smtputf8:
        assert wire.isascii()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Mail(sender=None),  # type: ignore[arg-type]
        lambda: Rcpt(recipient=b"bob@example.org"),  # type: ignore[arg-type]
        lambda: Ehlo(domain=42),  # type: ignore[arg-type]
        lambda: Mail(sender="a@example.org", parameters={"SIZE": 1000}),  # type: ignore[dict-item]
        lambda: Mail(sender="a@example.org", parameters={b"SIZE": "1"}),  # type: ignore[dict-item]
        lambda: Auth(mechanism=b"PLAIN"),  # type: ignore[arg-type]
        lambda: Auth(mechanism="PLAIN", initial_response="secret"),  # type: ignore[arg-type]
        lambda: Vrfy(argument=None),  # type: ignore[arg-type]
    ],
    ids=["sender-none", "recipient-bytes", "ehlo-int", "param-int", "keyword-bytes", "mechanism-bytes",
         "response-str", "vrfy-none"],
)
def test_wrong_types_are_local_errors(build) -> None:
    # Anything but str would be formatted into the line by its repr ("MAIL FROM:<None>").
    with pytest.raises(LocalProtocolError, match="must be"):
        build()
