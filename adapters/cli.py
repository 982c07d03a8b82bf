"""The ``smtp-sansio`` command: a sendmail-compatible submission client, and a demo.

``smtp-sansio send`` reads a message on standard input and submits it, taking the options that mail
programs pass to ``sendmail`` (git send-email runs ``sendmail -i [-f FROM] RCPT...``; mutt runs
``sendmail -oem -oi [-f FROM] -- RCPT...``)::

    smtp-sansio send --host mail.example.org -f me@example.org you@example.org < message.eml
    smtp-sansio send -t < message.eml            # recipients from To, Cc and Bcc

``smtp-sansio send --queue DIR`` stores the message instead (for a machine that is offline), and
``smtp-sansio queue flush`` sends what is stored; ``queue list``, ``queue show ID`` and
``queue drop ID`` inspect and edit the queue::

    smtp-sansio send --queue ~/Mail/queue -t < message.eml
    smtp-sansio queue flush --queue ~/Mail/queue --host mail.example.org --user me

``smtp-sansio config show`` prints the settings in effect -- from the command line, an account of
the configuration file (``$XDG_CONFIG_HOME/smtp-sansio/config.toml``, ``--account NAME``), the
environment or the defaults -- and where each comes from.  ``smtp-sansio probe HOST`` reports what a
server offers before and after TLS, and its certificate (``--json`` for scripts).

``smtp-sansio demo`` starts a throwaway SMTP server with STARTTLS on loopback and sends it a message,
printing the protocol trace.

Errors are one line on standard error, ``smtp-sansio: <message>``, and the exit status follows
sysexits.h, so that a mail program can tell a message to retry from one to bounce:

====  ===================================================================================
0     sent (recipients refused while others were accepted get one warning line each)
64    usage: bad option, no recipients given
65    the message or an address cannot be sent as it is (no sender, CR/LF in an address, ...);
      ``queue flush``: a damaged queue entry was skipped
66    the ``--cafile`` cannot be read; ``queue show|drop``: no such entry
67    every recipient was refused permanently
69    any other permanent (5xx) refusal; ``queue flush``: some messages moved to the failed area
70    internal error
74    standard input cannot be read
75    temporary failure: a 4xx reply, the server unreachable, a timeout -- try again later;
      the message could not be queued (a full disk); ``queue flush``: some messages stay queued
76    the server broke the SMTP protocol
77    security: TLS required but not available, certificate not accepted, authentication
      refused, credentials missing or in a file others can read
78    the configuration file is not valid (the message names the file, line and key)
====  ===================================================================================
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
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

from ._config import SECRET_KEYS, ConfigError, load_config
from ._flush import flush_queue
from ._netrc import CredentialsError, default_netrc_path
from ._options import DEFAULT_HOST, DEFAULT_PORTS, stream_logger
from ._probe import probe
from ._prompt import password_from_command, terminal_ask
from ._queue import (
    Area,
    CorruptEntry,
    QueueEntry,
    QueueError,
    drop_entry,
    enqueue,
    list_queue,
    read_entry,
)
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
EX_CONFIG = 78

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
        "command", choices=("send", "queue", "config", "probe", "demo"),
        help="'send' a message from stdin, manage the offline 'queue', show the 'config', 'probe' a "
        "server, or run the 'demo'",
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
    parser.add_argument(
        "--queue", metavar="DIR", help="store the message in the queue DIR instead of sending it"
    )
    _add_client_options(parser)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE",
        help="configuration file (default: $XDG_CONFIG_HOME/smtp-sansio/config.toml)",
    )
    parser.add_argument("--account", metavar="NAME", help="use this account of the configuration file")


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    # The options that say where and how to connect, shared by 'send', 'queue flush', 'config show'.
    _add_config_options(parser)
    parser.add_argument("--host", help="SMTP server (default: $SMTPSERVER, else localhost)")
    parser.add_argument(
        "--port", help="port number or service name (default: 587, or 465 with --tls implicit, 25 with none)"
    )
    parser.add_argument("--tls", choices=TLS_MODES, help="TLS mode (default: starttls)")
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
        if args and args[0] == "queue":
            return _queue(args[1:], sys.stdout, sys.stderr)
        if args and args[0] == "config":
            return _config(args[1:], sys.stdout)
        if args and args[0] == "probe":
            return _probe(args[1:], sys.stdout)
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
    except ConfigError as exc:
        print(f"{PROG}: {_oneline(str(exc))}", file=sys.stderr)
        return EX_CONFIG
    except QueueError as exc:  # the message could not be stored: the caller should keep it
        print(f"{PROG}: {_oneline(str(exc))}", file=sys.stderr)
        return EX_TEMPFAIL
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
    _apply_config(options)

    # Queueing connects nowhere: the connection options are left for 'queue flush'.
    client = None if options.queue is not None else SMTPClient(**_client_options(options, stderr))

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

    if client is None:
        enqueue(options.queue, data, sender=envelope.sender, recipients=envelope.recipients)
        return EX_OK
    with client:
        result = client.send_message(data, sender=envelope.sender, recipients=envelope.recipients)
    _warn_refused(result, stderr)
    return EX_OK


def _queue_parser() -> _Parser:
    parser = _Parser(
        prog=f"{PROG} queue",
        description=(
            "Manage the offline queue that 'send --queue DIR' stores messages in: send what is "
            "due ('flush'), or 'list', 'show' and 'drop' entries."
        ),
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        sub.add_argument(
            "--queue", metavar="DIR",
            help="queue directory (default: the account's queue_dir, else $XDG_DATA_HOME/smtp-sansio/queue)",
        )
        if name != "flush":
            _add_config_options(sub)
        return sub

    flush = add("flush", "send the queued messages that are due, in order, over one connection")
    flush.add_argument("--all", dest="force", action="store_true", help="also those whose retry is not due")
    flush.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    _add_client_options(flush)
    listing = add("list", "list the queued messages (with --failed: those refused for good)")
    listing.add_argument("--failed", action="store_true", help="list the failed area instead")
    show = add("show", "print an entry's envelope and state, then its message")
    show.add_argument("id", metavar="ID")
    show.add_argument("--failed", action="store_true", help="an entry of the failed area")
    drop = add("drop", "remove an entry without sending it")
    drop.add_argument("id", metavar="ID")
    drop.add_argument("--failed", action="store_true", help="an entry of the failed area")
    return parser


def default_queue_dir() -> str:
    """The queue directory used when ``--queue`` is not given: ``$XDG_DATA_HOME/smtp-sansio/queue``."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "smtp-sansio", "queue")


def _queue(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    options = _queue_parser().parse_args(argv)
    _apply_config(options, queue_dir=True)
    area: Area = "failed" if getattr(options, "failed", False) else "queue"
    if options.action == "flush":
        return _flush(options, stdout, stderr)
    if options.action == "list":
        for item in list_queue(options.queue, area):
            print(_describe_entry(item), file=stdout)
        return EX_OK
    try:
        if options.action == "show":
            entry, data = read_entry(options.queue, options.id, area)
            for name, value in _entry_fields(entry):
                print(f"{name}: {value}", file=stdout)
            print(file=stdout)
            stdout.write(data.decode("utf-8", "replace").replace("\r\n", "\n"))
            return EX_OK
        drop_entry(options.queue, options.id, area)
    except QueueError as exc:
        raise _Failure(EX_NOINPUT, _oneline(str(exc))) from None
    return EX_OK


def _flush(options: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    client_options = _client_options(options, stderr)
    bar = None if options.no_progress or not stderr.isatty() else _ProgressBar(stderr)
    report = flush_queue(options.queue, force=options.force, progress=bar, **client_options)
    for corrupt in report.corrupt:
        print(f"{PROG}: warning: {corrupt.id}: damaged entry skipped: {corrupt.reason}", file=stderr)
    for entry_id in report.deferred:
        print(f"{PROG}: {entry_id}: deferred: {report.replies[entry_id]}", file=stderr)
    for entry_id in report.failed:
        print(f"{PROG}: {entry_id}: failed: {report.replies[entry_id]}", file=stderr)
    print(
        f"sent {len(report.sent)}, deferred {len(report.deferred)}, failed {len(report.failed)}, "
        f"not due {len(report.waiting)}, busy {len(report.busy)}, damaged {len(report.corrupt)}",
        file=stdout,
    )
    if report.deferred:
        return EX_TEMPFAIL
    if report.failed:
        return EX_UNAVAILABLE
    if report.corrupt:
        return EX_DATAERR
    return EX_OK


class _ProgressBar:
    # "[#####     ] 5/10" on one line of a terminal, redrawn in place.
    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + " " * (self.WIDTH - filled)
        end = "\n" if done >= total else ""
        self.stream.write(f"\r{PROG}: flushing [{bar}] {done}/{total}{end}")
        self.stream.flush()


def _entry_fields(entry: QueueEntry) -> list[tuple[str, str]]:
    fields = [
        ("Id", entry.id),
        ("Queued", _when(entry.created)),
        ("Sender", entry.sender or "<>"),
        ("Recipients", ", ".join(entry.recipients)),
        ("Size", str(entry.size)),
        ("Attempts", str(entry.attempts)),
    ]
    if entry.last_attempt is not None:
        fields.append(("Last-Attempt", _when(entry.last_attempt)))
    if entry.area == "queue" and entry.next_attempt:
        fields.append(("Next-Attempt", _when(entry.next_attempt)))
    if entry.last_reply is not None:
        fields.append(("Last-Reply", entry.last_reply))
    return fields


def _describe_entry(item: QueueEntry | CorruptEntry) -> str:
    if isinstance(item, CorruptEntry):
        return f"{item.id}  DAMAGED: {item.reason}"
    line = f"{item.id}  {item.size:>8}  {item.sender or '<>'} -> {', '.join(item.recipients)}"
    if item.attempts:
        line += f"  (attempts {item.attempts}"
        if item.area == "queue":
            line += f", next {_when(item.next_attempt)}"
        line += f": {item.last_reply})"
    return line


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# The settings an account of the configuration file may give, by the command line option's dest.
_ACCOUNT_OPTIONS = {
    "host": "host", "port": "port", "tls": "tls", "cafile": "cafile", "user": "user",
    "password_cmd": "password_cmd", "netrc": "netrc", "auth": "auth", "local_domain": "local_domain",
    "sendto_domain": "sendto_domain",
}


def _apply_config(options: argparse.Namespace, *, queue_dir: bool = False) -> dict[str, str]:
    # Fills the options the command line left out from the account, then the defaults; returns
    # where each setting came from.
    config = load_config(options.config)
    account = config.account(options.account)
    names = dict(_ACCOUNT_OPTIONS, queue_dir="queue") if queue_dir else _ACCOUNT_OPTIONS
    sources: dict[str, str] = {}
    for key, dest in names.items():
        if not hasattr(options, dest):
            continue
        if getattr(options, dest) is not None:
            sources[key] = "command line"
        elif account is not None and key in account.settings:
            setattr(options, dest, _option_value(key, account.settings[key]))
            line = account.lines.get(key)
            sources[key] = f"account {account.name} ({config.path}{f', line {line}' if line else ''})"
    if getattr(options, "tls", "") is None:
        options.tls = "starttls"
        sources["tls"] = "default"
    if queue_dir and options.queue is None:
        options.queue = default_queue_dir()
        sources["queue_dir"] = "default"
    if hasattr(options, "netrc") and options.netrc is False:
        options.netrc = None
    return sources


def _option_value(key: str, value: Any) -> Any:
    if key == "netrc" and value is True:
        return ""  # --netrc without a file
    if key == "auth":
        return ",".join(value)
    if key in ("cafile", "netrc", "queue_dir") and isinstance(value, str):
        return os.path.expanduser(value)
    return value


def _config_parser() -> _Parser:
    parser = _Parser(
        prog=f"{PROG} config",
        description="Show the settings in effect and where each comes from (passwords never shown).",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    show = commands.add_parser(
        "show", help="print the effective settings", description="Print the effective settings.",
        allow_abbrev=False,
    )
    show.add_argument("--queue", metavar="DIR", help="the queue directory")
    _add_client_options(show)
    return parser


def _config(argv: list[str], stdout: TextIO) -> int:
    options = _config_parser().parse_args(argv)
    sources = _apply_config(options, queue_dir=True)
    config = load_config(options.config)
    print(f"config file: {config.path}{'' if config.found else ' (not found)'}", file=stdout)
    account = config.account(options.account)
    if account is None:
        print("account: none", file=stdout)
    else:
        how = "--account" if options.account is not None else "the default account"
        print(f"account: {account.name} ({how})", file=stdout)
    if options.host is None:
        server = os.environ.get("SMTPSERVER")
        options.host = server or DEFAULT_HOST
        sources["host"] = "$SMTPSERVER" if server else "default"
    if options.port is None:
        options.port = DEFAULT_PORTS[options.tls]
        sources["port"] = f"default for tls {options.tls}"
    values = {key: getattr(options, dest) for key, dest in _ACCOUNT_OPTIONS.items()}
    values["queue_dir"] = options.queue
    if values["netrc"] == "":
        values["netrc"] = f"{default_netrc_path() or 'none found'} (the default file)"
    for key, value in values.items():
        if value is None:
            continue
        shown = "********" if key in SECRET_KEYS else value
        print(f"{key:<14} {shown}  [{sources.get(key, 'default')}]", file=stdout)
    return EX_OK


def _probe_parser() -> _Parser:
    parser = _Parser(
        prog=f"{PROG} probe",
        description=(
            "Connect to a server and report its greeting, its capabilities before and after TLS, "
            "the TLS version, cipher and certificate, and its AUTH mechanisms. Nothing is sent."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("host", metavar="HOST", help="the server")
    parser.add_argument("--port", help="port number or service name (default: by --tls, as for send)")
    parser.add_argument("--tls", choices=TLS_MODES, default="starttls", help="TLS mode (default: starttls)")
    parser.add_argument("--cafile", help="trust only the CA certificates in this PEM file")
    parser.add_argument("--local-domain", metavar="NAME", help="name to greet the server with (EHLO/HELO)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="limit for every protocol phase")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _probe(argv: list[str], stdout: TextIO) -> int:
    options = _probe_parser().parse_args(argv)
    context = _load_cafile(options.cafile)
    try:
        result = probe(
            options.host, options.port, tls=options.tls, ssl_context=context,
            local_hostname=options.local_domain, timeout=options.timeout,
        )
    except LocalProtocolError as exc:
        if isinstance(exc, CredentialsError):  # pragma: no cover - the probe sends no credentials
            raise
        raise _Failure(EX_USAGE, str(exc)) from None
    if options.json:
        json.dump(result.to_dict(), stdout, indent=2)
        stdout.write("\n")
        return EX_OK
    print(f"server: {result.host}:{result.port} (tls {result.tls_mode})", file=stdout)
    for line in result.greeting:
        print(f"greeting: {line}", file=stdout)
    if result.capabilities_before_tls:
        print(f"capabilities before TLS: {', '.join(result.capabilities_before_tls)}", file=stdout)
    if result.tls_version is None:
        print("TLS: none", file=stdout)
    else:
        print(f"TLS: {result.tls_version}, cipher {result.cipher} ({result.cipher_bits} bits)", file=stdout)
    cert = result.certificate
    if cert is not None:
        print(f"certificate subject: {cert.subject or '(empty)'}", file=stdout)
        if cert.alt_names:
            print(f"certificate names: {', '.join(cert.alt_names)}", file=stdout)
        print(f"certificate issuer: {cert.issuer}", file=stdout)
        print(f"certificate expires: {cert.not_after or 'unknown'}", file=stdout)
        verdict = "yes" if cert.verified else f"NO: {_oneline(cert.verify_error or '')}"
        print(f"certificate verified: {verdict}", file=stdout)
    if result.capabilities_after_tls:
        print(f"capabilities after TLS: {', '.join(result.capabilities_after_tls)}", file=stdout)
    print(f"AUTH mechanisms: {' '.join(result.auth_mechanisms) or 'none offered'}", file=stdout)
    return EX_OK


def _load_cafile(cafile: str | None) -> ssl.SSLContext | None:
    if cafile is None:
        return None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise _Failure(EX_NOINPUT, f"cannot load CA file {cafile}: {_reason(exc)}") from None


def _client_options(options: argparse.Namespace, stderr: TextIO) -> dict[str, Any]:
    # The keyword options of SMTPClient, from the command line, checked.
    context = _load_cafile(options.cafile)
    trace: logging.Logger | bool = False
    if options.trace:
        trace = stream_logger(stderr)
    client_options: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "tls": options.tls,
        "ssl_context": context,
        "local_hostname": options.local_domain,
        "sendto_domain": options.sendto_domain,
        "verb": options.verb,
        "trace": trace,
        "timeout": options.timeout,
        **_auth_options(options),
    }
    try:
        SMTPClient(**client_options).close()
    except CredentialsError:
        raise  # reported with its own status by _classify
    except LocalProtocolError as exc:
        raise _Failure(EX_USAGE, str(exc)) from None
    return client_options


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
