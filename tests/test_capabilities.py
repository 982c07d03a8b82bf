"""Tests for reading the service extensions out of an EHLO reply (RFC 5321 section 4.1.1.1)."""

from __future__ import annotations

import pytest

from smtp_sansio import Capabilities, Reply


def parse(*lines: bytes | str) -> Capabilities:
    raw = tuple(line.encode() if isinstance(line, str) else line for line in lines)
    return Capabilities.from_ehlo_reply(Reply(code=250, lines=raw))


def test_default_is_empty() -> None:
    caps = Capabilities()
    assert caps.server_name == ""
    assert dict(caps.extensions) == {}
    assert caps.esmtp is False
    assert caps.auth_mechanisms == ()
    assert caps.size_limit is None
    assert "AUTH" not in caps
    assert "" not in caps


def test_typical_reply() -> None:
    caps = parse(
        "mx.example.org Hello client.example.org [192.0.2.1]",
        "PIPELINING",
        "SIZE 10240000",
        "ETRN",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    )
    assert caps.server_name == "mx.example.org"
    assert caps.esmtp is True
    assert list(caps.extensions) == [
        "PIPELINING", "SIZE", "ETRN", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8",
        "CHUNKING",
    ]
    assert caps.extensions["SIZE"] == ("10240000",)
    assert caps.extensions["PIPELINING"] == ()
    assert caps.size_limit == 10240000


def test_single_line_reply_has_no_extensions() -> None:
    caps = parse("mx.example.org")
    assert caps.server_name == "mx.example.org"
    assert dict(caps.extensions) == {}
    assert caps.esmtp is True


def test_empty_first_line() -> None:
    caps = parse("", "PIPELINING")
    assert caps.server_name == ""
    assert "PIPELINING" in caps


def test_keywords_are_upper_cased_and_params_kept() -> None:
    caps = parse("mx", "pipelining", "x-Custom-Ext Foo bar=Baz", "Size 100")
    assert dict(caps.extensions) == {"PIPELINING": (), "X-CUSTOM-EXT": ("Foo", "bar=Baz"), "SIZE": ("100",)}


def test_params_split_on_any_whitespace() -> None:
    caps = parse("mx", "AUTH  PLAIN\tLOGIN ")
    assert caps.extensions["AUTH"] == ("PLAIN", "LOGIN")


@pytest.mark.parametrize("keyword", ["pipelining", "PIPELINING", "Pipelining"])
def test_membership_is_case_insensitive(keyword: str) -> None:
    assert keyword in parse("mx", "PiPeLiNiNg")


@pytest.mark.parametrize("thing", [None, 1, b"PIPELINING", ("PIPELINING",)])
def test_membership_of_non_strings_is_false(thing: object) -> None:
    assert thing not in parse("mx", "PIPELINING")


def test_absent_keyword() -> None:
    caps = parse("mx", "PIPELINING")
    assert "STARTTLS" not in caps
    assert "PIPE" not in caps


def test_extensions_are_read_only() -> None:
    caps = parse("mx", "PIPELINING")
    with pytest.raises(TypeError):
        caps.extensions["STARTTLS"] = ()  # type: ignore[index]
    with pytest.raises(AttributeError):
        caps.esmtp = False  # type: ignore[misc]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("-PIPELINING", id="leading-hyphen"),
        pytest.param("X_UNDERSCORE", id="underscore"),
        pytest.param("X.DOT", id="dot"),
        pytest.param("FOO:BAR", id="colon"),
        pytest.param("=LOGIN", id="equals"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param(b"X-\xff\xfe", id="not-utf8"),
        pytest.param("\u0661\u0662", id="non-ascii-digits"),
    ],
)
def test_invalid_keyword_lines_are_skipped(line: str | bytes) -> None:
    caps = parse("mx", "PIPELINING", line, "8BITMIME")
    assert list(caps.extensions) == ["PIPELINING", "8BITMIME"]


@pytest.mark.parametrize("blank", ["", " ", "\t", "   \t "])
def test_blank_lines_are_skipped(blank: str) -> None:
    caps = parse("mx", blank, "PIPELINING", blank)
    assert list(caps.extensions) == ["PIPELINING"]


def test_a_repeated_keyword_takes_the_last_line() -> None:
    caps = parse("mx", "SIZE 100", "SIZE 200")
    assert caps.extensions["SIZE"] == ("200",)
    assert caps.size_limit == 200


# -- AUTH (RFC 4954 section 3) ----------------------------------------------------------------


def test_auth_mechanisms() -> None:
    caps = parse("mx", "AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256")
    assert caps.auth_mechanisms == ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")


def test_auth_mechanisms_are_upper_cased_in_order() -> None:
    caps = parse("mx", "auth login Plain")
    assert caps.extensions["AUTH"] == ("login", "Plain")
    assert caps.auth_mechanisms == ("LOGIN", "PLAIN")


def test_no_auth() -> None:
    caps = parse("mx", "PIPELINING")
    assert caps.auth_mechanisms == ()
    assert "AUTH" not in caps


def test_auth_without_mechanisms() -> None:
    caps = parse("mx", "AUTH")
    assert "AUTH" in caps
    assert caps.auth_mechanisms == ()


@pytest.mark.parametrize("line", ["AUTH=LOGIN PLAIN", "auth=LOGIN PLAIN", "Auth=login plain"])
def test_legacy_auth_form(line: str) -> None:
    caps = parse("mx", line)
    assert "AUTH" in caps
    assert "AUTH=LOGIN" not in caps
    assert list(caps.extensions) == ["AUTH"]
    assert caps.auth_mechanisms == ("LOGIN", "PLAIN")


def test_legacy_auth_without_mechanism() -> None:
    caps = parse("mx", "AUTH=")
    assert "AUTH" in caps
    assert caps.auth_mechanisms == ()


def test_legacy_and_normal_auth_merge_without_duplicates() -> None:
    caps = parse("mx", "AUTH PLAIN LOGIN CRAM-MD5", "AUTH=LOGIN PLAIN")
    assert caps.extensions["AUTH"] == ("PLAIN", "LOGIN", "CRAM-MD5")
    assert caps.auth_mechanisms == ("PLAIN", "LOGIN", "CRAM-MD5")


def test_legacy_auth_first_then_normal() -> None:
    caps = parse("mx", "AUTH=LOGIN", "SIZE 5", "AUTH PLAIN LOGIN XOAUTH2")
    assert caps.auth_mechanisms == ("LOGIN", "PLAIN", "XOAUTH2")
    assert list(caps.extensions) == ["AUTH", "SIZE"]


def test_repeated_normal_auth_lines_merge() -> None:
    caps = parse("mx", "AUTH PLAIN", "AUTH LOGIN PLAIN")
    assert caps.auth_mechanisms == ("PLAIN", "LOGIN")


def test_auth_merge_ignores_case() -> None:
    caps = parse("mx", "AUTH login", "AUTH=LOGIN")
    assert caps.auth_mechanisms == ("LOGIN",)


# -- SIZE (RFC 1870 section 4) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "limit"),
    [
        ("SIZE", 0),  # announced without a number: no fixed limit
        ("SIZE 0", 0),  # "0" means no fixed limit
        ("SIZE 1000", 1000),
        ("size 35882577", 35882577),
        ("SIZE 00042", 42),
        ("SIZE 1000 extra", 1000),
        ("SIZE unlimited", 0),
        ("SIZE -5", 0),
        ("SIZE 1e6", 0),
        ("SIZE 10.5", 0),
        (b"SIZE \xff", 0),
    ],
)
def test_size_limit(line: str | bytes, limit: int) -> None:
    assert parse("mx", line).size_limit == limit


def test_size_limit_absent() -> None:
    assert parse("mx", "PIPELINING").size_limit is None


@pytest.mark.parametrize(
    "param",
    [
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("9" * 5000, id="over-int-max-str-digits"),
    ],
)
def test_size_limit_never_raises(param: str) -> None:
    assert parse("mx", f"SIZE {param}").size_limit == 0
