"""smtp-sansio: an SMTP client protocol core that performs no I/O.

Its layers, each usable on its own:

* :class:`Session` -- the client policy (greeting, EHLO/HELO or LHLO, STARTTLS, VERB, transactions
  pipelined within and across messages, BDAT, streamed content, QUIT) that tells an adapter what
  to do through five requests: :class:`Write`, :class:`Read`, :class:`StartTLS`, :class:`Close`
  and :class:`Done`.  The bundled adapters in
  :mod:`smtp_sansio.adapters` drive it with sockets, asyncio or trio.
* the SASL mechanisms (:class:`Plain`, :class:`ScramSha256`, ...): small synchronous step
  objects, run by the session with the :class:`Credentials` it is given.
* :class:`Connection` -- the protocol itself, h11-style: commands in, bytes out; bytes in, events
  out; every transition in one table; pipelined replies paired with their commands in order.
* the values both are made of: commands that cannot be built invalid (:class:`Mail`,
  :class:`Rcpt`, ...), :class:`Reply` and its bounded :class:`ReplyReader`, the streaming
  :class:`DataEncoder` and :class:`BdatEncoder`, :class:`Envelope` and the functions that derive
  one from a message, :class:`Dsn` requests.

Every error is an :class:`SMTPError`.
"""

from __future__ import annotations

from ._auth import DEFAULT_PREFERENCE, Credentials
from ._capabilities import Capabilities
from ._commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    Helo,
    Lhlo,
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
from ._connection import NEED_DATA, Connection, ConnectionClosed, Event, NeedData, ReplyReceived
from ._data import DEFAULT_CHUNK_SIZE, BdatEncoder, DataEncoder, encode_bdat, encode_data
from ._dsn import NOTIFY_VALUES, Dsn, xtext_decode, xtext_encode
from ._envelope import (
    Envelope,
    envelope_from_bytes,
    envelope_from_message,
    message_needs_smtputf8,
    needs_smtputf8,
)
from ._errors import (
    AuthenticationError,
    LocalProtocolError,
    PermanentReplyError,
    RemoteProtocolError,
    ReplyError,
    SecurityError,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
    TransientReplyError,
)
from ._replies import DEFAULT_MAX_LINE_LENGTH, DEFAULT_MAX_REPLY_LINES, Reply, ReplyReader
from ._requests import Close, Done, Read, Request, StartTLS, Write
from ._results import SendResult, TraceDirection, TraceLine, Unsent
from ._sasl import (
    DEFAULT_MECHANISMS,
    KNOWN_MECHANISMS,
    MAX_CHALLENGES,
    SEED_MECHANISMS,
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
    saslprep,
)
from ._session import TLS_MODES, Session, TLSMode
from ._state import State
from ._timeouts import DEFAULT_TIMEOUTS, PHASES, TimeoutSpec, resolve_timeouts
from ._transaction import BODY_TYPES, DEFAULT_MAX_IN_FLIGHT, BodyType, MessageData, OutgoingMessage
from ._transaction import Outcome as MessageOutcome

__version__ = "0.1.0"

__all__ = [
    "BODY_TYPES",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_REPLY_LINES",
    "DEFAULT_MECHANISMS",
    "DEFAULT_PREFERENCE",
    "DEFAULT_TIMEOUTS",
    "KNOWN_MECHANISMS",
    "MAX_CHALLENGES",
    "NEED_DATA",
    "NOTIFY_VALUES",
    "PHASES",
    "SEED_MECHANISMS",
    "TLS_MODES",
    "TOKEN_MECHANISMS",
    "Auth",
    "AuthResponse",
    "AuthenticationError",
    "Bdat",
    "BdatEncoder",
    "BodyType",
    "Capabilities",
    "Close",
    "Command",
    "Connection",
    "ConnectionClosed",
    "CramMD5",
    "Credentials",
    "Data",
    "DataEncoder",
    "Done",
    "Dsn",
    "Ehlo",
    "Envelope",
    "Event",
    "External",
    "Helo",
    "Lhlo",
    "LocalProtocolError",
    "Login",
    "Mail",
    "Mechanism",
    "MessageData",
    "MessageOutcome",
    "NeedData",
    "Noop",
    "OAuthBearer",
    "OutgoingMessage",
    "PermanentReplyError",
    "Plain",
    "Quit",
    "Rcpt",
    "Read",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "ReplyReader",
    "ReplyReceived",
    "Request",
    "Rset",
    "SMTPConnectError",
    "SMTPError",
    "SMTPTimeoutError",
    "ScramSha1",
    "ScramSha256",
    "SecurityError",
    "SendResult",
    "Session",
    "StartTLS",
    "Starttls",
    "State",
    "TLSMode",
    "TimeoutSpec",
    "TraceDirection",
    "TraceLine",
    "TransientReplyError",
    "Unsent",
    "Verb",
    "Vrfy",
    "Write",
    "XOAuth2",
    "encode_bdat",
    "encode_data",
    "envelope_from_bytes",
    "envelope_from_message",
    "message_needs_smtputf8",
    "needs_smtputf8",
    "resolve_timeouts",
    "saslprep",
    "validate_domain",
    "validate_mailbox",
    "xtext_decode",
    "xtext_encode",
]
