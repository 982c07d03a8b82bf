"""Flushing the offline queue: sending every due entry over as few connections as possible.

The entries and their storage are :mod:`._queue`'s; this module decides what happens to each entry
after an attempt (RFC 5321 section 4.2.1: a 4xx reply is worth retrying, a 5xx is not):

* accepted by the server for every recipient: removed;
* refused for good (5xx): moved to ``failed/`` with the reply, or for only the recipients refused,
  a copy of the entry for them goes there and the rest stay queued;
* refused for now (4xx), or the connection lost: kept, with its attempt count, the last reply and
  the time of the next attempt, which doubles each time from ``retry_base`` up to ``retry_max``.

One connection serves every entry until it fails; a server that cannot be reached is tried once per
flush.  The entry being sent is locked (:func:`._queue._locked`) for as long as its attempt lasts,
so a second flusher skips it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Unpack

from smtp_sansio import (
    LocalProtocolError,
    PermanentReplyError,
    Reply,
    ReplyError,
    SendResult,
    SMTPError,
)

from . import sync
from ._base import ClientOptions
from ._queue import (
    _BUSY,
    CorruptEntry,
    QueueEntry,
    _Corrupt,
    _decode,
    _entry_ids,
    _locked,
    _oneline,
    _reason,
    _remove,
    _root,
    _store,
    list_queue,
)

__all__ = ["DEFAULT_RETRY_BASE", "DEFAULT_RETRY_MAX", "FlushReport", "ProgressCallback", "flush_queue"]

#: Seconds to wait before the second attempt; each further attempt waits twice as long as the last.
DEFAULT_RETRY_BASE = 60.0
#: The longest wait between two attempts (four hours).
DEFAULT_RETRY_MAX = 4 * 3600.0


@dataclass(slots=True, kw_only=True)
class FlushReport:
    """What one :func:`flush_queue` did, entry by entry (IDs, in queue order).

    Attributes:
        sent: delivered to every remaining recipient and removed from the queue.
        deferred: left queued after a temporary failure (some of their recipients may have been
            delivered: only the others stay queued).
        failed: moved (or, for some recipients, copied) to ``failed/`` after a permanent refusal.
        busy: skipped because another flusher holds them.
        waiting: skipped because their next attempt is not due yet.
        corrupt: damaged entries, skipped and left in place.
        replies: the reply or error of each entry that was deferred or failed.
    """

    sent: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    corrupt: list[CorruptEntry] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)


#: ``progress(done, total)``, called before the first message and after each one.
ProgressCallback = Callable[[int, int], None]


def flush_queue(
    directory: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
    retry_base: float = DEFAULT_RETRY_BASE,
    retry_max: float = DEFAULT_RETRY_MAX,
    clock: Callable[[], float] = time.time,
    **options: Unpack[ClientOptions],
) -> FlushReport:
    """Send the queued messages that are due, in queue order, over one connection.

    Each message is locked while it is sent (see the module documentation), so flushers may run
    at once.  Its outcome is recorded as soon as it is known:

    * accepted for every recipient: the entry is removed;
    * a temporary failure (4xx, the server unreachable, a timeout, the connection lost): the entry
      stays with one more attempt, the reply, and a next attempt ``retry_base * 2**(attempts-1)``
      seconds later (at most ``retry_max``);
    * a permanent failure (5xx, a message that cannot be sent as it is): the entry moves to
      ``failed/`` with the reply;
    * some recipients refused: those refused temporarily stay queued, those refused permanently are
      recorded in ``failed/``, the others are done.

    A connection that fails is replaced by a new one for the remaining messages; when the server
    cannot be reached at all, every remaining message is deferred.

    Args:
        directory: the queue directory.
        force: send every entry now, even those whose next attempt is not due.
        progress: called as ``progress(done, total)`` before the first message and after each one.
        retry_base: seconds before the second attempt.
        retry_max: the longest wait between attempts.
        clock: the current time in seconds since the epoch (for tests).
        options: the options of :class:`~smtp_sansio.adapters.sync.SMTPClient`.

    Returns:
        What happened to each entry.

    Raises:
        LocalProtocolError: a client option is invalid (nothing is sent).
    """
    root = _root(directory)
    report = FlushReport()
    if not os.path.isdir(os.path.join(root, "queue")):
        if progress is not None:
            progress(0, 0)
        return report
    # Checks the options before anything is claimed.
    sync.SMTPClient(**options).close()
    now = clock()
    _clean_tmp(root, now)
    due: list[str] = []
    for item in list_queue(root):
        if isinstance(item, CorruptEntry):
            report.corrupt.append(item)
        elif not force and item.next_attempt > now:
            report.waiting.append(item.id)
        else:
            due.append(item.id)
    if progress is not None:
        progress(0, len(due))
    flusher = _Flusher(root, report, retry_base, retry_max, clock, options)
    try:
        for done, entry_id in enumerate(due, 1):
            flusher.flush_one(entry_id)
            if progress is not None:
                progress(done, len(due))
    finally:
        flusher.close()
    return report


#: A file of ``tmp/`` this old (seconds) was left by a writer that crashed: it is removed.
STALE_TMP_AGE = 36 * 3600.0


def _clean_tmp(root: str, now: float) -> None:
    # A writer killed before its rename leaves its temporary file; nobody will finish it.
    tmp = os.path.join(root, "tmp")
    for name in _entry_ids(root, "tmp"):
        path = os.path.join(tmp, name)
        with contextlib.suppress(OSError):
            if os.stat(path).st_mtime < now - STALE_TMP_AGE:
                os.unlink(path)


class _Flusher:
    def __init__(
        self, root: str, report: FlushReport, retry_base: float, retry_max: float,
        clock: Callable[[], float], options: ClientOptions,
    ) -> None:
        self.root = root
        self.report = report
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.clock = clock
        self.options = options
        self.client: sync.SMTPClient | None = None
        # Set when the server could not be reached: every later message is deferred with it.
        self.unreachable: SMTPError | None = None

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(SMTPError, OSError):
                client.quit()
            client.close()

    def flush_one(self, entry_id: str) -> None:
        path = os.path.join(self.root, "queue", entry_id)
        with _locked(path) as fd:
            if fd == _BUSY:
                self.report.busy.append(entry_id)
                return
            if not isinstance(fd, int):
                return  # sent or dropped by another process since it was listed
            try:
                with os.fdopen(os.dup(fd), "rb") as file:
                    entry, data = _decode(entry_id, "queue", file.read())
            except (_Corrupt, OSError) as exc:
                self.report.corrupt.append(CorruptEntry(id=entry_id, area="queue", reason=_reason(exc)))
                return
            self._deliver(path, entry, data)

    def _deliver(self, path: str, entry: QueueEntry, data: bytes) -> None:
        try:
            result = self._send(entry, data)
        except ReplyError as exc:
            if exc.refused:
                self._recipients_refused(path, entry, data, (), dict(exc.refused))
            elif isinstance(exc, PermanentReplyError):
                self._fail(path, entry, data, entry.recipients, _oneline(str(exc)))
            else:
                self._defer(entry, data, entry.recipients, _oneline(str(exc)))
        except LocalProtocolError as exc:
            if self.client is not None and self.client_usable():
                # The message itself cannot be sent (an address, its content): for good.
                self._fail(path, entry, data, entry.recipients, _oneline(str(exc)))
            else:
                self._connection_lost(path, entry, data, exc)
        except SMTPError as exc:
            self._connection_lost(path, entry, data, exc)
        else:
            self._recipients_refused(path, entry, data, result.accepted, dict(result.refused))

    def client_usable(self) -> bool:
        client = self.client
        return client is not None and client.usable

    def _send(self, entry: QueueEntry, data: bytes) -> SendResult:
        if self.unreachable is not None:
            raise self.unreachable
        if self.client is not None and not self.client_usable():
            self.close()
        if self.client is None:
            client = sync.SMTPClient(**self.options)
            try:
                client.connect()
            except SMTPError as exc:
                self.unreachable = exc
                raise
            self.client = client
        return self.client.send_message(data, sender=entry.sender, recipients=entry.recipients)

    def _connection_lost(self, path: str, entry: QueueEntry, data: bytes, exc: SMTPError) -> None:
        self.close()
        self._defer(entry, data, entry.recipients, _oneline(str(exc)))

    def _recipients_refused(
        self, path: str, entry: QueueEntry, data: bytes, accepted: Sequence[str], refused: dict[str, Reply]
    ) -> None:
        later = {rcpt: reply for rcpt, reply in refused.items() if reply.code < 500}
        never = {rcpt: reply for rcpt, reply in refused.items() if reply.code >= 500}
        if never:
            reply = "; ".join(f"{rcpt}: {_oneline(str(r))}" for rcpt, r in never.items())
            self._record_failed(entry, data, tuple(never), reply)
        if later:
            reply = "; ".join(f"{rcpt}: {_oneline(str(r))}" for rcpt, r in later.items())
            self._defer(entry, data, _matching(entry.recipients, later), reply)
            return
        _remove(path)
        if never:
            self.report.failed.append(entry.id)
            self.report.replies[entry.id] = "; ".join(
                f"{rcpt}: {_oneline(str(r))}" for rcpt, r in never.items()
            )
        else:
            self.report.sent.append(entry.id)

    def _defer(self, entry: QueueEntry, data: bytes, recipients: Sequence[str], reply: str) -> None:
        now = self.clock()
        attempts = entry.attempts + 1
        wait = min(self.retry_base * 2 ** min(attempts - 1, 64), self.retry_max)
        updated = replace(
            entry, recipients=tuple(recipients), attempts=attempts, last_attempt=now,
            next_attempt=now + wait, last_reply=reply,
        )
        _store(self.root, "queue", updated, data)
        self.report.deferred.append(entry.id)
        self.report.replies[entry.id] = reply

    def _fail(self, path: str, entry: QueueEntry, data: bytes, recipients: Sequence[str], reply: str) -> None:
        self._record_failed(entry, data, tuple(recipients), reply)
        _remove(path)
        self.report.failed.append(entry.id)
        self.report.replies[entry.id] = reply

    def _record_failed(self, entry: QueueEntry, data: bytes, recipients: tuple[str, ...], reply: str) -> None:
        now = self.clock()
        failed = replace(
            entry, area="failed", recipients=recipients, attempts=entry.attempts + 1,
            last_attempt=now, next_attempt=0.0, last_reply=reply,
        )
        _store(self.root, "failed", failed, data)


def _matching(recipients: Sequence[str], refused: dict[str, Reply]) -> list[str]:
    # The queued recipients that were refused.  The session may have added the sendto domain, so a
    # recipient without a domain matches its qualified form.
    keep = [
        rcpt for rcpt in recipients
        if rcpt in refused or ("@" not in rcpt and any(r.startswith(rcpt + "@") for r in refused))
    ]
    return keep or list(refused)

