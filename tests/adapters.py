"""Every adapter behind one blocking interface, so that one test runs over sync, asyncio and trio.

Load with ``pytest_plugins = ["adapters"]``.  The ``adapter`` fixture is parametrised over
:data:`ADAPTERS`; a test written against it reads like a test of the blocking adapter::

    def test_delivery(adapter, smtpd_factory):
        server = smtpd_factory()
        adapter.send_message(message, host=LOOPBACK, port=server.port, tls="none")
        with adapter.client(LOOPBACK, server.port, tls="none") as client:
            client.send_message(message)

For asyncio and trio every call is made in an event loop of that library running in a thread of
its own (an anyio blocking portal), which lives as long as the test, so a client keeps its
connection from one call to the next.  Tests that need real concurrency (many connections,
cancellation, two tasks sharing a client) are async tests instead: ``@pytest.mark.anyio``, with
the ``anyio_backend`` fixture below (asyncio and trio) and ``async_adapter``, the adapter module of
that backend.

:func:`client_sockets` tells which sockets of this process are connected to a port, to check that
an adapter left none open.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType, TracebackType
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

__all__ = ["ADAPTERS", "ASYNC_ADAPTERS", "Adapter", "Client", "client_sockets"]

#: Every adapter, by the name of its module in smtp_sansio.adapters.
ADAPTERS = ("sync", "asyncio", "trio")
#: The adapters that run in an event loop; each is also the name of its anyio backend.
ASYNC_ADAPTERS = ("asyncio", "trio")

# The attribute holding each adapter's connection (None once closed).
_TRANSPORT_ATTRIBUTE = {"sync": "_sock", "asyncio": "_writer", "trio": "_stream"}


class Adapter:
    """One adapter, called as if it were blocking.

    Attributes:
        name: ``"sync"``, ``"asyncio"`` or ``"trio"``.
        module: the adapter module.
    """

    def __init__(self, name: str, portal: BlockingPortal | None) -> None:
        self.name = name
        self.module: ModuleType = importlib.import_module(f"smtp_sansio.adapters.{name}")
        self._portal = portal

    def __repr__(self) -> str:
        return f"<Adapter {self.name}>"

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``function`` (a coroutine function for the async adapters) in the adapter's world."""
        if self._portal is None:
            return function(*args, **kwargs)
        return self._portal.call(functools.partial(function, *args, **kwargs))

    def send_message(self, message: Any, **options: Any) -> Any:
        """The adapter's one-shot ``send_message``."""
        return self.run(self.module.send_message, message, **options)

    def client(self, *args: Any, **options: Any) -> Client:
        """A new ``SMTPClient`` of the adapter (made in its event loop), not yet connected."""
        return Client(self, self.run(self.module.SMTPClient, *args, **options))


class Client:
    """An adapter's ``SMTPClient`` with blocking methods; a context manager like the sync one."""

    def __init__(self, adapter: Adapter, client: Any) -> None:
        self.adapter = adapter
        self.wrapped = client

    def __getattr__(self, name: str) -> Any:
        # host, port, authenticated, capabilities: plain attributes, the same in every adapter.
        return getattr(self.wrapped, name)

    def connect(self) -> None:
        self.adapter.run(self.wrapped.connect)

    def send_message(self, message: Any, **options: Any) -> Any:
        return self.adapter.run(self.wrapped.send_message, message, **options)

    def send_messages(self, messages: Any) -> Any:
        return self.adapter.run(self.wrapped.send_messages, messages)

    def quit(self) -> None:
        self.adapter.run(self.wrapped.quit)

    def close(self) -> None:
        self.adapter.run(self.wrapped.close)

    @property
    def transport_open(self) -> bool:
        """Whether the client still holds a connection."""
        return getattr(self.wrapped, _TRANSPORT_ATTRIBUTE[self.adapter.name]) is not None

    def __enter__(self) -> Client:
        if self.adapter.name == "sync":
            self.wrapped.__enter__()
        else:
            self.adapter.run(self.wrapped.__aenter__)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.adapter.name == "sync":
            self.wrapped.__exit__(exc_type, exc, tb)
        else:
            self.adapter.run(self.wrapped.__aexit__, exc_type, exc, tb)


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """Each adapter in turn; the async ones run in an event loop of their own for the test."""
    name: str = request.param
    if name == "sync":
        yield Adapter(name, None)
        return
    with start_blocking_portal(backend=name) as portal:
        yield Adapter(name, portal)


@pytest.fixture(params=ASYNC_ADAPTERS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The event loops that ``@pytest.mark.anyio`` tests run in."""
    return str(request.param)


@pytest.fixture
def async_adapter(anyio_backend: str) -> ModuleType:
    """The adapter module of the backend the test runs in."""
    return importlib.import_module(f"smtp_sansio.adapters.{anyio_backend}")


def client_sockets(port: int) -> list[int]:
    """The inodes of this process's TCP sockets connected to ``port`` on loopback (Linux only).

    A socket's remote port, not its local one: the servers' own ends, which listen or were accepted
    on ``port``, are not counted.
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("counting sockets needs Linux's /proc")
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own descriptor, or one just closed
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    found = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)  # the heading
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                inode = int(fields[9])
                if remote_port == port and inode in inodes:
                    found.append(inode)
    return found
