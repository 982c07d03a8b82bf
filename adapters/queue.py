"""The offline queue: store messages now, send them later (Emacs' ``smtpmail-queue-mail``).

Store with :func:`enqueue`, send with :func:`flush_queue` (which takes the options of the blocking
``SMTPClient``), inspect with :func:`list_queue` and :func:`read_entry`, remove with
:func:`drop_entry`.  See :doc:`/queue` for the layout on disk and the guarantees::

    from smtp_sansio.adapters.queue import enqueue, flush_queue

    enqueue("~/Mail/queue", message)           # offline: stored, complete on disk when it returns
    report = flush_queue("~/Mail/queue", host="mail.example.org", username="me")
    print(report.sent, report.deferred, report.failed)
"""

from __future__ import annotations

from ._flush import DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX, FlushReport, flush_queue
from ._queue import (
    CorruptEntry,
    Queued,
    QueueEntry,
    QueueError,
    drop_entry,
    enqueue,
    list_queue,
    read_entry,
)

__all__ = [
    "DEFAULT_RETRY_BASE",
    "DEFAULT_RETRY_MAX",
    "CorruptEntry",
    "FlushReport",
    "QueueEntry",
    "QueueError",
    "Queued",
    "drop_entry",
    "enqueue",
    "flush_queue",
    "list_queue",
    "read_entry",
]
