"""Credential sources: tables, netrc/authinfo files, OAuth tokens, prompts, commands, client certificates."""

from __future__ import annotations

import errno
import getpass
import io
import os
import shlex
import ssl
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp_sansio import Credentials, LocalProtocolError
from smtp_sansio.adapters import _netrc, _prompt
from smtp_sansio.adapters._credentials import (
    credential_table,
    load_client_cert,
    resolve_client_cert,
    resolve_credentials,
)
from smtp_sansio.adapters._netrc import CredentialEntry, CredentialsError, default_netrc_path, load_netrc
from smtp_sansio.adapters._prompt import password_from_command, terminal_ask

HOST = "mail.example.org"
SECRET = "s3cret-in-the-file"


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    """Write ``text`` to ``path`` and give it ``mode``."""
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def netrc_file(tmp_path):
    """Write a private netrc/authinfo file in tmp_path and return its path."""

    def make(text: str, name: str = "authinfo", mode: int = 0o600) -> Path:
        return write_private(tmp_path / name, text, mode)

    return make


class Recorder:
    """An ``ask`` callback that records its calls and answers from a dict."""

    def __init__(self, **answers: str | None) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, int]] = []

    def __call__(self, what: str, host: str, port: int) -> str | None:
        self.calls.append((what, host, port))
        return self.answers.get(what)


# --- CredentialEntry ------------------------------------------------------------------------------


def test_entry_matches_host_case_insensitively_and_port():
    entry = CredentialEntry(host="Mail.Example.ORG", port=587, username="alice", password="pw")
    assert entry.matches("mail.example.org", 587)
    assert entry.matches("MAIL.EXAMPLE.ORG", 587)
    assert not entry.matches("mail.example.org", 465)
    assert not entry.matches("other.example.org", 587)


def test_entry_ignores_ipv6_brackets_on_both_sides():
    assert CredentialEntry(host="[::1]").matches("::1", 25)
    assert CredentialEntry(host="::1").matches("[::1]", 25)
    assert not CredentialEntry(host="[::1]").matches("::2", 25)


def test_entry_with_no_host_or_port_matches_anything():
    assert CredentialEntry(host=None).matches("anything.example", 2525)
    assert CredentialEntry(host=HOST).matches(HOST, 1)


def test_entry_and_resolved_repr_hide_secrets():
    entry = CredentialEntry(host=HOST, username="alice", password="hunter2")
    assert "hunter2" not in repr(entry)
    assert "alice" in repr(entry)
    resolved = Credentials(username="alice", password="hunter2", token="tok-xyz")
    assert "hunter2" not in repr(resolved)
    assert "tok-xyz" not in repr(resolved)


@pytest.mark.parametrize(
    "fields",
    [
        {"host": ""},
        {"host": "two words"},
        {"host": "[]"},
        {"host": "tab\there"},
        {"host": 42},
        {"host": HOST, "port": 0},
        {"host": HOST, "port": 65536},
        {"host": HOST, "port": True},
        {"host": HOST, "port": "587"},
        {"host": HOST, "username": 1},
        {"host": HOST, "password": b"bytes"},
    ],
)
def test_entry_validates_its_fields(fields):
    with pytest.raises(CredentialsError):
        CredentialEntry(**fields)


def test_credentials_error_is_a_local_protocol_error():
    assert issubclass(CredentialsError, LocalProtocolError)


# --- credential_table -----------------------------------------------------------------------------


def test_table_rows_with_every_kind_of_port():
    table = credential_table(
        [
            (HOST, 587, "alice", "pw1"),
            (HOST, "465", "bob", None),
            (HOST, "submission", None, "pw3"),
            ["list.example", None, None, None],
        ]
    )
    assert [(e.host, e.port, e.username, e.password) for e in table] == [
        (HOST, 587, "alice", "pw1"),
        (HOST, 465, "bob", None),
        (HOST, 587, None, "pw3"),
        ("list.example", None, None, None),
    ]


def test_table_accepts_entries_as_they_are():
    entry = CredentialEntry(host=None, username="x")
    assert credential_table([entry]) == (entry,)
    assert credential_table(()) == ()


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ("not a table", "not str"),
        (b"bytes", "not bytes"),
        ({HOST: "pw"}, "not dict"),
        (42, "not int"),
        ([(HOST, 587, "alice")], "row 1: expected (host, port, username, password), got 3 items"),
        ([(HOST, 587, "a", "b"), (HOST, 587, "a", "b", "c")], "row 2: expected"),
        (["mail.example.org"], "got str"),
        ([None], "got NoneType"),
        ([(None, 587, "alice", SECRET)], "row 1: the host"),
        ([("", 587, "alice", SECRET)], "row 1: the host"),
        ([("a b", 587, "alice", SECRET)], "row 1: the host"),
        ([(HOST, 587, 5, SECRET)], "row 1: the username must be a str or None, not int"),
        ([(HOST, 587, "alice", 5)], "row 1: the password must be a str or None, not int"),
        ([(HOST, SECRET, "alice", None)], "row 1: the port"),
        ([(HOST, 0, "alice", SECRET)], "row 1: the port"),
        ([(HOST, 587.0, "alice", SECRET)], "row 1: the port"),
        ([(HOST, True, "alice", SECRET)], "row 1: the port"),
    ],
)
def test_table_rejects_wrong_shapes(rows, fragment):
    with pytest.raises(CredentialsError) as info:
        credential_table(rows)
    message = str(info.value)
    assert fragment in message
    assert SECRET not in message
    assert "\n" not in message


# --- load_netrc: syntax ---------------------------------------------------------------------------


def fields(entries):
    return [(e.host, e.port, e.username, e.password) for e in entries]


def test_authinfo_syntax(netrc_file):
    path = netrc_file(
        "machine mail.example.org port 587 login alice password pw1\n"
        "machine smtp.example.com login bob password pw2 port 465\n"
    )
    assert fields(load_netrc(path)) == [(HOST, 587, "alice", "pw1"), ("smtp.example.com", 465, "bob", "pw2")]


def test_netrc_syntax_over_several_lines(netrc_file):
    path = netrc_file(
        "machine mail.example.org\n"
        "    login alice\n"
        "    password pw1\n"
        "\n"
        "machine\n"
        "  other.example\n"
        "  login\n"
        "  bob\n"
        "  password pw2\n"
    )
    assert fields(load_netrc(str(path))) == [
        (HOST, None, "alice", "pw1"),
        ("other.example", None, "bob", "pw2"),
    ]


def test_aliases_user_passwd_protocol_and_account_ignored(netrc_file):
    path = netrc_file("machine mail.example.org user alice passwd pw protocol submission account acct\n")
    assert fields(load_netrc(path)) == [(HOST, 587, "alice", "pw")]


def test_port_service_names_are_resolved(netrc_file):
    path = netrc_file(
        "machine a.example port submission login u password p\n"
        "machine b.example port submissions login u password p\n"
        "machine c.example port smtp login u password p\n"
        'machine d.example port "2525" login u password p\n'
    )
    assert [e.port for e in load_netrc(path)] == [587, 465, 25, 2525]


def test_quoted_passwords_with_spaces_quotes_and_escapes(netrc_file):
    path = netrc_file(
        'machine a.example login alice password "correct horse battery"\n'
        'machine b.example login alice password "say \\"hi\\" \\\\ there"\n'
        "machine c.example login alice password 'single $quoted \\ as is'\n"
        "machine d.example login alice password back\\ slash\\ space\n"
        'machine e.example login "alice smith" password ""\n'
        "machine f.example login alice password #hash-at-start\n"
        "machine g.example login alice password in#side\n"
        "machine h.example login alice password caf\u00e9\u20ac\n"
    )
    assert [(e.username, e.password) for e in load_netrc(path)] == [
        ("alice", "correct horse battery"),
        ("alice", 'say "hi" \\ there'),
        ("alice", "single $quoted \\ as is"),
        ("alice", "back slash space"),
        ("alice smith", ""),
        ("alice", "#hash-at-start"),
        ("alice", "in#side"),
        ("alice", "caf\u00e9\u20ac"),
    ]


def test_default_entry(netrc_file):
    path = netrc_file("machine mail.example.org login alice password pw\ndefault login anon password guest\n")
    assert fields(load_netrc(path)) == [(HOST, None, "alice", "pw"), (None, None, "anon", "guest")]


def test_macdef_body_is_skipped_up_to_the_empty_line(netrc_file):
    path = netrc_file(
        "machine ftp.example login a password b\n"
        "macdef init\n"
        "  cd /pub\n"
        "  machine evil.example login mallory password 'unclosed\n"
        "   \t\n"
        "machine mail.example.org login alice password pw\n"
    )
    assert fields(load_netrc(path)) == [("ftp.example", None, "a", "b"), (HOST, None, "alice", "pw")]


def test_macdef_at_the_end_of_the_file(netrc_file):
    for text in ("machine a.example login a password b\nmacdef init\ncd /pub\nbye\n", "macdef init\nbye"):
        path = netrc_file(text)
        assert fields(load_netrc(path)) == ([("a.example", None, "a", "b")] if "machine" in text else [])


def test_comments(netrc_file):
    path = netrc_file(
        "# a comment line, with an apostrophe that doesn't close\n"
        "   # an indented one \"also unclosed\n"
        "#machine commented.example login x password y\n"
        "machine mail.example.org login alice # the rest is a comment: password nope\n"
        "  password pw #another 'one\n"
    )
    assert fields(load_netrc(path)) == [(HOST, None, "alice", "pw")]


def test_empty_file_and_byte_order_mark(netrc_file):
    assert load_netrc(netrc_file("")) == ()
    assert load_netrc(netrc_file("\n# only a comment\n\n")) == ()
    assert fields(load_netrc(netrc_file("\ufeffmachine a.example login u password p\r\n"))) == [
        ("a.example", None, "u", "p")
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("machine a.example login u password 'unclosed\n", 1, "No closing quotation"),
        ("\n\nmachine a.example login u password trailing\\", 3, "No escaped character"),
        ("login alice password pw\n", 1, "'login' comes before any 'machine' or 'default'"),
        ("account x\n", 1, "'account' comes before"),
        (f"machine a.example login u pasword {SECRET}\n", 1, "unknown keyword"),
        (f"machine a.example login u\npassword two {SECRET}\n", 2, "unknown keyword"),
        (f"machine a.example password {SECRET} password again\n", 1, "'password' given twice"),
        (f"machine a.example login u user v password {SECRET}\n", 1, "'user' given twice"),
        ("machine a.example login u password\n", 1, "'password' has no value"),
        ("machine\n", 1, "'machine' has no value"),
        ("macdef\n", 1, "'macdef' has no value"),
        (f"machine a.example\npassword {SECRET}\nport nosuchservice-xyz\n", 3, "the port must be"),
        (f"machine a.example password {SECRET} port 0\n", 1, "the port must be"),
        ("machine 'two words' login u\n", 1, "the machine name"),
    ],
)
def test_syntax_errors_name_file_and_line(netrc_file, text, line, fragment):
    path = netrc_file(text)
    with pytest.raises(CredentialsError) as info:
        load_netrc(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line {line}: ")
    assert fragment in message
    assert SECRET not in message
    assert "\n" not in message


def test_not_utf8_names_the_line(netrc_file, tmp_path):
    path = tmp_path / "latin1"
    path.write_bytes(b"machine a.example\nlogin u\npassword caf\xe9\n")
    path.chmod(0o600)
    with pytest.raises(CredentialsError, match=r"latin1, line 3: not UTF-8 text$"):
        load_netrc(path)


def render(entries, layout: str) -> str:
    """Write entries (host, port, user, password) as netrc text, in one of three layouts."""
    blocks = []
    for host, port, user, password in entries:
        words = ["default"] if host is None else ["machine", shlex.quote(host)]
        if port is not None:
            words += ["port", str(port)]
        if user is not None:
            words += ["login", shlex.quote(user)]
        if password is not None:
            words += ["password", shlex.quote(password)]
        blocks.append(words)
    if layout == "authinfo":
        return "".join(" ".join(words) + "  # comment\n" for words in blocks)
    if layout == "netrc":
        return "".join(" ".join(words[:2]) + "\n" + "\n".join(words[2:]) + "\n\n" for words in blocks)
    return " ".join(word for words in blocks for word in words)


values = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=12)
hosts = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True) | st.just("[::1]")
entries_strategy = st.lists(
    st.tuples(
        st.none() | hosts,
        st.none() | st.integers(1, 65535),
        st.none() | values,
        st.none() | values,
    ),
    max_size=5,
)


@given(entries=entries_strategy, layout=st.sampled_from(["authinfo", "netrc", "one-line"]))
def test_any_entries_round_trip_in_every_layout(tmp_path_factory, entries, layout):
    directory = tmp_path_factory.mktemp("roundtrip")
    path = write_private(directory / "netrc", render(entries, layout))
    assert fields(load_netrc(path)) == entries
    # Trailing data, a further entry, changes nothing before it.
    more = [*entries, ("trailing.example", 25, "t", "t")]
    path = write_private(directory / "netrc", render(more, layout))
    assert fields(load_netrc(path)) == more


# --- load_netrc: the file -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o666])
def test_files_others_or_the_group_may_access_are_refused_before_reading(netrc_file, monkeypatch, mode):
    path = netrc_file(f"machine {HOST} login alice password {SECRET}\n", mode=mode)

    def no_read(*args):
        raise AssertionError("the file was read")

    monkeypatch.setattr(os, "read", no_read)
    with pytest.raises(CredentialsError) as info:
        load_netrc(path)
    message = str(info.value)
    assert str(path) in message
    assert f"mode {mode:04o}" in message
    assert SECRET not in message


def test_world_readable_file_error_has_no_password(netrc_file):
    path = netrc_file(f"machine {HOST} login alice password {SECRET}\n", mode=0o644)
    with pytest.raises(CredentialsError, match="accessible to the group or others") as info:
        resolve_credentials(host=HOST, port=587, credentials=path)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_file_of_another_user_is_refused(netrc_file, monkeypatch):
    path = netrc_file(f"machine {HOST} login alice password {SECRET}\n")
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    with pytest.raises(CredentialsError, match="belongs to another user") as info:
        load_netrc(path)
    assert str(path) in str(info.value)
    assert SECRET not in str(info.value)


def test_own_private_file_through_a_symlink_is_read(netrc_file, tmp_path):
    target = netrc_file(f"machine {HOST} login alice password {SECRET}\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert fields(load_netrc(link)) == [(HOST, None, "alice", SECRET)]


def test_missing_file(tmp_path):
    path = tmp_path / "absent"
    with pytest.raises(CredentialsError, match=r"absent: no such file$") as info:
        load_netrc(path)
    assert str(path) in str(info.value)


def test_nul_in_file_names():
    with pytest.raises(CredentialsError, match="NUL character"):
        load_netrc("net\0rc")
    with pytest.raises(CredentialsError, match="NUL character"):
        load_client_cert(ssl.create_default_context(), ("cert.pem", "k\0ey"))


def test_directory_is_refused(tmp_path):
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(CredentialsError, match="is not a regular file") as info:
        load_netrc(directory)
    assert str(directory) in str(info.value)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(CredentialsError, match="is not a regular file"):
        load_netrc(fifo)


def test_unopenable_path(netrc_file):
    path = netrc_file("machine a.example\n")
    with pytest.raises(CredentialsError, match=r"^cannot open .*authinfo/below: ") as info:
        load_netrc(path / "below")  # a file is not a directory
    assert str(path) in str(info.value)


@pytest.mark.skipif(os.name != "posix" or os.getuid() == 0, reason="root can read any file")
def test_unreadable_file(netrc_file):
    path = netrc_file("machine a.example\n", mode=0o000)
    with pytest.raises(CredentialsError, match=r"cannot open .*Permission denied"):
        load_netrc(path)


def test_read_error(netrc_file, monkeypatch):
    path = netrc_file(f"machine {HOST} password {SECRET}\n")

    def failing_read(fd, size):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "read", failing_read)
    with pytest.raises(CredentialsError, match=r"cannot read .*authinfo: Input/output error"):
        load_netrc(path)


def test_without_posix_permissions_only_the_file_type_is_checked(netrc_file, tmp_path, monkeypatch):
    monkeypatch.setattr(_netrc, "_POSIX_PERMISSIONS", False)
    path = netrc_file(f"machine {HOST} login alice password {SECRET}\n", mode=0o644)
    assert fields(load_netrc(path)) == [(HOST, None, "alice", SECRET)]
    with pytest.raises(CredentialsError, match="not a regular file"):
        load_netrc(tmp_path)


# --- default_netrc_path ---------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home directory, with $NETRC unset."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    return home


def test_default_path_none_without_files(home):
    assert default_netrc_path() is None


def test_default_path_authinfo_before_netrc(home):
    (home / ".netrc").write_text("")
    assert default_netrc_path() == home / ".netrc"
    (home / ".authinfo").write_text("")
    assert default_netrc_path() == home / ".authinfo"


def test_default_path_netrc_variable_first_even_if_missing(home, monkeypatch, tmp_path):
    (home / ".authinfo").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "elsewhere"))
    assert default_netrc_path() == tmp_path / "elsewhere"
    monkeypatch.setenv("NETRC", "")
    assert default_netrc_path() == home / ".authinfo"


def test_default_path_without_a_home(monkeypatch):
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)
    assert default_netrc_path() is None


# --- resolve_credentials --------------------------------------------------------------------------


def test_nothing_given_means_no_authentication():
    assert resolve_credentials(host=HOST, port=587) is None
    ask = Recorder(username="x", password="y")
    table = [("other.example", 587, "alice", "pw"), (HOST, 465, "alice", "pw")]
    assert resolve_credentials(host=HOST, port=587, credentials=table, ask=ask) is None
    assert ask.calls == []


def test_explicit_values_win_and_nothing_is_asked():
    ask = Recorder()
    table = [(HOST, 587, None, "from-table")]
    resolved = resolve_credentials(
        host=HOST, port=587, username="alice", password="pw", credentials=table, ask=ask
    )
    assert resolved == Credentials(username="alice", password="pw")
    assert ask.calls == []


def test_table_fills_in_what_is_missing():
    table = [(HOST, 587, "alice", "pw-alice")]
    both = Credentials(username="alice", password="pw-alice")
    assert resolve_credentials(host=HOST, port=587, credentials=table) == both
    assert resolve_credentials(host=HOST, port=587, username="alice", credentials=table) == both
    assert resolve_credentials(host=HOST, port=587, password="given", credentials=table) == (
        Credentials(username="alice", password="given")
    )


def test_entry_of_another_user_is_skipped():
    table = [(HOST, 587, "bob", "pw-bob"), (HOST, 587, "alice", "pw-alice"), (HOST, 587, None, "pw-any")]
    for user, password in [("alice", "pw-alice"), ("carol", "pw-any")]:
        assert resolve_credentials(host=HOST, port=587, username=user, credentials=table).password == password
    assert resolve_credentials(host=HOST, port=587, credentials=table).username == "bob"


def test_first_matching_entry_in_file_order(netrc_file):
    path = netrc_file(
        "default login anon password guest\n"
        "machine other.example login x password x\n"
        "machine MAIL.example.org port 465 login implicit password p465\n"
        "machine mail.example.org port submission login first password p1\n"
        "machine mail.example.org login second password p2\n"
    )
    assert resolve_credentials(host=HOST, port=587, credentials=path) == Credentials(
        username="first", password="p1"
    )
    assert resolve_credentials(host=HOST, port=465, credentials=path).username == "implicit"
    assert resolve_credentials(host=HOST, port=25, credentials=path).username == "second"
    # The default entry, although first, only applies where no machine entry does.
    assert resolve_credentials(host="nowhere.example", port=25, credentials=str(path)) == Credentials(
        username="anon", password="guest"
    )


def test_default_entries_in_order_and_with_a_port():
    table = [
        CredentialEntry(host=None, port=465, username="d465", password="p"),
        CredentialEntry(host=None, username="d-any", password="p"),
        CredentialEntry(host=None, username="d-later", password="p"),
    ]
    assert resolve_credentials(host=HOST, port=465, credentials=table).username == "d465"
    assert resolve_credentials(host=HOST, port=587, credentials=table).username == "d-any"


def test_ask_is_called_for_what_is_missing_only():
    ask = Recorder(username="asked-user", password="asked-pw")
    assert resolve_credentials(host=HOST, port=587, credentials=[(HOST, 587, None, "pw")], ask=ask) == (
        Credentials(username="asked-user", password="pw")
    )
    assert ask.calls == [("username", HOST, 587)]

    ask = Recorder(username="asked-user", password="asked-pw")
    assert resolve_credentials(host=HOST, port=587, credentials=[(HOST, 587, "alice", None)], ask=ask) == (
        Credentials(username="alice", password="asked-pw")
    )
    assert ask.calls == [("password", HOST, 587)]

    ask = Recorder(username="u", password="p")
    assert resolve_credentials(host=HOST, port=2525, credentials=[(HOST, None, None, None)], ask=ask) == (
        Credentials(username="u", password="p")
    )
    assert ask.calls == [("username", HOST, 2525), ("password", HOST, 2525)]

    ask = Recorder(password="p")
    assert resolve_credentials(host=HOST, port=587, username="alice", ask=ask).password == "p"
    assert ask.calls == [("password", HOST, 587)]


def test_ask_returning_none_is_an_error():
    ask = Recorder(username="alice")
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(host=HOST, port=587, username="alice", ask=ask)
    assert str(info.value) == (
        "no password for alice at mail.example.org:587 (give password=, an entry in credentials=, or ask=)"
    )
    assert ask.calls == [("password", HOST, 587)]


def test_missing_values_without_ask(netrc_file):
    path = netrc_file(f"machine {HOST} login alice\nmachine other.example password pw\n")
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(host=HOST, port=587, credentials=path)
    assert str(info.value) == (
        f"no password for alice at mail.example.org:587 (give password=, an entry in {path}, or ask=)"
    )
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(host="other.example", port=25, credentials=path)
    assert str(info.value) == (
        f"no username for other.example:25 (give username=, an entry in {path}, or ask=)"
    )
    with pytest.raises(CredentialsError, match=r"no username for mail.example.org:587"):
        resolve_credentials(host=HOST, port=587, password="pw")


def test_ask_returning_a_non_string():
    with pytest.raises(CredentialsError, match="ask= returned a bytes for the password"):
        resolve_credentials(host=HOST, port=587, username="alice", ask=lambda what, host, port: b"pw")


def test_ask_exceptions_propagate_unchanged():
    class Cancelled(Exception):
        pass

    def ask(what, host, port):
        raise Cancelled

    with pytest.raises(Cancelled):
        resolve_credentials(host=HOST, port=587, username="alice", ask=ask)


def test_credentials_as_path_and_table_give_the_same(netrc_file):
    path = netrc_file(f"machine {HOST} port 587 login alice password {SECRET}\n")
    expected = Credentials(username="alice", password=SECRET)
    assert resolve_credentials(host=HOST, port=587, credentials=path) == expected
    assert resolve_credentials(host=HOST, port=587, credentials=str(path)) == expected
    assert resolve_credentials(host=HOST, port=587, credentials=load_netrc(path)) == expected
    table = [(HOST, "submission", "alice", SECRET)]
    assert resolve_credentials(host=HOST, port=587, credentials=table) == expected


def test_file_is_read_at_each_call(netrc_file):
    path = netrc_file(f"machine {HOST} login alice password old\n")
    assert resolve_credentials(host=HOST, port=587, credentials=path).password == "old"
    netrc_file(f"machine {HOST} login alice password new\n")
    assert resolve_credentials(host=HOST, port=587, credentials=path).password == "new"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"host": b"mail.example.org"}, "host must be a str"),
        ({"port": 0}, "port must be"),
        ({"port": "587"}, "port must be"),
        ({"port": True}, "port must be"),
        ({"username": 5}, "username must be a str or None"),
        ({"password": 5}, "password must be a str or None"),
        ({"credentials": 5}, "credentials must be a sequence"),
        ({"credentials": b"/some/file"}, "credentials must be a sequence"),
        ({"password": "pw", "oauth_token": "tok"}, "give password= or oauth_token=, not both"),
    ],
)
def test_invalid_arguments(arguments, fragment):
    with pytest.raises(CredentialsError, match=fragment):
        resolve_credentials(**{"host": HOST, "port": 587, **arguments})


# --- OAuth tokens ---------------------------------------------------------------------------------


def test_token_string():
    resolved = resolve_credentials(host=HOST, port=587, username="alice", oauth_token="tok")
    assert resolved == Credentials(username="alice", token="tok")


def test_token_provider_is_called_once_per_resolve():
    calls = []

    def provider():
        calls.append(None)
        return f"token-{len(calls)}"

    first = resolve_credentials(host=HOST, port=587, username="alice", oauth_token=provider)
    assert calls == [None]
    second = resolve_credentials(host=HOST, port=587, username="alice", oauth_token=provider)
    assert (first.token, second.token) == ("token-1", "token-2")
    assert len(calls) == 2


def test_token_username_from_the_entry_or_asked():
    table = [(HOST, 587, "alice", "table-password")]
    resolved = resolve_credentials(host=HOST, port=587, credentials=table, oauth_token="t")
    assert resolved == Credentials(username="alice", token="t")
    ask = Recorder(username="asked")
    assert resolve_credentials(host=HOST, port=587, ask=ask, oauth_token="t") == Credentials(
        username="asked", token="t"
    )
    assert ask.calls == [("username", HOST, 587)]


def test_token_without_a_username_is_an_error_and_the_provider_is_not_called():
    calls = []

    def provider():
        calls.append(None)
        return "t"

    with pytest.raises(CredentialsError, match=r"no username for the OAuth token at mail.example.org:587"):
        resolve_credentials(host=HOST, port=587, ask=Recorder(), oauth_token=provider)
    assert calls == []


def test_token_provider_os_error_is_wrapped():
    def provider():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/run/token")

    with pytest.raises(CredentialsError, match=r"cannot get an OAuth token for mail.example.org:587") as info:
        resolve_credentials(host=HOST, port=587, username="alice", oauth_token=provider)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_token_provider_other_exceptions_propagate():
    def provider():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        resolve_credentials(host=HOST, port=587, username="alice", oauth_token=provider)


@pytest.mark.parametrize(
    ("provider", "fragment"),
    [
        (lambda: b"bytes", "is a bytes, not a str"),
        (lambda: "", "is empty"),
        ("", "is empty"),
        (42, "oauth_token must be a str or a function"),
    ],
)
def test_bad_tokens(provider, fragment):
    with pytest.raises(CredentialsError, match=fragment):
        resolve_credentials(host=HOST, port=587, username="alice", oauth_token=provider)


# --- client certificates: choosing ----------------------------------------------------------------


class BytesPath:
    def __fspath__(self) -> bytes:
        return b"/some/cert.pem"


def test_client_cert_simple_forms(tmp_path):
    assert resolve_client_cert(None, host=HOST, port=587) is None
    assert resolve_client_cert("both.pem", host=HOST, port=587) == ("both.pem", None)
    both = tmp_path / "both.pem"
    assert resolve_client_cert(both, host=HOST, port=587) == (str(both), None)
    assert resolve_client_cert(("c.pem", "k.pem"), host=HOST, port=587) == ("c.pem", "k.pem")
    assert resolve_client_cert((Path("c.pem"), None), host=HOST, port=587) == ("c.pem", None)
    assert resolve_client_cert(["c.pem", Path("k.pem")], host=HOST, port=587) == ("c.pem", "k.pem")


def test_client_cert_table_keeps_the_seeds_key_first_order():
    table = [
        ("other.example", 587, "other.key", "other.crt"),
        ("MAIL.example.org", "submission", "mail.key", "mail.crt"),
        ("[::1]", None, None, Path("both.pem")),
    ]
    assert resolve_client_cert(table, host=HOST, port=587) == ("mail.crt", "mail.key")
    assert resolve_client_cert(table, host=HOST, port=465) is None
    assert resolve_client_cert(table, host="::1", port=2525) == ("both.pem", None)
    assert resolve_client_cert([], host=HOST, port=587) is None


def test_client_cert_table_of_two_rows_is_not_a_pair():
    table = ((HOST, 587, "a.key", "a.crt"), (HOST, 465, "b.key", "b.crt"))
    assert resolve_client_cert(table, host=HOST, port=465) == ("b.crt", "b.key")


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (42, "client_cert must be a file"),
        (b"cert.pem", "client_cert must be a file"),
        (("c.pem", 5), "key file of a client certificate"),
        (BytesPath(), "not bytes"),
        ([(HOST, 587, "k")], "row 1: expected (host, port, keyfile, certfile), got 3 items"),
        ([(HOST, 587, "k", "c"), "c.pem"], "row 2: expected (host, port, keyfile, certfile), got str"),
        ([(None, 587, "k", "c")], "row 1: the host"),
        ([(HOST, "nosuchservice-xyz", "k", "c")], "row 1: the port"),
        ([(HOST, 587, "k", None)], "row 1: the certificate file must be a path"),
        ([(HOST, 587, 5, "c")], "row 1: the certificate file must be a path"),
    ],
)
def test_client_cert_wrong_shapes(option, fragment):
    with pytest.raises(CredentialsError) as info:
        resolve_client_cert(option, host=HOST, port=587)
    assert fragment in str(info.value)


# --- client certificates: loading -----------------------------------------------------------------


@pytest.fixture
def client_files(certs, tmp_path):
    """A client certificate issued by the test CA, written as cert.pem and key.pem (0600)."""
    leaf = certs.ca.issue_cert("client.example")
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return leaf, cert, key


def handshake(client_context: ssl.SSLContext, server_context: ssl.SSLContext) -> dict:
    """Run a TLS handshake in memory; return the certificate the server got from the client."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(client_in, client_out, server_hostname="localhost")
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        finished = 0
        for end in (client, server):
            try:
                end.do_handshake()
                finished += 1
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if finished == 2:
            break
    return server.getpeercert()


def requiring_server(certs) -> ssl.SSLContext:
    context = certs.server_context()
    context.verify_mode = ssl.CERT_REQUIRED
    certs.ca.configure_trust(context)
    return context


def test_load_client_cert_presents_it_in_a_handshake(certs, client_files):
    _, cert, key = client_files
    context = certs.client_context()
    load_client_cert(context, (str(cert), str(key)))
    peer = handshake(context, requiring_server(certs))
    assert ("DNS", "client.example") in peer["subjectAltName"]


def test_load_client_cert_from_one_file_with_both(certs, client_files, tmp_path):
    leaf, _, _ = client_files
    both = tmp_path / "both.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(both))
    both.chmod(0o600)
    context = certs.client_context()
    load_client_cert(context, resolve_client_cert(both, host=HOST, port=587))
    assert ("DNS", "client.example") in handshake(context, requiring_server(certs))["subjectAltName"]
    both.chmod(0o644)
    with pytest.raises(CredentialsError, match=r"both.pem is accessible to the group or others"):
        load_client_cert(certs.client_context(), (str(both), None))


def test_key_file_others_can_read_is_refused(client_files):
    _, cert, key = client_files
    key.chmod(0o640)
    with pytest.raises(CredentialsError, match=r"key\.pem is accessible to the group or others"):
        load_client_cert(ssl.create_default_context(), (str(cert), str(key)))


def test_missing_key_file(client_files, tmp_path):
    _, cert, _ = client_files
    with pytest.raises(CredentialsError, match=r"^cannot read the client key .*absent\.key: No such file"):
        load_client_cert(ssl.create_default_context(), (str(cert), str(tmp_path / "absent.key")))
    with pytest.raises(CredentialsError, match=r"^cannot read the client certificate .*absent\.pem: No such"):
        load_client_cert(ssl.create_default_context(), (str(tmp_path / "absent.pem"), None))


def test_missing_certificate_with_a_present_key(client_files, tmp_path):
    _, _, key = client_files
    missing = tmp_path / "absent.crt"
    with pytest.raises(CredentialsError, match=r"^cannot read the client certificate .*absent\.crt \(key "):
        load_client_cert(ssl.create_default_context(), (str(missing), str(key)))


def test_invalid_certificate_and_mismatched_key(certs, client_files, tmp_path):
    _, cert, key = client_files
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(CredentialsError, match=r"^cannot load the client certificate .*garbage\.pem"):
        load_client_cert(ssl.create_default_context(), (str(garbage), str(key)))
    other = tmp_path / "other.key"
    certs.ca.issue_cert("other.example").private_key_pem.write_to_path(str(other))
    other.chmod(0o600)
    with pytest.raises(CredentialsError, match=r"^cannot load the client certificate .*cert\.pem \(key "):
        load_client_cert(ssl.create_default_context(), (str(cert), str(other)))


def test_encrypted_key_is_refused_without_prompting(client_files, tmp_path):
    from cryptography.hazmat.primitives import serialization

    leaf, cert, _ = client_files
    private_key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    encrypted.chmod(0o600)
    with pytest.raises(CredentialsError, match="the client key is encrypted"):
        load_client_cert(ssl.create_default_context(), (str(cert), str(encrypted)))


def test_key_is_not_checked_against_a_directory(tmp_path):
    with pytest.raises(CredentialsError, match="is not a regular file"):
        load_client_cert(ssl.create_default_context(), ("cert.pem", str(tmp_path)))


# --- password_from_command ------------------------------------------------------------------------


def test_command_first_line_of_output():
    assert password_from_command(r"printf 's3cret\nsecond'") == "s3cret"
    assert password_from_command(r"printf 'crlf\r\nsecond\r\n'") == "crlf"
    assert password_from_command("printf 'no newline'") == "no newline"
    assert password_from_command("echo 'with  spaces ' | cat") == "with  spaces "
    assert password_from_command(r"printf 'caf\303\251\n'") == "caf\u00e9"


def test_command_exit_status_without_output():
    with pytest.raises(CredentialsError) as info:
        password_from_command("printf 'leaked-output'; exit 3")
    assert str(info.value) == "the password command exited with status 3"


def test_command_killed_by_a_signal():
    with pytest.raises(CredentialsError, match=r"killed by signal 9$"):
        password_from_command("printf 'leaked-output'; kill -9 $$")


@pytest.mark.parametrize("command", ["true", "printf ''", "printf '\\nsecond line'"])
def test_command_empty_output(command):
    with pytest.raises(CredentialsError, match="printed nothing"):
        password_from_command(command)


def test_command_output_not_utf8():
    with pytest.raises(CredentialsError) as info:
        password_from_command(r"printf 'x\377y\n'")
    assert str(info.value) == "the password command printed something that is not UTF-8"


def test_command_timeout():
    with pytest.raises(CredentialsError) as info:
        password_from_command("printf 'partial'; exec sleep 30", timeout=0.2)
    assert str(info.value) == "the password command did not finish within 0.2 seconds"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_command_standard_input_is_dev_null():
    assert password_from_command("if read line; then echo got-input; else echo eof; fi") == "eof"


def test_command_standard_error_passes_through(capfd):
    assert password_from_command("echo 'a warning' >&2; echo pw") == "pw"
    assert "a warning" in capfd.readouterr().err


def test_command_missing_shell(monkeypatch, tmp_path):
    monkeypatch.setattr(_prompt, "_SHELL", str(tmp_path / "no-shell"))
    with pytest.raises(CredentialsError, match=r"^cannot run the password command with .*no-shell: No such"):
        password_from_command("echo pw")


@pytest.mark.parametrize(
    ("command", "fragment"), [("", "is empty"), ("  \n", "is empty"), (["echo"], "must be a str")]
)
def test_command_invalid(command, fragment):
    with pytest.raises(CredentialsError, match=fragment):
        password_from_command(command)


# --- terminal_ask ---------------------------------------------------------------------------------


class FakeTTYInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_password_uses_getpass(monkeypatch):
    prompts = []

    def fake_getpass(prompt):
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert terminal_ask("password", HOST, 587) == "typed"
    assert prompts == ["Password for mail.example.org:587: "]


@pytest.mark.parametrize("outcome", ["", EOFError])
def test_terminal_password_empty_or_end_of_input(monkeypatch, outcome):
    def fake_getpass(prompt):
        if outcome is EOFError:
            raise EOFError
        return outcome

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert terminal_ask("password", HOST, 587) is None


def test_terminal_password_never_read_with_echo(monkeypatch):
    read = []

    def echoing_getpass(prompt):
        # What getpass does without a terminal: warn, then read with echo.
        warnings.warn("Can not control echo on the terminal.", getpass.GetPassWarning, stacklevel=2)
        read.append(prompt)
        return "echoed"

    monkeypatch.setattr(getpass, "getpass", echoing_getpass)
    assert terminal_ask("password", HOST, 587) is None
    assert read == []


def test_terminal_password_with_no_terminal_at_all(monkeypatch, capsys):
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | getattr(os, "O_NOCTTY", 0)))
    except OSError:
        pass
    else:
        pytest.skip("this process has a terminal")
    monkeypatch.setattr(sys, "stdin", io.StringIO("would-be-echoed\n"))
    assert terminal_ask("password", HOST, 587) is None
    assert sys.stdin.read() == "would-be-echoed\n"  # nothing was read


def test_terminal_username_from_a_terminal_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", FakeTTYInput("  alice \n"))
    assert terminal_ask("username", HOST, 587) == "alice"
    assert capsys.readouterr().out == "Username for mail.example.org:587: "
    monkeypatch.setattr(sys, "stdin", FakeTTYInput("\n"))
    assert terminal_ask("username", HOST, 587) is None
    monkeypatch.setattr(sys, "stdin", FakeTTYInput(""))
    assert terminal_ask("username", HOST, 587) is None


@pytest.mark.parametrize("stdin", [None, io.StringIO("alice\n")])
def test_terminal_username_without_any_terminal(monkeypatch, tmp_path, stdin):
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(_prompt, "_TTY", str(tmp_path / "no-tty"))
    assert terminal_ask("username", HOST, 587) is None


def test_terminal_username_closed_stdin(monkeypatch, tmp_path):
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdin", closed)
    monkeypatch.setattr(_prompt, "_TTY", str(tmp_path / "no-tty"))
    assert terminal_ask("username", HOST, 587) is None


@pytest.fixture
def pty_terminal(monkeypatch):
    """A pseudo-terminal standing in for /dev/tty; yields the controller's descriptor."""
    pty = pytest.importorskip("pty")
    controller, terminal = pty.openpty()
    try:
        monkeypatch.setattr(_prompt, "_TTY", os.ttyname(terminal))
        monkeypatch.setattr(sys, "stdin", io.StringIO("the message, not a terminal\n"))
        yield controller
    finally:
        os.close(terminal)
        os.close(controller)


def read_available(fd: int) -> bytes:
    import select

    data = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        data += chunk
    return data


def test_terminal_username_from_dev_tty_when_stdin_is_the_message(pty_terminal):
    os.write(pty_terminal, b"bob\n")
    assert terminal_ask("username", HOST, 25) == "bob"
    assert b"Username for mail.example.org:25: " in read_available(pty_terminal)
    assert sys.stdin.read() == "the message, not a terminal\n"  # standard input untouched


def test_terminal_username_from_dev_tty_not_utf8(pty_terminal):
    os.write(pty_terminal, b"b\xffb\n")
    assert terminal_ask("username", HOST, 25) is None


def test_terminal_ask_unknown_question():
    with pytest.raises(CredentialsError, match="not 'account'"):
        terminal_ask("account", HOST, 587)


def test_terminal_ask_fits_resolve(monkeypatch):
    monkeypatch.setattr(getpass, "getpass", lambda prompt: "typed-pw")
    resolved = resolve_credentials(host=HOST, port=587, username="alice", ask=terminal_ask)
    assert resolved == Credentials(username="alice", password="typed-pw")

