"""Option resolution shared by every adapter: server, port, TLS verification, EHLO address literal.

The adapters' behaviour with these options, against real servers, is in test_adapters.py.
"""

from __future__ import annotations

import socket

import pytest

from smtp_sansio import LocalProtocolError
from smtp_sansio.adapters._options import (
    DEFAULT_HOST,
    address_literal,
    resolve_host,
    resolve_port,
    resolve_server_options,
)


def test_resolve_host():
    assert resolve_host("mail.example.org", {"SMTPSERVER": "other"}) == "mail.example.org"
    assert resolve_host(None, {"SMTPSERVER": "env.example.org"}) == "env.example.org"
    assert resolve_host(None, {"SMTPSERVER": ""}) == DEFAULT_HOST == "localhost"
    assert resolve_host(None, {}) == "localhost"
    assert resolve_host("[::1]", {}) == "::1"
    for bad in ("", "a b", "mail\r\nx", "a\x00"):
        with pytest.raises(LocalProtocolError):
            resolve_host(bad, {})


def test_resolve_port():
    assert resolve_port(None, "starttls") == 587
    assert resolve_port(None, "implicit") == 465
    assert resolve_port(None, "opportunistic") == 25
    assert resolve_port(None, "none") == 25
    assert resolve_port(2525, "starttls") == 2525
    assert resolve_port("2525", "starttls") == 2525
    for bad in (0, -1, 65536, "70000", True, "no-such-service-here", 2.5):
        with pytest.raises(LocalProtocolError):
            resolve_port(bad, "starttls")


@pytest.mark.parametrize(("name", "number"), [("smtp", 25), ("submission", 587), ("submissions", 465)])
def test_resolve_port_service_names(name, number):
    try:
        expected = socket.getservbyname(name, "tcp")
    except OSError:
        pytest.skip(f"the services database of this machine has no {name!r}")
    assert expected == number
    assert resolve_port(name, "starttls") == number


def test_tls_verified_follows_the_context(certs):
    strict = resolve_server_options(host="h", port=1, tls="starttls", ssl_context=None, local_hostname="c")
    assert strict.tls_verified
    lax = certs.client_context()
    lax.check_hostname = False
    options = resolve_server_options(host="h", port=1, tls="starttls", ssl_context=lax, local_hostname="c")
    assert not options.tls_verified


def test_address_literal():
    assert address_literal("192.0.2.1") == "[192.0.2.1]"
    assert address_literal("::1") == "[IPv6:::1]"
    assert address_literal("fe80::1%eth0") == "[IPv6:fe80::1]"
