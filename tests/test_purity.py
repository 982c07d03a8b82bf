"""The sans-IO rule, enforced: nothing in ``smtp_sansio/`` may perform I/O.

Every module of the core package directory (not the adapters) is parsed, never imported, and its
syntax tree is searched for anything that reaches the world: modules that do network, TLS, event
loop, thread, process, clock, file, environment, logging or randomness work; the builtins that read
or write files and terminals; and dynamic imports that could hide any of those.  Imports are checked
wherever they appear (inside functions, ``if TYPE_CHECKING:`` blocks, ``try:`` blocks), because a
lazy import of ``socket`` is still a socket.  Randomness (SASL nonces) and host names are injected
by the adapters, so ``random`` and ``secrets`` are forbidden too.

The checker is tested on small sources first, so a checker that finds nothing fails loudly.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "smtp_sansio"

#: Top-level modules the core may not import, in any form (``import x``, ``import x.y``,
#: ``from x import y``, ``from x.y import z``).
FORBIDDEN_MODULES: dict[str, str] = {
    "socket": "network I/O",
    "ssl": "TLS",
    "select": "waiting on file descriptors",
    "selectors": "waiting on file descriptors",
    "asyncio": "an event loop",
    "trio": "an event loop",
    "anyio": "an event loop",
    "threading": "threads",
    "_thread": "threads",
    "concurrent": "threads and processes",
    "multiprocessing": "processes",
    "subprocess": "processes",
    "signal": "signal handlers",
    "time": "the clock",
    "logging": "logging handlers",
    "os": "the operating system (files, environment)",
    "pathlib": "files",
    "shutil": "files",
    "tempfile": "files",
    "glob": "files",
    "fileinput": "files",
    "mmap": "files",
    "fcntl": "files",
    "urllib": "network I/O",
    "http": "network I/O",
    "socketserver": "network I/O",
    "smtplib": "network I/O",
    "random": "randomness (inject it)",
    "secrets": "randomness (inject it)",
    "importlib": "dynamic imports",
    "builtins": "access to open() and print()",
    "ctypes": "foreign code",
}

#: Builtin functions the core may not call.
FORBIDDEN_CALLS: dict[str, str] = {
    "open": "opens a file",
    "print": "writes to a terminal",
    "input": "reads a terminal",
    "breakpoint": "starts a debugger",
    "__import__": "imports dynamically",
    "exit": "ends the process",
    "quit": "ends the process",
}

#: (module, attribute) pairs the core may not touch even though the module itself is allowed.
FORBIDDEN_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("io", "open"): "opens a file",
    ("io", "open_code"): "opens a file",
    ("io", "FileIO"): "opens a file",
    ("sys", "stdin"): "reads a terminal",
    ("sys", "stdout"): "writes to a terminal",
    ("sys", "stderr"): "writes to a terminal",
    ("sys", "__stdin__"): "reads a terminal",
    ("sys", "__stdout__"): "writes to a terminal",
    ("sys", "__stderr__"): "writes to a terminal",
    ("sys", "argv"): "reads the command line",
    ("sys", "exit"): "ends the process",
    ("email.utils", "make_msgid"): "reads the host name, the clock and randomness",
    ("datetime", "now"): "reads the clock",
    ("datetime", "utcnow"): "reads the clock",
    ("datetime", "today"): "reads the clock",
    ("date", "today"): "reads the clock",
}

#: Names that reach the environment whatever they were imported from.
FORBIDDEN_NAMES: dict[str, str] = {
    "environ": "reads the environment",
    "environb": "reads the environment",
    "getenv": "reads the environment",
    "__builtins__": "reaches open() and print()",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """One forbidden construct, located."""

    filename: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.message}"


class _Checker(ast.NodeVisitor):
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.violations: list[Violation] = []

    def _report(self, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 0)
        self.violations.append(Violation(filename=self.filename, line=line, message=message))

    def _check_module(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if top in FORBIDDEN_MODULES:
            self._report(node, f"imports {module} ({FORBIDDEN_MODULES[top]})")
        # The adapters are installed as smtp_sansio.adapters; the core must never depend on them.
        if module == "smtp_sansio.adapters" or module.startswith("smtp_sansio.adapters."):
            self._report(node, f"imports {module} (the core may not use the adapters)")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module is not None:
            self._check_module(node, node.module)
            for alias in node.names:
                self._check_attribute(node, node.module, alias.name)
                if node.module == "smtp_sansio" and alias.name == "adapters":
                    self._report(node, "imports smtp_sansio.adapters (the core may not use the adapters)")
        elif node.level == 1:
            # `from .adapters import x` or `from . import adapters` inside the installed package.
            first = (node.module or "").split(".")[0]
            names = {alias.name for alias in node.names}
            if first == "adapters" or (node.module is None and "adapters" in names):
                self._report(node, "imports .adapters (the core may not use the adapters)")
        for alias in node.names:
            if alias.name in FORBIDDEN_NAMES:
                self._report(node, f"imports {alias.name} ({FORBIDDEN_NAMES[alias.name]})")
        self.generic_visit(node)

    def _check_attribute(self, node: ast.AST, owner: str, attribute: str) -> None:
        reason = FORBIDDEN_ATTRIBUTES.get((owner, attribute))
        if reason is not None:
            self._report(node, f"uses {owner}.{attribute} ({reason})")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        owner = _dotted_name(node.value)
        if owner is not None:
            # `datetime.datetime.now` is checked by its last owner component too.
            self._check_attribute(node, owner, node.attr)
            last = owner.rsplit(".", 1)[-1]
            if last != owner:
                self._check_attribute(node, last, node.attr)
        if node.attr in FORBIDDEN_NAMES:
            self._report(node, f"uses .{node.attr} ({FORBIDDEN_NAMES[node.attr]})")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self._report(node, f"uses {node.id} ({FORBIDDEN_NAMES[node.id]})")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            self._report(node, f"calls {node.func.id}() ({FORBIDDEN_CALLS[node.func.id]})")
        self.generic_visit(node)


def _dotted_name(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute lookups on a name, else ``None``."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def find_violations(source: str, filename: str = "<string>") -> list[Violation]:
    """Every forbidden construct in one module's source, in order of appearance."""
    checker = _Checker(filename)
    checker.visit(ast.parse(source, filename=filename))
    return sorted(checker.violations, key=lambda violation: violation.line)


def core_modules() -> list[Path]:
    """Every Python file of the core package directory, recursively."""
    return sorted(CORE.rglob("*.py"))


# --- the checker itself -----------------------------------------------------------------------------

BAD_SOURCES = [
    pytest.param("import socket\n", 1, "socket", id="import"),
    pytest.param("import os.path\n", 1, "os.path", id="import-submodule"),
    pytest.param("import ssl as _ssl\n", 1, "ssl", id="import-as"),
    pytest.param("from asyncio import StreamReader\n", 1, "asyncio", id="from-import"),
    pytest.param("from urllib.parse import quote\n", 1, "urllib.parse", id="from-submodule"),
    pytest.param("x = 1\n\ndef f():\n    import time\n    return time.time()\n", 4, "time", id="in-function"),
    pytest.param("async def f():\n    import trio\n", 2, "trio", id="in-async-function"),
    pytest.param(
        "class C:\n    def m(self):\n        from threading import Lock\n", 3, "threading", id="in-method"
    ),
    pytest.param(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import anyio\n",
        3,
        "anyio",
        id="type-checking",
    ),
    pytest.param("try:\n    import selectors\nexcept ImportError:\n    pass\n", 2, "selectors", id="in-try"),
    pytest.param("import multiprocessing\n", 1, "multiprocessing", id="multiprocessing"),
    pytest.param("import subprocess\n", 1, "subprocess", id="subprocess"),
    pytest.param("import logging\n", 1, "logging", id="logging"),
    pytest.param("from logging import handlers\n", 1, "logging", id="logging-handlers"),
    pytest.param("from pathlib import Path\n", 1, "pathlib", id="pathlib"),
    pytest.param("import shutil\n", 1, "shutil", id="shutil"),
    pytest.param("import tempfile\n", 1, "tempfile", id="tempfile"),
    pytest.param("import signal\n", 1, "signal", id="signal"),
    pytest.param("import select\n", 1, "select", id="select"),
    pytest.param("import http.client\n", 1, "http.client", id="http"),
    pytest.param("import random\n", 1, "random", id="random"),
    pytest.param("from secrets import token_bytes\n", 1, "secrets", id="secrets"),
    pytest.param("import importlib\n", 1, "importlib", id="importlib"),
    pytest.param("from io import open as o\n", 1, "io.open", id="io-open-import"),
    pytest.param("import io\nf = io.open('x')\n", 2, "io.open", id="io-open"),
    pytest.param("import io\nf = io.FileIO('x')\n", 2, "io.FileIO", id="io-fileio"),
    pytest.param("data = open('x').read()\n", 1, "open()", id="builtin-open"),
    pytest.param("def f(x):\n    print(x)\n", 2, "print()", id="print"),
    pytest.param("x = input()\n", 1, "input()", id="input"),
    pytest.param("m = __import__('socket')\n", 1, "__import__()", id="dunder-import"),
    pytest.param("o = __builtins__['open']\n", 1, "__builtins__", id="builtins-dict"),
    pytest.param("import builtins\n", 1, "builtins", id="builtins-module"),
    pytest.param("x = getenv('SMTPSERVER')\n", 1, "getenv", id="getenv"),
    pytest.param("def f(env):\n    return env.environ['X']\n", 2, "environ", id="environ-attribute"),
    pytest.param("import sys\nsys.stdout.write('x')\n", 2, "sys.stdout", id="sys-stdout"),
    pytest.param("import sys\nsys.exit(1)\n", 2, "sys.exit", id="sys-exit"),
    pytest.param("from email.utils import make_msgid\n", 1, "make_msgid", id="make-msgid"),
    pytest.param("import datetime\nt = datetime.datetime.now()\n", 2, "datetime.now", id="datetime-now"),
    pytest.param("from .adapters import sync\n", 1, "adapters", id="relative-adapters"),
    pytest.param("from . import adapters\n", 1, "adapters", id="relative-adapters-package"),
    pytest.param("import smtp_sansio.adapters.sync\n", 1, "adapters", id="absolute-adapters"),
    pytest.param("from smtp_sansio import adapters\n", 1, "adapters", id="absolute-adapters-package"),
]


@pytest.mark.parametrize(("source", "line", "fragment"), BAD_SOURCES)
def test_checker_detects(source: str, line: int, fragment: str) -> None:
    violations = find_violations(source, "smtp_sansio/_bad.py")
    assert violations, f"checker missed a violation in {source!r}"
    first = violations[0]
    assert first.line == line
    assert fragment in first.message
    assert str(first).startswith(f"smtp_sansio/_bad.py:{line}: ")


def test_checker_reports_every_violation_with_its_line() -> None:
    source = "import re\nimport os\n\ndef f():\n    print(os.environ['X'])\n    import socket\n"
    lines = [violation.line for violation in find_violations(source)]
    assert lines == [2, 5, 5, 6]


def test_checker_accepts_pure_code() -> None:
    source = (
        "from __future__ import annotations\n"
        "import base64\n"
        "import enum\n"
        "import io\n"
        "import re\n"
        "from collections.abc import Callable, Iterator\n"
        "from dataclasses import dataclass\n"
        "from email.message import EmailMessage\n"
        "from typing import TYPE_CHECKING\n"
        "from . import _errors\n"
        "from ._replies import Reply\n"
        "from .. import something\n"
        "buffer = io.BytesIO()\n"
        "class Session:\n"
        "    def open(self) -> None:\n"
        "        self.stream.open()\n"
        "        self.printer.print(1)\n"
        "    def environment(self, opened: bool) -> None:\n"
        "        self.opened = opened\n"
    )
    assert find_violations(source) == []


# --- the core -------------------------------------------------------------------------------------


def test_core_package_is_found() -> None:
    # Guards the test below against silently scanning nothing (a moved or renamed directory).
    assert (CORE / "_errors.py").is_file()
    assert len(core_modules()) >= 1


def test_core_performs_no_io() -> None:
    root = CORE.parent
    violations: list[Violation] = []
    for path in core_modules():
        name = path.relative_to(root).as_posix()
        try:
            violations.extend(find_violations(path.read_text(encoding="utf-8"), name))
        except SyntaxError as error:
            # Python 3.11 syntax is the floor (requires-python); a module that does not parse cannot
            # be checked, which is a failure in its own right.
            message = f"cannot parse: {error.msg}"
            violations.append(Violation(filename=name, line=error.lineno or 0, message=message))
    assert not violations, "the sans-IO core must not do I/O:\n" + "\n".join(map(str, violations))
