"""The clients compared, each sending a list of messages over one connection.

Every client is given the same prepared messages (bytes) and the same envelope, and is timed from
its first MAIL to its last reply: connecting, the greeting, EHLO and QUIT are outside the timed
loop, since they happen once per connection whatever the number of messages.

* ``sansio sync`` -- :class:`smtp_sansio.adapters.sync.SMTPClient` with ``tls="none"``,
  :meth:`~smtp_sansio.adapters.sync.SMTPClient.send_message` per message.  It pipelines MAIL, the
  RCPTs and DATA when the server offers PIPELINING, and uses BDAT when it offers CHUNKING.
* ``sansio sync batch``, ``sansio asyncio batch``, ``sansio trio batch`` -- each adapter's
  ``send_messages`` with the whole list: the next message's commands follow the previous message's
  data without waiting for its reply (pipelining across transactions).
* ``smtplib`` -- the standard library's :class:`smtplib.SMTP`, :meth:`~smtplib.SMTP.sendmail` per
  message.  It never pipelines.
* ``aiosmtplib`` -- :class:`aiosmtplib.SMTP` with STARTTLS off, ``sendmail`` per message, inside
  one :func:`asyncio.run`, when the package is installed.
* ``smtpproto`` -- :class:`smtpproto.client.AsyncSMTPClient` (a sans-IO core driven by AnyIO),
  ``send_message`` per message in one session, on asyncio.  It takes only an
  :class:`~email.message.EmailMessage`: the messages are parsed into one before the timer starts.
* ``smtp-source`` -- Postfix's load generator, written in C: ``smtp-source -d -s 1 -m COUNT -r
  RCPTS -l SIZE``, one connection for all the messages.  It makes its own messages (SIZE octets of
  body) and recipients, and is timed as a whole process, connection included: the practical limit
  of one connection.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import importlib.metadata
import importlib.util
import os
import resource
import shutil
import smtplib
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smtp_sansio import Envelope, OutgoingMessage, SendResult
from smtp_sansio.adapters.sync import SMTPClient

__all__ = ["CLIENTS", "SMTP_SOURCE", "Client", "Timing"]

#: Postfix's smtp-source, when installed.
SMTP_SOURCE = shutil.which("smtp-source") or next(
    (path for path in ("/usr/sbin/smtp-source", "/usr/bin/smtp-source") if os.access(path, os.X_OK)), None
)

LOCAL_HOSTNAME = "client.bench.test"
# Generous: a benchmark run must fail rather than hang, but never because the machine is busy.
_TIMEOUT = 120.0


@dataclass(frozen=True)
class Timing:
    """How long one connection's messages took: wall-clock seconds and the client thread's CPU seconds."""

    elapsed: float
    cpu: float


#: Sends ``messages`` to ``host:port`` over one connection; returns the seconds the sending took, by
#: the clock and in CPU time of the calling thread (a server thread in the same process not counted).
Runner = Callable[[str, int, Sequence[bytes], str, Sequence[str]], Timing]


class _Stopwatch:
    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.thread_time()

    def stop(self) -> Timing:
        return Timing(time.perf_counter() - self._wall, time.thread_time() - self._cpu)


@dataclass(frozen=True)
class Client:
    """One client under test."""

    name: str
    version: str | None  # None: not installed
    run: Runner | None

    @property
    def installed(self) -> bool:
        return self.run is not None


def _run_sansio(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    recipients = list(rcpts)
    with SMTPClient(host, port, tls="none", local_hostname=LOCAL_HOSTNAME, timeout=_TIMEOUT) as client:
        watch = _Stopwatch()
        for message in messages:
            client.send_message(message, sender=sender, recipients=recipients)
        return watch.stop()


def _outgoing(messages: Sequence[bytes], sender: str, rcpts: Sequence[str]) -> list[OutgoingMessage]:
    envelope = Envelope(sender=sender, recipients=tuple(rcpts))
    return [OutgoingMessage(envelope=envelope, data=message) for message in messages]


def _check_batch(name: str, outcomes: Sequence[object]) -> None:
    failed = [outcome for outcome in outcomes if not isinstance(outcome, SendResult)]
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} messages not accepted, the first: {failed[0]!r}")


def _run_sansio_batch(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    with SMTPClient(host, port, tls="none", local_hostname=LOCAL_HOSTNAME, timeout=_TIMEOUT) as client:
        watch = _Stopwatch()
        outcomes = client.send_messages(_outgoing(messages, sender, rcpts))
        timing = watch.stop()
    _check_batch("sansio sync batch", outcomes)
    return timing


def _run_sansio_asyncio_batch(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    from smtp_sansio.adapters.asyncio import SMTPClient as AsyncioClient

    async def main() -> Timing:
        client = AsyncioClient(host, port, tls="none", local_hostname=LOCAL_HOSTNAME, timeout=_TIMEOUT)
        async with client:
            watch = _Stopwatch()
            outcomes = await client.send_messages(_outgoing(messages, sender, rcpts))
            timing = watch.stop()
        _check_batch("sansio asyncio batch", outcomes)
        return timing

    return asyncio.run(main())


def _run_sansio_trio_batch(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    import trio

    from smtp_sansio.adapters.trio import SMTPClient as TrioClient

    async def main() -> Timing:
        client = TrioClient(host, port, tls="none", local_hostname=LOCAL_HOSTNAME, timeout=_TIMEOUT)
        async with client:
            watch = _Stopwatch()
            outcomes = await client.send_messages(_outgoing(messages, sender, rcpts))
            timing = watch.stop()
        _check_batch("sansio trio batch", outcomes)
        return timing

    return trio.run(main)


def _run_smtpproto(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    from smtpproto.client import AsyncSMTPClient

    recipients = list(rcpts)
    parsed = [email.message_from_bytes(m, policy=email.policy.default) for m in messages]

    async def main() -> Timing:
        client = AsyncSMTPClient(host, port, domain=LOCAL_HOSTNAME, timeout=_TIMEOUT)
        async with client.connect() as session:
            watch = _Stopwatch()
            for message in parsed:
                response = await session.send_message(message, sender=sender, recipients=recipients)  # type: ignore[arg-type]
                if response.is_error():
                    raise RuntimeError(f"smtpproto: {response}")
            return watch.stop()

    return asyncio.run(main())


def _run_smtp_source(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    assert SMTP_SOURCE is not None
    # -d: one connection for every message; -s 1: one session; -l: the body's length (headers are
    # smtp-source's own, about 150 octets); -r: recipients per message, numbered from the -t address.
    body = max(1, len(messages[0]) - 150) if messages else 1
    command = [
        SMTP_SOURCE, "-d", "-s", "1", "-m", str(len(messages)), "-r", str(len(rcpts)), "-l", str(body),
        "-f", sender, "-t", rcpts[0], "-M", LOCAL_HOSTNAME, f"{host}:{port}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=_TIMEOUT * 10)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(elapsed, cpu)


def _run_smtplib(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    recipients = list(rcpts)
    # Not smtplib's "with": on an interrupt its __exit__ sends QUIT in the middle of a transaction
    # and raises about the reply, hiding the interrupt.
    client = smtplib.SMTP(host, port, local_hostname=LOCAL_HOSTNAME, timeout=_TIMEOUT)
    try:
        client.ehlo()  # sendmail would say EHLO before its first MAIL: do it outside the timing
        watch = _Stopwatch()
        for message in messages:
            refused = client.sendmail(sender, recipients, message)
            if refused:
                raise RuntimeError(f"smtplib: recipients refused: {refused}")
        timing = watch.stop()
        client.quit()
    finally:
        client.close()
    return timing


def _run_aiosmtplib(
    host: str, port: int, messages: Sequence[bytes], sender: str, rcpts: Sequence[str]
) -> Timing:
    import aiosmtplib

    recipients = list(rcpts)

    async def main() -> Timing:
        client = aiosmtplib.SMTP(
            hostname=host, port=port, local_hostname=LOCAL_HOSTNAME, start_tls=False, timeout=_TIMEOUT
        )
        await client.connect()
        try:
            await client.ehlo()
            watch = _Stopwatch()
            for message in messages:
                refused, _ = await client.sendmail(sender, recipients, message)
                if refused:
                    raise RuntimeError(f"aiosmtplib: recipients refused: {refused}")
            timing = watch.stop()
            await client.quit()
        finally:
            client.close()
        return timing

    return asyncio.run(main())


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _clients() -> tuple[Client, ...]:
    import platform

    def optional(name: str, module: str, runner: Runner) -> Client:
        found = importlib.util.find_spec(module) is not None
        return Client(name, _version(module) if found else None, runner if found else None)

    sansio = _version("smtp-sansio")
    trio_found = importlib.util.find_spec("trio") is not None
    return (
        Client("sansio sync", sansio, _run_sansio),
        Client("sansio sync batch", sansio, _run_sansio_batch),
        Client("sansio asyncio batch", sansio, _run_sansio_asyncio_batch),
        Client("sansio trio batch", sansio if trio_found else None,
               _run_sansio_trio_batch if trio_found else None),
        Client("smtplib", f"Python {platform.python_version()}", _run_smtplib),
        optional("aiosmtplib", "aiosmtplib", _run_aiosmtplib),
        optional("smtpproto", "smtpproto", _run_smtpproto),
        Client("smtp-source", "Postfix" if SMTP_SOURCE else None, _run_smtp_source if SMTP_SOURCE else None),
    )


#: The clients, in the order of the table; smtplib is the reference for the ratios.
CLIENTS = _clients()
