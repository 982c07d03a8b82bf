"""The clients compared, each sending a list of messages over one connection.

Every client is given the same prepared messages (bytes) and the same envelope, and is timed from
its first MAIL to its last reply: connecting, the greeting, EHLO and QUIT are outside the timed
loop, since they happen once per connection whatever the number of messages.

* ``smtp-sansio`` -- :class:`smtp_sansio.adapters.sync.SMTPClient` with ``tls="none"``,
  :meth:`~smtp_sansio.adapters.sync.SMTPClient.send_message` per message.  It pipelines MAIL, the
  RCPTs and DATA when the server offers PIPELINING.
* ``smtplib`` -- the standard library's :class:`smtplib.SMTP`, :meth:`~smtplib.SMTP.sendmail` per
  message.  It never pipelines.
* ``aiosmtplib`` -- :class:`aiosmtplib.SMTP` with STARTTLS off, ``sendmail`` per message, inside
  one :func:`asyncio.run`, when the package is installed.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import smtplib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smtp_sansio.adapters.sync import SMTPClient

__all__ = ["CLIENTS", "Client", "Timing"]

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

    aiosmtplib_found = importlib.util.find_spec("aiosmtplib") is not None
    return (
        Client("smtp-sansio", _version("smtp-sansio"), _run_sansio),
        Client("smtplib", f"Python {platform.python_version()}", _run_smtplib),
        Client(
            "aiosmtplib",
            _version("aiosmtplib") if aiosmtplib_found else None,
            _run_aiosmtplib if aiosmtplib_found else None,
        ),
    )


#: The clients, in the order of the table; smtplib is the reference for the ratios.
CLIENTS = _clients()
