"""Tests for the SASL mechanisms and SASLprep (RFC 4422, 4616, 2195, 5802, 7677, 7628, 4013).

Wherever an RFC publishes an example exchange, the test replays it byte for byte: an expectation
computed here would only show that the code agrees with itself.
"""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_sansio import AuthenticationError, LocalProtocolError
from smtp_sansio._sasl import (
    DEFAULT_MECHANISMS,
    KNOWN_MECHANISMS,
    MAX_CHALLENGES,
    MAX_SCRAM_ITERATIONS,
    MECHANISMS,
    MIN_SCRAM_NONCE_LENGTH,
    PASSWORD_MECHANISMS,
    PLAINTEXT_MECHANISMS,
    SEED_MECHANISMS,
    TOKEN_MECHANISMS,
    CramMD5,
    External,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    Scram,
    ScramSha1,
    ScramSha256,
    XOAuth2,
    saslprep,
    scram,
)

SECRET = "s3cr3t-Pa55"
TOKEN = "tok-XYZ"
NONCE = "0123456789abcdefABCD"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- PLAIN (RFC 4616) -----------------------------------------------------------------------------


def test_plain_rfc4616_example_without_authzid() -> None:
    # RFC 4616 section 4, first example: <NUL>tim<NUL>tanstaaftanstaaf
    mechanism = Plain("tim", "tanstaaftanstaaf")
    assert mechanism.name == "PLAIN"
    assert mechanism.initial_response() == b"\x00tim\x00tanstaaftanstaaf"
    mechanism.finish()


def test_plain_rfc4616_example_with_authzid() -> None:
    # RFC 4616 section 4, second example, whose bytes are Ursel<NUL>Kurt<NUL>xipj3plmq: the message
    # is authzid NUL authcid NUL passwd (section 2), so the authzid is "Ursel".
    mechanism = Plain("Kurt", "xipj3plmq", authzid="Ursel")
    assert mechanism.initial_response() == b"Ursel\x00Kurt\x00xipj3plmq"


def test_plain_is_utf8_and_repeatable() -> None:
    mechanism = Plain("zoë", "pässword")
    assert mechanism.initial_response() == "\0zoë\0pässword".encode()
    assert mechanism.initial_response() == mechanism.initial_response()


@pytest.mark.parametrize("challenge", [b"", b"anything", b"\xff"])
def test_plain_refuses_any_challenge(challenge: bytes) -> None:
    mechanism = Plain("tim", "tanstaaftanstaaf")
    with pytest.raises(AuthenticationError, match="PLAIN: the server sent a challenge"):
        mechanism.respond(challenge)
    with pytest.raises(AuthenticationError, match="already failed"):
        mechanism.respond(challenge)
    with pytest.raises(AuthenticationError, match="had failed"):
        mechanism.finish()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "ti\0m", "password": "x"}, "PLAIN username must not contain"),
        ({"username": "tim", "password": "x\0y"}, "PLAIN password must not contain"),
        ({"username": "tim", "password": "x", "authzid": "a\0"}, "PLAIN authzid must not contain"),
        ({"username": "", "password": "x"}, "PLAIN username must not be empty"),
        ({"username": "tim", "password": ""}, "PLAIN password must not be empty"),
        ({"username": b"tim", "password": "x"}, "must be a str, not bytes"),
        ({"username": "tim", "password": None}, "must be a str, not NoneType"),
        ({"username": "tim", "password": "\ud800"}, "not encodable as UTF-8"),
    ],
)
def test_plain_rejects_invalid_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message) as caught:
        Plain(**kwargs)  # type: ignore[arg-type]
    # The messages never quote the value: it may be the password.
    assert "x\0y" not in str(caught.value)


# -- LOGIN ----------------------------------------------------------------------------------------


def test_login_answers_user_then_password() -> None:
    mechanism = Login("tim", "tanstaaftanstaaf")
    assert mechanism.initial_response() is None
    assert mechanism.respond(b"Username:") == b"tim"
    assert mechanism.respond(b"Password:") == b"tanstaaftanstaaf"
    mechanism.finish()


@given(first=st.binary(max_size=40), second=st.binary(max_size=40))
def test_login_ignores_what_the_prompts_say(first: bytes, second: bytes) -> None:
    # "User Name", "Username:", localized prompts, garbage: the order is what counts.
    mechanism = Login("zoë", "pässword")
    assert mechanism.respond(first) == "zoë".encode()
    assert mechanism.respond(second) == "pässword".encode()


def test_login_refuses_a_third_challenge() -> None:
    mechanism = Login("tim", "pw")
    mechanism.respond(b"User Name")
    mechanism.respond(b"Password")
    with pytest.raises(AuthenticationError, match="LOGIN: the server sent one challenge too many"):
        mechanism.respond(b"Password")


def test_login_allows_an_empty_password_but_not_an_empty_user() -> None:
    assert Login("tim", "").respond(b"Username:") == b"tim"
    with pytest.raises(LocalProtocolError, match="LOGIN username must not be empty"):
        Login("", "pw")
    with pytest.raises(LocalProtocolError, match="LOGIN password must be a str"):
        Login("tim", 1234)  # type: ignore[arg-type]


# -- CRAM-MD5 (RFC 2195) --------------------------------------------------------------------------


def test_cram_md5_rfc2195_example() -> None:
    mechanism = CramMD5("tim", "tanstaaftanstaaf")
    assert mechanism.initial_response() is None
    response = mechanism.respond(b"<1896.697170952@postoffice.reston.mci.net>")
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"
    mechanism.finish()


def test_cram_md5_works_on_challenge_bytes_that_are_not_utf8() -> None:
    response = CramMD5("tim", "tanstaaftanstaaf").respond(b"<\xff\xfe@example>")
    user, digest = response.split(b" ")
    assert user == b"tim"
    assert len(digest) == 32
    assert digest == digest.lower()


def test_cram_md5_refuses_an_empty_challenge() -> None:
    with pytest.raises(AuthenticationError, match="CRAM-MD5: the server sent an empty challenge"):
        CramMD5("tim", "tanstaaftanstaaf").respond(b"")


def test_cram_md5_refuses_a_second_challenge() -> None:
    mechanism = CramMD5("tim", "tanstaaftanstaaf")
    mechanism.respond(b"<1896.697170952@postoffice.reston.mci.net>")
    with pytest.raises(AuthenticationError, match="one challenge too many"):
        mechanism.respond(b"<1896.697170952@postoffice.reston.mci.net>")


def test_cram_md5_rejects_an_empty_user() -> None:
    with pytest.raises(LocalProtocolError, match="CRAM-MD5 username must not be empty"):
        CramMD5("", "secret")
    with pytest.raises(LocalProtocolError, match="CRAM-MD5 password must be a str"):
        CramMD5("tim", b"secret")  # type: ignore[arg-type]


# -- SCRAM (RFC 5802, RFC 7677) -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScramVector:
    cls: type[Scram]
    nonce: str
    client_first: bytes
    server_first: bytes
    client_final: bytes
    server_final: bytes

    @property
    def full_nonce(self) -> bytes:
        return self.server_first.split(b",")[0][2:]

    def make(self, password: str = "pencil") -> Scram:
        return self.cls("user", password, self.nonce)

    def after_server_first(self) -> Scram:
        mechanism = self.make()
        assert mechanism.respond(self.server_first) == self.client_final
        return mechanism


# RFC 5802 section 5: SCRAM-SHA-1, user "user", password "pencil".
RFC5802 = ScramVector(
    cls=ScramSha1,
    nonce="fyko+d2lbbFgONRv9qkxdawL",
    client_first=b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    server_first=b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    client_final=b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    server_final=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
)
# RFC 7677 section 3: SCRAM-SHA-256, user "user", password "pencil".
RFC7677 = ScramVector(
    cls=ScramSha256,
    nonce="rOprNGfwEbeRWgbNEkqO",
    client_first=b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_first=b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final=(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    ),
    server_final=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
)
VECTORS = [pytest.param(RFC5802, id="SCRAM-SHA-1"), pytest.param(RFC7677, id="SCRAM-SHA-256")]


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_rfc_example_byte_for_byte(vector: ScramVector) -> None:
    mechanism = vector.make()
    assert mechanism.initial_response() == vector.client_first
    assert mechanism.respond(vector.server_first) == vector.client_final
    assert mechanism.respond(vector.server_final) == b""
    mechanism.finish()


def test_scram_names_and_hashes() -> None:
    assert (ScramSha1.name, ScramSha1.hash_name) == ("SCRAM-SHA-1", "SHA-1")
    assert (ScramSha256.name, ScramSha256.hash_name) == ("SCRAM-SHA-256", "SHA-256")


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_factory_by_hash_name(vector: ScramVector) -> None:
    mechanism = scram(vector.cls.hash_name, "user", "pencil", vector.nonce)
    assert type(mechanism) is vector.cls
    assert mechanism.respond(vector.server_first) == vector.client_final


def test_scram_factory_refuses_other_hashes() -> None:
    with pytest.raises(LocalProtocolError, match="no SCRAM mechanism for the hash 'MD5'"):
        scram("MD5", "user", "pencil", NONCE)


def test_scram_base_class_is_abstract() -> None:
    with pytest.raises(TypeError, match="Scram is abstract"):
        Scram("user", "pencil", NONCE)


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_prepares_the_password_with_saslprep(vector: ScramVector) -> None:
    # RFC 5802 section 2.2: Normalize(password); a soft hyphen is mapped to nothing (RFC 4013
    # section 2.1), so "pen<SHY>cil" is the password "pencil" of the example.
    mechanism = vector.make(password="pen\u00adcil")
    assert mechanism.respond(vector.server_first) == vector.client_final
    assert mechanism.respond(vector.server_final) == b""


def test_scram_prepares_and_escapes_the_username() -> None:
    mechanism = ScramSha256("I\u00adX=a,b", "pencil", NONCE)
    assert mechanism.initial_response() == f"n,,n=IX=3Da=2Cb,r={NONCE}".encode()


def test_scram_allows_unassigned_code_points_in_the_username_only() -> None:
    # RFC 5802 section 5.1 prepares the username as a query, section 2.2 the password as stored.
    assert ScramSha256("\u0221", "pencil", NONCE).initial_response() == f"n,,n=\u0221,r={NONCE}".encode()
    with pytest.raises(LocalProtocolError, match=r"SCRAM-SHA-256 password: SASLprep.*unassigned"):
        ScramSha256("user", "\u0221", NONCE)


def test_scram_authzid_goes_into_the_gs2_header_and_channel_binding() -> None:
    mechanism = ScramSha1("user", "pencil", RFC5802.nonce, authzid="adm=in,x")
    gs2_header = b"n,a=adm=3Din=2Cx,"
    assert mechanism.initial_response() == gs2_header + b"n=user,r=" + RFC5802.nonce.encode()
    client_final = mechanism.respond(RFC5802.server_first)
    channel_binding = b"c=" + base64.b64encode(gs2_header)
    assert client_final.startswith(channel_binding + b",r=" + RFC5802.full_nonce + b",p=")
    # The gs2 header is part of the AuthMessage, so the proof differs from the example's.
    assert client_final != RFC5802.client_final


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "pencil", NONCE), "username must not be empty"),
        (("\u00ad", "pencil", NONCE), "username is empty after SASLprep"),
        (("us\u0007er", "pencil", NONCE), "username: SASLprep: .*control character"),
        (("user", "pen\u0007cil", NONCE), "password: SASLprep: .*control character"),
        (("user", "pencil", "short"), "nonce must be 16\\+ printable"),
        (("user", "pencil", NONCE + ","), "nonce must be"),
        (("user", "pencil", NONCE + " "), "nonce must be"),
        (("user", "pencil", NONCE + "é"), "nonce must be"),
        (("user", "pencil", NONCE, "a\0b"), "authzid must not contain"),
        ((b"user", "pencil", NONCE), "username must be a str"),
        (("user", None, NONCE), "password must be a str"),
        (("user", "pencil", 12345678901234567), "nonce must be a str"),
    ],
)
def test_scram_rejects_invalid_input(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        ScramSha256(*args)  # type: ignore[arg-type]


def test_scram_nonce_minimum_length_is_enforced_exactly() -> None:
    ScramSha256("user", "pencil", "x" * MIN_SCRAM_NONCE_LENGTH)
    with pytest.raises(LocalProtocolError, match="nonce"):
        ScramSha256("user", "pencil", "x" * (MIN_SCRAM_NONCE_LENGTH - 1))


def _server_first(vector: ScramVector, replace: dict[bytes, bytes]) -> bytes:
    challenge = vector.server_first
    for old, new in replace.items():
        assert old in challenge
        challenge = challenge.replace(old, new)
    return challenge


@pytest.mark.parametrize("vector", VECTORS)
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({b"r=": b"r=X"}, "does not extend the client nonce"),
        ({b"3rfcNHYJY1ZVvWVs7j": b"", b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0": b""}, "does not extend"),
        ({b"3rfcNHYJY1ZVvWVs7j": "é".encode(), b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0": "é".encode()},
         "outside printable"),
        ({b",s=": b",x="}, "does not begin with r=, s=, i="),
        ({b",i=4096": b""}, "does not begin with r=, s=, i="),
        ({b"i=4096": b"i=0"}, "iteration count is not a positive integer"),
        ({b"i=4096": b"i=-1"}, "iteration count is not a positive integer"),
        ({b"i=4096": b"i=04096"}, "iteration count is not a positive integer"),
        ({b"i=4096": b"i=4096x"}, "iteration count is not a positive integer"),
        ({b"i=4096": b"i=" + b"9" * 4000}, "iteration count is not a positive integer"),
        ({b"i=4096": b"i=%d" % (MAX_SCRAM_ITERATIONS + 1)}, "iterations exceed"),
        ({b"s=": b"s=*"}, "salt is not valid base64"),
        ({b"s=": b"s=A"}, "salt is not valid base64"),
        ({b"r=": b"e=other-error,r="}, "reported the error 'other-error'"),
        ({b"i=4096": b"i=4096,e=invalid-proof"}, "reported the error 'invalid-proof'"),
        ({b"r=": b"m=must-understand,r="}, "unsupported extension \\(m=\\)"),
        ({b",s=": b",,s="}, "server-first-message is malformed"),
        ({b"r=": b"rr="}, "server-first-message is malformed"),
        ({b"r=": b"r\x00="}, "server-first-message is malformed"),
        ({b"i=4096": b"i=40\x0096"}, "server-first-message is malformed"),
        ({b"r=": b"\xffr="}, "server-first-message is not UTF-8"),
    ],
)
def test_scram_refuses_a_bad_server_first_message(
    vector: ScramVector, edit: dict[bytes, bytes], message: str
) -> None:
    mechanism = vector.make()
    edit = {old: new for old, new in edit.items() if old in vector.server_first}
    with pytest.raises(AuthenticationError, match=message):
        mechanism.respond(_server_first(vector, edit))
    # The failure is final: no later challenge or 235 can revive the exchange.
    with pytest.raises(AuthenticationError, match="already failed"):
        mechanism.respond(vector.server_first)
    with pytest.raises(AuthenticationError, match="had failed"):
        mechanism.finish()


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_refuses_an_empty_salt(vector: ScramVector) -> None:
    salt = vector.server_first.split(b",")[1]
    with pytest.raises(AuthenticationError, match="salt is empty"):
        vector.make().respond(vector.server_first.replace(salt, b"s="))


@pytest.mark.parametrize("challenge", [b"", b"garbage", b"=", b"r", b"\x00"])
def test_scram_refuses_garbage_as_server_first(challenge: bytes) -> None:
    with pytest.raises(AuthenticationError, match="server-first-message is malformed"):
        RFC5802.make().respond(challenge)


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_ignores_optional_extensions(vector: ScramVector) -> None:
    # RFC 5802 section 5.1: extensions after i= are ignored, yet they are part of the AuthMessage,
    # so the proof changes.
    mechanism = vector.make()
    client_final = mechanism.respond(vector.server_first + b",x=some-extension")
    assert client_final.startswith(b"c=biws,r=" + vector.full_nonce + b",p=")
    assert client_final != vector.client_final


def test_scram_accepts_one_iteration() -> None:
    challenge = RFC5802.server_first.replace(b"i=4096", b"i=1")
    assert RFC5802.make().respond(challenge).startswith(b"c=biws,r=")


@pytest.mark.parametrize("vector", VECTORS)
@pytest.mark.parametrize(
    ("server_final", "message"),
    [
        (lambda v: b"v=" + base64.b64encode(bytes(len(base64.b64decode(v[2:])))), "wrong server signature"),
        (lambda v: v[:-4] + b"AAA=", "wrong server signature"),
        (lambda v: b"v=" + base64.b64encode(base64.b64decode(v[2:])[:-1]), "wrong server signature"),
        (lambda v: b"v=", "wrong server signature"),
        (lambda v: b"v=***", "server signature is not valid base64"),
        (lambda v: b"e=invalid-proof", "reported the error 'invalid-proof'"),
        (lambda v: v + b",e=other-error", "reported the error 'other-error'"),
        (lambda v: b"x=" + v[2:], "has no verifier"),
        (lambda v: b"", "server-final-message is malformed"),
        (lambda v: b"\xff" + v, "server-final-message is not UTF-8"),
    ],
)
def test_scram_refuses_a_bad_server_final_message(vector: ScramVector, server_final, message: str) -> None:
    mechanism = vector.after_server_first()
    with pytest.raises(AuthenticationError, match=message):
        mechanism.respond(server_final(vector.server_final))
    # A server that cannot prove itself is not believed when it then says 235.
    with pytest.raises(AuthenticationError):
        mechanism.finish()


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_signature_of_another_password_is_refused(vector: ScramVector) -> None:
    # The server signature of the example belongs to "pencil": a server that does not know the
    # password computes another one.
    mechanism = vector.make(password="pencil2")
    mechanism.respond(vector.server_first)
    with pytest.raises(AuthenticationError, match="wrong server signature"):
        mechanism.respond(vector.server_final)


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_accepts_extensions_after_the_verifier(vector: ScramVector) -> None:
    mechanism = vector.after_server_first()
    assert mechanism.respond(vector.server_final + b",x=ext") == b""
    mechanism.finish()


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_finish_needs_the_server_signature(vector: ScramVector) -> None:
    with pytest.raises(AuthenticationError, match="never proved it knows the password"):
        vector.make().finish()
    with pytest.raises(AuthenticationError, match="never proved it knows the password"):
        vector.after_server_first().finish()


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_refuses_a_third_challenge(vector: ScramVector) -> None:
    mechanism = vector.after_server_first()
    mechanism.respond(vector.server_final)
    with pytest.raises(AuthenticationError, match="one challenge too many"):
        mechanism.respond(b"")
    with pytest.raises(AuthenticationError, match="had failed"):
        mechanism.finish()


# -- XOAUTH2 --------------------------------------------------------------------------------------

# Google's XOAUTH2 documentation: the initial client response and the error challenge.
GOOGLE_XOAUTH2 = (
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1s"
    "emRHRXVZMjl0Q2cBAQ=="
)
GOOGLE_ERROR = (
    "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K"
)


def test_xoauth2_google_example() -> None:
    mechanism = XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert b64(mechanism.initial_response()) == GOOGLE_XOAUTH2
    assert mechanism.server_error is None
    assert mechanism.server_error_text() == ""
    mechanism.finish()


def test_xoauth2_error_flow() -> None:
    mechanism = XOAuth2("someuser@example.com", "ya29.expired")
    # The client answers the error with an empty response; the server then replies 535.
    assert mechanism.respond(base64.b64decode(GOOGLE_ERROR)) == b""
    assert mechanism.server_error == {
        "status": "401", "schemes": "bearer mac", "scope": "https://mail.google.com/"
    }
    assert '"status": "401"' in mechanism.server_error_text()
    with pytest.raises(AuthenticationError, match="one challenge too many"):
        mechanism.respond(b"")


def test_xoauth2_235_after_an_error_is_refused() -> None:
    mechanism = XOAuth2("someuser@example.com", "ya29.expired")
    mechanism.respond(base64.b64decode(GOOGLE_ERROR))
    with pytest.raises(AuthenticationError, match="it had reported an error"):
        mechanism.finish()


def test_server_error_is_a_copy() -> None:
    mechanism = XOAuth2("someuser@example.com", "ya29.expired")
    mechanism.respond(b'{"status": "401"}')
    error = mechanism.server_error
    assert error is not None
    error["status"] = "200"
    assert mechanism.server_error == {"status": "401"}


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        (b"", None),
        (b"not json", None),
        (b"[1, 2]", None),
        (b'"status"', None),
        (b"\xff\xfe{}", None),
        (b"[" * 100_000, None),
        (b'{"status": "401", "nested": {"a": [1]}, "list": [], "n": 1, "ok": true, "x": null}',
         {"status": "401", "n": 1, "ok": True, "x": None}),
    ],
)
@pytest.mark.parametrize("cls", [XOAuth2, OAuthBearer])
def test_oauth_error_challenges_of_any_shape_are_answered(
    cls: type[XOAuth2 | OAuthBearer], challenge: bytes, expected: dict[str, object] | None
) -> None:
    mechanism = cls("user@example.com", TOKEN)
    assert mechanism.respond(challenge) == (b"" if cls is XOAuth2 else b"\x01")
    assert mechanism.server_error == expected
    with pytest.raises(AuthenticationError):
        mechanism.finish()


def test_server_error_text_is_ascii_and_bounded() -> None:
    mechanism = OAuthBearer("user@example.com", TOKEN)
    mechanism.respond(json.dumps({"status": "invalid\r\n250 fake\x1b[31m", "scope": "é" * 1000}).encode())
    text = mechanism.server_error_text()
    assert text.startswith(" (server error: {")
    assert text.endswith("...)")
    assert len(text) < 330
    assert text.isascii()
    assert not any(char in text for char in "\r\n\x1b")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", TOKEN), "XOAUTH2 username must not be empty"),
        (("us\x01er", TOKEN), "XOAUTH2 username must not contain control characters"),
        (("user\n", TOKEN), "control characters"),
        (("user", ""), "XOAUTH2 token must not be empty"),
        (("user", "tok en"), "visible ASCII"),
        (("user", "tok\x01"), "visible ASCII"),
        (("user", "tokén"), "visible ASCII"),
        (("user", None), "XOAUTH2 token must be a str"),
    ],
)
def test_xoauth2_rejects_invalid_input(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        XOAuth2(*args)  # type: ignore[arg-type]


# -- OAUTHBEARER (RFC 7628) -----------------------------------------------------------------------

RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
# RFC 7628 section 4.1 (IMAP, port 143) and section 4.4 (SMTP, port 587): the initial responses.
RFC7628_IMAP = (
    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRx"
    "bVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
)
RFC7628_SMTP = (
    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZGOWRmdDRx"
    "bVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
)
# RFC 7628 section 4.3 (IMAP) and section 4.4 (SMTP): the servers' error challenges.
RFC7628_IMAP_ERROR = (
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJo"
    "dHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
)
RFC7628_SMTP_ERROR = (
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6ImJlYXJlciBtYWMiLCJzY29wZSI6Imh0dHBzOi8vbWFpbC5leGFt"
    "cGxlLmNvbS8ifQ=="
)


@pytest.mark.parametrize(("port", "expected"), [(143, RFC7628_IMAP), (587, RFC7628_SMTP)])
def test_oauthbearer_rfc7628_initial_response(port: int, expected: str) -> None:
    mechanism = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=port)
    assert b64(mechanism.initial_response()) == expected
    assert mechanism.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=%d\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01" % port
    )
    mechanism.finish()


@pytest.mark.parametrize(
    ("port", "challenge", "scope"),
    [
        (143, RFC7628_IMAP_ERROR, "example_scope"),  # section 4.3
        (587, RFC7628_SMTP_ERROR, "https://mail.example.com/"),  # section 4.4
    ],
)
def test_oauthbearer_rfc7628_error_flow(port: int, challenge: str, scope: str) -> None:
    mechanism = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=port)
    response = mechanism.respond(base64.b64decode(challenge))
    # Section 3.2.3: the dummy response is one ^A, "AQ==" on the wire in the examples.
    assert response == b"\x01"
    assert b64(response) == "AQ=="
    error = mechanism.server_error
    assert error is not None
    assert (error["status"], error["scope"]) == ("invalid_token", scope)
    assert "invalid_token" in mechanism.server_error_text()
    with pytest.raises(AuthenticationError, match="OAUTHBEARER: the server accepted the client, but"):
        mechanism.finish()
    with pytest.raises(AuthenticationError, match="one challenge too many"):
        mechanism.respond(b"")


def test_oauthbearer_without_host_port_or_user() -> None:
    assert OAuthBearer("u@example.com", TOKEN).initial_response() == (
        b"n,a=u@example.com,\x01auth=Bearer tok-XYZ\x01\x01"
    )
    assert OAuthBearer("", TOKEN, host="h.example").initial_response() == (
        b"n,,\x01host=h.example\x01auth=Bearer tok-XYZ\x01\x01"
    )
    assert OAuthBearer("u", TOKEN, port=25).initial_response() == (
        b"n,a=u,\x01port=25\x01auth=Bearer tok-XYZ\x01\x01"
    )


def test_oauthbearer_escapes_the_authzid() -> None:
    # RFC 7628 section 3.1 uses the gs2 header of RFC 5801, whose saslname escapes "," and "=".
    response = OAuthBearer("a,b=c@example.com", TOKEN).initial_response()
    assert response.startswith(b"n,a=a=2Cb=3Dc@example.com,\x01")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": "us\x01er"}, "OAUTHBEARER username must not contain control characters"),
        ({"username": "us\0er"}, "control characters"),
        ({"username": 5}, "OAUTHBEARER username must be a str"),
        ({"token": ""}, "OAUTHBEARER token must not be empty"),
        ({"token": "a b"}, "visible ASCII"),
        ({"host": ""}, "OAUTHBEARER host must not be empty"),
        ({"host": "server example"}, "visible ASCII"),
        ({"host": "server\x01"}, "visible ASCII"),
        ({"port": 0}, "port must be an int in 1-65535, not 0"),
        ({"port": 65536}, "not 65536"),
        ({"port": True}, "not True"),
        ({"port": "143"}, "not '143'"),
        ({"port": 143.0}, "not 143.0"),
    ],
)
def test_oauthbearer_rejects_invalid_input(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"username": "user@example.com", "token": TOKEN, **kwargs}
    with pytest.raises(LocalProtocolError, match=message):
        OAuthBearer(**arguments)  # type: ignore[arg-type]


def test_oauthbearer_port_bounds() -> None:
    assert b"port=1\x01" in OAuthBearer("u", TOKEN, port=1).initial_response()
    assert b"port=65535\x01" in OAuthBearer("u", TOKEN, port=65535).initial_response()


# -- EXTERNAL (RFC 4422 appendix A) ---------------------------------------------------------------


def test_external_initial_response() -> None:
    assert External().initial_response() == b""
    assert External("zoë").initial_response() == "zoë".encode()
    External().finish()


def test_external_refuses_challenges_and_bad_input() -> None:
    with pytest.raises(AuthenticationError, match="EXTERNAL: the server sent a challenge"):
        External().respond(b"")
    with pytest.raises(LocalProtocolError, match="EXTERNAL authzid must not contain"):
        External("a\0b")
    with pytest.raises(LocalProtocolError, match="EXTERNAL authzid must be a str"):
        External(None)  # type: ignore[arg-type]


# -- every mechanism ------------------------------------------------------------------------------

FACTORIES = {
    "PLAIN": lambda: Plain("tim", SECRET, authzid="admin"),
    "LOGIN": lambda: Login("tim", SECRET),
    "CRAM-MD5": lambda: CramMD5("tim", SECRET),
    "SCRAM-SHA-1": lambda: ScramSha1("user", SECRET, RFC5802.nonce),
    "SCRAM-SHA-256": lambda: ScramSha256("user", SECRET, RFC7677.nonce),
    "XOAUTH2": lambda: XOAuth2("user@example.com", TOKEN),
    "OAUTHBEARER": lambda: OAuthBearer("user@example.com", TOKEN, host="smtp.example.com", port=587),
    "EXTERNAL": lambda: External("admin"),
}

# Challenges that get past the first checks of SCRAM, so that the property below reaches its
# deeper paths, mixed with arbitrary bytes.
SCRAM_PIECES = [
    b"r=" + RFC5802.full_nonce, b"r=" + RFC7677.full_nonce, b"r=" + RFC5802.nonce.encode(), b"r=x",
    b"s=QSXCR+Q6sek8bf92", b"s=", b"s=*", b"i=1", b"i=4096", b"i=0", b"i=99999999999", b"e=x",
    b"m=y", b"x=z", b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", b"v=AAAA", b"v=", b"", b"\xff", b"=",
]
CHALLENGES = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from(SCRAM_PIECES), min_size=1, max_size=5).map(b",".join),
    st.sampled_from([RFC5802.server_first, RFC5802.server_final, RFC7677.server_first, RFC7677.server_final]),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    ).map(lambda value: json.dumps(value).encode()),
)


def test_factories_cover_every_known_mechanism() -> None:
    assert set(FACTORIES) == KNOWN_MECHANISMS
    for name, factory in FACTORIES.items():
        mechanism = factory()
        assert isinstance(mechanism, MECHANISMS[name])
        assert mechanism.name == name


@given(name=st.sampled_from(sorted(FACTORIES)), challenges=st.lists(CHALLENGES, min_size=1, max_size=4))
def test_respond_returns_bytes_or_raises_authentication_error(name: str, challenges: list[bytes]) -> None:
    mechanism = FACTORIES[name]()
    mechanism.initial_response()
    for challenge in challenges:
        try:
            response = mechanism.respond(challenge)
        except AuthenticationError:
            # Sticky: once failed, always failed.
            with pytest.raises(AuthenticationError):
                mechanism.respond(challenge)
            with pytest.raises(AuthenticationError):
                mechanism.finish()
            return
        assert isinstance(response, bytes)
    assert isinstance(mechanism.server_error_text(), str)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_no_mechanism_answers_max_challenges(name: str) -> None:
    # Every exchange ends within MAX_CHALLENGES challenges, whatever the server sends: the cap of
    # the Session is a second line of defence, not the only one.
    mechanism = FACTORIES[name]()
    with pytest.raises(AuthenticationError):
        for _ in range(MAX_CHALLENGES):
            mechanism.respond(b"<1.2@example>")


@given(
    name=st.sampled_from(sorted(KNOWN_MECHANISMS - {"EXTERNAL"})),
    username=st.text(max_size=12),
    secret=st.text(max_size=12),
)
def test_constructors_raise_only_local_protocol_errors(name: str, username: str, secret: str) -> None:
    cls = MECHANISMS[name]
    arguments: tuple[object, ...] = (username, secret)
    if name.startswith("SCRAM"):
        arguments += (NONCE,)
    try:
        mechanism = cls(*arguments)  # type: ignore[call-arg]
    except LocalProtocolError:
        return
    assert isinstance(mechanism.initial_response(), bytes | None)


def _exchanged(name: str) -> tuple[Mechanism, list[bytes]]:
    """A mechanism of ``name`` after a typical exchange, and everything it sent."""
    mechanism = FACTORIES[name]()
    sent = [mechanism.initial_response() or b""]
    challenges = {
        "LOGIN": [b"Username:", b"Password:"],
        "CRAM-MD5": [b"<1896.697170952@postoffice.reston.mci.net>"],
        "SCRAM-SHA-1": [RFC5802.server_first],
        "SCRAM-SHA-256": [RFC7677.server_first],
        "XOAUTH2": [base64.b64decode(GOOGLE_ERROR)],
        "OAUTHBEARER": [base64.b64decode(RFC7628_SMTP_ERROR)],
    }.get(name, [])
    sent.extend(mechanism.respond(challenge) for challenge in challenges)
    return mechanism, sent


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_repr_and_str_never_show_secrets_or_responses(name: str) -> None:
    mechanism, sent = _exchanged(name)
    for text in (repr(mechanism), str(mechanism)):
        assert text.startswith(type(mechanism).__name__ + "(")
        for secret in (SECRET, TOKEN):
            assert secret not in text
            assert b64(secret.encode()) not in text
            assert b64(secret.encode()).rstrip("=") not in text
        for data in sent:
            if len(data) > 4:
                assert b64(data) not in text
                assert repr(data) not in text
        if name.startswith("SCRAM"):
            assert RFC5802.nonce not in text
            assert RFC7677.nonce not in text
    assert SECRET not in mechanism.server_error_text()


def test_repr_shows_what_helps_debugging() -> None:
    assert repr(Plain("tim", SECRET, authzid="admin")) == "Plain(username='tim', authzid='admin')"
    assert repr(OAuthBearer("u", TOKEN, host="h", port=1)) == "OAuthBearer(username='u', host='h', port=1)"


def test_mechanisms_are_frozen_and_compared_by_identity() -> None:
    mechanism = Plain("tim", SECRET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mechanism.password = "other"  # type: ignore[misc]
    assert mechanism != Plain("tim", SECRET)
    assert mechanism == mechanism
    assert not hasattr(mechanism, "__dict__")


def test_initial_response_has_no_side_effect() -> None:
    # The Session may call it to measure the AUTH line and then send it as a response instead.
    mechanism = RFC5802.make()
    for _ in range(3):
        assert mechanism.initial_response() == RFC5802.client_first
    assert mechanism.respond(RFC5802.server_first) == RFC5802.client_final


def test_mechanism_lists() -> None:
    assert DEFAULT_MECHANISMS == ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
    assert TOKEN_MECHANISMS == ("OAUTHBEARER", "XOAUTH2")
    assert SEED_MECHANISMS == ("CRAM-MD5", "PLAIN", "LOGIN")
    assert frozenset(DEFAULT_MECHANISMS) == PASSWORD_MECHANISMS
    assert set(SEED_MECHANISMS) <= PASSWORD_MECHANISMS
    assert {*PASSWORD_MECHANISMS, *TOKEN_MECHANISMS, "EXTERNAL"} == KNOWN_MECHANISMS
    assert frozenset({"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"}) == PLAINTEXT_MECHANISMS
    assert set(MECHANISMS) == KNOWN_MECHANISMS
    assert all(cls.name == name for name, cls in MECHANISMS.items())
    with pytest.raises(TypeError):
        MECHANISMS["X"] = Plain  # type: ignore[index]


def test_max_challenges_covers_the_longest_exchange() -> None:
    # SCRAM: an empty challenge for a deferred initial response, server-first, server-final.
    assert 3 <= MAX_CHALLENGES <= 20


# -- SASLprep (RFC 4013) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prepared"),
    [
        # RFC 4013 section 3, the examples.
        ("I\u00adX", "IX"),  # soft hyphen mapped to nothing
        ("user", "user"),  # no transformation
        ("USER", "USER"),  # case preserved, will not match #2
        ("\u00aa", "a"),  # output is NFKC, input in ISO 8859-1
        ("\u2168", "IX"),  # output is NFKC, will match #1
        # Section 2.1: non-ASCII spaces become SPACE, B.1 characters vanish.
        ("a\u00a0b\u3000c\u1680d", "a b c d"),  # U+1680 has no NFKC decomposition
        ("a\u200bb\ufeffc", "abc"),
        ("a b", "a b"),
        ("", ""),
        # Section 2.4: a right-to-left string may contain European digits inside.
        ("\u0627\u0031\u0628", "\u0627\u0031\u0628"),
    ],
)
def test_saslprep(text: str, prepared: str) -> None:
    assert saslprep(text) == prepared


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\u0007", "control character"),  # RFC 4013 section 3, example 6
        ("\u0627\u0031", "must begin and end with a right-to-left"),  # example 7
        ("1\u0627", "must begin and end with a right-to-left"),
        ("\u0627a\u0628", "mixes right-to-left and left-to-right"),
        ("a\u0080", "control character"),  # C.2.2
        ("a\x7f", "control character"),  # C.2.1
        ("\ue000", "private-use"),  # C.3
        ("\ufdd0", "non-character"),  # C.4
        ("\ud800", "surrogate"),  # C.5
        ("\ufffd", "inappropriate for plain text"),  # C.6
        ("\u2ff0", "inappropriate for canonical representation"),  # C.7
        ("a\u200e", "display-changing"),  # C.8
        ("\U000e0001", "tagging"),  # C.9
        ("\u0221", "unassigned"),  # A.1, assigned only in Unicode 4.0
        ("\U0001f600", "unassigned"),
    ],
)
def test_saslprep_refuses(text: str, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message) as caught:
        saslprep(text)
    # The message names the kind of character, never the string (often a password).
    assert text not in str(caught.value)


def test_saslprep_query_strings_allow_unassigned_code_points() -> None:
    assert saslprep("\u0221", allow_unassigned=True) == "\u0221"
    with pytest.raises(LocalProtocolError, match="control character"):
        saslprep("\u0007", allow_unassigned=True)


def test_saslprep_needs_a_str() -> None:
    with pytest.raises(LocalProtocolError, match="SASLprep needs a str, not bytes"):
        saslprep(b"user")  # type: ignore[arg-type]


@given(st.text())
def test_saslprep_is_idempotent_or_refuses(text: str) -> None:
    try:
        prepared = saslprep(text, allow_unassigned=True)
    except LocalProtocolError:
        return
    assert saslprep(prepared, allow_unassigned=True) == prepared
