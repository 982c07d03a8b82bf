"""The configuration file of the command line: named accounts in TOML.

``$XDG_CONFIG_HOME/smtp-sansio/config.toml`` (by default ``~/.config/smtp-sansio/config.toml``)::

    default = "work"

    [accounts.work]
    host = "mail.example.org"
    port = 587
    tls = "starttls"
    user = "alice"
    password_cmd = "pass show mail/work"
    local_domain = "laptop.example.org"
    sendto_domain = "example.org"
    queue_dir = "~/Mail/queue"
    auth = ["SCRAM-SHA-256", "PLAIN"]

A setting of the command line wins over the account's; the account's host wins over
``$SMTPSERVER`` (the seed's order: ``smtpmail-smtp-server``, then the environment, then
``localhost``).  A file that is not valid is an error naming the file, the line and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smtp_sansio import TLS_MODES

__all__ = [
    "ACCOUNT_KEYS", "SECRET_KEYS", "Account", "Config", "ConfigError", "default_config_path", "load_config",
]


class ConfigError(Exception):
    """The configuration file cannot be read or is not valid."""


def _text(value: object) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _port(value: object) -> str | None:
    if isinstance(value, bool):
        return "must be a port number or a service name"
    if isinstance(value, int):
        return None if 0 < value < 65536 else "must be between 1 and 65535"
    return _text(value) and "must be a port number or a service name"


def _tls(value: object) -> str | None:
    return None if value in TLS_MODES else f"must be one of {', '.join(TLS_MODES)}"


def _netrc(value: object) -> str | None:
    return None if isinstance(value, bool) or (isinstance(value, str) and value) else (
        "must be true (the default file) or the path of a netrc/authinfo file"
    )


def _mechanisms(value: object) -> str | None:
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return None
    return "must be a list of SASL mechanism names"


#: The keys an account may have, each with its check (``None`` when the value is valid).
ACCOUNT_KEYS = {
    "host": _text,
    "port": _port,
    "tls": _tls,
    "cafile": _text,
    "user": _text,
    "password_cmd": _text,
    "netrc": _netrc,
    "auth": _mechanisms,
    "local_domain": _text,
    "sendto_domain": _text,
    "queue_dir": _text,
}

#: Keys whose values are never printed.
SECRET_KEYS = frozenset({"password_cmd"})


@dataclass(frozen=True, slots=True)
class Account:
    """One ``[accounts.NAME]`` table.

    Attributes:
        name: the account's name.
        settings: its keys and values, checked.
        lines: the line of the file each key is on.
    """

    name: str
    settings: Mapping[str, Any]
    lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    """A configuration file, read and checked.

    Attributes:
        path: where it was looked for.
        found: whether it exists.
        default: the name of the default account, or ``None``.
        accounts: the accounts by name.
    """

    path: str
    found: bool = False
    default: str | None = None
    accounts: Mapping[str, Account] = field(default_factory=dict)

    def account(self, name: str | None) -> Account | None:
        """The account named ``name``, else the default account, else ``None``.

        Raises:
            ConfigError: there is no account of that name.
        """
        if name is None:
            name = self.default
            if name is None:
                return None
        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts)) or "none"
            where = self.path if self.found else f"{self.path} (not found)"
            raise ConfigError(f"no account {name!r} in {where}; accounts: {known}") from None


def default_config_path(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CONFIG_HOME/smtp-sansio/config.toml``, with ``~/.config`` for an unset variable."""
    env = os.environ if environ is None else environ
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config_home, "smtp-sansio", "config.toml")


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and check a configuration file; a missing file is an empty configuration.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has an unknown key or a bad value;
            the message names the file, the line and the key.
    """
    path = default_config_path(environ) if path is None else os.path.expanduser(path)
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        return Config(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    lines = _key_lines(text)

    def fail(table: str, key: str, problem: str) -> ConfigError:
        line = lines.get((table, key))
        at = f"line {line}: " if line else ""
        name = f"{table}.{key}" if table else key
        return ConfigError(f"{path}: {at}{name}: {problem}")

    for key in data:
        if key not in ("default", "accounts"):
            raise fail("", key, "unknown key (expected 'default' and [accounts.NAME] tables)")
    default = data.get("default")
    if default is not None and _text(default):
        raise fail("", "default", "must be the name of an account")
    tables = data.get("accounts", {})
    if not isinstance(tables, dict):
        raise fail("", "accounts", "must be a table of [accounts.NAME] tables")
    accounts: dict[str, Account] = {}
    for name, table in tables.items():
        section = f"accounts.{name}"
        if not isinstance(table, dict):
            raise fail("accounts", name, "must be a table ([accounts.NAME])")
        for key, value in table.items():
            if key == "password":
                raise fail(section, key, "a password is not kept in the file: use password_cmd or netrc")
            check = ACCOUNT_KEYS.get(key)
            if check is None:
                raise fail(section, key, f"unknown key (known: {', '.join(ACCOUNT_KEYS)})")
            problem = check(value)
            if problem:
                raise fail(section, key, problem)
        account_lines = {key: lines[(section, key)] for key in table if (section, key) in lines}
        accounts[name] = Account(name, dict(table), account_lines)
    if default is not None and default not in accounts:
        raise fail("", "default", f"names no account (accounts: {', '.join(sorted(accounts)) or 'none'})")
    return Config(path, True, default, accounts)


_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    # Where each key of a (simply written) file is: (table, key) -> line number.  Only used to
    # point at a mistake, so the keys of inline tables and dotted keys are not followed.
    found: dict[tuple[str, str], int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), 1):
        if match := _TABLE.match(line):
            table = ".".join(part.strip().strip("\"'") for part in match.group(1).split("."))
            parent, _, name = table.rpartition(".")
            found.setdefault((parent, name), number)
        elif match := _KEY.match(line):
            found.setdefault((table, match.group(1).strip("\"'")), number)
    return found
