"""Credentials from the command line: a password command, and questions asked at the terminal.

These are what the sendmail-compatible interface offers for what a configuration leaves out: msmtp's
``passwordeval`` (a command that prints the password) and a prompt.  Failures are
:class:`~._netrc.CredentialsError`; no message ever contains a password or a command's output.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import warnings

from ._netrc import CredentialsError

__all__ = [
    "password_from_command",
    "terminal_ask",
]

# The shell that runs password commands, and the terminal that prompts use when standard input is
# not one (the sendmail interface reads the message from standard input).
_SHELL = "/bin/sh"
_TTY = "/dev/tty"


def password_from_command(command: str, *, timeout: float = 30) -> str:
    """Run the user's password command and return the password it prints (msmtp's ``passwordeval``).

    Args:
        command: a shell command line, such as ``pass show mail/alice``; run with ``/bin/sh -c``,
            with standard input from ``/dev/null`` and standard error passed through.
        timeout: seconds to wait for it; it is killed after that.

    Returns:
        The first line of its standard output, without the line ending.

    Raises:
        CredentialsError: the command could not be started, exited with a non-zero status, timed
            out, or printed an empty first line or one that is not UTF-8.  The message never
            contains the output.
    """
    if not isinstance(command, str):
        raise CredentialsError(f"the password command must be a str, not {type(command).__name__}")
    if not command.strip():
        raise CredentialsError("the password command is empty")
    try:
        # Through the shell on purpose: the command is the user's own configuration, written as
        # they would type it (pipes, quotes, variables), exactly like msmtp's passwordeval and
        # mutt's `set smtp_pass = "`...`"`; it is never built from data received from anyone else.
        done = subprocess.run(  # noqa: S603
            [_SHELL, "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=None,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # "from None": the TimeoutExpired carries the command and whatever it printed so far.
        raise CredentialsError(f"the password command did not finish within {timeout:g} seconds") from None
    except OSError as exc:
        raise CredentialsError(f"cannot run the password command with {_SHELL}: {exc.strerror}") from None
    if done.returncode < 0:
        raise CredentialsError(f"the password command was killed by signal {-done.returncode}")
    if done.returncode:
        raise CredentialsError(f"the password command exited with status {done.returncode}")
    first = done.stdout.split(b"\n", 1)[0].removesuffix(b"\r")
    if not first:
        raise CredentialsError("the password command printed nothing on its first line")
    try:
        return first.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError("the password command printed something that is not UTF-8") from None


def terminal_ask(what: str, host: str, port: int) -> str | None:
    """Ask the user at the terminal; usable as ``ask=``.

    A password is read with :func:`getpass.getpass`, which never echoes it; where getpass could
    only read with echo (no terminal), nothing is read.  A username is read with :func:`input` when
    standard input is a terminal, else from ``/dev/tty`` (the message may be on standard input).
    An empty answer counts as giving up.

    Args:
        what: ``"username"`` or ``"password"``.
        host: the server, shown in the prompt.
        port: the port, shown in the prompt.

    Returns:
        The answer, or ``None`` when there is no terminal, at end of input, or for an empty answer.

    Raises:
        CredentialsError: ``what`` is neither ``"username"`` nor ``"password"``.
    """
    if what == "password":
        return _ask_password(f"Password for {host}:{port}: ")
    if what == "username":
        return _ask_line(f"Username for {host}:{port}: ")
    raise CredentialsError(f"terminal_ask asks for a 'username' or a 'password', not {what!r}")


def _ask_password(prompt: str) -> str | None:
    with warnings.catch_warnings():
        # Without a terminal, getpass warns and then reads with echo; as an error, the warning
        # stops it before it reads, so a password is never echoed.
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            value = getpass.getpass(prompt)
        except (getpass.GetPassWarning, EOFError):
            return None
    return value or None


def _ask_line(prompt: str) -> str | None:
    if _isatty(sys.stdin):
        try:
            value = input(prompt)
        except EOFError:
            return None
        return value.strip() or None
    try:
        fd = os.open(_TTY, os.O_RDWR | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    with open(fd, "r+b", buffering=0) as tty:
        tty.write(prompt.encode("utf-8"))
        line = tty.readline()
    try:
        return line.decode("utf-8").strip() or None
    except UnicodeDecodeError:
        return None


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # None (no standard input at all), or closed
        return False
