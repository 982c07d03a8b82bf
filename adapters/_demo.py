"""``smtp-sansio demo``: a complete STARTTLS submission on loopback, with the trace shown, per adapter.

It starts aiosmtpd on 127.0.0.1 with a certificate from a throwaway CA made in memory by trustme,
and sends the same message through each adapter -- :mod:`~smtp_sansio.adapters.sync`, then
:mod:`~smtp_sansio.adapters.asyncio`, then :mod:`~smtp_sansio.adapters.trio` when trio is installed
-- with a client context that trusts that CA only (so the certificate really is verified).  It
prints each dialogue, what the server received, and stops the server.  The libraries come with the
``demo`` extra: ``pip install 'smtp-sansio[demo]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import textwrap
import warnings
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any, TextIO

from smtp_sansio import SendResult

from . import asyncio as asyncio_adapter
from ._options import stream_logger
from .sync import SMTPClient

__all__ = ["run_demo"]

_LOOPBACK = "127.0.0.1"
_EX_UNAVAILABLE = 69


def run_demo(out: TextIO, err: TextIO) -> int:
    """Run the demo, writing the trace and the report to ``out``.

    Args:
        out: where the trace and the report go.
        err: where the one line saying how to install missing libraries goes.

    Returns:
        The exit status: 0, or 69 when aiosmtpd or trustme is not installed.

    Raises:
        SMTPError: the demo's own submission failed.
    """
    try:
        import trustme
        from aiosmtpd.controller import Controller
    except ImportError as exc:
        print(
            f"smtp-sansio: the demo needs aiosmtpd and trustme ({exc.name} is missing): "
            "install the 'demo' extra, e.g. pip install 'smtp-sansio[demo]'",
            file=err,
        )
        return _EX_UNAVAILABLE

    ca = trustme.CA(organization_name="smtp-sansio demo CA")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(_LOOPBACK, "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)

    handler = _Handler()
    with _quiet_server_logs(), _running(Controller, handler, server_context) as port:
        print(f"A demo SMTP server (aiosmtpd, STARTTLS) is listening on {_LOOPBACK}:{port}.", file=out)
        print("Its certificate comes from a throwaway CA that only this client trusts.", file=out)
        options: dict[str, Any] = {
            "host": _LOOPBACK,
            "port": port,
            "tls": "starttls",
            "ssl_context": client_context,
            "local_hostname": "client.example.org",
            "trace": stream_logger(out, indent="  "),
            "timeout": 30,
        }
        _heading(out, "1. The blocking adapter, smtp_sansio.adapters.sync")
        with SMTPClient(**options) as client:
            result = client.send_message(_sample_message())
        _report(out, result)
        first = handler.received[0]
        _print_received(out, first)

        _heading(out, "2. The asyncio adapter, smtp_sansio.adapters.asyncio: the same message")
        _report(out, asyncio.run(_send_async(asyncio_adapter, options)))
        _print_same(out, first, handler.received[-1])

        try:
            import trio

            from . import trio as trio_adapter
        except ImportError:
            missing = "trio is not installed (pip install 'smtp-sansio[trio]')"
            print(f"\n3. The trio adapter is not shown: {missing}.", file=out)
        else:
            _heading(out, "3. The trio adapter, smtp_sansio.adapters.trio: the same message")
            _report(out, trio.run(_send_async, trio_adapter, options))
            _print_same(out, first, handler.received[-1])
    return 0


async def _send_async(adapter: Any, options: dict[str, Any]) -> SendResult:
    # The same code for both event loops: the adapters have the same names.
    async with adapter.SMTPClient(**options) as client:
        result: SendResult = await client.send_message(_sample_message())
        return result


def _heading(out: TextIO, title: str) -> None:
    print(f"\n{title}\n\nThe SMTP dialogue (C: client, S: server):\n", file=out)


def _report(out: TextIO, result: SendResult) -> None:
    print("\nResult:", file=out)
    print(f"  accepted: {', '.join(result.accepted)}", file=out)
    print(f"  final reply: {result.reply}", file=out)


def _print_received(out: TextIO, received: dict[str, Any]) -> None:
    print("\nThe server received:", file=out)
    print(f"  MAIL FROM:<{received['mail_from']}>", file=out)
    for rcpt in received["rcpt_tos"]:
        print(f"  RCPT TO:<{rcpt}>", file=out)
    print("  message (note: no Bcc field):", file=out)
    text = received["content"].decode("utf-8", "replace").replace("\r\n", "\n")
    print(textwrap.indent(text, "  | ", lambda line: True), file=out, end="")


def _print_same(out: TextIO, first: dict[str, Any], received: dict[str, Any]) -> None:
    # Message-ID and Date differ from one message to the next; the rest must not.
    def stable(content: bytes) -> list[bytes]:
        return [line for line in content.splitlines() if not line.startswith((b"Message-ID:", b"Date:"))]

    same = (received["mail_from"], received["rcpt_tos"], stable(received["content"])) == (
        first["mail_from"], first["rcpt_tos"], stable(first["content"])
    )
    print(f"\nThe server received {'the same envelope and message' if same else 'something else'}.", file=out)


def _sample_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Bcc"] = "carol@example.org"
    message["Subject"] = "Hello from smtp-sansio"
    message.set_content(
        "Hi Bob,\n\nthis message went through a sans-IO SMTP session over STARTTLS.\n"
        ".A line starting with a dot travels dot-stuffed.\n\nAlice\n"
    )
    return message


class _Handler:
    # Keeps what the server received, for the report.
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "content": bytes(envelope.original_content),
            }
        )
        return "250 2.0.0 message accepted for the demo"


@contextlib.contextmanager
def _running(controller_class: Any, handler: _Handler, context: ssl.SSLContext) -> Iterator[int]:
    # The listening socket is bound first, on a port the kernel picks, and handed to the server.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((_LOOPBACK, 0))
        listener.listen(8)
        port: int = listener.getsockname()[1]

        class BoundController(controller_class):  # type: ignore[misc]
            def _create_server(self) -> Any:
                return self.loop.create_server(self._factory_invoker, sock=listener, ssl=self.ssl_context)

        controller = BoundController(
            handler,
            hostname=_LOOPBACK,
            port=port,
            server_hostname="demo.example.org",
            tls_context=context,
            require_starttls=True,
        )
        controller.start()
        try:
            yield port
        finally:
            controller.stop()
    finally:
        listener.close()


@contextlib.contextmanager
def _quiet_server_logs() -> Iterator[None]:
    # aiosmtpd logs every connection to "mail.log" and warns about some of its own deprecations;
    # neither belongs in the demo's output.
    log = logging.getLogger("mail.log")
    level, propagate = log.level, log.propagate
    log.setLevel(logging.CRITICAL)
    log.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        log.setLevel(level)
        log.propagate = propagate
