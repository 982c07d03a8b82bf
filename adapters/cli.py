"""The ``smtp-sansio`` command: a sendmail-compatible submission client, and a demo.

``smtp-sansio send`` reads a message on standard input and submits it, taking the options that mail
programs pass to ``sendmail`` (git send-email runs ``sendmail -i [-f FROM] RCPT...``; mutt runs
``sendmail -oem -oi [-f FROM] -- RCPT...``)::

    smtp-sansio send --host mail.example.org -f me@example.org you@example.org < message.eml
    smtp-sansio send -t < message.eml            # recipients from To, Cc and Bcc

``smtp-sansio demo`` starts a throwaway SMTP server with STARTTLS on loopback and sends it a message,
printing the protocol trace.

Errors are one line on standard error, ``smtp-sansio: <message>``, and the exit status follows
sysexits.h, so that a mail program can tell a message to retry from one to bounce:

====  ===================================================================================
0     sent (recipients refused while others were accepted get one warning line each)
64    usage: bad option, no recipients given
65    the message or an address cannot be sent as it is (no sender, CR/LF in an address, ...)
66    the ``--cafile`` cannot be read
67    every recipient was refused permanently
69    any other permanent (5xx) refusal
70    internal error
74    standard input cannot be read
75    temporary failure: a 4xx reply, the server unreachable, a timeout -- try again later
76    the server broke the SMTP protocol
77    security: TLS required but not available, certificate not accepted, authentication
      refused, credentials missing or in a file others can read
====  ===================================================================================
"""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from smtp_sansio import (
    TLS_MODES,
    AuthenticationError,
    LocalProtocolError,
    PermanentReplyError,
    RemoteProtocolError,
    Reply,
    ReplyError,
    SecurityError,
    SendResult,
    SMTPConnectError,
    SMTPError,
    SMTPTimeoutError,
    TransientReplyError,
    envelope_from_bytes,
)

from ._netrc import CredentialsError, default_netrc_path
from ._options import stream_logger
from ._prompt import password_from_command, terminal_ask
from .sync import SMTPClient

__all__ = ["main"]

PROG = "smtp-sansio"

# sysexits.h
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_PROTOCOL = 76
EX_NOPERM = 77

# sendmail's -o options that mail programs pass and that change nothing here: -oi (a lone dot does
# not end the message: standard input is always read to its end) and -oem (report errors by mail:
# errors are always reported by the exit status and on standard error instead).
_IGNORED_O_OPTIONS = frozenset({"i", "em"})


class _Failure(Exception):
    """Ends the command with ``status`` after printing ``message`` (if any) on standard error."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _RefusePassword(argparse.Action):
    # --password VALUE would show the password to every user of the machine (ps, /proc) and keep
    # it in the shell's history; argparse's own error would even repeat it (--password=VALUE).
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> NoReturn:
        raise _Failure(
            EX_USAGE,
            f"{option_string} is not accepted: a password is never taken as an argument "
            "(use --password-cmd, --netrc, or type it when asked)",
        )


class _Parser(argparse.ArgumentParser):
    # argparse would print a usage message and exit with status 2; sendmail's callers expect 64.
    def error(self, message: str) -> NoReturn:
        raise _Failure(EX_USAGE, f"{message} (see '{self.prog} --help')")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _Failure(status, message.strip() if message else None)


def _top_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="A sans-IO SMTP client: submit mail like sendmail, or watch a demo.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "command", choices=("send", "demo"), help="'send' a message from stdin, or run the 'demo'"
    )
    return parser


def _send_parser() -> _Parser:
    parser = _Parser(
        prog=f"{PROG} send",
        description=(
            "Read a message on standard input and submit it over SMTP. Recipients are the "
            "arguments; with -t, the To, Cc and Bcc addresses of the message plus the arguments. "
            "Bcc fields are never transmitted."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("recipients", nargs="*", metavar="RCPT", help="envelope recipient")
    parser.add_argument(
        "-t", dest="from_headers", action="store_true", help="also send to the To, Cc and Bcc addresses"
    )
    parser.add_argument(
        "-f", "--from", dest="sender", metavar="FROM", help="envelope sender (default: Sender or From header)"
    )
    parser.add_argument("-i", action="store_true", help="accepted; input is always read to its end")
    parser.add_argument(
        "-o", dest="o_options", action="append", default=[], metavar="OPT", help="-oi and -oem are accepted"
    )
    parser.add_argument(
        "-B", dest="body_type", metavar="TYPE", help="accepted for compatibility (7BIT or 8BITMIME); ignored"
    )
    parser.add_argument("--host", help="SMTP server (default: $SMTPSERVER, else localhost)")
    parser.add_argument(
        "--port", help="port number or service name (default: 587, or 465 with --tls implicit, 25 with none)"
    )
    parser.add_argument("--tls", choices=TLS_MODES, default="starttls", help="TLS mode (default: starttls)")
    parser.add_argument("--cafile", help="trust only the CA certificates in this PEM file")
    parser.add_argument("--local-domain", metavar="NAME", help="name to greet the server with (EHLO/HELO)")
    parser.add_argument("--sendto-domain", metavar="DOMAIN", help="domain added to recipients without one")
    parser.add_argument("--verb", action="store_true", help="ask the server for verbose delivery (VERB)")
    parser.add_argument("--trace", action="store_true", help="print the SMTP dialogue on standard error")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="limit for every protocol phase")
    auth = parser.add_argument_group(
        "authentication", "Passwords are never taken as arguments: they come from a command, a netrc or "
        "authinfo file, or the terminal."
    )
    auth.add_argument("--user", metavar="USER", help="authenticate as USER (password asked for if not found)")
    auth.add_argument(
        "--password-cmd", metavar="CMD", help="run CMD with /bin/sh; its first line of output is the password"
    )
    auth.add_argument("--password", "--pass", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)
    auth.add_argument(
        "--oauth-token-cmd", metavar="CMD", help="run CMD for a fresh OAuth 2 token (XOAUTH2, OAUTHBEARER)"
    )
    auth.add_argument(
        "--netrc", nargs="?", const="", metavar="FILE",
        help="credentials from a netrc/authinfo file (default: $NETRC, ~/.authinfo, ~/.netrc)",
    )
    auth.add_argument("--auth", metavar="MECH,...", help="SASL mechanisms in order of preference")
    auth.add_argument("--client-cert", metavar="FILE", help="TLS client certificate (PEM)")
    auth.add_argument("--client-key", metavar="FILE", help="its private key, if not in the certificate file")
    auth.add_argument(
        "--allow-insecure-auth", action="store_true",
        help="allow credentials over plaintext or unverified TLS (never needed with a proper server)",
    )
    return parser


def _demo_parser() -> _Parser:
    return _Parser(
        prog=f"{PROG} demo",
        description=(
            "Start a throwaway SMTP server with STARTTLS on loopback, send it a message through "
            "the blocking adapter with the trace shown, and print what the server received."
        ),
        allow_abbrev=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``smtp-sansio`` command.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (sysexits.h codes, see the module documentation).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "send":
            return _send(args[1:], sys.stderr)
        if args and args[0] == "demo":
            _demo_parser().parse_args(args[1:])
            from ._demo import run_demo

            return run_demo(sys.stdout, sys.stderr)
        _top_parser().parse_args(args)
        raise _Failure(EX_USAGE, "unreachable")  # pragma: no cover - parse_args exits for anything else
    except _Failure as failure:
        if failure.message:
            stream = sys.stdout if failure.status == EX_OK else sys.stderr
            print(failure.message if failure.status == EX_OK else f"{PROG}: {failure.message}", file=stream)
        return failure.status
    except SMTPError as exc:
        status, message = _classify(exc)
        print(f"{PROG}: {message}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a command line tool reports, it does not dump a traceback
        print(f"{PROG}: internal error: {type(exc).__name__}: {_oneline(str(exc))}", file=sys.stderr)
        return EX_SOFTWARE


def _send(argv: list[str], stderr: TextIO) -> int:
    options = _send_parser().parse_intermixed_args(argv)
    unknown = [o for o in options.o_options if o not in _IGNORED_O_OPTIONS]
    if unknown:
        raise _Failure(EX_USAGE, f"unsupported option -o{unknown[0]} (only -oi and -oem are accepted)")
    if not options.from_headers and not options.recipients:
        raise _Failure(EX_USAGE, "no recipients: name them as arguments, or use -t to read the message's")

    context = None
    if options.cafile is not None:
        try:
            context = ssl.create_default_context(cafile=options.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise _Failure(EX_NOINPUT, f"cannot load CA file {options.cafile}: {_reason(exc)}") from None

    trace: logging.Logger | bool = False
    if options.trace:
        trace = stream_logger(stderr)
    try:
        client = SMTPClient(
            options.host,
            options.port,
            tls=options.tls,
            ssl_context=context,
            local_hostname=options.local_domain,
            sendto_domain=options.sendto_domain,
            verb=options.verb,
            trace=trace,
            timeout=options.timeout,
            **_auth_options(options),
        )
    except CredentialsError:
        raise  # reported with its own status by _classify
    except LocalProtocolError as exc:
        raise _Failure(EX_USAGE, str(exc)) from None

    try:
        data = sys.stdin.buffer.read()
    except OSError as exc:
        raise _Failure(EX_IOERR, f"cannot read the message from standard input: {_reason(exc)}") from None

    # The envelope is settled before connecting, so a message that cannot be sent costs no connection.
    recipients: list[str] = list(options.recipients)
    if options.from_headers:
        try:
            # The sender does not matter yet: "" keeps a message without From from failing here.
            envelope, _ = envelope_from_bytes(data, sender="")
            recipients = [*envelope.recipients, *recipients]
        except LocalProtocolError:
            if not recipients:
                raise
    envelope, data = envelope_from_bytes(data, sender=options.sender, recipients=recipients)

    with client:
        result = client.send_message(data, sender=envelope.sender, recipients=envelope.recipients)
    _warn_refused(result, stderr)
    return EX_OK


def _auth_options(options: argparse.Namespace) -> dict[str, Any]:
    # The authentication options of SMTPClient, from the command line.
    auth: dict[str, Any] = {
        "username": options.user,
        "ask": _ask_at_terminal,
        "allow_insecure_auth": options.allow_insecure_auth,
    }
    if options.password_cmd is not None:
        auth["password"] = password_from_command(options.password_cmd)
    if options.oauth_token_cmd is not None:
        command = options.oauth_token_cmd
        auth["oauth_token"] = lambda: password_from_command(command)
    if options.netrc is not None:
        path = options.netrc or default_netrc_path()
        if path is None:
            raise CredentialsError("--netrc: no $NETRC, ~/.authinfo or ~/.netrc to read")
        auth["credentials"] = path
    if options.auth is not None:
        auth["auth_mechanisms"] = [name.strip() for name in options.auth.split(",") if name.strip()]
    if options.client_key is not None and options.client_cert is None:
        raise _Failure(EX_USAGE, "--client-key needs --client-cert")
    if options.client_cert is not None:
        auth["client_cert"] = (options.client_cert, options.client_key)
    return auth


def _ask_at_terminal(what: str, host: str, port: int) -> str:
    # terminal_ask, with a failure worded for the command line rather than for the API: without
    # it, the error would suggest password= or ask=, which a command line user cannot give.
    answer = terminal_ask(what, host, port)
    if answer is None:
        source = "--user" if what == "username" else "--password-cmd or --netrc"
        raise CredentialsError(
            f"no {what} for {host}:{port}: none was typed, or there is no terminal to ask on (use {source})"
        )
    return answer


def _warn_refused(result: SendResult, stderr: TextIO) -> None:
    for recipient, reply in result.refused.items():
        print(f"{PROG}: warning: recipient {recipient} refused: {_reply_text(reply)}", file=stderr)


def _classify(exc: SMTPError) -> tuple[int, str]:
    # Maps an error to its exit status and one line of explanation.
    message = _oneline(str(exc))
    if isinstance(exc, SMTPTimeoutError | SMTPConnectError | TransientReplyError):
        return EX_TEMPFAIL, message
    if isinstance(exc, SecurityError | AuthenticationError | CredentialsError):
        return EX_NOPERM, message
    if isinstance(exc, RemoteProtocolError):
        return EX_PROTOCOL, message
    if isinstance(exc, LocalProtocolError):
        return EX_DATAERR, message
    if isinstance(exc, PermanentReplyError):
        if exc.refused:
            refused = "; ".join(f"{rcpt}: {_reply_text(reply)}" for rcpt, reply in exc.refused.items())
            return EX_NOUSER, f"all recipients refused: {_oneline(refused)}"
        return EX_UNAVAILABLE, message
    if isinstance(exc, ReplyError):  # pragma: no cover - every reply error is transient or permanent
        return EX_UNAVAILABLE, message
    return EX_SOFTWARE, message


def _reply_text(reply: Reply) -> str:
    return _oneline(str(reply))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _oneline(str(exc)) or type(exc).__name__


def _oneline(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())
