"""Option resolution shared by every adapter: server, port, TLS mode, local host name, trace.

Each adapter accepts the same keyword options; this module turns what the user passed (or left out)
into concrete values, reading the environment and the services database the way Emacs' smtpmail
does (``smtpmail-smtp-server``, ``smtpmail-smtp-service``, ``smtpmail-local-domain``).  Nothing here
opens a connection; invalid options raise :class:`~smtp_sansio.LocalProtocolError` before any I/O.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from smtp_sansio import (
    TLS_MODES,
    LocalProtocolError,
    TLSMode,
    TraceLine,
    validate_domain,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORTS",
    "TRACE_LOGGER",
    "ServerOptions",
    "TraceOption",
    "address_literal",
    "resolve_host",
    "resolve_local_hostname",
    "resolve_port",
    "resolve_server_options",
    "resolve_tls_mode",
    "stream_logger",
    "tls_context_verifies",
    "trace_callback",
]

#: The server used when neither the ``host`` argument nor the ``SMTPSERVER`` environment variable
#: names one (smtpmail's ``smtpmail-default-smtp-server``).
DEFAULT_HOST = "localhost"

#: The port used when none is given, by TLS mode.  ``starttls`` is message submission with TLS
#: required (RFC 6409 section 3.1: port 587); ``implicit`` is submission over TLS (RFC 8314
#: section 3.3: port 465); the two modes that may run in plaintext speak to an MTA on the SMTP port
#: (RFC 5321 section 4.5.4.2 / the "smtp" service, port 25), like smtplib and msmtp.
DEFAULT_PORTS: Mapping[TLSMode, int] = {"starttls": 587, "implicit": 465, "opportunistic": 25, "none": 25}

#: The logger that receives trace lines when ``trace=True``.
TRACE_LOGGER = "smtp_sansio.trace"

#: What the ``trace`` option accepts: off, on (log to :data:`TRACE_LOGGER`), or a logger of one's own.
TraceOption = bool | logging.Logger


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """Where and how to connect, with every default filled in.

    Attributes:
        host: the server's name or address; also the name its certificate is checked against.
        port: the TCP port.
        tls: one of :data:`TLS_MODES`.
        ssl_context: the context for STARTTLS or implicit TLS.
        tls_verified: whether ``ssl_context`` checks both the certificate chain and the host name.
        local_hostname: the name sent with EHLO/HELO, or ``None`` for the address literal of the
            local end of the connection.
    """

    host: str
    port: int
    tls: TLSMode
    ssl_context: ssl.SSLContext
    tls_verified: bool
    local_hostname: str | None


def resolve_host(host: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Choose the server: the argument, else ``$SMTPSERVER`` if not empty, else :data:`DEFAULT_HOST`.

    An IPv6 literal may be written in brackets (``[::1]``); they are removed.

    Args:
        host: the host name or address the user gave, or ``None``.
        environ: the environment to read ``SMTPSERVER`` from (default: :data:`os.environ`).

    Returns:
        The host name or address to connect to.

    Raises:
        LocalProtocolError: the name is empty or contains white space or control characters.
    """
    if host is None:
        env = os.environ if environ is None else environ
        host = env.get("SMTPSERVER") or DEFAULT_HOST
    if not isinstance(host, str):
        raise LocalProtocolError(f"host must be a str, not {type(host).__name__}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not host.isprintable() or any(c.isspace() for c in host):
        raise LocalProtocolError(f"invalid server host name: {host!r}")
    return host


def resolve_tls_mode(tls: str) -> TLSMode:
    """Check the ``tls`` option.

    Args:
        tls: the mode the user asked for.

    Returns:
        The mode, one of :data:`TLS_MODES`.

    Raises:
        LocalProtocolError: the mode is not one of :data:`TLS_MODES`.
    """
    for mode in TLS_MODES:
        if tls == mode:
            return mode
    raise LocalProtocolError(f"tls must be one of {', '.join(TLS_MODES)}; not {tls!r}")


def resolve_port(port: int | str | None, tls: str) -> int:
    """Turn the ``port`` option into a port number.

    Args:
        port: a number, a string of digits, a service name from the services database
            (``"smtp"``, ``"submission"``, ``"submissions"``), or ``None`` for the default of the
            TLS mode (:data:`DEFAULT_PORTS`).
        tls: the TLS mode, already checked.

    Returns:
        The port number, 1 to 65535.

    Raises:
        LocalProtocolError: the service name is unknown or the number is out of range.
    """
    if port is None:
        return DEFAULT_PORTS[resolve_tls_mode(tls)]
    if isinstance(port, bool):
        raise LocalProtocolError(f"port must be a number or a service name, not {port!r}")
    if isinstance(port, str):
        name = port.strip()
        if name.isdigit():
            port = int(name)
        else:
            try:
                port = socket.getservbyname(name, "tcp")
            except (OSError, UnicodeError, ValueError):
                raise LocalProtocolError(f"unknown TCP service name for the port: {port!r}") from None
    if not isinstance(port, int):
        raise LocalProtocolError(f"port must be a number or a service name, not {type(port).__name__}")
    if not 0 < port < 65536:
        raise LocalProtocolError(f"port must be between 1 and 65535, not {port}")
    return port


def resolve_local_hostname(local_hostname: str | None) -> str | None:
    """Choose the name sent with EHLO/HELO (Emacs' ``smtpmail-local-domain``).

    The argument wins; otherwise the machine's fully qualified name (:func:`socket.getfqdn`) if it
    is a valid domain with at least one dot.  Otherwise -- a container called ``localhost`` or a
    name with an underscore -- ``None``: the adapter then greets with the address literal of its
    end of the connection (``[192.0.2.1]``, RFC 5321 section 4.1.3), as :mod:`smtplib` does.

    Args:
        local_hostname: the name the user gave, or ``None``.

    Returns:
        The name to greet the server with, or ``None`` for "the address literal, once connected".
    """
    if local_hostname is not None:
        return local_hostname
    fqdn = socket.getfqdn()
    try:
        validate_domain(fqdn)
    except LocalProtocolError:
        return None
    return fqdn if "." in fqdn else None


def address_literal(address: str) -> str:
    """The RFC 5321 section 4.1.3 address literal of an IP address: ``[192.0.2.1]``, ``[IPv6:::1]``.

    Args:
        address: an IPv4 or IPv6 address as the socket module gives it (a zone index is dropped).

    Returns:
        The literal, usable as the EHLO/HELO argument.
    """
    address = address.split("%", 1)[0]
    return f"[IPv6:{address}]" if ":" in address else f"[{address}]"


def tls_context_verifies(context: ssl.SSLContext) -> bool:
    """Tell whether a context verifies both the certificate chain and the host name.

    Args:
        context: the context to inspect.

    Returns:
        ``True`` if ``verify_mode`` is :data:`ssl.CERT_REQUIRED` and ``check_hostname`` is set.
    """
    return context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def resolve_server_options(
    *,
    host: str | None,
    port: int | str | None,
    tls: str,
    ssl_context: ssl.SSLContext | None,
    local_hostname: str | None,
    environ: Mapping[str, str] | None = None,
) -> ServerOptions:
    """Resolve every connection option at once (see the functions above for each rule).

    Args:
        host: see :func:`resolve_host`.
        port: see :func:`resolve_port`.
        tls: see :func:`resolve_tls_mode`.
        ssl_context: the TLS context, or ``None`` for :func:`ssl.create_default_context` (which
            verifies the chain against the system's CAs and the host name).
        local_hostname: see :func:`resolve_local_hostname`.
        environ: the environment (default: :data:`os.environ`).

    Returns:
        The resolved options.

    Raises:
        LocalProtocolError: an option is invalid.
    """
    mode = resolve_tls_mode(tls)
    if ssl_context is None:
        ssl_context = ssl.create_default_context()
    elif not isinstance(ssl_context, ssl.SSLContext):
        raise LocalProtocolError(f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}")
    return ServerOptions(
        host=resolve_host(host, environ),
        port=resolve_port(port, mode),
        tls=mode,
        ssl_context=ssl_context,
        tls_verified=tls_context_verifies(ssl_context),
        local_hostname=resolve_local_hostname(local_hostname),
    )


def trace_callback(trace: TraceOption) -> Callable[[TraceLine], None] | None:
    """Turn the ``trace`` option into the callable a :class:`~smtp_sansio.Session` accepts.

    Args:
        trace: ``False`` for no trace; ``True`` to log every line at INFO to the logger named
            :data:`TRACE_LOGGER`; or a :class:`logging.Logger` to log to instead.

    Returns:
        ``None`` or a callable that logs one :class:`~smtp_sansio.TraceLine`.

    Raises:
        LocalProtocolError: ``trace`` is of another type.
    """
    if trace is False:
        return None
    if trace is True:
        logger = logging.getLogger(TRACE_LOGGER)
    elif isinstance(trace, logging.Logger):
        logger = trace
    else:
        raise LocalProtocolError(f"trace must be a bool or a logging.Logger, not {type(trace).__name__}")

    def log_line(line: TraceLine) -> None:
        logger.info("%s", line)

    return log_line


def stream_logger(stream: TextIO, *, indent: str = "") -> logging.Logger:
    """A logger that writes each trace line, as is, to ``stream``; for the command line.

    The logger is not registered in :mod:`logging`'s global tree, so using it configures nothing
    for the rest of the process.

    Args:
        stream: where the lines go.
        indent: text put before each line.

    Returns:
        A logger to pass as ``trace=``.
    """
    logger = logging.Logger("smtp_sansio.trace.stream", logging.INFO)  # noqa: LOG001 - deliberately unregistered
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(indent + "%(message)s"))
    logger.addHandler(handler)
    return logger
