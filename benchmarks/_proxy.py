"""A TCP proxy that emulates a slow link by delaying every chunk, run in a child process.

Each chunk read from one side is held for ``delay`` seconds and then written to the other side, in
the order it arrived; end of file is delayed the same way.  With a 10 ms delay in each direction a
request and its reply take 20 ms more than on loopback, as they would over a link with a 20 ms round
trip time.  Bandwidth is not limited, and chunks that arrive while others are held are not made to
wait for them: the link has latency, not a queue.

The operating system's own network emulation (``tc netem``) is not available everywhere, so the
delay is done here.  The selector's timeout has a resolution of a millisecond, so a chunk is held
for at least ``delay`` and at most about a millisecond more.
"""

from __future__ import annotations

import collections
import selectors
import socket
import time
from multiprocessing.connection import Connection

__all__ = ["serve_delay_proxy"]

_READ_SIZE = 262144
# A peer that stops reading for this long is considered gone (a benchmark client reads replies).
_SEND_TIMEOUT = 30.0


class _Direction:
    """Bytes travelling from ``src`` to ``dst``, each chunk with the time it may be delivered."""

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.held: collections.deque[tuple[float, bytes]] = collections.deque()
        self.eof_read = False
        self.eof_sent = False


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.up = _Direction(client, server)
        self.down = _Direction(server, client)

    @property
    def done(self) -> bool:
        return self.up.eof_sent and self.down.eof_sent

    def close(self) -> None:
        self.up.src.close()
        self.up.dst.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=_SEND_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def serve_delay_proxy(control: Connection, target_port: int, delay: float) -> None:
    """Proxy 127.0.0.1:<a new port> to 127.0.0.1:``target_port`` until ``control`` is closed.

    Sends ``("ready", port)`` on ``control`` once listening.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    selector.register(control, selectors.EVENT_READ, "control")
    pairs: list[_Pair] = []
    control.send(("ready", listener.getsockname()[1]))

    def drop(pair: _Pair) -> None:
        for direction in (pair.up, pair.down):
            if not direction.eof_read:
                selector.unregister(direction.src)
        pair.close()
        pairs.remove(pair)

    try:
        while True:
            now = time.monotonic()
            due = [d.held[0][0] for p in pairs for d in (p.up, p.down) if d.held]
            timeout = max(0.0, min(due) - now) if due else None
            for key, _mask in selector.select(timeout):
                if key.data == "control":
                    return
                if key.data is None:
                    client, _ = listener.accept()
                    client.settimeout(_SEND_TIMEOUT)
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    pair = _Pair(client, _connect(target_port))
                    pairs.append(pair)
                    selector.register(pair.up.src, selectors.EVENT_READ, (pair, pair.up))
                    selector.register(pair.down.src, selectors.EVENT_READ, (pair, pair.down))
                    continue
                pair, direction = key.data
                try:
                    chunk = direction.src.recv(_READ_SIZE)
                except OSError:
                    chunk = b""
                # An empty chunk is the end of file: it travels the link like data does.
                direction.held.append((time.monotonic() + delay, chunk))
                if not chunk:
                    direction.eof_read = True
                    selector.unregister(direction.src)
            now = time.monotonic()
            for pair in list(pairs):
                try:
                    for direction in (pair.up, pair.down):
                        while direction.held and direction.held[0][0] <= now:
                            _, chunk = direction.held.popleft()
                            if chunk:
                                direction.dst.sendall(chunk)
                            else:
                                direction.dst.shutdown(socket.SHUT_WR)
                                direction.eof_sent = True
                except OSError:
                    drop(pair)
                    continue
                if pair.done:
                    drop(pair)
    finally:
        for pair in pairs:
            pair.close()
        selector.close()
        listener.close()
