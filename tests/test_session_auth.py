"""Tests for the Session's authentication: mechanism choice, the exchanges, refusals, secrets.

Driven by the transcript driver (session_driver.py): every byte the client writes is checked.  The
mechanisms' own arithmetic is tested with the RFC examples in test_sasl.py; here the exchanges run
through the session over TLS reported verified, as they would over a socket.  The same exchanges
against a real server are in test_postfix.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from session_driver import (
    CLOSE,
    EHLO,
    ENVELOPE,
    GREETING,
    MESSAGE,
    QUIT,
    TLS,
    C,
    Driver,
    S,
    Split,
    assert_dead,
    ehlo_reply,
    make_session,
    plain_steps,
)

from smtp_sansio import (
    MAX_CHALLENGES,
    SEED_MECHANISMS,
    AuthenticationError,
    Credentials,
    LocalProtocolError,
    Mechanism,
    Read,
    RemoteProtocolError,
    SecurityError,
    SendResult,
    TraceLine,
    TransientReplyError,
    Write,
)
from smtp_sansio._auth import run_exchange

PASSWORD = "s3cr3t-Pa55"
USER = Credentials(username="alice", password=PASSWORD)
TOKEN = Credentials(username="alice@example.org", token="tok-XYZ-123")
NONCE = "rOprNGfwEbeRWgbNEkqO"  # RFC 7677 section 3
BYE = (C(QUIT), S(b"221 bye\r\n"), CLOSE)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def greeted(*extensions: str, split: Split | None = None, **options: object) -> tuple[Driver, list]:
    """A session over implicit, verified TLS, and the script of its greeting and EHLO."""
    options.setdefault("credentials", USER)
    options.setdefault("tls", "implicit")
    session = make_session(**options)
    driver = Driver(session) if split is None else Driver(session, split)
    return driver, [S(GREETING), C(EHLO), S(ehlo_reply(*extensions))]


def first_auth_line(offered: str, **options: object) -> bytes:
    """The AUTH command the session writes when the server offers ``offered``."""
    driver, _ = greeted(f"AUTH {offered}", **options)
    feed = [GREETING, ehlo_reply(f"AUTH {offered}")]
    while True:
        request = driver.session.next_request()
        if isinstance(request, Read):
            driver.session.receive_data(feed.pop(0))
        else:
            assert isinstance(request, Write), request
            if request.data.startswith(b"AUTH"):
                return request.data


# --- choosing a mechanism --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "options", "chosen"),
    [
        ("LOGIN PLAIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256", {"nonce": lambda: NONCE}, b"SCRAM-SHA-256"),
        ("LOGIN PLAIN CRAM-MD5 SCRAM-SHA-1", {"nonce": lambda: NONCE}, b"SCRAM-SHA-1"),
        # Without a nonce source SCRAM cannot run: the next strongest is taken.
        ("LOGIN PLAIN CRAM-MD5 SCRAM-SHA-256", {}, b"CRAM-MD5"),
        ("LOGIN PLAIN", {}, b"PLAIN"),
        ("login", {}, b"LOGIN"),
        # The seed's order, CRAM-MD5 first, and a user's own order.
        ("PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256", {"auth_mechanisms": SEED_MECHANISMS, "nonce": lambda: NONCE},
         b"CRAM-MD5"),
        ("PLAIN LOGIN", {"auth_mechanisms": ["login", "plain"]}, b"LOGIN"),
        # A token goes to the token mechanisms; a client certificate to EXTERNAL.
        ("PLAIN XOAUTH2 OAUTHBEARER", {"credentials": TOKEN}, b"OAUTHBEARER"),
        ("PLAIN XOAUTH2", {"credentials": TOKEN}, b"XOAUTH2"),
        ("EXTERNAL PLAIN", {"credentials": Credentials(), "client_certificate": True}, b"EXTERNAL"),
    ],
)
def test_the_first_usable_mechanism_of_the_preference_is_chosen(offered, options, chosen) -> None:
    assert first_auth_line(offered, **options).split()[1] == chosen


@pytest.mark.parametrize(
    ("offered", "options"),
    [
        ("DIGEST-MD5 GSSAPI", {}),  # offered, but none implemented
        ("SCRAM-SHA-256", {}),  # no nonce source
        ("XOAUTH2", {}),  # a password cannot do a token's job
        ("PLAIN", {"credentials": TOKEN}),
        ("EXTERNAL", {"credentials": Credentials()}),  # no client certificate
        ("PLAIN LOGIN", {"auth_mechanisms": ["CRAM-MD5"]}),
    ],
)
def test_no_usable_mechanism_is_an_authentication_error(offered, options) -> None:
    driver, script = greeted(f"AUTH {offered}", **options)
    with pytest.raises(AuthenticationError, match=f"no usable SASL mechanism: .* offers {offered}"):
        driver.run(*script, *BYE)
    assert_dead(driver.session)


def test_auth_not_offered_is_an_authentication_error() -> None:
    driver, script = greeted("PIPELINING", "8BITMIME")
    with pytest.raises(AuthenticationError, match="does not offer AUTH"):
        driver.run(*script, *BYE)


@pytest.mark.parametrize("names", [["NTLM"], ["PLAIN", "X-SECRET"], [], "PLAIN", [b"PLAIN"]])
def test_unknown_or_malformed_preferences_fail_at_construction(names) -> None:
    with pytest.raises(LocalProtocolError):
        make_session(credentials=USER, auth_mechanisms=names)


def test_credentials_are_checked() -> None:
    with pytest.raises(LocalProtocolError, match="credentials must be Credentials"):
        make_session(credentials=("alice", PASSWORD))
    with pytest.raises(LocalProtocolError, match="password must be a str"):
        Credentials(username="alice", password=b"pw")  # type: ignore[arg-type]
    assert PASSWORD not in repr(USER)
    assert "tok-XYZ" not in repr(TOKEN)


# --- where credentials may go -----------------------------------------------------------------------


def test_no_credentials_over_plaintext() -> None:
    driver, script = greeted("AUTH PLAIN LOGIN", tls="none")
    with pytest.raises(SecurityError, match=r"refusing to send credentials .* over plaintext"):
        driver.run(*script, *BYE)
    assert not any(data.startswith(b"AUTH") for data in driver.written)


def test_no_credentials_over_unverified_tls() -> None:
    driver, script = greeted("AUTH PLAIN", tls_verified=False)
    with pytest.raises(SecurityError, match="not verified"):
        driver.run(*script, *BYE)
    assert not any(data.startswith(b"AUTH") for data in driver.written)


def test_opportunistic_tls_never_sends_credentials_in_plaintext() -> None:
    driver, script = greeted("AUTH PLAIN", tls="opportunistic")
    with pytest.raises(SecurityError, match="over plaintext"):
        driver.run(*script, *BYE)


def test_allow_insecure_auth_is_an_explicit_choice() -> None:
    driver, script = greeted("AUTH PLAIN", tls="none", allow_insecure_auth=True)
    driver.run(*script, C(b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n"), S(b"235 ok\r\n"))
    assert driver.session.authenticated == "PLAIN"


def test_after_starttls_with_the_capabilities_of_the_second_ehlo(split: Split) -> None:
    # AUTH is announced only after TLS (Postfix's smtpd_tls_auth_only): it must be found there.
    driver, _ = greeted(tls="starttls", split=split)
    driver.run(
        S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS")), C(b"STARTTLS\r\n"), S(b"220 go ahead\r\n"),
        TLS(verified=True), C(EHLO), S(ehlo_reply("AUTH PLAIN")),
        C(b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n"), S(b"235 ok\r\n"),
    )
    assert driver.session.authenticated == "PLAIN"


def test_auth_announced_only_before_tls_does_not_count() -> None:
    driver, _ = greeted(tls="starttls")
    with pytest.raises(AuthenticationError, match="does not offer AUTH"):
        driver.run(
            S(GREETING), C(EHLO), S(ehlo_reply("STARTTLS", "AUTH PLAIN")), C(b"STARTTLS\r\n"),
            S(b"220 go ahead\r\n"), TLS(verified=True), C(EHLO), S(ehlo_reply("8BITMIME")), *BYE,
        )


# --- the exchanges -----------------------------------------------------------------------------------


def test_plain_then_mail(split: Split) -> None:
    driver, script = greeted("AUTH LOGIN PLAIN", split=split)
    driver.run(*script, C(b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n"),
               S(b"235 2.7.0 Authentication successful\r\n"))
    assert driver.session.authenticated == "PLAIN"
    driver.session.send_message(ENVELOPE, MESSAGE)
    assert isinstance(driver.run(*plain_steps()), SendResult)


def test_login(split: Split) -> None:
    driver, script = greeted("AUTH LOGIN", split=split)
    driver.run(
        *script, C(b"AUTH LOGIN\r\n"), S(b"334 VXNlcm5hbWU6\r\n"), C(b64(b"alice") + b"\r\n"),
        S(b"334 UGFzc3dvcmQ6\r\n"), C(b64(PASSWORD.encode()) + b"\r\n"), S(b"235 ok\r\n"),
    )
    assert driver.session.authenticated == "LOGIN"


def test_cram_md5_with_the_example_of_rfc_2195() -> None:
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    tim = Credentials(username="tim", password="tanstaaftanstaaf")
    driver, script = greeted("AUTH CRAM-MD5", credentials=tim)
    driver.run(
        *script, C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(challenge) + b"\r\n"),
        C(b64(b"tim b913a602c7eda7a495b4e6e7334d3890") + b"\r\n"), S(b"235 ok\r\n"),
    )


SCRAM_SERVER_FIRST = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
SCRAM_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                      b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SCRAM_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def scram_session(split: Split | None = None) -> tuple[Driver, list]:
    return greeted("AUTH SCRAM-SHA-256 PLAIN", credentials=Credentials(username="user", password="pencil"),
                   nonce=lambda: NONCE, split=split)


def test_scram_sha_256_with_the_example_of_rfc_7677(split: Split) -> None:
    driver, script = scram_session(split)
    driver.run(
        *script, C(b"AUTH SCRAM-SHA-256 " + b64(b"n,,n=user,r=" + NONCE.encode()) + b"\r\n"),
        S(b"334 " + b64(SCRAM_SERVER_FIRST) + b"\r\n"), C(b64(SCRAM_CLIENT_FINAL) + b"\r\n"),
        S(b"334 " + b64(SCRAM_SERVER_FINAL) + b"\r\n"), C(b"\r\n"), S(b"235 2.7.0 ok\r\n"),
    )
    assert driver.session.authenticated == "SCRAM-SHA-256"


def test_scram_server_that_never_proves_itself_is_refused() -> None:
    # A server that accepts without the server-final message may not know the password at all.
    driver, script = scram_session()
    with pytest.raises(AuthenticationError):
        driver.run(
            *script, C(b"AUTH SCRAM-SHA-256 " + b64(b"n,,n=user,r=" + NONCE.encode()) + b"\r\n"),
            S(b"334 " + b64(SCRAM_SERVER_FIRST) + b"\r\n"), C(b64(SCRAM_CLIENT_FINAL) + b"\r\n"),
            S(b"235 2.7.0 ok\r\n"), *BYE,
        )
    assert driver.session.authenticated is None


def test_scram_wrong_server_signature_cancels_the_exchange() -> None:
    driver, script = scram_session()
    with pytest.raises(AuthenticationError):
        driver.run(
            *script, C(b"AUTH SCRAM-SHA-256 " + b64(b"n,,n=user,r=" + NONCE.encode()) + b"\r\n"),
            S(b"334 " + b64(SCRAM_SERVER_FIRST) + b"\r\n"), C(b64(SCRAM_CLIENT_FINAL) + b"\r\n"),
            S(b"334 " + b64(b"v=" + b64(b"x" * 32)) + b"\r\n"),
            C(b"*\r\n"), S(b"501 5.7.0 cancelled\r\n"), *BYE,
        )


def test_an_initial_response_too_long_for_the_auth_line_waits_for_the_first_challenge() -> None:
    # RFC 4954 section 4: the AUTH line stays within 512 octets; the response follows the "334 ".
    password = "p" * 400
    driver, script = greeted("AUTH PLAIN", credentials=Credentials(username="alice", password=password))
    driver.run(*script, C(b"AUTH PLAIN\r\n"), S(b"334 \r\n"),
               C(b64(b"\0alice\0" + password.encode()) + b"\r\n"), S(b"235 ok\r\n"))


def test_oauthbearer_error_challenge_gets_the_dummy_reply_then_fails() -> None:
    error = b'{"status":"invalid_token","scope":"mail"}'
    driver, script = greeted("AUTH OAUTHBEARER", credentials=TOKEN, server_port=465)
    initial = (b"n,a=alice@example.org,\x01host=mail.example.org\x01port=465\x01"
               b"auth=Bearer tok-XYZ-123\x01\x01")
    with pytest.raises(AuthenticationError, match="invalid_token") as info:
        driver.run(*script, C(b"AUTH OAUTHBEARER " + b64(initial) + b"\r\n"),
                   S(b"334 " + b64(error) + b"\r\n"), C(b"AQ==\r\n"), S(b"535 5.7.8 bad token\r\n"), *BYE)
    assert info.value.reply is not None and info.value.reply.code == 535


def test_xoauth2_error_challenge_gets_an_empty_reply() -> None:
    error = b'{"status":"401","schemes":"bearer","scope":"https://mail.example/"}'
    driver, script = greeted("AUTH XOAUTH2", credentials=TOKEN)
    initial = b"user=alice@example.org\x01auth=Bearer tok-XYZ-123\x01\x01"
    with pytest.raises(AuthenticationError, match="535"):
        driver.run(*script, C(b"AUTH XOAUTH2 " + b64(initial) + b"\r\n"), S(b"334 " + b64(error) + b"\r\n"),
                   C(b"\r\n"), S(b"535 5.7.8 Username and Password not accepted\r\n"), *BYE)


def test_external() -> None:
    driver, script = greeted("AUTH EXTERNAL", credentials=Credentials(), client_certificate=True)
    driver.run(*script, C(b"AUTH EXTERNAL =\r\n"), S(b"235 ok\r\n"))
    assert driver.session.authenticated == "EXTERNAL"


# --- refusals ---------------------------------------------------------------------------------------


def test_535_is_final_no_weaker_mechanism_is_tried() -> None:
    challenge = b"<1.2@mx.example>"
    digest = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest().encode()
    driver, script = greeted("AUTH CRAM-MD5 PLAIN LOGIN")
    with pytest.raises(AuthenticationError, match="refused the credentials of alice with CRAM-MD5") as info:
        driver.run(*script, C(b"AUTH CRAM-MD5\r\n"), S(b"334 " + b64(challenge) + b"\r\n"),
                   C(b64(b"alice " + digest) + b"\r\n"), S(b"535 5.7.8 authentication failed\r\n"), *BYE)
    assert info.value.reply is not None and info.value.reply.code == 535
    assert_dead(driver.session)


def test_454_is_a_temporary_failure() -> None:
    driver, script = greeted("AUTH PLAIN")
    with pytest.raises(TransientReplyError) as info:
        driver.run(*script, C(b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n"),
                   S(b"454 4.7.0 Temporary authentication failure\r\n"), *BYE)
    assert info.value.code == 454
    assert PASSWORD not in str(info.value)
    assert b64(b"\0alice\0" + PASSWORD.encode()).decode() not in str(info.value)


def test_421_during_auth_ends_the_session() -> None:
    driver, script = greeted("AUTH LOGIN")
    with pytest.raises(TransientReplyError):
        driver.run(*script, C(b"AUTH LOGIN\r\n"), S(b"421 4.3.2 shutting down\r\n"), CLOSE)
    assert_dead(driver.session)


def test_a_challenge_that_is_not_base64_cancels() -> None:
    driver, script = greeted("AUTH LOGIN")
    with pytest.raises(AuthenticationError, match="not base64"):
        driver.run(*script, C(b"AUTH LOGIN\r\n"), S(b"334 not*base64!\r\n"),
                   C(b"*\r\n"), S(b"501 5.7.0 cancelled\r\n"), *BYE)


def test_one_challenge_too_many_cancels() -> None:
    driver, script = greeted("AUTH LOGIN")
    with pytest.raises(AuthenticationError):
        driver.run(
            *script, C(b"AUTH LOGIN\r\n"), S(b"334 VXNlcm5hbWU6\r\n"), C(b64(b"alice") + b"\r\n"),
            S(b"334 UGFzc3dvcmQ6\r\n"), C(b64(PASSWORD.encode()) + b"\r\n"), S(b"334 UGFzc3dvcmQ6\r\n"),
            C(b"*\r\n"), S(b"501 5.7.0 cancelled\r\n"), *BYE,
        )


def test_a_sasl_prep_refusal_ends_the_session_before_auth() -> None:
    driver, script = greeted("AUTH SCRAM-SHA-256", credentials=Credentials(username="a\u0007", password="pw"),
                             nonce=lambda: NONCE)
    with pytest.raises(LocalProtocolError):
        driver.run(*script, *BYE)


class _Endless(Mechanism):
    # A mechanism that would answer challenges forever: the exchange's cap must stop it.
    name = "PLAIN"

    def initial_response(self) -> bytes | None:
        return None

    def _respond(self, number: int, challenge: bytes) -> bytes:
        return b"more"


def test_the_number_of_challenges_is_capped() -> None:
    written: list[bytes] = []

    def command(cmd):
        written.append(cmd.encode())
        if False:
            yield
        from smtp_sansio import Reply, ReplyReceived

        code = 501 if cmd.trace_text() == "*" else 334
        return ReplyReceived(verb="AUTH", command=cmd.trace_text(), reply=Reply(code=code, lines=(b"",)))

    exchange = run_exchange(_Endless(), command, host="mx.example")
    with pytest.raises(AuthenticationError, match=f"more than {MAX_CHALLENGES}"):
        next(exchange)
    assert written[0] == b"AUTH PLAIN\r\n"
    assert written[1 : MAX_CHALLENGES + 1] == [b64(b"more") + b"\r\n"] * MAX_CHALLENGES
    assert written[-1] == b"*\r\n"


# --- secrets --------------------------------------------------------------------------------------


def test_the_trace_never_shows_a_secret() -> None:
    lines: list[TraceLine] = []
    driver, script = greeted("AUTH LOGIN", trace=lines.append)
    driver.run(
        *script, C(b"AUTH LOGIN\r\n"), S(b"334 VXNlcm5hbWU6\r\n"), C(b64(b"alice") + b"\r\n"),
        S(b"334 UGFzc3dvcmQ6\r\n"), C(b64(PASSWORD.encode()) + b"\r\n"), S(b"235 ok\r\n"),
    )
    shown = "\n".join(map(str, lines))
    for secret in (PASSWORD, b64(PASSWORD.encode()).decode(), b64(b"alice").decode()):
        assert secret not in shown
    assert "C: AUTH LOGIN" in shown
    assert "S: 334 <redacted>" in shown
    assert "C: <redacted>" in shown
    assert "*: authenticated to mail.example.org with LOGIN" in shown


def test_the_trace_of_a_scram_exchange_shows_nothing_derived_from_the_password() -> None:
    lines: list[TraceLine] = []
    driver, script = greeted(
        "AUTH SCRAM-SHA-256", credentials=Credentials(username="user", password="pencil"),
        nonce=lambda: NONCE, trace=lines.append,
    )
    driver.run(
        *script, C(b"AUTH SCRAM-SHA-256 " + b64(b"n,,n=user,r=" + NONCE.encode()) + b"\r\n"),
        S(b"334 " + b64(SCRAM_SERVER_FIRST) + b"\r\n"), C(b64(SCRAM_CLIENT_FINAL) + b"\r\n"),
        S(b"334 " + b64(SCRAM_SERVER_FINAL) + b"\r\n"), C(b"\r\n"), S(b"235 2.7.0 ok\r\n"),
    )
    shown = "\n".join(map(str, lines))
    for secret in (SCRAM_CLIENT_FINAL, SCRAM_SERVER_FINAL, SCRAM_SERVER_FIRST):
        assert b64(secret).decode() not in shown
        assert secret.decode() not in shown
    assert "C: AUTH SCRAM-SHA-256 <redacted>" in shown


def test_a_refusal_error_has_no_secret() -> None:
    driver, script = greeted("AUTH PLAIN")
    response = b64(b"\0alice\0" + PASSWORD.encode())
    with pytest.raises(AuthenticationError) as info:
        driver.run(*script, C(b"AUTH PLAIN " + response + b"\r\n"),
                   S(b"535 5.7.8 Error: authentication failed\r\n"), *BYE)
    for text in (str(info.value), repr(info.value), str(info.value.reply)):
        assert PASSWORD not in text
        assert response.decode() not in text


def test_an_unexpected_eof_during_auth_is_a_protocol_error() -> None:
    driver, script = greeted("AUTH LOGIN")
    with pytest.raises(RemoteProtocolError):
        driver.run(*script, C(b"AUTH LOGIN\r\n"), ("EOF", None), CLOSE)
