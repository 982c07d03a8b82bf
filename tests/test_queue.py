"""The offline queue (``smtp_sansio.adapters.queue`` and ``smtp-sansio queue``) against aiosmtpd.

The crash tests run a flusher (or a writer) in a child process and kill it with SIGKILL at random
points: from outside at a random moment, and from inside at the n-th file-system call of the
critical sections (write, fsync, rename, unlink), so that kills land between the server's acceptance
of a message and its removal from the queue, and between writing an entry and renaming it.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from servers import LOOPBACK

from smtp_sansio import LocalProtocolError
from smtp_sansio.adapters import cli
from smtp_sansio.adapters.queue import (
    CorruptEntry,
    QueueEntry,
    QueueError,
    drop_entry,
    enqueue,
    flush_queue,
    list_queue,
    read_entry,
)


def message(n: int, *recipients: str) -> bytes:
    to = ", ".join(recipients or ("bob@example.org",))
    return (
        f"From: alice@example.org\r\nTo: {to}\r\nMessage-ID: <{n}@queue.test>\r\n"
        f"Subject: message {n}\r\n\r\nBody of message {n}.\r\n"
    ).encode()


def options(port: int) -> dict[str, object]:
    return {"host": LOOPBACK, "port": port, "tls": "none", "local_hostname": "c.test"}


def received_ids(server) -> list[int]:
    ids = []
    for received in server.messages:
        for line in received.content.splitlines():
            if line.startswith(b"Message-ID: <"):
                ids.append(int(line[len(b"Message-ID: <"):].split(b"@")[0]))
    return ids


def queued(directory: Path, area: str = "queue") -> list[QueueEntry]:
    entries = list_queue(directory, area)  # type: ignore[arg-type]
    assert all(isinstance(e, QueueEntry) for e in entries), entries
    return entries  # type: ignore[return-value]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- storing ---------------------------------------------------------------------------------------


def test_enqueue_stores_envelope_and_message_without_bcc(tmp_path):
    data = b"From: alice@example.org\r\nTo: bob@example.org\r\nBcc: carol@example.org\r\n\r\nHi.\r\n"
    entry_id = enqueue(tmp_path / "q", data)
    [entry] = queued(tmp_path / "q")
    assert entry.id == entry_id
    assert (entry.sender, entry.recipients, entry.attempts) == (
        "alice@example.org", ("bob@example.org", "carol@example.org"), 0,
    )
    stored_entry, stored = read_entry(tmp_path / "q", entry_id)
    assert stored_entry == entry
    assert b"Bcc" not in stored and stored.endswith(b"Hi.\r\n")
    assert stat_mode(tmp_path / "q" / "queue" / entry_id) == 0o600
    assert os.listdir(tmp_path / "q" / "tmp") == []


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_enqueue_explicit_envelope_and_email_message(tmp_path):
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = "bob@example.org"
    msg.set_content("hello")
    first = enqueue(tmp_path, msg)
    second = enqueue(tmp_path, message(1), sender="", recipients=["x@example.net"])
    entries = queued(tmp_path)
    assert [e.id for e in entries] == [first, second]  # queue order
    assert entries[1].sender == "" and entries[1].recipients == ("x@example.net",)


def test_enqueue_refuses_what_cannot_be_sent(tmp_path):
    with pytest.raises(LocalProtocolError):
        enqueue(tmp_path, b"Subject: no addresses\r\n\r\nx\r\n")
    with pytest.raises(LocalProtocolError, match="Message or bytes"):
        enqueue(tmp_path, "text")  # type: ignore[arg-type]
    assert list_queue(tmp_path) == []


@pytest.mark.parametrize("call", ["write", "fsync"])
def test_full_disk_fails_cleanly_and_leaves_nothing(tmp_path, monkeypatch, call):
    enqueue(tmp_path, message(0))  # the layout exists; the failure is in the entry itself
    real = getattr(os, call)
    calls = []

    def full(fd, *args):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, *args)

    monkeypatch.setattr(os, call, full)
    with pytest.raises(QueueError, match=r"No space left on device.*disk is full"):
        enqueue(tmp_path, message(1))
    monkeypatch.undo()
    assert [e.size for e in queued(tmp_path)] == [len(message(0))]
    assert os.listdir(tmp_path / "tmp") == []


def test_unusable_queue_directory(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(QueueError, match="cannot use the queue directory"):
        enqueue(tmp_path / "file", message(1))


# --- flushing --------------------------------------------------------------------------------------


def test_flush_sends_in_order_over_one_connection(tmp_path, smtpd_factory):
    server = smtpd_factory()
    ids = [enqueue(tmp_path, message(n)) for n in range(5)]
    progress: list[tuple[int, int]] = []
    report = flush_queue(
        tmp_path, progress=lambda done, total: progress.append((done, total)), **options(server.port)
    )
    assert report.sent == ids
    assert received_ids(server) == [0, 1, 2, 3, 4]
    assert server.commands().count("EHLO") == 1
    assert progress == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert list_queue(tmp_path) == []
    # Nothing left: a second flush sends nothing.
    assert flush_queue(tmp_path, **options(server.port)).sent == []


def test_flush_of_a_missing_queue(tmp_path):
    progress: list[tuple[int, int]] = []
    report = flush_queue(tmp_path / "none", progress=lambda *a: progress.append(a), host=LOOPBACK)
    assert (report.sent, progress) == ([], [(0, 0)])


def test_flush_checks_options_first(tmp_path):
    enqueue(tmp_path, message(1))
    with pytest.raises(LocalProtocolError):
        flush_queue(tmp_path, host=LOOPBACK, tls="bogus")
    assert queued(tmp_path)[0].attempts == 0


def test_temporary_failure_backs_off_exponentially(tmp_path, smtpd_factory):
    server = smtpd_factory()
    clock = Clock()
    entry_id = enqueue(tmp_path, message(1, "later@example.org"))
    report = flush_queue(tmp_path, clock=clock, retry_base=60, retry_max=200, **options(server.port))
    assert report.deferred == [entry_id]
    [entry] = queued(tmp_path)
    assert (entry.attempts, entry.last_attempt, entry.next_attempt) == (1, clock.now, clock.now + 60)
    assert entry.last_reply is not None
    assert "450" in entry.last_reply and "later@example.org" in entry.last_reply

    # Not due yet: left alone.
    clock.now += 59
    assert flush_queue(tmp_path, clock=clock, **options(server.port)).waiting == [entry_id]
    assert queued(tmp_path)[0].attempts == 1
    # Due: tried again, and the wait doubles, up to the maximum.
    clock.now += 1
    flush_queue(tmp_path, clock=clock, retry_base=60, retry_max=200, **options(server.port))
    assert queued(tmp_path)[0].next_attempt == clock.now + 120
    flush_queue(tmp_path, clock=clock, force=True, retry_base=60, retry_max=200, **options(server.port))
    [entry] = queued(tmp_path)
    assert (entry.attempts, entry.next_attempt) == (3, clock.now + 200)
    assert server.messages == []


def test_permanent_failure_moves_to_failed_area(tmp_path, smtpd_factory):
    server = smtpd_factory()
    bad = enqueue(tmp_path, message(1, "refuse@example.org"))
    good = enqueue(tmp_path, message(2))
    report = flush_queue(tmp_path, **options(server.port))
    assert (report.sent, report.failed) == ([good], [bad])
    assert "550" in report.replies[bad]
    assert list_queue(tmp_path) == []
    [failed] = queued(tmp_path, "failed")
    assert (failed.id, failed.area, failed.attempts) == (bad, "failed", 1)
    assert failed.recipients == ("refuse@example.org",)
    assert failed.last_reply is not None and "5.1.1" in failed.last_reply
    assert read_entry(tmp_path, bad, "failed")[1] == message(1, "refuse@example.org")
    assert received_ids(server) == [2]


def test_only_the_recipients_that_failed_stay_queued(tmp_path, smtpd_factory):
    server = smtpd_factory()
    entry_id = enqueue(tmp_path, message(1, "ok@example.org", "later@example.org", "refuse@example.org"))
    report = flush_queue(tmp_path, **options(server.port))
    assert report.deferred == [entry_id]
    [received] = server.messages
    assert received.rcpt_tos == ("ok@example.org",)
    [entry] = queued(tmp_path)
    assert (entry.recipients, entry.attempts) == (("later@example.org",), 1)
    [failed] = queued(tmp_path, "failed")
    assert failed.recipients == ("refuse@example.org",)


def test_some_recipients_refused_for_good(tmp_path, smtpd_factory):
    server = smtpd_factory()
    entry_id = enqueue(tmp_path, message(1, "ok@example.org", "refuse@example.org"))
    report = flush_queue(tmp_path, **options(server.port))
    assert report.failed == [entry_id] and "refuse@example.org" in report.replies[entry_id]
    assert list_queue(tmp_path) == []
    assert queued(tmp_path, "failed")[0].recipients == ("refuse@example.org",)
    assert server.messages[0].rcpt_tos == ("ok@example.org",)


def test_every_recipient_refused_mixed(tmp_path, smtpd_factory):
    server = smtpd_factory()
    enqueue(tmp_path, message(1, "later@example.org", "refuse@example.org"))
    flush_queue(tmp_path, **options(server.port))
    assert queued(tmp_path)[0].recipients == ("later@example.org",)
    assert queued(tmp_path, "failed")[0].recipients == ("refuse@example.org",)


def test_sendto_domain_recipients_stay_queued_by_their_queued_name(tmp_path, smtpd_factory):
    server = smtpd_factory()
    enqueue(tmp_path, message(1), recipients=["later", "bob"])
    flush_queue(tmp_path, sendto_domain="example.org", **options(server.port))
    assert queued(tmp_path)[0].recipients == ("later",)
    assert server.messages[0].rcpt_tos == ("bob@example.org",)


def test_unreachable_server_defers_everything_after_one_try(tmp_path, smtpd_factory):
    server = smtpd_factory()
    port = server.port
    ids = [enqueue(tmp_path, message(n)) for n in range(3)]
    with socket_closed_port() as closed:
        report = flush_queue(tmp_path, **options(closed))
    assert report.deferred == ids
    assert all(e.attempts == 1 and "cannot connect" in (e.last_reply or "") for e in queued(tmp_path))
    assert flush_queue(tmp_path, force=True, **options(port)).sent == ids


class socket_closed_port:
    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        pass


def test_lost_connection_defers_the_message_and_reconnects(tmp_path, smtpd_factory):
    server = smtpd_factory(mail_421=True)
    ids = [enqueue(tmp_path, message(n)) for n in range(2)]
    report = flush_queue(tmp_path, **options(server.port))
    # Each message met a 421 and a hang-up; the second one on a new connection.
    assert report.deferred == ids
    assert all("421" in (e.last_reply or "") for e in queued(tmp_path))
    assert server.commands().count("EHLO") == 2


def test_message_that_cannot_be_sent_fails_for_good(tmp_path, smtpd_factory):
    server = smtpd_factory()
    entry_id = enqueue(tmp_path, message(1), recipients=["no-domain"])
    report = flush_queue(tmp_path, **options(server.port))  # no sendto_domain now
    assert report.failed == [entry_id]
    assert queued(tmp_path, "failed")[0].id == entry_id


# --- damaged entries, locks, drop -------------------------------------------------------------------


def test_damaged_entries_are_reported_skipped_and_kept(tmp_path, smtpd_factory):
    server = smtpd_factory()
    first = enqueue(tmp_path, message(1))
    damaged = {
        "00000000000000000.garbage": b"\x00\x01 not an entry",
        "00000000000000001.truncated": (tmp_path / "queue" / first).read_bytes()[:-3],
        "00000000000000002.badjson": b"{nope\nmessage",
        "00000000000000003.other": b'{"format": "something else"}\nx',
        "00000000000000004.version": b'{"format": "smtp-sansio-queue", "version": 9}\nx',
        "00000000000000005.fields": b'{"format": "smtp-sansio-queue", "version": 1, "sender": 3}\nx',
        "00000000000000006.norcpt": (
            b'{"format": "smtp-sansio-queue", "version": 1, "sender": "", "recipients": []}\n'
        ),
    }
    checksum = (tmp_path / "queue" / first).read_bytes()
    damaged["00000000000000007.checksum"] = checksum[:-2] + b"X\n"
    for name, content in damaged.items():
        (tmp_path / "queue" / name).write_bytes(content)
    last = enqueue(tmp_path, message(2))

    listing = list_queue(tmp_path)
    assert {e.id for e in listing if isinstance(e, CorruptEntry)} == set(damaged)
    report = flush_queue(tmp_path, **options(server.port))
    assert report.sent == [first, last]
    assert {c.id for c in report.corrupt} == set(damaged)
    reasons = {c.id: c.reason for c in report.corrupt}
    assert "truncated" in reasons["00000000000000001.truncated"]
    assert "checksum" in reasons["00000000000000007.checksum"]
    assert received_ids(server) == [1, 2]
    assert sorted(os.listdir(tmp_path / "queue")) == sorted(damaged)  # never deleted
    with pytest.raises(QueueError, match="damaged"):
        read_entry(tmp_path, "00000000000000000.garbage")
    drop_entry(tmp_path, "00000000000000000.garbage")  # but the user may drop one
    assert "00000000000000000.garbage" not in os.listdir(tmp_path / "queue")


def test_a_locked_entry_is_skipped_and_cannot_be_dropped(tmp_path, smtpd_factory):
    server = smtpd_factory()
    locked_id = enqueue(tmp_path, message(1))
    free_id = enqueue(tmp_path, message(2))
    with open(tmp_path / "queue" / locked_id, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        report = flush_queue(tmp_path, **options(server.port))
        with pytest.raises(QueueError, match="being sent"):
            drop_entry(tmp_path, locked_id)
    assert (report.sent, report.busy) == ([free_id], [locked_id])
    assert received_ids(server) == [2]


def test_drop_and_missing_entries(tmp_path):
    entry_id = enqueue(tmp_path, message(1))
    drop_entry(tmp_path, entry_id)
    assert list_queue(tmp_path) == []
    with pytest.raises(QueueError, match="no entry"):
        drop_entry(tmp_path, entry_id)
    with pytest.raises(QueueError, match="no entry"):
        read_entry(tmp_path, entry_id)
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(QueueError, match="not a queue entry ID"):
            drop_entry(tmp_path, bad)


def test_flush_removes_stale_temporary_files_only(tmp_path, smtpd_factory):
    server = smtpd_factory()
    enqueue(tmp_path, message(1))
    stale, fresh = tmp_path / "tmp" / "stale", tmp_path / "tmp" / "fresh"
    stale.write_bytes(b"half an entry")
    fresh.write_bytes(b"being written")
    os.utime(stale, (1, 1))
    assert flush_queue(tmp_path, **options(server.port)).sent
    assert os.listdir(tmp_path / "tmp") == ["fresh"]


def test_two_flushers_at_once_never_send_a_message_twice(tmp_path, smtpd_factory):
    server = smtpd_factory(backlog=64)
    count = 40
    for n in range(count):
        enqueue(tmp_path, message(n))
    reports = []
    start = threading.Barrier(3)

    def flusher() -> None:
        start.wait()
        reports.append(flush_queue(tmp_path, **options(server.port)))

    threads = [threading.Thread(target=flusher) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(received_ids(server)) == list(range(count))  # each exactly once
    sent = [entry_id for report in reports for entry_id in report.sent]
    assert len(sent) == len(set(sent)) == count
    assert list_queue(tmp_path) == []


# --- crashes ---------------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from smtp_sansio.adapters import queue

    directory, port, kill_at, action = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    calls = [0]

    def killing(real):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return call

    if kill_at:
        # Every step of the critical sections: writing, flushing, renaming and removing files,
        # and the socket writes that send the messages.
        for name in ("write", "fsync", "replace", "unlink"):
            setattr(os, name, killing(getattr(os, name)))
        import socket
        socket.socket.sendall = killing(socket.socket.sendall)
    print("ready", flush=True)
    if action == "flush":
        queue.flush_queue(directory, host="127.0.0.1", port=port, tls="none", local_hostname="c.test")
    else:
        for n in range(int(action)):
            queue.enqueue(directory, (
                f"From: a@example.org\\r\\nTo: b@example.org\\r\\nMessage-ID: <{n}@queue.test>\\r\\n\\r\\n"
                + "x" * 5000 + "\\r\\n"
            ).encode())
    """
)


def run_child(directory: Path, port: int, kill_at: int, action: str, kill_after: float | None = None) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(directory), str(port), str(kill_at), action],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    if kill_after is not None:
        try:
            child.wait(kill_after)
        except subprocess.TimeoutExpired:
            child.kill()
    child.stdout.close()
    return child.wait()


def test_flush_killed_at_random_points_loses_nothing(tmp_path, smtpd_factory):
    server = smtpd_factory()
    rng = random.Random(20261204)
    count = 30
    for n in range(count):
        enqueue(tmp_path, message(n))
    kills = 0
    for round_number in range(16):
        remaining = len(list_queue(tmp_path))
        if round_number % 2 and remaining:
            # From inside, at a random step: sending a message takes at least three of them (a
            # socket write, the unlink, the fsync of the directory), so the kill always comes.
            status = run_child(tmp_path, server.port, rng.randint(1, 3 * remaining), "flush")
            assert status == -signal.SIGKILL
        else:
            # From outside, at a random moment (the flush may also have ended by then).
            status = run_child(tmp_path, server.port, 0, "flush", kill_after=rng.uniform(0, 0.1))
        kills += status == -signal.SIGKILL
        assert not [e for e in list_queue(tmp_path) if isinstance(e, CorruptEntry)]
        assert all(e.attempts == 0 for e in queued(tmp_path))
    # A last flush, not killed, sends what is left.
    run_child(tmp_path, server.port, 0, "flush")
    assert list_queue(tmp_path) == [] and list_queue(tmp_path, "failed") == []
    delivered = received_ids(server)
    assert set(delivered) == set(range(count))  # every message at least once, none lost
    assert os.listdir(tmp_path / "tmp") == []


def test_two_flusher_processes_at_once_send_each_message_once(tmp_path, smtpd_factory):
    server = smtpd_factory(backlog=64)
    count = 60
    for n in range(count):
        enqueue(tmp_path, message(n))
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), str(server.port), "0", "flush"])
        for _ in range(2)
    ]
    assert [child.wait() for child in children] == [0, 0]
    assert sorted(received_ids(server)) == list(range(count))  # each exactly once
    assert list_queue(tmp_path) == []


def test_enqueue_killed_at_random_points_leaves_whole_entries_only(tmp_path):
    rng = random.Random(4)
    for _ in range(6):
        status = run_child(tmp_path, 0, rng.randint(1, 30), "5")
        assert status in (0, -signal.SIGKILL)
        # Whatever is in the queue is complete: it decodes, size and checksum included.
        queued(tmp_path)
    assert len(queued(tmp_path)) >= 1


# --- the command line ------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def run(monkeypatch, capsys):
    def run(argv: list[str], stdin: bytes = message(1), terminal: bool = False) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        if terminal:
            term = Terminal()
            monkeypatch.setattr(sys, "stderr", term)
            status = cli.main(argv)
            monkeypatch.undo()
            out, err = capsys.readouterr()
            return status, out, term.getvalue()
        status = cli.main(argv)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_cli_send_queue_then_flush(tmp_path, smtpd_factory, run):
    server = smtpd_factory()
    queue_dir = str(tmp_path / "q")
    # Queueing needs no server: nothing is connected to, no password command is run.
    assert run(["send", "--queue", queue_dir, "-t", "--password-cmd", "exit 1"]) == (0, "", "")
    second = ["send", "--queue", queue_dir, "-i", "-f", "me@example.org", "x@example.net"]
    assert run(second, message(2)) == (0, "", "")
    assert server.messages == []

    status, out, _ = run(["queue", "list", "--queue", queue_dir])
    lines = out.splitlines()
    assert status == 0 and len(lines) == 2
    assert "alice@example.org -> bob@example.org" in lines[0]
    assert "me@example.org -> x@example.net" in lines[1]

    entry_id = lines[0].split()[0]
    status, out, _ = run(["queue", "show", "--queue", queue_dir, entry_id])
    assert status == 0
    assert f"Id: {entry_id}\nQueued: " in out
    assert "Recipients: bob@example.org\n" in out
    assert "\n\nFrom: alice@example.org\nTo: bob@example.org\n" in out

    flush = ["queue", "flush", "--queue", queue_dir, "--host", LOOPBACK, "--port", str(server.port),
             "--tls", "none"]
    status, out, err = run(flush, terminal=True)
    assert status == 0
    assert out == "sent 2, deferred 0, failed 0, not due 0, busy 0, damaged 0\n"
    assert err.endswith(f"\r{cli.PROG}: flushing [{'#' * 30}] 2/2\n")
    assert "] 0/2" in err and "] 1/2" in err
    assert [m.mail_from for m in server.messages] == ["alice@example.org", "me@example.org"]
    assert run(["queue", "list", "--queue", queue_dir]) == (0, "", "")


def test_cli_flush_statuses_and_reports(tmp_path, smtpd_factory, run):
    server = smtpd_factory()
    queue_dir = tmp_path / "q"
    later = enqueue(queue_dir, message(1, "later@example.org"))
    flush = ["queue", "flush", "--queue", str(queue_dir), "--host", LOOPBACK, "--port", str(server.port),
             "--tls", "none", "--no-progress"]
    status, out, err = run(flush, terminal=True)
    assert status == cli.EX_TEMPFAIL
    reply = "450 4.2.1 <later@example.org>: mailbox busy, try later"
    assert err == f"{cli.PROG}: {later}: deferred: later@example.org: {reply}\n"
    status, out, _ = run(["queue", "list", "--queue", str(queue_dir)])
    assert "(attempts 1, next " in out and "450" in out
    status, out, err = run(flush)  # not due: nothing to do
    assert (status, out) == (0, "sent 0, deferred 0, failed 0, not due 1, busy 0, damaged 0\n")
    drop_entry(queue_dir, later)

    refused = enqueue(queue_dir, message(2, "refuse@example.org"))
    status, out, err = run(flush)
    assert status == cli.EX_UNAVAILABLE and f"{refused}: failed: refuse@example.org: 550" in err
    status, out, _ = run(["queue", "list", "--failed", "--queue", str(queue_dir)])
    assert out.startswith(refused) and "(attempts 1: refuse@example.org: 550" in out
    status, out, _ = run(["queue", "show", "--failed", "--queue", str(queue_dir), refused])
    assert "Last-Reply: refuse@example.org: 550" in out and "Next-Attempt" not in out
    assert run(["queue", "drop", "--failed", "--queue", str(queue_dir), refused])[0] == 0

    (queue_dir / "queue" / "0.damaged").write_bytes(b"junk")
    status, out, err = run(flush)
    assert status == cli.EX_DATAERR and "0.damaged: damaged entry skipped: no header line" in err
    status, out, _ = run(["queue", "list", "--queue", str(queue_dir)])
    assert out == "0.damaged  DAMAGED: no header line (truncated or not a queue entry)\n"


def test_cli_queue_errors(tmp_path, run, monkeypatch):
    queue_dir = str(tmp_path / "q")
    status, _, err = run(["queue", "show", "--queue", queue_dir, "nope"])
    assert status == cli.EX_NOINPUT and err.startswith(f"{cli.PROG}: no entry nope in ")
    status, _, err = run(["queue", "drop", "--queue", queue_dir, "nope"])
    assert status == cli.EX_NOINPUT
    status, _, err = run(["queue"])
    assert status == cli.EX_USAGE
    status, _, err = run(["queue", "flush", "--queue", queue_dir, "--tls", "none", "--port", "0"])
    assert status == cli.EX_USAGE and "port" in err

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    status, _, err = run(["send", "--queue", queue_dir, "-t"])
    monkeypatch.undo()
    assert status == cli.EX_TEMPFAIL
    full_disk = "No space left on device (the disk is full)"
    assert err == f"{cli.PROG}: cannot use the queue directory {queue_dir}: {full_disk}\n"


def test_cli_full_disk_while_writing_the_entry(tmp_path, run, monkeypatch):
    queue_dir = tmp_path / "q"
    enqueue(queue_dir, message(0))
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if b"smtp-sansio-queue" in bytes(data[:40]):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    status, _, err = run(["send", "--queue", str(queue_dir), "-t"])
    monkeypatch.undo()
    assert status == cli.EX_TEMPFAIL
    full_disk = "No space left on device (the disk is full)"
    assert err == f"{cli.PROG}: cannot queue the message in {queue_dir}: {full_disk}\n"
    assert len(list_queue(queue_dir)) == 1 and os.listdir(queue_dir / "tmp") == []


def test_default_queue_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert cli.default_queue_dir() == str(tmp_path / "smtp-sansio" / "queue")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.default_queue_dir() == str(tmp_path / ".local" / "share" / "smtp-sansio" / "queue")
