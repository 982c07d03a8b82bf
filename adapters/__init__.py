"""Adapters: everything in smtp-sansio that touches the world.

The sans-IO core (:mod:`smtp_sansio`) never performs I/O.  The modules of this subpackage do: they
open sockets, run TLS handshakes, read clocks, files and the environment, and drive a
:class:`~smtp_sansio.Session` by performing the requests it returns.  Import the adapter you want
explicitly, for example ``from smtp_sansio.adapters.sync import send_message``.  This package itself
exports only :class:`CredentialsError` (a :class:`~smtp_sansio.LocalProtocolError` raised when
credentials cannot be found, read or completed, by every adapter), so importing it never pulls in
an event loop library.

In the source tree this package is the directory ``adapters/``; it is installed as
``smtp_sansio.adapters``.  Its modules therefore import each other relatively
(``from ._config import ...``) and the core absolutely (``from smtp_sansio import Session``), which
works both installed and when type-checked from the source tree.
"""

from __future__ import annotations

from ._netrc import CredentialsError

__all__ = ["CredentialsError"]
