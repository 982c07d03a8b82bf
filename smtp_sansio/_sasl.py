"""SASL mechanisms (RFC 4422) as small synchronous step objects, on decoded bytes.

The Session does the rest of RFC 4954: it sends ``AUTH <name>`` with the base64 of
:meth:`Mechanism.initial_response`, hands each 334 challenge, decoded, to :meth:`Mechanism.respond`,
and calls :meth:`Mechanism.finish` on 235.  Nothing here does I/O or draws random numbers: the SCRAM
client nonce is injected by the caller.

Each mechanism is a frozen, slotted dataclass.  Credentials are fields excluded from ``repr``, and
the progress of the exchange lives in one private mutable object, excluded too, so neither
``repr()`` nor ``str()`` shows a password, a token, or anything sent or received.  Equality is
identity.  A mechanism that raised :class:`AuthenticationError` stays failed: every later
``respond()`` and ``finish()`` raises too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from ._errors import AuthenticationError, LocalProtocolError
from ._saslprep import saslprep

__all__ = [
    "DEFAULT_MECHANISMS", "KNOWN_MECHANISMS", "MAX_CHALLENGES", "MAX_SCRAM_ITERATIONS", "MECHANISMS",
    "MIN_SCRAM_NONCE_LENGTH", "PASSWORD_MECHANISMS", "PLAINTEXT_MECHANISMS", "SEED_MECHANISMS",
    "TOKEN_MECHANISMS", "CramMD5", "External", "Login", "Mechanism", "OAuthBearer", "Plain", "Scram",
    "ScramSha1", "ScramSha256", "XOAuth2", "saslprep", "scram",
]

# The longest exchange implemented here takes three challenges: SCRAM's server-first and
# server-final messages, plus the empty challenge a server sends when the initial response could
# not ride on the AUTH line (RFC 4954 section 4, RFC 4422 section 5).  GSSAPI (RFC 4752), the
# longest-running mechanism in common use, needs a few more.  Ten leaves room for all of these and
# still stops a server that would keep a client answering 334 challenges forever.
MAX_CHALLENGES = 10

# RFC 5802 section 5.1 puts no upper bound on the iteration count, but the client pays for every
# iteration before it can check anything: i=2147483647 would keep it hashing for hours.  RFC 7677
# section 4 asks for at least 4096 and deployed servers use 4096 to a few hundred thousand; ten
# million costs a few seconds of PBKDF2 and is far beyond any server we know of.
MAX_SCRAM_ITERATIONS = 10_000_000

# The client nonce makes the server's signature fresh (RFC 5802 section 9): a nonce that repeats
# lets a man in the middle replay a recorded server-final message.  Sixteen printable characters
# (more than 90 bits when drawn at random) is the floor; the RFC examples use 20 and 24.
MIN_SCRAM_NONCE_LENGTH = 16

#: Password mechanisms, strongest first: SCRAM never reveals the password and proves the server
#: knows it; CRAM-MD5 hides it; PLAIN and LOGIN send it as it is.
DEFAULT_MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN")
#: Mechanisms taking an OAuth 2.0 bearer token instead of a password, the standard one first.
TOKEN_MECHANISMS: tuple[str, ...] = ("OAUTHBEARER", "XOAUTH2")
#: The password mechanisms of the Emacs manual (``smtpmail-auth-supported``), in its order.
SEED_MECHANISMS: tuple[str, ...] = ("CRAM-MD5", "PLAIN", "LOGIN")
#: Every mechanism that needs a user name and a password.
PASSWORD_MECHANISMS: frozenset[str] = frozenset(DEFAULT_MECHANISMS)
#: Mechanisms that put the secret itself on the wire (only base64-encoded): never without TLS.
PLAINTEXT_MECHANISMS: frozenset[str] = frozenset({"PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"})

# RFC 5802 section 7: printable = %x21-2B / %x2D-7E ;; printable ASCII except ","
_SCRAM_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# RFC 5802 section 7: attr-val = ALPHA "=" value, value-char = any UTF-8 character but NUL and ","
# (the comma is the separator, so it cannot appear in a split part).
_SCRAM_ATTRIBUTE = re.compile(r"([A-Za-z])=([^\x00]*)")
# RFC 5802 section 7: posit-number = %x31-39 *DIGIT, bounded here so int() is always cheap.
_SCRAM_ITERATIONS = re.compile(r"[1-9][0-9]{0,9}")
# RFC 6750 section 2.1 b64token, widened to any visible ASCII character (VCHAR, RFC 5234 appendix
# B.1) because providers' tokens are not all b64tokens; what matters is that ^A, spaces and
# controls, the separators of RFC 7628 and XOAUTH2, cannot occur.
_VISIBLE = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class _Progress:
    """The mutable part of a mechanism: how far its exchange got."""

    challenges: int = 0
    failed: bool = False
    error_received: bool = False
    server_error: dict[str, object] | None = None
    expected_signature: bytes = b""
    verified: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Mechanism(ABC):
    """One SASL exchange, seen from the client (RFC 4422 section 3).

    :meth:`initial_response` has no side effect and may be called more than once.  When the
    Session cannot send the initial response on the AUTH line (RFC 4954 section 4: the line would
    exceed 512 octets), it sends AUTH without one and answers the server's first, empty, challenge
    with the initial response itself, without calling :meth:`respond` (RFC 4422 section 5).

    Attributes:
        name: the mechanism's registered name, as it appears in AUTH (a class attribute).
    """

    name: ClassVar[str]
    _progress: _Progress = field(init=False, repr=False, default_factory=_Progress)

    @abstractmethod
    def initial_response(self) -> bytes | None:
        """The client's first message, to send with AUTH (RFC 4954 section 4).

        Returns:
            The decoded initial response; ``b""`` is a legitimate empty one (sent as ``=``).
            ``None`` when the mechanism must wait for the server's first challenge.
        """

    def respond(self, challenge: bytes) -> bytes:
        """Answer one 334 challenge.

        Args:
            challenge: the challenge, already base64-decoded.

        Returns:
            The response, to be base64-encoded by the caller; ``b""`` is a legitimate empty one.

        Raises:
            AuthenticationError: the challenge is malformed, out of order or one too many, the
                server failed to prove itself, or the exchange had already failed.
        """
        progress = self._progress
        if progress.failed:
            raise AuthenticationError(f"{self.name}: the exchange has already failed")
        progress.challenges += 1
        try:
            return self._respond(progress.challenges, challenge)
        except AuthenticationError:
            progress.failed = True
            raise

    def finish(self) -> None:
        """Accept the server's 235 (RFC 4954 section 4) if the exchange is complete.

        Raises:
            AuthenticationError: the exchange is not complete from the client's side: it failed,
                the server did not prove itself (SCRAM), or it reported an error and then claimed
                success (OAUTHBEARER, XOAUTH2).
        """
        reason = "the exchange had failed" if self._progress.failed else self._incomplete()
        if reason is not None:
            raise AuthenticationError(f"{self.name}: the server accepted the client, but {reason}")

    def server_error_text(self) -> str:
        """The server's error details, for the message of a refusal.

        Returns:
            ``""``, or (OAUTHBEARER, XOAUTH2) ``" (server error: {...})"`` with the JSON object of
            the server's error challenge, ASCII only and at most about 300 characters long.
        """
        error = self._progress.server_error
        if error is None:
            return ""
        # json.dumps escapes controls and non-ASCII, so hostile text cannot forge log lines.
        text = json.dumps(error, ensure_ascii=True)
        return f" (server error: {text if len(text) <= 300 else text[:297] + '...'})"

    @abstractmethod
    def _respond(self, number: int, challenge: bytes) -> bytes:
        """The response to challenge ``number`` (counted from 1)."""

    def _incomplete(self) -> str | None:
        """Why the exchange is not complete from the client's side, or ``None`` when it is."""
        return None


def _text(
    what: str, value: object, *, required: bool = False, forbidden: str = "", visible: bool = False
) -> str:
    # A constructor argument: a str, encodable as UTF-8, without `forbidden` characters, and only
    # visible ASCII if `visible`.  The messages never quote the value: it may be a secret.
    if not isinstance(value, str):
        raise LocalProtocolError(f"the {what} must be a str, not {type(value).__name__}")
    if required and not value:
        raise LocalProtocolError(f"the {what} must not be empty")
    if visible and not _VISIBLE.fullmatch(value):
        raise LocalProtocolError(f"the {what} must be visible ASCII characters only (RFC 5234 VCHAR)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"the {what} is not encodable as UTF-8 (a lone surrogate?)") from None
    for char in forbidden:
        if char in value:
            raise LocalProtocolError(f"the {what} must not contain {char!r}")
    return value


def _too_many(name: str) -> AuthenticationError:
    return AuthenticationError(f"{name}: the server sent one challenge too many")


def _prepare(what: str, text: str, *, allow_unassigned: bool = False) -> str:
    try:
        return saslprep(text, allow_unassigned=allow_unassigned)
    except LocalProtocolError as error:
        raise LocalProtocolError(f"the {what}: {error}") from None


def _saslname(text: str) -> str:
    # RFC 5802 section 5.1, and RFC 5801 section 4 for the gs2 header: "=" and "," in a name are
    # sent as "=3D" and "=2C"; "=" first, so the escapes are not escaped again.
    return text.replace("=", "=3D").replace(",", "=2C")


@dataclass(frozen=True, slots=True, eq=False)
class Plain(Mechanism):
    """PLAIN (RFC 4616): the password, sent in one message.

    Args:
        username: the authentication identity (authcid).
        password: the password.
        authzid: the identity to act as, ``""`` for the username's own.

    Raises:
        LocalProtocolError: a value is not a str or contains NUL, or the username or password is
            empty (RFC 4616 section 2: authcid = 1*SAFE, passwd = 1*SAFE, SAFE excludes NUL).
    """

    name: ClassVar[str] = "PLAIN"
    username: str
    password: str = field(repr=False)
    authzid: str = ""

    def __post_init__(self) -> None:
        _text("PLAIN username", self.username, required=True, forbidden="\0")
        _text("PLAIN password", self.password, required=True, forbidden="\0")
        _text("PLAIN authzid", self.authzid, forbidden="\0")

    def initial_response(self) -> bytes:
        """The message ``[authzid] NUL authcid NUL passwd`` in UTF-8 (RFC 4616 section 2)."""
        return f"{self.authzid}\0{self.username}\0{self.password}".encode()

    def _respond(self, number: int, challenge: bytes) -> bytes:
        # RFC 4616 section 2: the exchange is the one client message; no challenge follows it.
        raise AuthenticationError("PLAIN: the server sent a challenge after the initial response")


@dataclass(frozen=True, slots=True, eq=False)
class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login-00): the user name and the password, each on request.

    The server's prompts ("Username:", "User Name", ...) vary and mean nothing: the first challenge
    gets the user name and the second the password, whatever they say (section 2 of the draft).

    Args:
        username: the user name.
        password: the password.

    Raises:
        LocalProtocolError: a value is not a str, or the username is empty.
    """

    name: ClassVar[str] = "LOGIN"
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        _text("LOGIN username", self.username, required=True)
        _text("LOGIN password", self.password)

    def initial_response(self) -> None:
        """``None``: LOGIN waits for the server's first prompt."""
        return None

    def _respond(self, number: int, challenge: bytes) -> bytes:
        if number == 1:
            return self.username.encode()
        if number == 2:
            return self.password.encode()
        raise _too_many(self.name)


@dataclass(frozen=True, slots=True, eq=False)
class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195): a keyed digest (HMAC-MD5, RFC 2104) of the server's challenge.

    Args:
        username: the user name.
        password: the shared secret, the key of the HMAC.

    Raises:
        LocalProtocolError: a value is not a str, or the username is empty.
    """

    name: ClassVar[str] = "CRAM-MD5"
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        _text("CRAM-MD5 username", self.username, required=True)
        _text("CRAM-MD5 password", self.password)

    def initial_response(self) -> None:
        """``None``: CRAM-MD5 starts with the server's challenge (RFC 2195 section 2)."""
        return None

    def _respond(self, number: int, challenge: bytes) -> bytes:
        if number > 1:
            raise _too_many(self.name)
        # RFC 2195 section 2: the challenge is a unique msg-id; an empty one would make the digest
        # a constant any eavesdropper could replay.
        if not challenge:
            raise AuthenticationError("CRAM-MD5: the server sent an empty challenge")
        digest = hmac.new(self.password.encode(), challenge, "md5").hexdigest()
        # RFC 2195 section 2: the user name, a space, and the digest in lowercase hexadecimal.
        return f"{self.username} {digest}".encode()


@dataclass(frozen=True, slots=True, eq=False)
class Scram(Mechanism):
    """The SCRAM family (RFC 5802, RFC 7677), without channel binding.

    Instantiate :class:`ScramSha1` or :class:`ScramSha256`, or call :func:`scram`.  The client
    proves it knows the password without sending it, and the server must prove it knows it too:
    :meth:`finish` refuses a 235 until the server signature has been verified.  The gs2 header is
    ``n,,`` or ``n,a=<authzid>,``: "n", this client does not support channel binding (RFC 5802
    section 6).

    Args:
        username: the user name, prepared with SASLprep as a query string (RFC 5802 section 5.1).
        password: the password, prepared with SASLprep as a stored string (RFC 5802 section 2.2).
        nonce: the client nonce: at least :data:`MIN_SCRAM_NONCE_LENGTH` printable ASCII
            characters other than ","; draw it from a CSPRNG, afresh for every exchange.
        authzid: the identity to act as, ``""`` for the username's own.

    Raises:
        LocalProtocolError: a value is not a str; the username is empty (before or after
            SASLprep); SASLprep refuses the username or the password; the nonce is too short or
            not printable; the authzid contains NUL.
        TypeError: :class:`Scram` itself was instantiated.
    """

    hash_name: ClassVar[str]
    _digest: ClassVar[str]
    username: str
    password: str = field(repr=False)
    nonce: str = field(repr=False)
    authzid: str = ""
    _prepared_password: bytes = field(init=False, repr=False, default=b"")
    _gs2_header: str = field(init=False, repr=False, default="")
    _client_first_bare: str = field(init=False, repr=False, default="")

    def __post_init__(self) -> None:
        if type(self) is Scram:
            raise TypeError("Scram is abstract: use ScramSha1, ScramSha256 or scram()")
        what = self.name
        username = _text(f"{what} username", self.username, required=True)
        password = _text(f"{what} password", self.password)
        nonce = _text(f"{what} nonce", self.nonce)
        authzid = _text(f"{what} authzid", self.authzid, forbidden="\0")
        if len(nonce) < MIN_SCRAM_NONCE_LENGTH or not _SCRAM_NONCE.fullmatch(nonce):
            minimum = MIN_SCRAM_NONCE_LENGTH
            raise LocalProtocolError(f'the {what} nonce must be {minimum}+ printable characters but ","')
        prepared_username = _prepare(f"{what} username", username, allow_unassigned=True)
        prepared_password = _prepare(f"{what} password", password)
        if not prepared_username:
            # RFC 5802 section 5.1: a username that prepares to nothing aborts the exchange.
            raise LocalProtocolError(f"the {what} username is empty after SASLprep")
        gs2_header = f"n,a={_saslname(authzid)}," if authzid else "n,,"
        object.__setattr__(self, "_prepared_password", prepared_password.encode())
        object.__setattr__(self, "_gs2_header", gs2_header)
        object.__setattr__(self, "_client_first_bare", f"n={_saslname(prepared_username)},r={nonce}")

    def initial_response(self) -> bytes:
        """The client-first-message: gs2 header, user name and nonce (RFC 5802 section 5.1)."""
        return (self._gs2_header + self._client_first_bare).encode()

    def _respond(self, number: int, challenge: bytes) -> bytes:
        if number == 1:
            return self._client_final(challenge)
        if number == 2:
            return self._verify_server(challenge)
        raise _too_many(self.name)

    def _attributes(self, challenge: bytes, message: str) -> list[tuple[str, str]]:
        # A server message as its attributes, in order (RFC 5802 section 7).
        try:
            text = challenge.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationError(f"{self.name}: the {message} is not UTF-8") from None
        attributes: list[tuple[str, str]] = []
        for part in text.split(","):
            match = _SCRAM_ATTRIBUTE.fullmatch(part)
            if match is None:
                raise AuthenticationError(f"{self.name}: the {message} is malformed")
            attributes.append((match[1], match[2]))
        for key, value in attributes:
            # server-error = "e=" server-error-value: the grammar puts it in the final message only,
            # but servers also send it in place of a server-first-message.
            if key == "e":
                raise AuthenticationError(f"{self.name}: the server reported the error {value[:100]!r}")
        return attributes

    def _client_final(self, challenge: bytes) -> bytes:
        # server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
        #                        ["," extensions]                        (RFC 5802 section 7)
        attributes = self._attributes(challenge, "server-first-message")
        if attributes[0][0] == "m":
            # RFC 5802 section 5.1: "m" announces a mandatory extension; we know none, so we fail.
            raise AuthenticationError(f"{self.name}: the server requires an unsupported extension (m=)")
        if [key for key, _ in attributes[:3]] != ["r", "s", "i"]:
            raise AuthenticationError(f"{self.name}: the server-first-message does not begin with r=, s=, i=")
        # Attributes after these are extensions, which the client ignores (RFC 5802 section 5.1).
        (_, nonce), (_, salt_text), (_, iterations_text) = attributes[:3]
        # RFC 5802 section 5.1: the server appends its own nonce to ours.
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise AuthenticationError(f"{self.name}: the server nonce does not extend the client nonce")
        if not _SCRAM_NONCE.fullmatch(nonce):
            raise AuthenticationError(f"{self.name}: the server nonce has characters outside printable")
        try:
            salt = base64.b64decode(salt_text, validate=True)
        except binascii.Error:
            raise AuthenticationError(f"{self.name}: the salt is not valid base64") from None
        if not salt:
            raise AuthenticationError(f"{self.name}: the salt is empty")
        if not _SCRAM_ITERATIONS.fullmatch(iterations_text):
            raise AuthenticationError(f"{self.name}: the iteration count is not a positive integer")
        iterations = int(iterations_text)
        if iterations > MAX_SCRAM_ITERATIONS:
            raise AuthenticationError(f"{self.name}: {iterations} iterations exceed {MAX_SCRAM_ITERATIONS}")
        # RFC 5802 section 3, step by step.
        channel_binding = base64.b64encode(self._gs2_header.encode()).decode("ascii")
        without_proof = f"c={channel_binding},r={nonce}"
        auth_message = b",".join((self._client_first_bare.encode(), challenge, without_proof.encode()))
        salted = hashlib.pbkdf2_hmac(self._digest, self._prepared_password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self._digest)
        stored_key = hashlib.new(self._digest, client_key).digest()
        client_signature = hmac.digest(stored_key, auth_message, self._digest)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._digest)
        self._progress.expected_signature = hmac.digest(server_key, auth_message, self._digest)
        return f"{without_proof},p={base64.b64encode(proof).decode('ascii')}".encode()

    def _verify_server(self, challenge: bytes) -> bytes:
        # server-final-message = (server-error / verifier) ["," extensions]   (RFC 5802 section 7)
        key, value = self._attributes(challenge, "server-final-message")[0]
        if key != "v":
            raise AuthenticationError(f"{self.name}: the server-final-message has no verifier (v=)")
        try:
            signature = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise AuthenticationError(f"{self.name}: the server signature is not valid base64") from None
        # RFC 5802 section 3: the client checks the ServerSignature; in constant time, so a forger
        # learns nothing from how long the comparison took.
        if not hmac.compare_digest(signature, self._progress.expected_signature):
            raise AuthenticationError(f"{self.name}: wrong server signature: the server lacks the password")
        self._progress.verified = True
        # RFC 4954 section 4: SASL "additional data with success" comes as a 334 challenge, which
        # the client answers with an empty response.
        return b""

    def _incomplete(self) -> str | None:
        return None if self._progress.verified else "it never proved it knows the password (server signature)"


@dataclass(frozen=True, slots=True, eq=False)
class ScramSha1(Scram):
    """SCRAM-SHA-1 (RFC 5802), without channel binding.

    Args:
        username: the user name, prepared with SASLprep as a query string (RFC 5802 section 5.1).
        password: the password, prepared with SASLprep as a stored string (RFC 5802 section 2.2).
        nonce: the client nonce: at least 16 printable ASCII characters other than ","; draw it
            from a CSPRNG, afresh for every exchange.
        authzid: the identity to act as, ``""`` for the username's own.

    Raises:
        LocalProtocolError: an argument is invalid, as for :class:`ScramSha256`.
    """

    name: ClassVar[str] = "SCRAM-SHA-1"
    hash_name: ClassVar[str] = "SHA-1"
    _digest: ClassVar[str] = "sha1"


@dataclass(frozen=True, slots=True, eq=False)
class ScramSha256(Scram):
    """SCRAM-SHA-256 (RFC 7677), without channel binding.

    The client proves it knows the password without sending it, and the server must prove it knows
    it too: :meth:`~Mechanism.finish` refuses a 235 until the server signature has been verified.

    Args:
        username: the user name, prepared with SASLprep as a query string (RFC 5802 section 5.1).
        password: the password, prepared with SASLprep as a stored string (RFC 5802 section 2.2).
        nonce: the client nonce: at least 16 printable ASCII characters other than ","; draw it
            from a CSPRNG, afresh for every exchange.
        authzid: the identity to act as, ``""`` for the username's own.

    Raises:
        LocalProtocolError: a value is not a str; the username is empty (before or after
            SASLprep); SASLprep refuses the username or the password; the nonce is too short or
            not printable; the authzid contains NUL.
    """

    name: ClassVar[str] = "SCRAM-SHA-256"
    hash_name: ClassVar[str] = "SHA-256"
    _digest: ClassVar[str] = "sha256"


def scram(hash_name: str, username: str, password: str, nonce: str, authzid: str = "") -> Scram:
    """The SCRAM mechanism for a hash function given by name.

    Args:
        hash_name: ``"SHA-1"`` or ``"SHA-256"``.
        username, password, nonce, authzid: as for :class:`Scram`.

    Returns:
        A :class:`ScramSha1` or a :class:`ScramSha256`.

    Raises:
        LocalProtocolError: the hash is neither, or an argument is invalid.
    """
    for cls in (ScramSha1, ScramSha256):
        if hash_name == cls.hash_name:
            return cls(username, password, nonce, authzid)
    raise LocalProtocolError(f"no SCRAM mechanism for the hash {hash_name!r}: use SHA-1 or SHA-256")


@dataclass(frozen=True, slots=True, eq=False)
class _OAuth(Mechanism):
    """What XOAUTH2 and OAUTHBEARER share: a bearer token, and one error challenge at most."""

    # The response to the error challenge, after which the server sends 535.
    _error_response: ClassVar[bytes]
    _username_required: ClassVar[bool]
    username: str
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        username = _text(f"{self.name} username", self.username)
        if not username and self._username_required:
            raise LocalProtocolError(f"the {self.name} username must not be empty")
        if _CONTROL.search(username):
            raise LocalProtocolError(f"the {self.name} username must not contain control characters")
        _text(f"{self.name} token", self.token, required=True, visible=True)

    def _respond(self, number: int, challenge: bytes) -> bytes:
        if number > 1:
            raise _too_many(self.name)
        self._progress.error_received = True
        try:
            error = json.loads(challenge.decode("utf-8"))
        except (ValueError, RecursionError):
            # Not UTF-8 (UnicodeDecodeError is a ValueError), not JSON, or nested deeply enough to
            # exhaust the parser: still an error challenge, just not a readable one.
            error = None
        # RFC 7628 section 3.2.2 and the XOAUTH2 documentation define string members only; keeping
        # just the scalar ones bounds what the error message may have to render.
        scalars = (str, int, float, bool, type(None))
        self._progress.server_error = (
            {key: value for key, value in error.items() if isinstance(value, scalars)}
            if isinstance(error, dict)
            else None
        )
        return self._error_response

    def _incomplete(self) -> str | None:
        # RFC 7628 section 3.2.3: after an error challenge the server MUST fail the exchange.
        return "it had reported an error" if self._progress.error_received else None

    @property
    def server_error(self) -> dict[str, object] | None:
        """The JSON object of the server's error challenge; ``None`` if none came or it did not parse."""
        error = self._progress.server_error
        return None if error is None else dict(error)


@dataclass(frozen=True, slots=True, eq=False)
class XOAuth2(_OAuth):
    """XOAUTH2 (documented by Google and Microsoft, in no RFC): an OAuth 2.0 bearer token.

    A refused token draws a challenge, a JSON object (``status``, ``scope``, ...), which the client
    answers with an empty response before the server replies 535; the object is kept in the
    ``server_error`` property (``None`` if none came or it did not parse).

    Args:
        username: the account's user name (its address).
        token: the access token.

    Raises:
        LocalProtocolError: a value is not a str; the username is empty or has control
            characters; the token is empty or not visible ASCII.
    """

    name: ClassVar[str] = "XOAUTH2"
    _error_response: ClassVar[bytes] = b""
    _username_required: ClassVar[bool] = True

    def initial_response(self) -> bytes:
        """``user=<username> ^A auth=Bearer <token> ^A ^A`` in UTF-8."""
        return f"user={self.username}\x01auth=Bearer {self.token}\x01\x01".encode()


@dataclass(frozen=True, slots=True, eq=False)
class OAuthBearer(_OAuth):
    """OAUTHBEARER (RFC 7628): an OAuth 2.0 bearer token.

    A refused token draws an error challenge, a JSON object (RFC 7628 section 3.2.2), which the
    client answers with a single ^A (section 3.2.3) before the server replies 535; the object is
    kept in the ``server_error`` property (``None`` if none came or it did not parse).

    Args:
        username: the authorization identity of the gs2 header, ``""`` for none.
        token: the access token.
        host: the server's host name, sent as ``host=`` when given (RFC 7628 section 3.1).
        port: the server's port, sent as ``port=`` when given.

    Raises:
        LocalProtocolError: a value has the wrong type; the username has control characters; the
            token or the host is empty or not visible ASCII; the port is not in 1-65535.
    """

    name: ClassVar[str] = "OAUTHBEARER"
    _error_response: ClassVar[bytes] = b"\x01"
    _username_required: ClassVar[bool] = False
    host: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        # Not super(): slots=True rebuilds the class, which breaks its zero-argument form.
        _OAuth.__post_init__(self)
        if self.host is not None:
            _text("OAUTHBEARER host", self.host, required=True, visible=True)
        port: object = self.port
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
            raise LocalProtocolError(f"the OAUTHBEARER port must be an int in 1-65535, not {port!r}")

    def initial_response(self) -> bytes:
        """The client response of RFC 7628 section 3.1: gs2 header, key=value pairs, ^A^A."""
        # gs2-header = "n," ["a=" saslname] ","   (RFC 5801 section 4)
        gs2_header = f"n,a={_saslname(self.username)}," if self.username else "n,,"
        pairs = [] if self.host is None else [f"host={self.host}"]
        if self.port is not None:
            pairs.append(f"port={self.port}")
        pairs.append(f"auth=Bearer {self.token}")
        # client-resp = gs2-header kvsep *kvpair kvsep; kvpair = key "=" value kvsep; kvsep = ^A
        return (gs2_header + "\x01" + "".join(pair + "\x01" for pair in pairs) + "\x01").encode()


@dataclass(frozen=True, slots=True, eq=False)
class External(Mechanism):
    """EXTERNAL (RFC 4422 appendix A): credentials from outside SASL, a TLS client certificate.

    Args:
        authzid: the identity to act as, ``""`` for the one the external credentials establish.

    Raises:
        LocalProtocolError: the authzid is not a str or contains NUL.
    """

    name: ClassVar[str] = "EXTERNAL"
    authzid: str = ""

    def __post_init__(self) -> None:
        _text("EXTERNAL authzid", self.authzid, forbidden="\0")

    def initial_response(self) -> bytes:
        """The authzid in UTF-8, ``b""`` when empty (RFC 4422 appendix A.1)."""
        return self.authzid.encode()

    def _respond(self, number: int, challenge: bytes) -> bytes:
        # RFC 4422 appendix A.1: the exchange is the one client message.
        raise AuthenticationError("EXTERNAL: the server sent a challenge after the initial response")


#: Every mechanism class, by name.
MECHANISMS: Mapping[str, type[Mechanism]] = MappingProxyType(
    {cls.name: cls for cls in (ScramSha256, ScramSha1, CramMD5, Plain, Login, OAuthBearer, XOAuth2, External)}
)
#: The name of every mechanism implemented here.
KNOWN_MECHANISMS: frozenset[str] = frozenset(MECHANISMS)
