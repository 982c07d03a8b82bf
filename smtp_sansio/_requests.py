"""What a :class:`~smtp_sansio.Session` asks its adapter to do.

The session is pure: it never touches a socket.  Instead :meth:`Session.next_request` returns one of
the five requests below, the adapter performs it with whatever I/O it has, and reports back.  An
adapter is therefore one loop::

    while True:
        request = session.next_request()
        if isinstance(request, Write):
            sock.sendall(request.data)            # within request.timeout seconds
        elif isinstance(request, Read):
            session.receive_data(sock.recv(65536))  # b"" on EOF
        elif isinstance(request, StartTLS):
            sock = context.wrap_socket(sock, server_hostname=request.server_hostname)
            session.tls_established(...)
        elif isinstance(request, Close):
            sock.close()
        elif isinstance(request, Done):
            return request.result

Each request carries the timeout the session recommends for it, taken from RFC 5321 section 4.5.3.2
unless the user overrode it; the adapter turns an expiry into :class:`~smtp_sansio.SMTPTimeoutError`
naming ``phase`` and must then close the connection for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Close", "Done", "Read", "Request", "StartTLS", "Write"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """Send these bytes, all of them, to the server.

    Attributes:
        data: the bytes to write.
        timeout: seconds the whole write may take, or ``None`` for no limit.
        phase: the protocol phase, for the timeout error message.
    """

    data: bytes
    timeout: float | None
    phase: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    """Read whatever the server sends next and pass it to :meth:`Session.receive_data`.

    Pass ``b""`` when the server closed the connection.

    Attributes:
        timeout: seconds to wait for at least one byte, or ``None`` for no limit.
        phase: the protocol phase, for the timeout error message.
    """

    timeout: float | None
    phase: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLS:
    """Run a TLS client handshake on the connection, then call :meth:`Session.tls_established`.

    Attributes:
        server_hostname: the name to verify the certificate against (the configured host, never
            the address connected to).
        timeout: seconds the handshake may take.
        phase: always ``"starttls"``.
    """

    server_hostname: str
    timeout: float | None
    phase: str = "starttls"


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Close the connection.  The adapter calls :meth:`Session.next_request` again afterwards."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Done(Generic[T]):
    """The operation the session was asked to perform has finished.

    Attributes:
        result: what the operation produced (``None`` for the handshake and for quitting, a
            :class:`~smtp_sansio.SendResult` for a message).
    """

    result: T


Request = Write | Read | StartTLS | Close | Done[object]
