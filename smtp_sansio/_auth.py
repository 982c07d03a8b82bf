"""Authentication policy: which SASL mechanism to use, and building it from the credentials.

The mechanisms themselves are in :mod:`._sasl`; the exchange (AUTH, 334 challenges, 235) is run by
the :class:`~smtp_sansio.Session`.  This module decides only what can be decided without I/O: which
of the mechanisms the server offers are usable with the credentials given, in the user's order of
preference.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

from ._commands import Auth, AuthResponse, Command
from ._connection import ReplyReceived
from ._errors import AuthenticationError, LocalProtocolError
from ._replies import Reply
from ._requests import Request
from ._sasl import (
    DEFAULT_MECHANISMS,
    KNOWN_MECHANISMS,
    MAX_CHALLENGES,
    TOKEN_MECHANISMS,
    CramMD5,
    External,
    Login,
    Mechanism,
    OAuthBearer,
    Plain,
    ScramSha1,
    ScramSha256,
    XOAuth2,
)

__all__ = [
    "DEFAULT_PREFERENCE",
    "Credentials",
    "build_mechanism",
    "choose_mechanism",
    "mechanism_preference",
    "run_exchange",
]

#: The order in which mechanisms are tried when the user names none: a bearer token first (it is
#: what the user configured when given), then the password mechanisms strongest first, then
#: EXTERNAL (TLS client certificate), which is only usable with a certificate.
DEFAULT_PREFERENCE: tuple[str, ...] = (*TOKEN_MECHANISMS, *DEFAULT_MECHANISMS, "EXTERNAL")


def _optional_text(what: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a str or None, not {type(value).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What one session authenticates with.

    Give a username with a password (PLAIN, LOGIN, CRAM-MD5, SCRAM), or with an OAuth 2 bearer
    token (XOAUTH2, OAUTHBEARER); ``Credentials()`` alone authenticates with a TLS client
    certificate (EXTERNAL).  The password and the token never appear in ``repr()``.

    Attributes:
        username: the authentication identity.
        password: the password.
        token: an OAuth 2 access token (RFC 6750), fresh for this session.
        authorization_id: the identity to act as, when it differs from ``username`` (RFC 4422
            section 3.4.1); empty for "the same".

    Raises:
        LocalProtocolError: a field is not a str.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    authorization_id: str = ""

    def __post_init__(self) -> None:
        _optional_text("username", self.username)
        _optional_text("password", self.password)
        _optional_text("token", self.token)
        _optional_text("authorization_id", self.authorization_id)


def mechanism_preference(names: Sequence[str] | None) -> tuple[str, ...]:
    """Check the user's list of mechanism names.

    Args:
        names: mechanism names in order of preference (any case), or ``None`` for
            :data:`DEFAULT_PREFERENCE`.

    Returns:
        The names, upper-cased, without repeats.

    Raises:
        LocalProtocolError: the list is empty, a single string, or names a mechanism this project
            does not implement.
    """
    if names is None:
        return DEFAULT_PREFERENCE
    if isinstance(names, str):
        raise LocalProtocolError("auth_mechanisms must be a sequence of names, not a single string")
    wanted: list[str] = []
    for name in names:
        if str(name).upper() not in KNOWN_MECHANISMS:
            known = ", ".join(sorted(KNOWN_MECHANISMS))
            raise LocalProtocolError(f"unknown SASL mechanism {name!r} (known: {known})")
        wanted.append(name.upper())
    if not wanted:
        raise LocalProtocolError("auth_mechanisms is empty: name at least one mechanism")
    return tuple(dict.fromkeys(wanted))


def _usable(name: str, credentials: Credentials, *, client_certificate: bool, nonce: bool) -> bool:
    # What each mechanism needs (RFC 4616, RFC 2195, RFC 5802, RFC 7628, RFC 4422 appendix A).
    if name == "EXTERNAL":
        return client_certificate
    if not credentials.username:
        return False
    if name in TOKEN_MECHANISMS:
        return credentials.token is not None
    # The password mechanisms; SCRAM needs a nonce as well.
    return credentials.password is not None and (nonce or not name.startswith("SCRAM-"))


def choose_mechanism(
    offered: Sequence[str],
    preference: Sequence[str],
    credentials: Credentials,
    *,
    client_certificate: bool,
    nonce: bool,
) -> str | None:
    """The first mechanism of ``preference`` that the server offers and the credentials allow.

    Args:
        offered: the mechanisms of the server's AUTH line, upper-cased.
        preference: the user's order (from :func:`mechanism_preference`).
        credentials: what the user gave.
        client_certificate: whether a TLS client certificate was presented (for EXTERNAL).
        nonce: whether a source of nonces was given (SCRAM needs one).

    Returns:
        The mechanism's name, or ``None`` if none fits.
    """
    for name in preference:
        if name in offered and _usable(name, credentials, client_certificate=client_certificate, nonce=nonce):
            return name
    return None


def build_mechanism(
    name: str,
    credentials: Credentials,
    *,
    nonce: Callable[[], str] | None,
    host: str,
    port: int | None,
) -> Mechanism:
    """Make the step object of mechanism ``name`` (chosen by :func:`choose_mechanism`).

    Args:
        name: the mechanism.
        credentials: the credentials; what the mechanism needs is present.
        nonce: makes the client nonce of SCRAM (called once per exchange).
        host: the server's name, for OAUTHBEARER.
        port: the server's port, for OAUTHBEARER, if known.

    Returns:
        The mechanism, ready for its initial response.

    Raises:
        LocalProtocolError: the credentials cannot be used with it (a NUL in a PLAIN password, a
            user name SASLprep refuses, ...).
    """
    username = credentials.username or ""
    password = credentials.password or ""
    token = credentials.token or ""
    authzid = credentials.authorization_id
    builders: dict[str, Callable[[], Mechanism]] = {
        "PLAIN": lambda: Plain(username, password, authzid=authzid),
        "LOGIN": lambda: Login(username, password),
        "CRAM-MD5": lambda: CramMD5(username, password),
        # Without a nonce source SCRAM is never chosen; an empty nonce would be refused anyway.
        "SCRAM-SHA-1": lambda: ScramSha1(username, password, nonce() if nonce else "", authzid=authzid),
        "SCRAM-SHA-256": lambda: ScramSha256(username, password, nonce() if nonce else "", authzid=authzid),
        "XOAUTH2": lambda: XOAuth2(username, token),
        "OAUTHBEARER": lambda: OAuthBearer(username, token, host=host, port=port),
        "EXTERNAL": lambda: External(authzid=authzid),
    }
    return builders[name]()


def _decode_challenge(reply: Reply) -> bytes:
    # RFC 4954 section 4: the text of a 334 reply is the base64 challenge (empty for none).
    text = b"".join(reply.lines).strip()
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise AuthenticationError("the server's SASL challenge is not base64", reply=reply) from None


def run_exchange(
    mechanism: Mechanism,
    command: Callable[[Command], Generator[Request, None, ReplyReceived]],
    *,
    host: str,
) -> Generator[Request, None, ReplyReceived]:
    """Run one SASL exchange: AUTH, then a response to each 334 challenge (RFC 4954 section 4).

    Args:
        mechanism: the mechanism, fresh.
        command: sends a command and returns its reply (the session's own step).
        host: the server's name, for error messages.

    Returns:
        The reply that ended the exchange: 235 or a refusal.  :meth:`Mechanism.finish` is the
        caller's to call on success.

    Raises:
        AuthenticationError: the server's challenges made no sense to the mechanism, or there were
            too many; the exchange was cancelled with ``*`` first.
    """
    initial = mechanism.initial_response()
    pending: bytes | None = None
    try:
        first = Auth(mechanism=mechanism.name, initial_response=initial)
    except LocalProtocolError:
        # RFC 4954 section 4: an initial response that would make the AUTH line longer than 512
        # octets is sent instead as the answer to the server's empty first challenge.
        first, pending = Auth(mechanism=mechanism.name), initial
    answer = yield from command(first)
    challenges = 0
    while answer.reply.code == 334:
        challenges += 1
        try:
            if challenges > MAX_CHALLENGES:
                raise AuthenticationError(f"{host} sent more than {MAX_CHALLENGES} SASL challenges")
            challenge = _decode_challenge(answer.reply)
            response = mechanism.respond(challenge) if pending is None else pending
            pending = None
        except AuthenticationError:
            # "*" cancels the exchange; the server answers 501 and the session goes on unchanged.
            yield from command(AuthResponse(cancel=True))
            raise
        answer = yield from command(AuthResponse(data=response))
    return answer
