"""The configuration file: accounts, precedence, ``--account``, ``config show``, errors."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from servers import LOOPBACK

from smtp_sansio.adapters import cli
from smtp_sansio.adapters._config import ConfigError, default_config_path, load_config

MESSAGE = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: configured\r\n\r\nHi.\r\n"


@pytest.fixture
def run(monkeypatch, capsys):
    def run(argv: list[str], stdin: bytes = MESSAGE) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        status = cli.main(argv)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_default_path(monkeypatch, tmp_path):
    assert default_config_path({"XDG_CONFIG_HOME": "/cfg"}) == "/cfg/smtp-sansio/config.toml"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_config_path({}) == str(tmp_path / ".config" / "smtp-sansio" / "config.toml")


def test_missing_file_is_empty(tmp_path):
    config = load_config(str(tmp_path / "none.toml"))
    assert (config.found, config.default, dict(config.accounts)) == (False, None, {})
    assert config.account(None) is None
    with pytest.raises(ConfigError, match=r"no account 'work' in .*not found.*accounts: none"):
        config.account("work")


def test_accounts_and_default(tmp_path):
    path = write(tmp_path / "c.toml", """
default = "work"

[accounts.work]
host = "mail.example.org"
port = "submission"
auth = ["PLAIN"]

[accounts.home]
host = "smtp.example.net"
netrc = true
""")
    config = load_config(path)
    work = config.account(None)
    assert work is not None and work.name == "work" and work.settings["port"] == "submission"
    assert work.lines == {"host": 5, "port": 6, "auth": 7}
    home = config.account("home")
    assert home is not None and home.settings["netrc"] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[accounts.a]\nhost = \n", r"c\.toml: not valid TOML: .*line 2"),
        ("hots = 1\n", r"c\.toml: line 1: hots: unknown key"),
        ("[accounts.a]\nhost = 'h'\nport = 70000\n", r"c\.toml: line 3: accounts\.a\.port: must be between"),
        ("[accounts.a]\nport = true\n", r"line 2: accounts\.a\.port: must be a port number"),
        ("[accounts.a]\nport = ''\n", r"line 2: accounts\.a\.port: must be a port number"),
        ("[accounts.a]\ntls = 'maybe'\n", r"line 2: accounts\.a\.tls: must be one of starttls"),
        ("[accounts.a]\npassword = 'hunter2'\n", r"line 2: accounts\.a\.password: .*password_cmd or netrc"),
        ("[accounts.a]\nusr = 'x'\n", r"line 2: accounts\.a\.usr: unknown key"),
        ("[accounts.a]\nuser = 3\n", r"line 2: accounts\.a\.user: must be a non-empty string"),
        ("[accounts.a]\nnetrc = 3\n", r"accounts\.a\.netrc: must be true"),
        ("[accounts.a]\nauth = 'PLAIN'\n", r"accounts\.a\.auth: must be a list"),
        ("accounts = 3\n", r"line 1: accounts: must be a table"),
        ("[accounts]\na = 3\n", r"line 2: accounts\.a: must be a table"),
        ("default = 'x'\n[accounts.a]\n", r"line 1: default: names no account"),
        ("default = 3\n", r"line 1: default: must be the name"),
        ("[accounts]\nb = { hots = 1 }\n", r"c\.toml: accounts\.b\.hots: unknown key"),
    ],
)
def test_invalid_files_name_file_line_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path / "c.toml", text))


def test_unreadable_files(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(tmp_path / "bin.toml"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path))


def test_send_through_the_default_account(tmp_path, smtpd_factory, run, monkeypatch):
    server = smtpd_factory()
    monkeypatch.setenv("SMTPSERVER", "192.0.2.1")  # the account wins over the environment
    path = write(tmp_path / "c.toml", f"""
default = "loop"
[accounts.loop]
host = "{LOOPBACK}"
port = {server.port}
tls = "none"
local_domain = "configured.test"
sendto_domain = "example.net"
""")
    assert run(["send", "--config", path, "carol"]) == (0, "", "")
    [received] = server.messages
    assert received.rcpt_tos == ("carol@example.net",)
    assert "EHLO configured.test" in [line.decode() for line in server.lines]


def test_command_line_wins_and_account_chosen(tmp_path, smtpd_factory, run):
    server = smtpd_factory()
    path = write(tmp_path / "c.toml", f"""
default = "broken"
[accounts.broken]
host = "{LOOPBACK}"
port = 1
[accounts.loop]
host = "192.0.2.1"
port = 1
tls = "starttls"
""")
    argv = ["send", "--config", path, "--account", "loop", "--host", LOOPBACK, "--port", str(server.port),
            "--tls", "none", "bob@example.org"]
    assert run(argv) == (0, "", "")
    assert len(server.messages) == 1
    status, _, err = run(["send", "--config", path, "--account", "nope", "x@example.org"])
    assert status == cli.EX_CONFIG and "no account 'nope'" in err and "accounts: broken, loop" in err


def test_malformed_config_is_one_error_line(tmp_path, run):
    path = write(tmp_path / "c.toml", "[accounts.a]\nport = 'x y'\ntls = 'nope'\n")
    status, out, err = run(["send", "--config", path, "bob@example.org"])
    assert (status, out) == (cli.EX_CONFIG, "")
    modes = "starttls, implicit, opportunistic, none"
    assert err == f"smtp-sansio: {path}: line 3: accounts.a.tls: must be one of {modes}\n"


def test_default_config_file_is_read(tmp_path, run, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "smtp-sansio").mkdir()
    write(tmp_path / "smtp-sansio" / "config.toml", "default = 'x'\n")
    status, _, err = run(["config", "show"])
    assert status == cli.EX_CONFIG and "config.toml: line 1: default" in err


def test_config_show(tmp_path, run, monkeypatch):
    monkeypatch.delenv("SMTPSERVER", raising=False)
    netrc = tmp_path / "authinfo"
    path = write(tmp_path / "c.toml", f"""
default = "work"
[accounts.work]
host = "mail.example.org"
user = "alice"
password_cmd = "echo hunter2"
auth = ["SCRAM-SHA-256", "PLAIN"]
netrc = "{netrc}"
queue_dir = "{tmp_path / 'q'}"
[accounts.bare]
netrc = true
""")
    status, out, err = run(["config", "show", "--config", path, "--port", "2525"])
    assert (status, err) == (0, "")
    assert "hunter2" not in out
    lines = out.splitlines()
    assert lines[0] == f"config file: {path}"
    assert lines[1] == "account: work (the default account)"
    assert f"host           mail.example.org  [account work ({path}, line 4)]" in lines
    assert "port           2525  [command line]" in lines
    assert "tls            starttls  [default]" in lines
    assert f"password_cmd   ********  [account work ({path}, line 6)]" in lines
    assert f"auth           SCRAM-SHA-256,PLAIN  [account work ({path}, line 7)]" in lines
    assert f"queue_dir      {tmp_path / 'q'}  [account work ({path}, line 9)]" in lines

    monkeypatch.setenv("SMTPSERVER", "env.example.org")
    monkeypatch.setenv("NETRC", str(netrc))
    status, out, _ = run(["config", "show", "--config", path, "--account", "bare", "--tls", "implicit"])
    lines = out.splitlines()
    assert "account: bare (--account)" in lines
    assert "host           env.example.org  [$SMTPSERVER]" in lines
    assert "port           465  [default for tls implicit]" in lines
    assert f"netrc          {netrc} (the default file)  [account bare ({path}, line 11)]" in lines

    monkeypatch.delenv("SMTPSERVER")
    status, out, _ = run(["config", "show", "--config", str(tmp_path / "none.toml")])
    lines = out.splitlines()
    assert lines[:2] == [f"config file: {tmp_path / 'none.toml'} (not found)", "account: none"]
    assert "host           localhost  [default]" in lines


def test_queue_dir_from_the_account(tmp_path, run):
    path = write(tmp_path / "c.toml", f"default = 'a'\n[accounts.a]\nqueue_dir = '{tmp_path / 'q'}'\n")
    assert run(["send", "--queue", str(tmp_path / "q"), "bob@example.org"]) == (0, "", "")
    status, out, _ = run(["queue", "list", "--config", path])
    assert status == 0 and "alice@example.org -> bob@example.org" in out
