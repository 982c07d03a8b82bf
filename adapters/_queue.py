"""The offline queue: messages stored on disk now, sent later (Emacs' ``smtpmail-queue-mail``).

A queue is a directory with three subdirectories::

    DIR/tmp/      entries being written; never read as entries
    DIR/queue/    entries waiting to be sent, one file each, named by their ID
    DIR/failed/   entries the server refused for good, with its reply

An entry is one file: a first line of JSON (the envelope and the delivery state) followed by the
message exactly as it will be sent.  The JSON records the message's size and SHA-256, so a damaged
entry is recognised as such instead of being sent.

Crash safety.  An entry is written to ``tmp/``, flushed to the disk (``fsync``), renamed into
``queue/`` and the directory is flushed too; a rename is atomic, so at any moment the entry either
is complete in ``queue/`` or is not there at all.  Every later change to an entry (its attempt count,
its recipients) is made the same way, by replacing the whole file.

Concurrency.  A flusher takes an exclusive :func:`fcntl.flock` on an entry's file before sending it
and, once it holds the lock, checks that the name still leads to the file it locked (another flusher
may have sent it and removed or replaced it meanwhile).  Two flushers running at once therefore
never send one message twice.  An entry is removed only after the server has accepted it, so a
flusher killed at any point leaves each message delivered or still queued: delivered at least once,
never lost (a kill between the server's acceptance and the removal sends it once more).

Nothing here is ever deleted because it cannot be read: a damaged entry is reported and skipped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any, Literal

from smtp_sansio import (
    LocalProtocolError,
    envelope_from_bytes,
    envelope_from_message,
)

__all__ = [
    "CorruptEntry",
    "QueueEntry",
    "QueueError",
    "Queued",
    "drop_entry",
    "enqueue",
    "list_queue",
    "queue_instead",
    "read_entry",
]


#: Where an entry lives: waiting in ``queue/`` or refused for good in ``failed/``.
Area = Literal["queue", "failed"]
_AREAS: tuple[Area, ...] = ("queue", "failed")
_MAGIC = "smtp-sansio-queue"
_VERSION = 1


class QueueError(Exception):
    """The queue cannot be used: an entry cannot be stored (full disk), found, or dropped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry:
    """One queued message, without its content.

    Attributes:
        id: the entry's name; IDs sort in the order the messages were queued.
        area: ``"queue"`` (waiting) or ``"failed"`` (refused for good).
        sender: the envelope sender.
        recipients: the recipients it still has to be delivered to (in ``failed/``: those refused).
        created: when it was queued (seconds since the epoch).
        size: the message's size in octets.
        attempts: how many times sending it was tried.
        last_attempt: when it was last tried, or ``None``.
        next_attempt: not before then is it tried again (0: at the next flush).
        last_reply: the server's last reply or the error that stopped the last attempt, or ``None``.
    """

    id: str
    area: Area = "queue"
    sender: str
    recipients: tuple[str, ...]
    created: float
    size: int
    attempts: int = 0
    last_attempt: float | None = None
    next_attempt: float = 0.0
    last_reply: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CorruptEntry:
    """A file of the queue that is not a valid entry; it is reported, skipped, and left in place.

    Attributes:
        id: the file's name.
        area: the subdirectory it is in.
        reason: what is wrong with it.
    """

    id: str
    area: Area
    reason: str




# --- storing ---------------------------------------------------------------------------------------


def _root(directory: str | os.PathLike[str]) -> str:
    # "~/Mail/queue" means what it means in a shell and in Emacs' smtpmail-queue-dir.
    return os.path.expanduser(os.fspath(directory))


def enqueue(
    directory: str | os.PathLike[str],
    message: Message | bytes | bytearray | memoryview,
    *,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
) -> str:
    """Store a message in the queue instead of sending it.

    The envelope is settled now, as ``send_message`` would settle it: ``sender`` defaults to the
    Sender or From header, ``recipients`` to every To, Cc and Bcc address, and Bcc fields are removed.
    The function returns only once the entry is complete on the disk.

    Args:
        directory: the queue directory (created if missing, private to the user; a leading
            ``~`` is the home directory).
        message: the message, as an :class:`email.message.Message` or as bytes.
        sender: the envelope sender.
        recipients: the envelope recipients.

    Returns:
        The entry's ID.

    Raises:
        LocalProtocolError: the message or an address cannot be sent as it is.
        QueueError: the entry cannot be written (a full disk, no permission); nothing is left behind.
    """
    if isinstance(message, Message):
        envelope, data = envelope_from_message(message, sender=sender, recipients=recipients)
    elif isinstance(message, bytes | bytearray | memoryview):
        envelope, data = envelope_from_bytes(bytes(message), sender=sender, recipients=recipients)
    else:
        raise LocalProtocolError(
            f"a queued message must be an email.message.Message or bytes, not {type(message).__name__}"
        )
    root = _root(directory)
    _ensure_layout(root)
    now = time.time()
    entry = QueueEntry(
        id=_new_id(now), sender=envelope.sender, recipients=tuple(envelope.recipients), created=now,
        size=len(data),
    )
    try:
        _store(root, "queue", entry, data)
    except OSError as exc:
        raise QueueError(f"cannot queue the message in {root}: {_reason(exc)}") from None
    return entry.id


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    """What ``send_message(..., queue=DIR)`` returns: the message was stored, not sent.

    Attributes:
        id: the entry's ID, for ``smtp-sansio queue show ID`` and :func:`read_entry`.
        directory: the queue directory, as given (``~`` expanded).
    """

    id: str
    directory: str


def queue_instead(
    directory: str | os.PathLike[str],
    message: object,
    *,
    sender: str | None,
    recipients: Iterable[str] | None,
    extensions: bool,
) -> Queued:
    """Store a message given to an adapter's one-shot ``send_message`` with ``queue=DIR``.

    Args:
        directory: the queue directory.
        message: what was given to ``send_message``; a Message or bytes can be queued.
        sender: the envelope sender, or ``None`` for the headers'.
        recipients: the envelope recipients, or ``None`` for the headers'.
        extensions: whether DSN, REQUIRETLS or a BODY type was asked for; an entry does not keep
            them, so they are refused rather than silently dropped when the message is flushed.

    Returns:
        Where the message is now.

    Raises:
        LocalProtocolError: the message cannot be queued as given.
        QueueError: the entry cannot be written; nothing is left behind.
    """
    if extensions:
        raise LocalProtocolError("dsn, requiretls and body are not kept in the queue; send without queue=")
    if not isinstance(message, Message | bytes | bytearray | memoryview):
        raise LocalProtocolError(
            f"a queued message must be an email.message.Message or bytes, not {type(message).__name__}"
        )
    entry_id = enqueue(directory, message, sender=sender, recipients=recipients)
    return Queued(id=entry_id, directory=_root(directory))


def _new_id(now: float) -> str:
    # Sorts by queueing time; the process ID and random part keep concurrent writers apart.
    return f"{int(now * 1_000_000):017d}.{os.getpid()}.{secrets.token_hex(4)}"


def _ensure_layout(root: str) -> None:
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        for sub in ("tmp", *_AREAS):
            path = os.path.join(root, sub)
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
                _fsync_dir(root)
    except OSError as exc:
        raise QueueError(f"cannot use the queue directory {root}: {_reason(exc)}") from None


def _encode(entry: QueueEntry, data: bytes) -> bytes:
    header = {
        "format": _MAGIC,
        "version": _VERSION,
        "sender": entry.sender,
        "recipients": list(entry.recipients),
        "created": entry.created,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "attempts": entry.attempts,
        "last_attempt": entry.last_attempt,
        "next_attempt": entry.next_attempt,
        "last_reply": entry.last_reply,
    }
    # ensure_ascii: the first line never contains a newline or undecodable bytes.
    return json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n" + data


def _store(root: str, area: Area, entry: QueueEntry, data: bytes) -> None:
    # Write to tmp/, fsync, rename into place, fsync the directory: all or nothing.
    content = _encode(entry, data)
    tmp = os.path.join(root, "tmp", f"{entry.id}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(root, area, entry.id))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(os.path.join(root, area))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    _fsync_dir(os.path.dirname(path))


# --- reading ---------------------------------------------------------------------------------------


class _Corrupt(Exception):
    pass


def _decode(entry_id: str, area: Area, content: bytes) -> tuple[QueueEntry, bytes]:
    line, newline, data = content.partition(b"\n")
    if not newline:
        raise _Corrupt("no header line (truncated or not a queue entry)")
    try:
        header = json.loads(line)
    except ValueError as exc:
        raise _Corrupt(f"unreadable header: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != _MAGIC:
        raise _Corrupt("not a queue entry")
    if header.get("version") != _VERSION:
        raise _Corrupt(f"unknown entry format version {header.get('version')!r}")
    try:
        sender = _typed(header, "sender", str)
        recipients = _typed(header, "recipients", list)
        if not recipients or not all(isinstance(r, str) for r in recipients):
            raise _Corrupt("recipients must be a non-empty list of addresses")
        size = _typed(header, "size", int)
        digest = _typed(header, "sha256", str)
        entry = QueueEntry(
            id=entry_id, area=area, sender=sender, recipients=tuple(recipients),
            created=float(_typed(header, "created", (int, float))), size=size,
            attempts=_typed(header, "attempts", int),
            last_attempt=_optional(header, "last_attempt", (int, float)),
            next_attempt=float(_typed(header, "next_attempt", (int, float))),
            last_reply=_optional(header, "last_reply", str),
        )
    except (TypeError, ValueError) as exc:
        raise _Corrupt(f"invalid header: {exc}") from None
    if len(data) != size:
        raise _Corrupt(f"message is {len(data)} octets, the header says {size} (truncated?)")
    if hashlib.sha256(data).hexdigest() != digest:
        raise _Corrupt("message does not match its checksum")
    return entry, data


def _typed(header: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = header.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Corrupt(f"header field {key!r} is missing or of the wrong type")
    return value


def _optional(header: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    return None if header.get(key) is None else _typed(header, key, kind)


def _entry_ids(root: str, area: Area | Literal["tmp"]) -> list[str]:
    try:
        names = os.listdir(os.path.join(root, area))
    except FileNotFoundError:
        return []
    return sorted(name for name in names if not name.startswith("."))


def _check_id(entry_id: str) -> None:
    if not entry_id or "/" in entry_id or entry_id.startswith(".") or "\0" in entry_id:
        raise QueueError(f"not a queue entry ID: {entry_id!r}")


def list_queue(directory: str | os.PathLike[str], area: Area = "queue") -> list[QueueEntry | CorruptEntry]:
    """The entries of one area of the queue, in queue order.

    Args:
        directory: the queue directory.
        area: ``"queue"`` for the waiting messages, ``"failed"`` for the refused ones.

    Returns:
        A :class:`QueueEntry` per valid entry and a :class:`CorruptEntry` per damaged one.
    """
    root = _root(directory)
    entries: list[QueueEntry | CorruptEntry] = []
    for entry_id in _entry_ids(root, area):
        try:
            with open(os.path.join(root, area, entry_id), "rb") as file:
                entries.append(_decode(entry_id, area, file.read())[0])
        except FileNotFoundError:
            continue  # sent or dropped meanwhile
        except (_Corrupt, OSError) as exc:
            entries.append(CorruptEntry(id=entry_id, area=area, reason=_reason(exc)))
    return entries


def read_entry(
    directory: str | os.PathLike[str], entry_id: str, area: Area = "queue"
) -> tuple[QueueEntry, bytes]:
    """One entry and its message.

    Raises:
        QueueError: there is no such entry, or it is damaged.
    """
    root = _root(directory)
    _check_id(entry_id)
    try:
        with open(os.path.join(root, area, entry_id), "rb") as file:
            return _decode(entry_id, area, file.read())
    except FileNotFoundError:
        raise QueueError(f"no entry {entry_id} in {os.path.join(root, area)}") from None
    except (_Corrupt, OSError) as exc:
        raise QueueError(f"entry {entry_id} is damaged: {_reason(exc)}") from None


def drop_entry(directory: str | os.PathLike[str], entry_id: str, area: Area = "queue") -> None:
    """Remove an entry without sending it (a damaged one too).

    Raises:
        QueueError: there is no such entry, or a flusher is sending it right now.
    """
    root = _root(directory)
    _check_id(entry_id)
    path = os.path.join(root, area, entry_id)
    with _locked(path) as locked:
        if locked is None:
            raise QueueError(f"no entry {entry_id} in {os.path.join(root, area)}")
        if locked == _BUSY:
            raise QueueError(f"entry {entry_id} is being sent by another process; try again later")
        _remove(path)


_BUSY: Literal["busy"] = "busy"


@contextlib.contextmanager
def _locked(path: str) -> Iterator[int | Literal["busy"] | None]:
    # Yields the descriptor of the locked file; "busy" if another process holds it; None if the
    # name no longer leads to a file, or leads to another file than the one locked (replaced).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield _BUSY
            return
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        yield fd if same else None
    finally:
        os.close(fd)  # releases the lock


# --- flushing --------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        if exc.errno == errno.ENOSPC:
            return f"{exc.strerror} (the disk is full)"
        return exc.strerror
    return _oneline(str(exc)) or type(exc).__name__


def _oneline(text: str) -> str:
    return " ".join(text.split())
