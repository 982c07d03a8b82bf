"""The servers the benchmark runs against, each a context manager that always stops what it started.

* :func:`aiosmtpd_server` -- aiosmtpd's Controller in a thread of this process (so it shares the
  client's interpreter lock, as it does in the project's tests).  It does not offer PIPELINING.
* :func:`sink_server` -- the sink of :mod:`_sink` in a child process, offering PIPELINING.
* :func:`delayed_link` -- the delay proxy of :mod:`_proxy` in a child process, in front of a port.
* :func:`smtp_sink_server` -- Postfix's ``smtp-sink`` (C), offering PIPELINING but not CHUNKING.
  It reports nothing per connection: its rows are not cross-checked and count no round trips.

Everything listens on 127.0.0.1, on a port the kernel chose.  Each server reports, per client
connection, the statistics of :mod:`_sink` (bursts, messages, recipients); :meth:`Server.collect`
returns the next report.

Child processes are started with the ``spawn`` method (a fork of a process running threads is not
safe), ignore Ctrl-C (the parent handles it and stops them), and exit as soon as the parent closes
its end of their control pipe -- which also happens when the parent dies, so none can be left
behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from _proxy import serve_delay_proxy
from _sink import SESSION_VERBS, serve_sink

__all__ = [
    "SMTP_SINK",
    "Server",
    "aiosmtpd_server",
    "delayed_link",
    "measure_rtt",
    "sink_server",
    "smtp_sink_server",
]

#: Postfix's smtp-sink, when installed.
SMTP_SINK = shutil.which("smtp-sink") or next(
    (path for path in ("/usr/sbin/smtp-sink", "/usr/bin/smtp-sink") if os.access(path, os.X_OK)), None
)

LOOPBACK = "127.0.0.1"
_STARTUP_TIMEOUT = 30.0
_REPORT_TIMEOUT = 30.0


@dataclass
class Server:
    """A running server: where to connect, and how to get its per-connection reports."""

    name: str
    host: str
    port: int
    _next_report: Callable[[float], dict[str, int]] = field(repr=False)
    #: Whether the server reports each connection (messages, recipients, bursts).
    counts: bool = True

    def collect(self, *, min_bursts: int = 1) -> dict[str, int]:
        """The statistics of the next client connection that has ended.

        Connections that sent fewer than ``min_bursts`` bursts (aiosmtpd's readiness probe, which
        connects and sends nothing) are skipped.

        Raises:
            TimeoutError: no connection ended within 30 seconds.
        """
        deadline = time.monotonic() + _REPORT_TIMEOUT
        while True:
            report = self._next_report(max(0.0, deadline - time.monotonic()))
            if report["transaction_bursts"] + report["session_bursts"] >= min_bursts:
                return report


# --- child processes ---------------------------------------------------------------------------------


def _child_main(target: Callable[..., None], control: Any, *args: Any) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target(control, *args)


@contextlib.contextmanager
def _child_server(name: str, target: Callable[..., None], *args: Any) -> Iterator[Server]:
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(target=_child_main, args=(target, child_end, *args), name=name, daemon=True)
    # Started with Ctrl-C ignored, which the child inherits from its first instruction on: an
    # interrupt while it imports would otherwise print its traceback.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    child_end.close()
    try:
        if not parent_end.poll(_STARTUP_TIMEOUT):
            raise RuntimeError(f"{name} did not start within {_STARTUP_TIMEOUT:.0f} s")
        try:
            tag, port = parent_end.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError(f"{name} exited during start-up (exit code {process.exitcode})") from None
        if tag != "ready":
            raise RuntimeError(f"{name} sent {tag!r} instead of 'ready'")

        def next_report(timeout: float) -> dict[str, int]:
            if not parent_end.poll(timeout):
                raise TimeoutError(f"{name} reported no finished connection")
            report: dict[str, int] = parent_end.recv()
            return report

        yield Server(name=name, host=LOOPBACK, port=port, _next_report=next_report)
    finally:
        parent_end.close()  # the child sees end of file and returns
        process.join(5)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        process.close()


@contextlib.contextmanager
def sink_server() -> Iterator[Server]:
    """Run the pipelining sink in a child process."""
    with _child_server("sink", serve_sink) as server:
        yield server


@contextlib.contextmanager
def delayed_link(server: Server, *, one_way_delay: float) -> Iterator[Server]:
    """Put the delay proxy in front of ``server``; the result reports what ``server`` reports."""
    with _child_server("delay proxy", serve_delay_proxy, server.port, one_way_delay) as proxy:
        yield Server(
            name=f"{server.name} via {one_way_delay * 2000:.0f} ms link",
            host=proxy.host,
            port=proxy.port,
            _next_report=server._next_report,
        )


def measure_rtt(server: Server, *, samples: int = 7) -> float:
    """The median time, in seconds, of a NOOP and its reply (the session's bursts are collected)."""
    times = []
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        reader.readline()  # the greeting
        for _ in range(samples):
            start = time.perf_counter()
            sock.sendall(b"NOOP\r\n")
            reader.readline()
            times.append(time.perf_counter() - start)
        sock.sendall(b"QUIT\r\n")
        reader.readline()
        reader.close()
    server.collect()
    times.sort()
    return times[len(times) // 2]


# --- Postfix's smtp-sink ------------------------------------------------------------------------------


@contextlib.contextmanager
def smtp_sink_server() -> Iterator[Server]:
    """Run Postfix's smtp-sink on a free loopback port (``-u nobody`` when running as root)."""
    if SMTP_SINK is None:
        raise RuntimeError("smtp-sink (from the postfix package) is not installed")
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    command = [SMTP_SINK, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"{LOOPBACK}:{port}", "256"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while True:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"smtp-sink did not start: {error.strip()}")
            time.sleep(0.05)

        def no_report(timeout: float) -> dict[str, int]:
            raise RuntimeError("smtp-sink reports nothing")

        yield Server(name="smtp-sink", host=LOOPBACK, port=port, _next_report=no_report, counts=False)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


# --- aiosmtpd ----------------------------------------------------------------------------------------


def _counting_smtp_class() -> type[Any]:
    from aiosmtpd.smtp import SMTP

    class CountingSMTP(SMTP):  # type: ignore[misc]
        """aiosmtpd's SMTP protocol, counting bursts the way the sink does."""

        def __init__(self, handler: Any, *, reports: queue.Queue[dict[str, int]], **kwargs: Any) -> None:
            super().__init__(handler, **kwargs)
            self.bench_reports = reports
            self.bench_replied = True
            self.bench = {
                "transaction_bursts": 0,
                "session_bursts": 0,
                "messages": 0,
                "recipients": 0,
                "bytes_received": 0,
                "reads": 0,
            }

        def data_received(self, data: bytes) -> None:
            self.bench["reads"] += 1
            self.bench["bytes_received"] += len(data)
            if self.bench_replied:
                # Message data never starts with a session verb here: the benchmark's messages
                # start with a header field.
                self.bench_replied = False
                verb = bytes(data[:4]).upper()
                key = "session_bursts" if verb in SESSION_VERBS else "transaction_bursts"
                self.bench[key] += 1
            super().data_received(data)

        async def push(self, status: Any) -> None:
            self.bench_replied = True
            await super().push(status)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            self.bench_reports.put(dict(self.bench))

    return CountingSMTP


class _DiscardingHandler:
    """Accept every message and keep nothing but counts."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        server.bench["messages"] += 1
        server.bench["recipients"] += len(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


@contextlib.contextmanager
def aiosmtpd_server() -> Iterator[Server]:
    """Run aiosmtpd's Controller in a thread of this process."""
    from aiosmtpd.controller import Controller

    smtp_class = _counting_smtp_class()
    reports: queue.Queue[dict[str, int]] = queue.Queue()
    # Bound here, so that the port is taken before the controller starts: no window in which the
    # kernel could give a port found free to someone else.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, 0))
    listener.listen(64)
    port = listener.getsockname()[1]

    class ListenerController(Controller):  # type: ignore[misc]
        def factory(self) -> Any:
            return smtp_class(self.handler, reports=reports, **self.SMTP_kwargs)

        def _create_server(self) -> Any:
            return self.loop.create_server(self._factory_invoker, sock=listener, ssl=self.ssl_context)

    controller = ListenerController(
        _DiscardingHandler(), hostname=LOOPBACK, port=port, server_hostname="aiosmtpd.bench.test",
        ready_timeout=_STARTUP_TIMEOUT,
    )

    def next_report(timeout: float) -> dict[str, int]:
        try:
            return reports.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("aiosmtpd reported no finished connection") from None

    try:
        controller.start()
        yield Server(name="aiosmtpd", host=LOOPBACK, port=port, _next_report=next_report)
    finally:
        with contextlib.suppress(AssertionError):  # stop() asserts the loop is still running
            controller.stop()
        listener.close()
