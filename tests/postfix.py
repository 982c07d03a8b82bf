"""A private, real Postfix instance on loopback for the interoperability tests.

The session-scoped fixture :func:`postfix` starts one Postfix for the whole test session from a
temporary directory of its own (configuration, queue, data, log) and stops it at the end; the
system's main.cf and master.cf are not used, and the system's Postfix is not started.  Load this module with
``pytest_plugins = ["postfix"]`` and mark the tests that use it ``@pytest.mark.postfix``.

No message ever leaves the machine: every transport is ``discard:``, ``mydestination`` is empty, and
the instance listens on 127.0.0.1 only, on ports the kernel chose.  Four smtpd services:

* ``smtp_port`` -- plain SMTP; STARTTLS offered (``smtpd_tls_security_level = may``); relaying is
  allowed from 127.0.0.0/8 (``permit_mynetworks``).  Recipients are checked against a regexp table:
  local parts starting ``refuse-`` get ``550 5.1.1``, ``later-`` get ``450 4.2.1`` and ``hold-``
  are accepted but kept in the hold queue, where :meth:`PostfixInstance.pop_held_message` reads them.
  ``message_size_limit`` is :data:`SIZE_LIMIT` here, so it announces ``SIZE 20000``.
* ``submission_port`` -- STARTTLS required (``smtpd_tls_security_level = encrypt``); relaying
  only after AUTH (``smtpd_relay_restrictions = permit_sasl_authenticated, reject``).
* ``submissions_port`` -- the same, with TLS from the first byte (``smtpd_tls_wrappermode``,
  RFC 8314 section 3.3).
* ``wrong_name_port`` -- like ``smtp_port`` but presenting a certificate, from the trusted test CA,
  for ``wrong.example`` only: a client checking ``127.0.0.1`` or ``localhost`` must refuse it.

AUTH is offered after TLS only (``smtpd_tls_auth_only``, RFC 4954 section 4), through Cyrus SASL
with a sasldb of two users (:data:`USERS`).  The users live in the realm :data:`SASL_REALM`, which
is also ``smtpd_sasl_local_domain``: a client logs in with the plain name ``alice``, and Postfix
qualifies it to ``alice@postfix.test`` before Cyrus looks it up.

Postfix logs to a file of the instance (``maillog_file``; there is no syslog on a test machine);
tests find what happened to their message by its queue ID with :meth:`PostfixInstance.wait_for_log`.
Debian packages needed: ``postfix``, ``sasl2-bin`` (saslpasswd2) and ``libsasl2-modules`` (the
PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5 and SCRAM mechanisms; the sasldb plugin comes with libsasl2-2).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

__all__ = [
    "HOSTNAME",
    "MECH_LIST",
    "POSTFIX",
    "SASL_REALM",
    "SIZE_LIMIT",
    "USERS",
    "PostfixError",
    "PostfixInstance",
    "postfix",
    "queue_id_of",
    "running_postfix",
]

#: The ``postfix`` command; the fixture skips (or fails on CI) without it.
POSTFIX = Path("/usr/sbin/postfix")
_POSTCAT = Path("/usr/sbin/postcat")
_POSTSUPER = Path("/usr/sbin/postsuper")
_SASLPASSWD = Path("/usr/sbin/saslpasswd2")

_MISSING = "Postfix is not installed; .ci/run installs it"

#: ``myhostname`` of the instance: the name in its greeting and EHLO reply.
HOSTNAME = "mx.postfix.test"

#: The Cyrus realm of the SASL users, and ``smtpd_sasl_local_domain``.
SASL_REALM = "postfix.test"

#: The SASL users, name to password.
USERS: Mapping[str, str] = MappingProxyType({"alice": "alice-Pa55word", "bob": "bob-s3cret-PW"})

#: What the instance lets Cyrus offer: every mechanism installed here that verifies a password
#: stored in sasldb.  Left out: ANONYMOUS (no password at all), NTLM (obsolete, and no client here
#: to check it with), GSSAPI and OTP (need other databases, and are not installed).
MECH_LIST = (
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "DIGEST-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-224",
    "SCRAM-SHA-256",
    "SCRAM-SHA-384",
    "SCRAM-SHA-512",
)

#: ``message_size_limit`` of the plain port (announced as ``SIZE 20000``).
SIZE_LIMIT = 20000

_LOOPBACK = "127.0.0.1"

# Recipient checks of the plain port (access(5) results in a regexp: table, which needs no postmap).
# The enhanced status code in the text becomes the reply's (RFC 3463).
_RECIPIENT_ACCESS = """\
/^refuse-[^@]*@/    550 5.1.1 refused by the test access table
/^later-[^@]*@/     450 4.2.1 deferred by the test access table
/^hold-[^@]*@/      HOLD kept for inspection by the test suite
"""

# How long to wait for the instance to come up, for a port to accept, and between log polls.
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_REAP_TIMEOUT = 5.0
_POLL = 0.02

_QUEUED_AS = re.compile(r"queued as ([0-9A-Za-z]+)")


class PostfixError(RuntimeError):
    """The private instance could not be set up, started or stopped; the message has the details."""


def queue_id_of(reply_text: str) -> str:
    """The queue ID in the text of Postfix's reply to the end of the data.

    Args:
        reply_text: e.g. ``"2.0.0 Ok: queued as 4XyZ1234"``.

    Returns:
        The queue ID (``"4XyZ1234"``).

    Raises:
        AssertionError: the text holds none.
    """
    match = _QUEUED_AS.search(reply_text)
    if match is None:
        raise AssertionError(f"no queue ID in Postfix's reply {reply_text!r}")
    return match.group(1)


@dataclass(kw_only=True)
class PostfixInstance:
    """A running private Postfix.

    Attributes:
        host: the address every service listens on, ``"127.0.0.1"``.
        smtp_port: plain SMTP, STARTTLS optional, relay for loopback clients, SIZE 20000.
        submission_port: STARTTLS required, relay only after AUTH.
        submissions_port: implicit TLS, relay only after AUTH.
        wrong_name_port: like ``smtp_port``, with a certificate for ``wrong.example`` only.
        users: SASL user name to password.
        realm: the SASL realm the users live in (clients send the plain name).
        mechanisms: the SASL mechanisms the submission port advertises after STARTTLS, as read
            from a real EHLO reply, in the server's order.
        directory: the instance directory (``etc``, ``queue``, ``data``, ``maillog``).
        config_directory: its ``config_directory``.
        log_file: the ``maillog_file``.
    """

    host: str
    smtp_port: int
    submission_port: int
    submissions_port: int
    wrong_name_port: int
    users: Mapping[str, str]
    realm: str
    directory: Path
    mechanisms: tuple[str, ...] = ()
    config_directory: Path = field(init=False)
    log_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config_directory = self.directory / "etc"
        self.log_file = self.directory / "maillog"

    # --- the log ------------------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything Postfix has logged so far (since :meth:`clear_log`)."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_position(self) -> int:
        """The current length of the log, to pass as ``since`` to :meth:`wait_for_log`."""
        return len(self.log_text())

    def wait_for_log(self, pattern: str, *, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """Wait until a log line matches a regular expression, and return the match.

        Postfix's daemons log through postlogd, so a line may appear a moment after the SMTP reply
        that it explains; the log is polled until it does.

        Args:
            pattern: searched in each line (:func:`re.search`; ``^`` and ``$`` anchor to the line).
            timeout: seconds to wait.
            since: look only at the log after this position (from :meth:`log_position`).

        Returns:
            The match in the first matching line.

        Raises:
            AssertionError: no line matched in time; the message shows the end of the log.
        """
        return self._wait(pattern, timeout=timeout, since=since)[0]

    def _wait(self, pattern: str, *, timeout: float, since: int) -> tuple[re.Match[str], int]:
        # The match and the log position just after its line.
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            position = since
            for line in text[since:].splitlines(keepends=True):
                position += len(line)
                # Only whole lines: postlogd may be halfway through writing the last one.
                match = regex.search(line.rstrip("\n")) if line.endswith("\n") else None
                if match is not None:
                    return match, position
            if time.monotonic() >= deadline:
                tail = "\n".join(text[since:].splitlines()[-40:])
                raise AssertionError(f"no Postfix log line matched {pattern!r} in {timeout} s; log:\n{tail}")
            time.sleep(_POLL)

    def connection_of(self, pattern: str, *, timeout: float = 10.0, since: int = 0) -> dict[str, str]:
        """The command counts of the connection that a log line matching ``pattern`` is about.

        The line must name the client with its port (``localhost[127.0.0.1]:PORT``, which every
        smtpd line does here: ``smtpd_client_port_logging``).  When that connection ends, Postfix
        logs e.g. ``disconnect from localhost[127.0.0.1]:PORT ehlo=1 mail=1 rcpt=0/1 data=0/1
        quit=1 commands=4/6`` -- per command, how many succeeded out of how many were sent.

        Args:
            pattern: a regular expression matching one line about the connection, e.g.
                ``": QUEUEID: client="`` or the ``reject:`` line of a recipient.
            timeout: seconds to wait for each of the two lines.
            since: look only at the log after this position.

        Returns:
            The counts, e.g. ``{"ehlo": "1", "mail": "1", "rcpt": "0/1", ..., "commands": "4/6"}``.
        """
        match, position = self._wait(pattern, timeout=timeout, since=since)
        port = re.search(rf"\[{re.escape(self.host)}\]:(\d+)", match.string)
        if port is None:
            raise AssertionError(f"no client port in the log line {match.string!r}")
        client = re.escape(port.group(0))
        # The first disconnect of that client port after the line: ports are reused, but not
        # while the connection is open.
        end, _ = self._wait(rf"\bdisconnect from [^ ]*{client}(?: (.*))?$", timeout=timeout, since=position)
        return dict(item.split("=", 1) for item in (end.group(1) or "").split())

    def queue_connection(self, queue_id: str, *, timeout: float = 10.0) -> dict[str, str]:
        """The command counts of the connection that brought the message ``queue_id``."""
        return self.connection_of(rf": {queue_id}: client=", timeout=timeout)

    def lines_of(self, queue_id: str) -> list[str]:
        """The log lines about one message (those with ``QUEUE_ID:`` after the program name)."""
        marker = f": {queue_id}: "
        return [line for line in self.log_text().splitlines() if marker in line]

    def wait_for_delivery(self, queue_id: str, recipient_count: int, *, timeout: float = 10.0) -> list[str]:
        """Wait until the message ``queue_id`` was delivered (discarded) to that many recipients.

        Args:
            queue_id: from the reply to the end of the data (:func:`queue_id_of`).
            recipient_count: how many ``status=sent`` lines to expect.
            timeout: seconds to wait.

        Returns:
            The ``status=sent`` lines, once the queue manager has removed the message.

        Raises:
            AssertionError: that did not happen in time, or some delivery had another status.
        """
        # qmgr logs "removed" after the last recipient's delivery record.
        self.wait_for_log(rf": {queue_id}: removed$", timeout=timeout)
        lines = self.lines_of(queue_id)
        sent = [line for line in lines if "status=sent" in line]
        other = [line for line in lines if "status=" in line and "status=sent" not in line]
        assert not other, f"deliveries of {queue_id} that failed: {other}"
        assert len(sent) == recipient_count, f"{len(sent)} deliveries of {queue_id}, not {recipient_count}"
        return sent

    def accepted_queue_ids(self) -> list[str]:
        """The queue IDs of every message Postfix has accepted (cleanup finished it), in order."""
        ids = []
        for line in self.log_text().splitlines():
            match = re.search(r"/cleanup\[\d+\]: ([0-9A-Za-z]+): message-id=", line)
            if match is not None:
                ids.append(match.group(1))
        return ids

    def clear_log(self) -> None:
        """Empty the log (postlogd appends, so later lines start at position 0)."""
        with self.log_file.open("r+b") as log:
            log.truncate(0)

    # --- the queue ----------------------------------------------------------------------------------

    def pop_held_message(self, queue_id: str) -> bytes:
        """The content (headers and body) of a message in the hold queue; the message is deleted.

        Postfix stores text lines without their line endings; :program:`postcat` prints each with
        LF.  The first header is the ``Received:`` field Postfix prepended.

        Args:
            queue_id: the message, sent to a ``hold-`` recipient on the plain port.

        Returns:
            The message as postcat shows it.
        """
        config = ["-c", str(self.config_directory)]
        shown = _run([_POSTCAT, *config, "-h", "-b", "-q", queue_id])
        _run([_POSTSUPER, *config, "-d", queue_id])
        return shown.stdout


# --- setting up the instance -----------------------------------------------------------------------


def _run(
    argv: list[Any], *, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    # Every Postfix command of this module, with its output captured for the error message.
    result = subprocess.run(
        [str(arg) for arg in argv], input=stdin, capture_output=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise PostfixError(
            f"{' '.join(map(str, argv))} exited with {result.returncode}:\n"
            + result.stdout.decode(errors="replace")
            + result.stderr.decode(errors="replace")
        )
    return result


def _free_ports(count: int) -> list[int]:
    # Ports the kernel chose on loopback.  Postfix binds them itself, a moment after they are
    # released here; should another process take one meanwhile, startup fails and is retried.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((_LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _main_cf(directory: Path) -> str:
    etc = directory / "etc"
    return f"""\
# The private Postfix instance of the smtp-sansio test suite (written by tests/postfix.py).
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {directory / "queue"}
data_directory = {directory / "data"}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {directory / "maillog"}
maillog_file_prefixes = {directory}

myhostname = {HOSTNAME}
mydomain = postfix.test
myorigin = $myhostname
smtpd_banner = $myhostname ESMTP test instance
inet_interfaces = {_LOOPBACK}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8

# Nothing is local, nothing is relayed anywhere: every message is accepted and then discarded.
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
default_transport = discard:
relay_transport = discard:
local_transport = discard:
virtual_transport = discard:
notify_classes =
smtputf8_enable = yes

smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
# Tests refuse recipients on purpose: no penalty sleep, no disconnect after a few errors.
smtpd_error_sleep_time = 0s
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
in_flow_delay = 0s
smtpd_timeout = 30s
smtpd_client_port_logging = yes
# Strict about what a client sends, so that the tests notice a client that is not: no bare LF in
# a command or in the data, even from loopback (RFC 5321 section 2.3.8; "reject", because "yes"
# means "normalize", which accepts bare LF), and no pipelining where RFC 2920 does not allow it
# (before the greeting, after EHLO in the same packet, ...): either ends the connection.
smtpd_forbid_bare_newline = reject
smtpd_forbid_bare_newline_exclusions =
smtpd_forbid_unauth_pipelining = yes

smtpd_tls_security_level = may
smtpd_tls_chain_files = {etc / "tls" / "server-key.pem"}, {etc / "tls" / "server-chain.pem"}
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes

smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
smtpd_sasl_local_domain = {SASL_REALM}
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_tls_auth_only = yes
broken_sasl_auth_clients = no
"""


def _master_cf(directory: Path, smtp: int, submission: int, submissions: int, wrong_name: int) -> str:
    etc = directory / "etc"
    # Written from scratch rather than copied from the system, so the instance does not depend on
    # the distribution's file; chroot (column 5) is off everywhere: the chroot would need copies
    # of the sasldb, the certificates and the C library's files.
    services = f"""\
# service type  private unpriv  chroot  wakeup  maxproc command
{_LOOPBACK}:{smtp} inet n - n - - smtpd
  -o syslog_name=postfix/smtp
  -o message_size_limit={SIZE_LIMIT}
  -o smtpd_recipient_restrictions=check_recipient_access,regexp:{etc / "recipient_access"}
{_LOOPBACK}:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{_LOOPBACK}:{submissions} inet n - n - - smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{_LOOPBACK}:{wrong_name} inet n - n - - smtpd
  -o syslog_name=postfix/wrongname
  -o smtpd_tls_chain_files={etc / "tls" / "wrong-key.pem"},{etc / "tls" / "wrong-chain.pem"}
"""
    internal = [
        ("cleanup", "unix", "n", "-", "0", "cleanup"),
        ("qmgr", "unix", "n", "300", "1", "qmgr"),
        ("tlsmgr", "unix", "-", "1000?", "1", "tlsmgr"),
        ("rewrite", "unix", "-", "-", "-", "trivial-rewrite"),
        ("bounce", "unix", "-", "-", "0", "bounce"),
        ("defer", "unix", "-", "-", "0", "bounce"),
        ("trace", "unix", "-", "-", "0", "bounce"),
        ("verify", "unix", "-", "-", "1", "verify"),
        ("flush", "unix", "n", "1000?", "0", "flush"),
        ("proxymap", "unix", "-", "-", "-", "proxymap"),
        ("proxywrite", "unix", "-", "-", "1", "proxymap"),
        ("showq", "unix", "n", "-", "-", "showq"),
        ("error", "unix", "-", "-", "-", "error"),
        ("retry", "unix", "-", "-", "-", "error"),
        ("discard", "unix", "-", "-", "-", "discard"),
        ("anvil", "unix", "-", "-", "1", "anvil"),
        ("scache", "unix", "-", "-", "1", "scache"),
        ("postlog", "unix-dgram", "n", "-", "1", "postlogd"),
    ]
    lines = [
        f"{name} {kind} {private} - n {wakeup} {maxproc} {command}"
        for name, kind, private, wakeup, maxproc, command in internal
    ]
    return services + "\n".join(lines) + "\n"


def _sasl_conf(directory: Path) -> str:
    # Debian's smtpd reads $config_directory/sasl/smtpd.conf (smtpd_sasl_path "smtpd" + ".conf");
    # without this file Cyrus would use /etc/sasldb2 and every AUTH would fail.
    return f"""\
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: {directory / "etc" / "sasldb2"}
mech_list: {" ".join(MECH_LIST)}
"""


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    path.chmod(mode)
    # Postfix reads main.cf again and again, 300 ms apart, while its modification time is too
    # recent (it might still be being written); that took seconds per command here, whose file
    # system clock runs ahead.  Files dated a minute ago are read at once.
    past = time.time() - 60
    os.utime(path, (past, past))


def _write_tls(etc: Path, stem: str, cert: Any) -> None:
    # The key readable by root only (smtpd loads it before dropping privileges), the chain by all.
    _write(etc / "tls" / f"{stem}-key.pem", cert.private_key_pem.bytes(), 0o600)
    _write(etc / "tls" / f"{stem}-chain.pem", b"".join(blob.bytes() for blob in cert.cert_chain_pems))


def _build(directory: Path, certs: Any, ports: list[int]) -> None:
    # The instance directory must be traversable by the postfix user.
    directory.chmod(0o755)
    etc = directory / "etc"
    _write(etc / "main.cf", _main_cf(directory))
    _write(etc / "master.cf", _master_cf(directory, *ports))
    _write(etc / "recipient_access", _RECIPIENT_ACCESS)
    _write(etc / "sasl" / "smtpd.conf", _sasl_conf(directory))
    _write_tls(etc, "server", certs.ca.issue_cert("localhost", _LOOPBACK))
    _write_tls(etc, "wrong", certs.wrong_host)
    (directory / "queue").mkdir(mode=0o755)
    data = directory / "data"
    data.mkdir(mode=0o700)
    shutil.chown(data, "postfix", "postfix")
    # The log exists before postlogd opens it, so that log_text() never races its creation.
    _write(directory / "maillog", b"", 0o644)

    sasldb = etc / "sasldb2"
    for user, password in USERS.items():
        _run([_SASLPASSWD, "-p", "-c", "-f", sasldb, "-u", SASL_REALM, user], stdin=password.encode())
    # smtpd runs as postfix: it must read the database, and nobody else.
    shutil.chown(sasldb, "root", "postfix")
    sasldb.chmod(0o640)


def _check(config: Path) -> None:
    # "postfix check" warns about every permission or configuration problem it sees; any warning
    # here is a mistake of this module, better reported now than as a mysterious test failure.
    result = _run([POSTFIX, "-c", config, "check"], check=False)
    output = (result.stdout + result.stderr).decode(errors="replace").strip()
    if result.returncode != 0 or output:
        raise PostfixError(f"postfix check of {config} failed:\n{output}")


def _wait_until_listening(port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection((_LOOPBACK, port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise PostfixError(f"Postfix does not accept connections on port {port}: {exc}") from exc
            time.sleep(_POLL)


def _advertised_mechanisms(port: int, certs: Any) -> tuple[str, ...]:
    # Read from the server itself, after STARTTLS as a client would (smtplib as an independent
    # client: this checks the setup, not the project's code).
    with smtplib.SMTP(_LOOPBACK, port, local_hostname="fixture.test", timeout=10) as client:
        client.starttls(context=certs.client_context())
        client.ehlo()
        return tuple(client.esmtp_features.get("auth", "").split())


def _master_pid(directory: Path) -> int | None:
    try:
        text = (directory / "queue" / "pid" / "master.pid").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie would still answer; Postfix's master is not our child (postfix-script forks it).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _instance_pids(config: Path) -> list[int]:
    # Every process of this instance: master passes MAIL_CONFIG on to all its children.
    marker = f"MAIL_CONFIG={config}".encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes() + b"\0"
        except OSError:
            continue
        if marker in environ and _alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _stop(directory: Path) -> None:
    config = directory / "etc"
    pid = _master_pid(directory)
    if pid is not None and _alive(pid):
        _run([POSTFIX, "-c", config, "stop"], check=False)
    # "postfix stop" signals the master, which signals its children; wait for all of them, so
    # that no process of the instance outlives the session.
    deadline = time.monotonic() + _STOP_TIMEOUT
    while pids := _instance_pids(config):
        if time.monotonic() > deadline:
            for left in pids:  # our own instance's processes only, by PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(left, signal.SIGKILL)
            raise PostfixError(f"Postfix processes {pids} did not stop in {_STOP_TIMEOUT} s")
        time.sleep(_POLL)
    # The master daemonized, so its parent is init, which reaps it when it gets round to it
    # (seconds, on some machines).  Wait for that too, within reason: until then it shows up in
    # process lists, as a zombie that holds nothing.
    if pid is not None:
        reaped_by = time.monotonic() + _REAP_TIMEOUT
        while Path(f"/proc/{pid}").exists() and time.monotonic() < reaped_by:
            time.sleep(_POLL)


def _log_tail(directory: Path, lines: int = 60) -> str:
    try:
        text = (directory / "maillog").read_text(errors="replace")
    except FileNotFoundError:
        return "(no maillog)"
    return "\n".join(text.splitlines()[-lines:]) or "(maillog empty)"


@contextlib.contextmanager
def running_postfix(certs: Any, *, attempts: int = 3) -> Iterator[PostfixInstance]:
    """Set up and start a private Postfix for the duration of a ``with`` block.

    Args:
        certs: the suite's :class:`~servers.CertBundle`; the server certificate is issued by
            ``certs.ca`` for ``localhost`` and ``127.0.0.1``.
        attempts: how often to try with fresh ports, should one be taken before Postfix binds it.

    Yields:
        The running instance; it is stopped (and its directory removed) afterwards, also when
        the block raises.

    Raises:
        PostfixError: the instance could not be set up or started; the message holds the log.
    """
    for attempt in range(1, attempts + 1):
        directory = Path(tempfile.mkdtemp(prefix="smtp-sansio-postfix-"))
        try:
            ports = _free_ports(4)
            _build(directory, certs, ports)
            config = directory / "etc"
            _check(config)
            started = _run([POSTFIX, "-c", config, "start"], check=False)
            deadline = time.monotonic() + _START_TIMEOUT
            if started.returncode != 0:
                output = (started.stdout + started.stderr).decode(errors="replace")
                raise PostfixError(f"postfix start failed (exit status {started.returncode}):\n{output}")
            for port in ports:
                _wait_until_listening(port, deadline)
            instance = PostfixInstance(
                host=_LOOPBACK,
                smtp_port=ports[0],
                submission_port=ports[1],
                submissions_port=ports[2],
                wrong_name_port=ports[3],
                users=USERS,
                realm=SASL_REALM,
                directory=directory,
            )
            instance.mechanisms = _advertised_mechanisms(instance.submission_port, certs)
        except BaseException as exc:
            with contextlib.suppress(PostfixError):
                _stop(directory)
            tail = _log_tail(directory)
            shutil.rmtree(directory, ignore_errors=True)
            bind_failed = "Address already in use" in tail
            if isinstance(exc, PostfixError) and bind_failed and attempt < attempts:
                continue
            if isinstance(exc, PostfixError):
                raise PostfixError(f"{exc}\nmaillog:\n{tail}") from None
            raise
        try:
            yield instance
        finally:
            try:
                _stop(directory)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
        return


def _unavailable(reason: str) -> None:
    # On CI the suite must prove it ran against Postfix: a missing server is a failure there.
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postfix(certs: Any) -> Iterator[PostfixInstance]:
    """The private Postfix instance of the test session (see the module docstring)."""
    if not POSTFIX.exists():
        _unavailable(_MISSING)
    if not _SASLPASSWD.exists() or not glob.glob("/usr/lib/*/sasl2/libplain.so*"):
        _unavailable(
            "Cyrus SASL tools or modules are missing (sasl2-bin, libsasl2-modules); .ci/run installs them"
        )
    if os.geteuid() != 0:
        _unavailable("a private Postfix instance must be started as root")
    try:
        with running_postfix(certs) as instance:
            yield instance
    except PostfixError as exc:
        pytest.fail(str(exc), pytrace=False)
