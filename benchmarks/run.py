"""Compare smtp-sansio's adapters with smtplib, aiosmtplib, smtpproto and smtp-source, side by side.

Run from the repository root::

    make bench                                    # = .venv/bin/python benchmarks/run.py (minutes)
    .venv/bin/python benchmarks/run.py --quick    # fewer messages and repetitions (about a minute)
    .venv/bin/python benchmarks/run.py --json results.json

Every client sends the same messages, over one connection per repetition, to the same servers:
aiosmtpd (in a thread, no PIPELINING), a fast sink offering PIPELINING and CHUNKING (in a child
process), Postfix's smtp-sink, and the sink behind an emulated 20 ms round-trip link.  The first
table shows messages per second (the median of the repetitions), the round trips per message
counted by the server, and each client's speed relative to smtplib's; the second, one large message
per client (throughput and peak memory growth); then the targets and whether this run met them.
See README.md beside this file for what is measured and how.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _clients import CLIENTS, Client, Timing
from _large import LARGE_CLIENTS, LargeResult, format_large_table, run_large
from _servers import (
    SMTP_SINK,
    Server,
    aiosmtpd_server,
    delayed_link,
    measure_rtt,
    sink_server,
    smtp_sink_server,
)

MESSAGE_SIZE = 230
SENDER = "sender@bench.example"
ONE_WAY_DELAY = 0.010  # seconds each way: a 20 ms round trip


@dataclass(frozen=True)
class Workload:
    """What each repetition sends: ``count`` messages of ``recipients`` recipients each."""

    key: str
    label: str
    recipients: int
    count: int  # full run, local servers
    count_quick: int
    count_link: int  # full run, over the slow link
    count_link_quick: int

    def messages(self, *, quick: bool, link: bool) -> int:
        if link:
            return self.count_link_quick if quick else self.count_link
        return self.count_quick if quick else self.count


WORKLOADS = (
    Workload("small", "1 rcpt", 1, 2000, 200, 100, 20),
    # Over the link, 10 messages of 100 recipients: each client that waits for every reply needs
    # about 2.2 s per message there, and four of them do.
    Workload("rcpt100", "100 rcpts", 100, 200, 20, 10, 5),
)


@dataclass(frozen=True)
class ServerSetup:
    key: str
    label: str
    start: Callable[[], contextlib.AbstractContextManager[Server]]
    link: bool = False


@contextlib.contextmanager
def _sink_via_link() -> Iterator[Server]:
    with sink_server() as sink, delayed_link(sink, one_way_delay=ONE_WAY_DELAY) as server:
        yield server


SERVERS = (
    ServerSetup("aiosmtpd", "aiosmtpd (thread)", aiosmtpd_server),
    ServerSetup("sink", "sink, PIPELINING+CHUNKING", sink_server),
    ServerSetup("smtp-sink", "Postfix smtp-sink", smtp_sink_server),
    ServerSetup("link", "sink, 20 ms link", _sink_via_link, link=True),
)


# --- the messages ----------------------------------------------------------------------------------


def recipients_for(count: int) -> list[str]:
    return [f"rcpt{number:03d}@bench.example" for number in range(count)]


def make_messages(count: int, recipients: int) -> list[bytes]:
    """``count`` distinct messages of exactly :data:`MESSAGE_SIZE` octets, CRLF line endings."""
    to = "Recipient <rcpt000@bench.example>" if recipients == 1 else "undisclosed-recipients:;"
    messages = []
    for number in range(count):
        head = (
            f"From: Benchmark <{SENDER}>\r\n"
            f"To: {to}\r\n"
            f"Subject: benchmark message {number:06d}\r\n"
            "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
            f"Message-ID: <{number:06d}@bench.example>\r\n"
            "\r\n"
        )
        body = "A short note"
        padding = MESSAGE_SIZE - len(head) - len(body) - 3
        assert padding >= 0
        message = (head + body + " " + "x" * padding + "\r\n").encode("ascii")
        assert len(message) == MESSAGE_SIZE
        messages.append(message)
    return messages


# --- running ---------------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    workload: Workload
    client: Client
    messages: int
    elapsed: list[float]
    cpu: list[float]
    transaction_bursts: list[int]
    session_bursts: list[int]
    reference: Result | None = None  # smtplib's result for the same server and workload

    @property
    def rates(self) -> list[float]:
        return [self.messages / seconds for seconds in self.elapsed]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def median_cpu(self) -> float:
        """The client thread's CPU seconds per message (median of the repetitions)."""
        return statistics.median(self.cpu) / self.messages

    @property
    def round_trips(self) -> float | None:
        if not self.transaction_bursts or min(self.transaction_bursts) < 0:
            return None  # a server that does not count
        return statistics.fmean(self.transaction_bursts) / self.messages

    @property
    def ratio(self) -> float | None:
        if self.reference is None or not self.reference.elapsed or not self.elapsed:
            return None
        return self.median_rate / self.reference.median_rate

    def as_json(self) -> dict[str, Any]:
        installed = self.client.installed
        return {
            "server": self.server,
            "workload": self.workload.key,
            "recipients_per_message": self.workload.recipients,
            "message_octets": MESSAGE_SIZE,
            "client": self.client.name,
            "client_version": self.client.version,
            "installed": installed,
            "messages_per_repetition": self.messages,
            "elapsed_seconds": self.elapsed,
            "messages_per_second": self.rates,
            "client_cpu_seconds": self.cpu,
            "median_messages_per_second": self.median_rate if installed else None,
            "transaction_round_trips": self.transaction_bursts,
            "session_round_trips": self.session_bursts,
            "round_trips_per_message": self.round_trips if installed else None,
            "ratio_to_smtplib": self.ratio if installed else None,
        }


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _send(server: Server, client: Client, messages: Sequence[bytes], recipients: Sequence[str]) -> tuple[
    Timing, dict[str, int]
]:
    assert client.run is not None
    timing = client.run(server.host, server.port, messages, SENDER, recipients)
    if not server.counts:
        return timing, {"transaction_bursts": -1, "session_bursts": -1}
    report = server.collect()
    expected = (len(messages), len(messages) * len(recipients))
    if (report["messages"], report["recipients"]) != expected:
        raise RuntimeError(
            f"{client.name} -> {server.name}: the server received {report['messages']} messages for "
            f"{report['recipients']} recipients, not {expected[0]} for {expected[1]}"
        )
    return timing, report


def run_server(setup: ServerSetup, *, quick: bool, repeat: int, clients: Sequence[Client]) -> tuple[
    list[Result], float | None
]:
    """Run every workload against one server (started and stopped here); return the results."""
    installed = [client for client in clients if client.installed]
    results = []
    with setup.start() as server:
        rtt = measure_rtt(server) if setup.link else None
        if rtt is not None:
            _progress(f"{setup.label}: measured round trip {rtt * 1000:.1f} ms")
        if not setup.link:
            # One untimed pass per client, so that no client pays for the first connection's costs.
            warm = make_messages(50, 1)
            for client in installed:
                _send(server, client, warm, recipients_for(1))
        for workload in WORKLOADS:
            count = workload.messages(quick=quick, link=setup.link)
            messages = make_messages(count, workload.recipients)
            recipients = recipients_for(workload.recipients)
            by_client = {
                client.name: Result(setup.label, workload, client, count, [], [], [], [])
                for client in clients
            }
            for repetition in range(repeat):
                # Rotate the order, so that no client always runs first (or right after another).
                shift = repetition % len(installed)
                for client in installed[shift:] + installed[:shift]:
                    started = time.perf_counter()
                    timing, report = _send(server, client, messages, recipients)
                    result = by_client[client.name]
                    result.elapsed.append(timing.elapsed)
                    result.cpu.append(timing.cpu)
                    result.transaction_bursts.append(report["transaction_bursts"])
                    result.session_bursts.append(report["session_bursts"])
                    _progress(
                        f"{setup.label}, {workload.label} x {count}: {client.name} "
                        f"{repetition + 1}/{repeat}: {_format_rate(count / timing.elapsed)} msg/s "
                        f"({time.perf_counter() - started:.1f} s)"
                    )
            reference = by_client.get("smtplib")
            for result in by_client.values():
                result.reference = reference
            results.extend(by_client.values())
    return results, rtt


def run_large_workload(sizes: Sequence[int]) -> list[LargeResult]:
    """Workload (c): one large message per client and size, to the sink (see _large.py)."""
    import tempfile

    from _large import write_message

    results = []
    with tempfile.TemporaryDirectory(prefix="smtp-bench-") as directory, sink_server() as server:
        for size in sizes:
            path = Path(directory) / f"message-{size}.eml"
            write_message(path, size)
            actual = path.stat().st_size
            for client in LARGE_CLIENTS:
                started = time.perf_counter()
                try:
                    result = run_large(client, server.host, server.port, path, actual)
                except (RuntimeError, OSError, ValueError) as exc:
                    result = LargeResult(client, actual, True, error=str(exc).strip().splitlines()[-1])
                if result.installed and result.error is None:
                    report = server.collect()
                    if report["messages"] != 1:
                        count = report["messages"]
                        raise RuntimeError(f"{client}: the sink received {count} messages, not 1")
                if result.installed and result.error is None:
                    outcome = f"{result.throughput:.1f} MB/s, +{result.growth_mib:.1f} MiB"
                else:
                    outcome = result.error or "not installed"
                took = time.perf_counter() - started
                _progress(f"large message, {actual / 1e6:.0f} MB: {client}: {outcome} ({took:.1f} s)")
                results.append(result)
            path.unlink()
    return results


# --- output ----------------------------------------------------------------------------------------


def _format_rate(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _format_count(value: float) -> str:
    text = f"{value:.2f}"
    return text[:-3] if text.endswith(".00") else text


def format_table(results: Sequence[Result]) -> str:
    header = (
        "server", "workload", "client", "msg/s", "ms/msg", "CPU ms/msg", "spread", "round trips/msg",
        "vs smtplib",
    )
    rows: list[tuple[str, ...]] = []
    previous = None
    for result in results:
        group = (result.server, result.workload.key)
        server, workload = result.server, f"{result.workload.label} x {result.messages}"
        if group == previous:
            server = workload = ""
        elif previous is not None:
            rows.append(("",) * len(header))
        previous = group
        if not result.client.installed:
            rows.append((server, workload, result.client.name, "not installed", "", "", "", "", ""))
            continue
        median = result.median_rate
        rates = result.rates
        spread = (max(rates) - min(rates)) / median
        ratio = result.ratio
        rows.append((
            server,
            workload,
            result.client.name,
            _format_rate(median),
            f"{1000 / median:.2f}",
            f"{1000 * result.median_cpu:.3f}",
            f"{spread:.0%}",
            "-" if result.round_trips is None else _format_count(result.round_trips),
            "" if ratio is None else f"{ratio:.2f}x",
        ))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = {3, 4, 5, 6, 7, 8}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def targets(results: Sequence[Result], large: Sequence[LargeResult]) -> str:
    """The issue's targets against this run's figures, one line each."""

    def best(server: str, workload: str) -> Result | None:
        rows = [r for r in results if r.server == server and r.workload.key == workload
                and r.client.name.startswith("sansio") and r.client.installed and r.ratio is not None]
        return max(rows, key=lambda r: r.median_rate, default=None)

    lines = []
    sink = next(s.label for s in SERVERS if s.key == "sink")
    link = next(s.label for s in SERVERS if s.key == "link")
    for label, server, workload, goal in (
        ("(a) 1 rcpt, loopback sink", sink, "small", 1.5),
        ("(b) 100 rcpts, loopback sink", sink, "rcpt100", 5),
        ("(e) 1 rcpt, 20 ms link", link, "small", 3),
        ("(e) 100 rcpts, 20 ms link", link, "rcpt100", 50),
    ):
        found = best(server, workload)
        if found is not None and found.ratio is not None:
            verdict = "met" if found.ratio >= goal else "MISSED"
            lines.append(f"  {label}: {found.ratio:.2f}x smtplib ({found.client.name}), "
                         f"target {goal}x: {verdict}")
    for workload in WORKLOADS:
        trips = [r.round_trips for r in results if r.server == sink and r.workload is workload
                 and r.client.name.endswith("batch") and r.round_trips is not None]
        if trips:
            verdict = "met" if max(trips) <= 1.05 else "MISSED"
            lines.append(f"  (d) round trips per message, {workload.label}, batches to the sink: "
                         f"{max(trips):.2f}, target 1: {verdict}")
    growth = [r.growth_mib for r in large
              if r.client.startswith("sansio") and r.installed and r.error is None]
    if growth:
        verdict = "met" if max(growth) < 32 else "MISSED"
        lines.append(f"  (c) smtp-sansio peak memory growth: {min(growth):.1f} to {max(growth):.1f} MiB, "
                     f"target < 32 MiB: {verdict}")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "clients": {client.name: client.version for client in CLIENTS},
    }


# --- profiling -------------------------------------------------------------------------------------


def profile(client_name: str, server_key: str, workload_key: str, *, quick: bool) -> None:
    """Send one workload under cProfile and print where the client's time goes."""
    client = next(client for client in CLIENTS if client.name == client_name)
    if not client.installed:
        raise SystemExit(f"{client_name} is not installed")
    setup = next(setup for setup in SERVERS if setup.key == server_key)
    workload = next(workload for workload in WORKLOADS if workload.key == workload_key)
    count = workload.messages(quick=quick, link=setup.link)
    messages = make_messages(count, workload.recipients)
    recipients = recipients_for(workload.recipients)
    with setup.start() as server:
        _send(server, client, messages[:10], recipients)
        profiler = cProfile.Profile()
        profiler.enable()
        timing, _ = _send(server, client, messages, recipients)
        profiler.disable()
    rate = _format_rate(count / timing.elapsed)
    print(f"{client_name} -> {setup.label}: {count} messages, {rate} msg/s under cProfile")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)


# --- main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and repetitions")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures to FILE")
    parser.add_argument(
        "--repeat", type=int, metavar="N",
        help="repetitions per client (default 3, with --quick 2; aiosmtpd and the slow link 1 unless given)",
    )
    parser.add_argument(
        "--servers", nargs="+", choices=[setup.key for setup in SERVERS], default=[s.key for s in SERVERS],
        help="run against these servers only",
    )
    parser.add_argument(
        "--profile", metavar="CLIENT", choices=[client.name for client in CLIENTS],
        help="instead of the table, profile CLIENT (see --profile-server and --profile-workload)",
    )
    parser.add_argument(
        "--profile-workload", choices=[workload.key for workload in WORKLOADS], default="small",
        help="the workload for --profile (default: small)",
    )
    parser.add_argument(
        "--profile-server", choices=[setup.key for setup in SERVERS], default="sink",
        help="the server for --profile (default: sink)",
    )
    parser.add_argument(
        "--no-large", action="store_true", help="leave out workload (c), the large message",
    )
    parser.add_argument(
        "--large-mb", type=int, nargs="+", metavar="MB",
        help="sizes of the large message in MB (default 20 and 200; with --quick 20)",
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")

    try:
        if args.profile:
            profile(args.profile, args.profile_server, args.profile_workload, quick=args.quick)
            return 0
        env = environment()
        started = time.perf_counter()
        results: list[Result] = []
        rtts: dict[str, float] = {}
        for setup in SERVERS:
            if setup.key not in args.servers:
                continue
            if setup.key == "aiosmtpd" and importlib.util.find_spec("aiosmtpd") is None:
                _progress("aiosmtpd is not installed: its rows are left out")
                continue
            if setup.key == "smtp-sink" and SMTP_SINK is None:
                _progress("smtp-sink (Postfix) is not installed: its rows are left out")
                continue
            if args.repeat is not None:
                repeat = args.repeat
            elif setup.link or setup.key == "aiosmtpd":
                # Over the link the time is the emulated latency times the round trips, which
                # varies by well under 1% between runs: one repetition is enough, and the slowest
                # row (100 recipients, no pipelining) costs about 2 s per message.  aiosmtpd, in
                # this process and without pipelining, costs 6 s per client for 100 recipients:
                # one repetition there too keeps the whole run within minutes.
                repeat = 1
            else:
                repeat = 2 if args.quick else 3
            server_results, rtt = run_server(setup, quick=args.quick, repeat=repeat, clients=CLIENTS)
            results.extend(server_results)
            if rtt is not None:
                rtts[setup.key] = rtt
        large: list[LargeResult] = []
        if not args.no_large:
            sizes = args.large_mb or ([20] if args.quick else [20, 200])
            large = run_large_workload([mb * 1_000_000 for mb in sizes])
        duration = time.perf_counter() - started
    except KeyboardInterrupt:
        print("interrupted; every server has been stopped", file=sys.stderr)
        return 130

    versions = ", ".join(f"{name} {version or '(not installed)'}" for name, version in env["clients"].items())
    print()
    print(f"smtp-sansio benchmark{' (--quick)' if args.quick else ''}: {env['implementation']} "
          f"{env['python']} on {env['platform']}, {env['cpus']} CPUs")
    print(f"clients: {versions}")
    print(f"messages of {MESSAGE_SIZE} octets, one connection per repetition; msg/s and CPU (the client "
          "thread's) are medians")
    print("of the repetitions, spread is (max - min) / median, round trips are the client's bursts counted")
    print("by the server; the ratio compares msg/s with smtplib's against the same server.")
    for key, rtt in rtts.items():
        print(f"{key}: measured NOOP round trip {rtt * 1000:.1f} ms")
    print()
    print(format_table(results))
    print()
    if large:
        print("one large message to the sink (PIPELINING, CHUNKING), each client in a process of its own;")
        print("growth is the peak RSS while sending minus the peak RSS before opening the message:")
        print()
        print(format_large_table(large))
        print()
    summary = targets(results, large)
    if summary:
        print("targets (measured, never asserted):")
        print(summary)
        print()
    print(f"total time {duration:.0f} s")

    if args.json:
        document = {
            "environment": env,
            "quick": args.quick,
            "one_way_delay_seconds": ONE_WAY_DELAY,
            "measured_link_rtt_seconds": rtts,
            "duration_seconds": duration,
            "results": [result.as_json() for result in results],
            "large": [vars(result) for result in large],
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
        print(f"raw figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
