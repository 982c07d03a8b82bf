"""netrc and authinfo files: where most users keep the credentials of their mail servers.

Emacs' smtpmail takes ``smtpmail-auth-credentials``, a list of (host, port, user, password) that is
matched against the server being connected.  Today the same table usually lives in a netrc or
authinfo file, the format Emacs' auth-source reads::

    machine mail.example.org port submission login alice password "correct horse"

This module reads such a file into :class:`CredentialEntry` objects, refusing one that others may
read or write, and defines :class:`CredentialsError`, the error of every credential source.  Which
entry a connection uses is decided in :mod:`._credentials`.  No message ever contains a password.
"""

from __future__ import annotations

import io
import os
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path

from smtp_sansio import LocalProtocolError

from ._options import resolve_port

__all__ = [
    "CredentialEntry",
    "CredentialsError",
    "default_netrc_path",
    "load_netrc",
]

# Mode bits and owners mean something only on POSIX systems; on Windows a file's privacy is a matter
# of ACLs, which st_mode does not show (every file looks 0o666 or 0o444 there).
_POSIX_PERMISSIONS = os.name == "posix"

# What shlex, with whitespace_split, separates words with.
_WHITESPACE = " \t\r\n"


class CredentialsError(LocalProtocolError):
    """Credentials could not be found, read or used; raised before any connection is made.

    Messages are one line, name the file involved (and the line, for a syntax error), and never
    contain a password.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialEntry:
    """One row of a credentials table or one entry of a netrc/authinfo file.

    Attributes:
        host: the server this entry is for, or ``None`` for any server (netrc's ``default``).
        port: the port number, or ``None`` for any port.
        username: the user name, or ``None`` for "ask".
        password: the password, or ``None`` for "ask"; never shown by ``repr()``.

    Raises:
        CredentialsError: a field has the wrong type, the host is empty or contains white space,
            or the port is outside 1 to 65535.
    """

    host: str | None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.host is not None and not _valid_host(self.host):
            raise CredentialsError("an entry's host must be a non-empty name without spaces")
        if self.port is not None and not _valid_port(self.port):
            raise CredentialsError("an entry's port must be a number from 1 to 65535")
        _optional_str("an entry's username", self.username)
        _optional_str("an entry's password", self.password)

    def matches(self, host: str, port: int) -> bool:
        """Tell whether this entry applies to a connection.

        Args:
            host: the server's name or address; compared without regard to case, and without the
                brackets of an IPv6 literal (``[::1]`` is ``::1``).
            port: the port number.

        Returns:
            ``True`` if both the host and the port match (``None`` matches anything).
        """
        if self.host is not None and _host_key(self.host) != _host_key(host):
            return False
        return self.port is None or self.port == port


def _valid_host(host: object) -> bool:
    return (
        isinstance(host, str)
        and bool(_host_key(host))
        and host.isprintable()
        and not any(c.isspace() for c in host)
    )


def _valid_port(port: object) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536


def _host_key(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.lower()


def _optional_str(what: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise CredentialsError(f"{what} must be a str or None, not {type(value).__name__}")


# --- netrc and authinfo files ---------------------------------------------------------------------------


def default_netrc_path() -> Path | None:
    """Find the user's netrc or authinfo file.

    The order: ``$NETRC`` when it is set and not empty (returned even if the file does not exist,
    so that a misspelt name is reported rather than silently ignored); else ``~/.authinfo``, first
    because it is the file that can say which port an entry is for; else ``~/.netrc``.  Emacs'
    encrypted ``~/.authinfo.gpg`` is not read.

    Returns:
        The path, or ``None`` when there is no such file (or no home directory).
    """
    named = os.environ.get("NETRC")
    if named:
        return Path(named)
    home = os.path.expanduser("~")
    if home == "~":  # no $HOME and no password database entry
        return None
    for name in (".authinfo", ".netrc"):
        candidate = Path(home, name)
        if candidate.exists():
            return candidate
    return None


def load_netrc(path: str | os.PathLike[str]) -> tuple[CredentialEntry, ...]:
    """Read a netrc or authinfo file.

    Both syntaxes are one stream of words: ``machine NAME`` or ``default`` starts an entry, then
    ``login``/``user NAME``, ``password``/``passwd VALUE``, ``port``/``protocol NAME`` (a number
    or a service name such as ``submission``) and ``account VALUE`` (ignored) fill it in, on the
    same line or the next ones.  ``macdef NAME`` is skipped together with its body, up to the next
    empty line.  A value may be quoted (``"two words"``, ``'as is'``) and use backslash escapes,
    as in a POSIX shell, but must end on the line it starts on.  A word starting with ``#`` where a
    keyword is expected starts a comment, up to the end of the line; a value may start with ``#``.

    The file is refused unless it is a regular file, owned by the current user, that neither the
    group nor others may read or write (on POSIX systems); these checks are made on the opened
    file before a byte of it is read.

    Args:
        path: the file to read.

    Returns:
        The entries, in file order.

    Raises:
        CredentialsError: the file is missing, unreadable, not private, not UTF-8, or has a syntax
            error (the message names the file and the line).
    """
    name = _checked_path(path)
    data = _read_private_file(name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CredentialsError(f"{name}, line {line}: not UTF-8 text") from None
    return _parse_netrc(text, name)


def _checked_path(path: str | os.PathLike[str]) -> str:
    name = os.fspath(path)
    if "\0" in name:  # os.open would raise ValueError, not OSError
        raise CredentialsError("a file name contains a NUL character")
    return name


def _read_private_file(path: str) -> bytes:
    # Opened without blocking, so that a FIFO planted under the name cannot hang us; checked through
    # the open descriptor, so that the file checked is the file read.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CredentialsError(f"{path}: no such file") from None
    except OSError as exc:
        raise CredentialsError(f"cannot open {path}: {exc.strerror}") from None
    try:
        _check_private(os.fstat(fd), path)
        chunks: list[bytes] = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _check_private(info: os.stat_result, path: str) -> None:
    # The same rules as ftp's and the standard library's netrc readers, and ssh's for private keys:
    # a secret others can read is no longer a secret, and one others can write can send our
    # password elsewhere (a "machine" line for the host we connect to, with their password).
    if not stat.S_ISREG(info.st_mode):
        raise CredentialsError(f"{path} is not a regular file")
    if not _POSIX_PERMISSIONS:
        return
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise CredentialsError(
            f"{path} is accessible to the group or others (mode {mode:04o}); make it private: chmod 600"
        )
    if info.st_uid != os.getuid():
        raise CredentialsError(f"{path} belongs to another user (uid {info.st_uid}), not to the current one")


# The standard library's netrc module cannot be used: it does not know the authinfo keywords "port"
# and "protocol" and rejects a file that has them, that is, the file that says which port an entry
# is for (the whole point of smtpmail's (host, port, ...) tuples); and it keys entries by host only.
_KEYWORD_FIELDS = {
    "login": "username",
    "user": "username",
    "password": "password",
    "passwd": "password",
    "port": "port",
    "protocol": "port",
}


class _Words:
    """The words of a netrc/authinfo file, with the number of the line each is on.

    Each line gets its own :class:`shlex.shlex` (POSIX rules, words split at white space only, no
    punctuation characters, no comment characters), read lazily: what follows a comment sign is
    never tokenised, so an apostrophe in a comment is not an unclosed quotation.
    """

    def __init__(self, text: str, path: str) -> None:
        self._lines = iter(enumerate(text.split("\n"), 1))
        self._path = path
        self._text = ""
        self._stream = io.StringIO()
        self._lexer: shlex.shlex | None = None
        self.lineno = 0

    def error(self, message: str) -> CredentialsError:
        return CredentialsError(f"{self._path}, line {self.lineno}: {message}")

    def next(self, *, keyword: bool) -> str | None:
        """The next word, or ``None`` at the end; comments are skipped where a keyword is expected."""
        while True:
            if self._lexer is not None:
                rest = self._text[self._stream.tell() :].lstrip(_WHITESPACE)
                if rest and not (keyword and rest.startswith("#")):
                    try:
                        return self._lexer.get_token()
                    except ValueError as exc:  # "No closing quotation", "No escaped character"
                        raise self.error(str(exc)) from None
            if not self._next_line():
                return None

    def value(self, keyword: str) -> str:
        """The value that must follow ``keyword``."""
        line = self.lineno
        word = self.next(keyword=False)
        if word is None:
            self.lineno = line  # the error is the keyword's
            raise self.error(f"'{keyword}' has no value")
        return word

    def skip_macro(self) -> None:
        """Skip the rest of this line and the lines after it, up to and including an empty one."""
        self._lexer = None
        for lineno, text in self._lines:
            self.lineno = lineno
            if not text.strip(_WHITESPACE):
                break

    def _next_line(self) -> bool:
        for self.lineno, self._text in self._lines:  # noqa: B020 - the loop advances the line
            self._stream = io.StringIO(self._text)
            lexer = shlex.shlex(self._stream, posix=True)
            lexer.whitespace_split = True
            lexer.commenters = ""
            self._lexer = lexer
            return True
        self._lexer = None
        return False


@dataclass(slots=True)
class _Pending:
    """An entry being read: its fields so far, and where it started."""

    host: str | None
    line: int
    fields: dict[str, str] = field(default_factory=dict)


def _parse_netrc(text: str, path: str) -> tuple[CredentialEntry, ...]:
    words = _Words(text, path)
    entries: list[CredentialEntry] = []
    pending: _Pending | None = None
    while (word := words.next(keyword=True)) is not None:
        if word in ("machine", "default"):
            if pending is not None:
                entries.append(_finish_entry(pending, path))
            host = words.value(word) if word == "machine" else None
            if host is not None and not _valid_host(host):
                raise words.error("the machine name must be a host name or address without spaces")
            pending = _Pending(host=host, line=words.lineno)
        elif word == "macdef":
            words.value(word)  # the macro's name
            words.skip_macro()
        elif word in _KEYWORD_FIELDS or word == "account":
            if pending is None:
                raise words.error(f"'{word}' comes before any 'machine' or 'default'")
            value = words.value(word)
            name = _KEYWORD_FIELDS.get(word)
            if name is None:  # "account": a second password, for ftp's ACCT command
                continue
            if name in pending.fields:
                raise words.error(f"'{word}' given twice in one entry")
            if name == "port":
                pending.line = words.lineno
            pending.fields[name] = value
        else:
            # The word itself is left out: where quotes are missing it is part of a password.
            raise words.error("unknown keyword (does a value with spaces need quotes?)")
    if pending is not None:
        entries.append(_finish_entry(pending, path))
    return tuple(entries)


def _finish_entry(pending: _Pending, path: str) -> CredentialEntry:
    port: int | None = None
    if "port" in pending.fields:
        try:
            port = resolve_port(pending.fields["port"], "starttls")
        except LocalProtocolError:
            raise CredentialsError(
                f"{path}, line {pending.line}: the port must be a number from 1 to 65535 "
                "or a TCP service name"
            ) from None
    return CredentialEntry(
        host=pending.host,
        port=port,
        username=pending.fields.get("username"),
        password=pending.fields.get("password"),
    )

