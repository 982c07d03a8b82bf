"""Where a connection's credentials come from: tables, netrc/authinfo files, tokens, client certificates.

Emacs' smtpmail takes ``smtpmail-auth-credentials``, a list of (host, port, user, password) that is
matched against the server being connected, where a missing user or password means "ask", and
``smtpmail-starttls-credentials``, a list of (host, port, key file, certificate file).  This module
checks such tables, picks the entry for a connection from a table or a netrc/authinfo file (read by
:mod:`._netrc`), asks for what is missing through a callback (such as
:func:`~._prompt.terminal_ask`), fetches OAuth tokens, and loads client certificates.  The result
is the core's :class:`~smtp_sansio.Credentials`.  It speaks no SMTP; every failure is a
:class:`~._netrc.CredentialsError` raised before a connection is made, and no message ever contains
a password or a token.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Sequence

from smtp_sansio import Credentials, LocalProtocolError

from ._netrc import (
    CredentialEntry,
    CredentialsError,
    _check_private,
    _checked_path,
    _optional_str,
    _valid_host,
    _valid_port,
    load_netrc,
)
from ._options import resolve_port

__all__ = [
    "AskCallback",
    "ClientCertOption",
    "CredentialTable",
    "TokenProvider",
    "credential_table",
    "load_client_cert",
    "resolve_client_cert",
    "resolve_credentials",
]

#: The seed's table: (host, port, username, password) rows; the port is a number, a service name
#: (``"submission"``) or ``None`` for any port; a ``None`` username or password means "ask".
CredentialTable = Sequence[tuple[str, int | str | None, str | None, str | None]]

#: ``ask(what, host, port)``, with ``what`` ``"username"`` or ``"password"``: returns the value, or
#: ``None`` to give up.
AskCallback = Callable[[str, str, int], str | None]

#: An OAuth 2 access token, or a function returning a fresh one (called once per connection).
TokenProvider = str | Callable[[], str]

#: A client certificate: a PEM file holding both the certificate and its key; a
#: ``(certfile, keyfile)`` pair; or the seed's table of ``(host, port, keyfile, certfile)`` rows
#: (``smtpmail-starttls-credentials``; note the key comes first there); or ``None`` for none.
ClientCertOption = (
    str
    | os.PathLike[str]
    | tuple[str | os.PathLike[str], str | os.PathLike[str] | None]
    | Sequence[tuple[str, int | str | None, str | os.PathLike[str] | None, str | os.PathLike[str]]]
    | None
)


# --- tables -----------------------------------------------------------------------------------------


def credential_table(rows: CredentialTable | Sequence[CredentialEntry]) -> tuple[CredentialEntry, ...]:
    """Check the seed's table of credentials.

    Args:
        rows: ``(host, port, username, password)`` tuples (lists are accepted too), in order of
            preference; the port is a number, a string of digits, a TCP service name from the
            services database, or ``None`` for any port.  :class:`~._netrc.CredentialEntry` objects
            (from :func:`~._netrc.load_netrc`, say) are accepted as they are.

    Returns:
        The entries, in the same order.

    Raises:
        CredentialsError: ``rows`` is not a sequence, or a row has the wrong shape or types, or an
            unknown service name.  The message gives the row's number, never its values.
    """
    table: object = rows  # checked as what it is, not as what it is declared to be
    if isinstance(table, str | bytes) or not isinstance(table, Sequence):
        raise CredentialsError(
            "credentials must be a sequence of (host, port, username, password) tuples, "
            f"not {type(table).__name__}"
        )
    return tuple(_table_row(number, row) for number, row in enumerate(table, 1))


def _table_row(number: int, row: object) -> CredentialEntry:
    if isinstance(row, CredentialEntry):
        return row
    where = f"credentials row {number}"
    if not isinstance(row, tuple | list) or len(row) != 4:
        shape = f"{len(row)} items" if isinstance(row, tuple | list) else type(row).__name__
        raise CredentialsError(f"{where}: expected (host, port, username, password), got {shape}")
    host, port, username, password = row
    if not isinstance(host, str) or not _valid_host(host):
        raise CredentialsError(f"{where}: the host must be a non-empty name without spaces")
    _optional_str(f"{where}: the username", username)
    _optional_str(f"{where}: the password", password)
    return CredentialEntry(host=host, port=_row_port(where, port), username=username, password=password)


def _row_port(where: str, port: object) -> int | None:
    if port is None:
        return None
    if isinstance(port, int | str):
        try:
            return resolve_port(port, "starttls")
        except LocalProtocolError:
            pass
    # The value is left out of the message: in a row whose fields were swapped it could be a password.
    raise CredentialsError(f"{where}: the port must be a number from 1 to 65535 or a TCP service name")


# --- resolution ------------------------------------------------------------------------------------------


def resolve_credentials(
    *,
    host: str,
    port: int,
    username: str | None = None,
    password: str | None = None,
    credentials: CredentialTable | Sequence[CredentialEntry] | str | os.PathLike[str] | None = None,
    ask: AskCallback | None = None,
    oauth_token: TokenProvider | None = None,
) -> Credentials | None:
    """Decide what one connection authenticates with.

    The rules:

    1. With ``oauth_token``, the token is the provider's value, fetched now (a function is called
       once per call, so each connection gets a fresh token); the username is ``username``, else
       that of the matching entry, else asked for.  Giving ``password`` too is an error.
    2. Otherwise ``username`` and ``password`` win; the first entry of ``credentials`` that matches
       the host and port (in order; a ``default`` entry only if no ``machine`` entry matches, and
       when ``username`` is given, only entries for that user or for any user) fills in what is
       missing; whatever is still missing is asked for with ``ask``.
    3. With nothing given and no matching entry, there is nothing to authenticate with.

    Args:
        host: the server connected to.
        port: the port connected to.
        username: the user name, or ``None``.
        password: the password, or ``None``.
        credentials: a netrc/authinfo file (a path, read with :func:`~._netrc.load_netrc` at each
            call), or a table (see :func:`credential_table`), or ``None``.
        ask: called as ``ask("username" | "password", host, port)`` for what is still missing; its
            exceptions propagate unchanged.
        oauth_token: an OAuth 2 access token, or a function returning one.  Of its exceptions, an
            :class:`OSError` becomes a :class:`~._netrc.CredentialsError`; the others propagate
            unchanged.

    Returns:
        The core's :class:`~smtp_sansio.Credentials` (a username with a password, or with a token;
        ``authorization_id`` left empty), or ``None`` for "do not authenticate".

    Raises:
        CredentialsError: the arguments are invalid or contradictory; the file or table is invalid;
            a username or password is missing and ``ask`` is absent or gave up; no token could be
            had.
    """
    if not isinstance(host, str):
        raise CredentialsError(f"host must be a str, not {type(host).__name__}")
    if not _valid_port(port):
        raise CredentialsError("port must be a number from 1 to 65535")
    _optional_str("username", username)
    _optional_str("password", password)
    if oauth_token is not None and password is not None:
        raise CredentialsError("give password= or oauth_token=, not both: which to use would be a guess")

    if credentials is None:
        entries: tuple[CredentialEntry, ...] = ()
        source = "credentials="
    elif isinstance(credentials, str | os.PathLike):
        source = os.fspath(credentials)
        entries = load_netrc(source)
    else:
        source = "credentials="
        entries = credential_table(credentials)
    entry = _find_entry(entries, host, port, username)
    where = f"{host}:{port}"

    if oauth_token is not None:
        user = _fill("username", username, entry, ask, host, port)
        if user is None:
            raise CredentialsError(
                f"no username for the OAuth token at {where} (give username=, an entry in {source}, or ask=)"
            )
        return Credentials(username=user, token=_fetch_token(oauth_token, where))

    if username is None and password is None and entry is None:
        return None
    user = _fill("username", username, entry, ask, host, port)
    if user is None:
        raise CredentialsError(f"no username for {where} (give username=, an entry in {source}, or ask=)")
    secret = _fill("password", password, entry, ask, host, port)
    if secret is None:
        raise CredentialsError(
            f"no password for {user} at {where} (give password=, an entry in {source}, or ask=)"
        )
    return Credentials(username=user, password=secret)


def _find_entry(
    entries: Sequence[CredentialEntry], host: str, port: int, username: str | None
) -> CredentialEntry | None:
    fallback: CredentialEntry | None = None
    for entry in entries:
        # An entry for another user would pair that user's password with this user's name.
        if username is not None and entry.username is not None and entry.username != username:
            continue
        if not entry.matches(host, port):
            continue
        if entry.host is not None:
            return entry
        if fallback is None:
            fallback = entry
    return fallback


def _fill(
    what: str, given: str | None, entry: CredentialEntry | None, ask: AskCallback | None, host: str, port: int
) -> str | None:
    if given is not None:
        return given
    if entry is not None:
        known = entry.username if what == "username" else entry.password
        if known is not None:
            return known
    if ask is None:
        return None
    value = ask(what, host, port)
    if value is not None and not isinstance(value, str):
        raise CredentialsError(f"ask= returned a {type(value).__name__} for the {what}, not a str or None")
    return value


def _fetch_token(provider: TokenProvider, where: str) -> str:
    if isinstance(provider, str):
        token: object = provider
    elif callable(provider):
        try:
            token = provider()
        except OSError as exc:  # a token file or helper that is not there: the user's setup, not a bug
            raise CredentialsError(f"cannot get an OAuth token for {where}: {exc}") from exc
    else:
        raise CredentialsError(
            f"oauth_token must be a str or a function returning one, not {type(provider).__name__}"
        )
    if not isinstance(token, str):
        raise CredentialsError(f"the OAuth token for {where} is a {type(token).__name__}, not a str")
    if not token:
        raise CredentialsError(f"the OAuth token for {where} is empty")
    return token


# --- client certificates -------------------------------------------------------------------------------


def resolve_client_cert(option: ClientCertOption, *, host: str, port: int) -> tuple[str, str | None] | None:
    """Choose the client certificate for a connection (Emacs' ``smtpmail-starttls-credentials``).

    Args:
        option: ``None``; a path to a PEM file holding the certificate and its key; a
            ``(certfile, keyfile)`` pair (``keyfile`` may be ``None``); or a table of
            ``(host, port, keyfile, certfile)`` rows -- the seed's order, key first -- whose port
            is a number, a service name or ``None`` for any port.  A pair is a 2-tuple of paths; a
            table is a sequence of 4-tuples, so a table of two rows is not mistaken for a pair.
        host: the server connected to.
        port: the port connected to.

    Returns:
        ``(certfile, keyfile)`` for this connection, or ``None`` for no client certificate.

    Raises:
        CredentialsError: the option has the wrong shape, or a row an invalid host or port.
    """
    value: object = option  # checked as what it is, not as what it is declared to be
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        return (_fspath(value), None)
    if isinstance(value, tuple | list) and len(value) == 2 and _is_path(value[0]):
        certfile, keyfile = value
        if keyfile is not None and not _is_path(keyfile):
            raise CredentialsError("the key file of a client certificate must be a path or None")
        return (_fspath(certfile), None if keyfile is None else _fspath(keyfile))
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise CredentialsError(
            "client_cert must be a file, a (certfile, keyfile) pair, or (host, port, keyfile, certfile) "
            f"rows, not {type(value).__name__}"
        )
    rows = [_cert_row(number, row) for number, row in enumerate(value, 1)]
    for entry, cert in rows:
        if entry.matches(host, port):
            return cert
    return None


def _cert_row(number: int, row: object) -> tuple[CredentialEntry, tuple[str, str | None]]:
    where = f"client certificate row {number}"
    if not isinstance(row, tuple | list) or len(row) != 4:
        shape = f"{len(row)} items" if isinstance(row, tuple | list) else type(row).__name__
        raise CredentialsError(f"{where}: expected (host, port, keyfile, certfile), got {shape}")
    host, port, keyfile, certfile = row
    if not isinstance(host, str) or not _valid_host(host):
        raise CredentialsError(f"{where}: the host must be a non-empty name without spaces")
    if not _is_path(certfile) or (keyfile is not None and not _is_path(keyfile)):
        raise CredentialsError(f"{where}: the certificate file must be a path, the key file a path or None")
    entry = CredentialEntry(host=host, port=_row_port(where, port))
    return entry, (_fspath(certfile), None if keyfile is None else _fspath(keyfile))


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


def _fspath(value: object) -> str:
    path = os.fspath(value)  # type: ignore[call-overload]  # checked by _is_path
    if not isinstance(path, str):
        raise CredentialsError("a certificate or key path must be a str path, not bytes")
    return path


def load_client_cert(context: ssl.SSLContext, cert: tuple[str, str | None]) -> None:
    """Load a client certificate and its key into a TLS context.

    The file holding the private key (``keyfile``, else ``certfile``) must be private, as
    :func:`~._netrc.load_netrc` requires of its file.  An encrypted key is refused rather than
    prompted for.

    Args:
        context: the client context to present the certificate with.
        cert: ``(certfile, keyfile)``, as :func:`resolve_client_cert` returns it.

    Raises:
        CredentialsError: a file is missing, unreadable or not private; the certificate or key is
            invalid, encrypted, or the two do not belong together.
    """
    certfile, keyfile = _checked_path(cert[0]), None if cert[1] is None else _checked_path(cert[1])
    private = certfile if keyfile is None else keyfile
    what = "client certificate" if keyfile is None else "client key"
    try:
        info = os.stat(private)
    except OSError as exc:
        raise CredentialsError(f"cannot read the {what} {private}: {exc.strerror}") from None
    _check_private(info, private)
    files = certfile if keyfile is None else f"{certfile} (key {keyfile})"
    try:
        # OpenSSL would prompt on the terminal for the passphrase of an encrypted key, in the middle
        # of a connection; the callback refuses instead.
        context.load_cert_chain(certfile, keyfile, password=_refuse_passphrase)
    except ssl.SSLError as exc:
        raise CredentialsError(f"cannot load the client certificate {files}: {exc.reason or exc}") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read the client certificate {files}: {exc.strerror}") from None


def _refuse_passphrase() -> str:
    raise CredentialsError("the client key is encrypted; decrypt it first (openssl pkey -in KEY -out KEY2)")
