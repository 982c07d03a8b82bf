"""Workload (c): one large message, its throughput and the client's peak memory.

Each client sends one message of SIZE octets (a file of 78-octet CRLF lines behind a short header
section) to the sink, in a fresh Python process of its own, so that the peak resident set size of
that process is the client's alone.  The process records its peak RSS once the client library is
imported, before the file is opened (the *baseline*), and again after the message was accepted: the
difference is the **growth**, what sending the message cost in memory.

* ``sansio sync`` / ``sansio asyncio`` / ``sansio trio``: the adapter's ``send_message`` with the open
  file: it is read ``chunk_size`` (64 KiB) octets at a time and sent with BDAT (the sink offers
  CHUNKING); ``sansio sync DATA`` is the same with ``chunking=False``, dot-stuffed DATA.
* ``smtplib`` and ``aiosmtplib`` take the message as one ``bytes`` (or ``str``) value: the file is
  read whole first, as a caller of theirs must, and that is part of their growth.
* ``smtpproto`` takes only an :class:`~email.message.EmailMessage`: the file is parsed into one.
* ``smtp-source`` (Postfix, C) makes its own message of SIZE octets of body (``-l``).

Peak RSS is ``VmHWM`` of ``/proc/self/status`` in the Python children (it starts afresh at exec).
For smtp-source, ``/proc/PID/status`` is read every millisecond while it runs (the kernel's
``ru_maxrss`` would include the RSS of the process it was forked from): its growth is the last
``VmHWM`` seen minus the first one seen after exec, so a peak in its last millisecond could be
missed.

The time is from opening the file (or starting smtp-source) to the reply to the end of the data.

Run as a script, this module is the child: ``_large.py CLIENT HOST PORT PATH``, printing one JSON
object.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LARGE_CLIENTS", "LargeResult", "format_large_table", "run_large", "write_message"]

SENDER = "sender@bench.example"
RECIPIENT = "rcpt000@bench.example"
LOCAL_HOSTNAME = "client.bench.test"
_TIMEOUT = 600.0

#: The clients of workload (c), in the order of the table.
LARGE_CLIENTS = (
    "sansio sync", "sansio sync DATA", "sansio asyncio", "sansio trio", "smtplib", "aiosmtplib", "smtpproto",
    "smtp-source",
)

_LINE = b"x" * 76 + b"\r\n"


def write_message(path: Path, size: int) -> None:
    """Write a message of about ``size`` octets of CRLF lines to ``path``, never holding it whole."""
    header = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: large\r\n"
        "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMessage-ID: <large@bench.example>\r\n\r\n"
    ).encode()
    block = _LINE * 1024
    with path.open("wb") as file:
        file.write(header)
        written = len(header)
        while written + len(block) <= size:
            file.write(block)
            written += len(block)
        while written + len(_LINE) <= size:
            file.write(_LINE)
            written += len(_LINE)


@dataclass
class LargeResult:
    client: str
    size: int
    installed: bool
    elapsed: float = 0.0
    baseline_kib: int = 0
    peak_kib: int = 0
    error: str | None = None

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.baseline_kib) / 1024

    @property
    def throughput(self) -> float:
        """MB/s (10**6 octets per second)."""
        return self.size / self.elapsed / 1e6


def _installed(client: str) -> bool:
    import importlib.util

    from _clients import SMTP_SOURCE

    module = {"aiosmtplib": "aiosmtplib", "smtpproto": "smtpproto", "sansio trio": "trio"}.get(client)
    if client == "smtp-source":
        return SMTP_SOURCE is not None
    return module is None or importlib.util.find_spec(module) is not None


def _run_child(command: Sequence[str]) -> tuple[bytes, int]:
    # The child's output and its peak RSS in KiB (from wait4, which works for any program, but
    # counts what the forking process had: fork only from a small process).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    # The output is one short line, so reading it to the end cannot block the child.
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    process.stderr.close()
    if process.returncode != 0:
        reason = err.decode(errors="replace")[-800:]
        raise RuntimeError(f"{command[0]} exited with {process.returncode}: {reason}")
    return out, usage.ru_maxrss


def run_large(client: str, host: str, port: int, path: Path, size: int) -> LargeResult:
    """Send the message at ``path`` (``size`` octets) with ``client`` in a process of its own."""
    if not _installed(client):
        return LargeResult(client, size, installed=False)
    # smtp-source is started by a Python child too, given the size instead of the file.
    target = str(size) if client == "smtp-source" else str(path)
    out, _ = _run_child([sys.executable, __file__, client, host, str(port), target])
    report = json.loads(out)
    return LargeResult(client, size, True, report["elapsed"], report["baseline_kib"], report["peak_kib"])


def format_large_table(results: Sequence[LargeResult]) -> str:
    header = ("size", "client", "MB/s", "s", "peak RSS MiB", "growth MiB")
    rows = []
    for result in results:
        size = f"{result.size / 1e6:.0f} MB"
        if not result.installed:
            rows.append((size, result.client, "not installed", "", "", ""))
        elif result.error:
            rows.append((size, result.client, "failed", "", "", result.error[:40]))
        else:
            rows.append((size, result.client, f"{result.throughput:.1f}", f"{result.elapsed:.2f}",
                         f"{result.peak_kib / 1024:.1f}", f"{result.growth_mib:.1f}"))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.rjust(widths[i]) if i >= 2 else cell.ljust(widths[i])
                         for i, cell in enumerate(row)).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)])


# --- the child ----------------------------------------------------------------------------------------


def _peak_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - not Linux


def _smtp_source(host: str, port: int, size: int) -> dict[str, float]:
    from _clients import SMTP_SOURCE

    assert SMTP_SOURCE is not None

    command = [SMTP_SOURCE, "-s", "1", "-m", "1", "-l", str(size), "-f", SENDER, "-t", RECIPIENT,
               "-M", LOCAL_HOSTNAME, f"{host}:{port}"]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    seen: list[int] = []
    status_path = f"/proc/{process.pid}/status"
    while process.poll() is None:
        try:
            with open(status_path) as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            break
        if fields.get("Name", "").strip() == "smtp-source" and "VmHWM" in fields:
            seen.append(int(fields["VmHWM"].split()[0]))
        time.sleep(0.001)
    if process.wait() != 0:
        raise RuntimeError(f"smtp-source exited with {process.returncode}")
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "baseline_kib": seen[0] if seen else 0, "peak_kib": seen[-1] if seen else 0}


def _child(client: str, host: str, port: int, path: str) -> dict[str, float]:
    if client == "smtp-source":
        return _smtp_source(host, port, int(path))
    recipients = [RECIPIENT]
    options = {"tls": "none", "local_hostname": LOCAL_HOSTNAME, "timeout": _TIMEOUT}
    if client.startswith("sansio"):
        import smtp_sansio.adapters.asyncio as sansio_asyncio
        import smtp_sansio.adapters.sync as sansio_sync

        if client == "sansio trio":
            import trio

            import smtp_sansio.adapters.trio as sansio_trio
    elif client == "smtplib":
        import smtplib
    elif client == "aiosmtplib":
        import aiosmtplib
    elif client == "smtpproto":
        import email
        import email.policy

        from smtpproto.client import AsyncSMTPClient
    else:
        raise SystemExit(f"unknown client {client!r}")
    baseline = _peak_kib()
    start = time.perf_counter()
    if client in ("sansio sync", "sansio sync DATA"):
        with open(path, "rb") as file, sansio_sync.SMTPClient(
            host, port, chunking=client == "sansio sync", **options  # type: ignore[arg-type]
        ) as sync_client:
            sync_client.send_message(file, sender=SENDER, recipients=recipients)
    elif client == "sansio asyncio":
        async def with_asyncio() -> None:
            with open(path, "rb") as file:
                async with sansio_asyncio.SMTPClient(host, port, **options) as async_client:  # type: ignore[arg-type]
                    await async_client.send_message(file, sender=SENDER, recipients=recipients)

        asyncio.run(with_asyncio())
    elif client == "sansio trio":
        async def with_trio() -> None:
            with open(path, "rb") as file:
                async with sansio_trio.SMTPClient(host, port, **options) as trio_client:  # type: ignore[arg-type]
                    await trio_client.send_message(file, sender=SENDER, recipients=recipients)

        trio.run(with_trio)
    elif client == "smtplib":
        with open(path, "rb") as file:
            data = file.read()
        smtp = smtplib.SMTP(host, port, local_hostname=LOCAL_HOSTNAME, timeout=_TIMEOUT)
        try:
            smtp.sendmail(SENDER, recipients, data)
            smtp.quit()
        finally:
            smtp.close()
    elif client == "aiosmtplib":
        async def with_aiosmtplib() -> None:
            with open(path, "rb") as file:
                data = file.read()
            smtp = aiosmtplib.SMTP(hostname=host, port=port, local_hostname=LOCAL_HOSTNAME, start_tls=False,
                                   timeout=_TIMEOUT)
            await smtp.connect()
            try:
                await smtp.sendmail(SENDER, recipients, data)
                await smtp.quit()
            finally:
                smtp.close()

        asyncio.run(with_aiosmtplib())
    else:
        async def with_smtpproto() -> None:
            with open(path, "rb") as file:
                message = email.message_from_binary_file(file, policy=email.policy.default)
            proto = AsyncSMTPClient(host, port, domain=LOCAL_HOSTNAME, timeout=_TIMEOUT)
            async with proto.connect() as session:
                await session.send_message(message, sender=SENDER, recipients=recipients)  # type: ignore[arg-type]

        asyncio.run(with_smtpproto())
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "baseline_kib": baseline, "peak_kib": _peak_kib()}


if __name__ == "__main__":
    name, host_arg, port_arg, path_arg = sys.argv[1:5]
    print(json.dumps(_child(name, host_arg, int(port_arg), path_arg)))
