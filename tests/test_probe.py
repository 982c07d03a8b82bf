"""``smtp-sansio probe`` against aiosmtpd: plaintext, STARTTLS, implicit TLS, unverified certificates."""

from __future__ import annotations

import io
import json
import socket
import sys

import pytest
from servers import LOOPBACK

from smtp_sansio import SMTPConnectError
from smtp_sansio.adapters import cli
from smtp_sansio.adapters._probe import probe


@pytest.fixture
def run(monkeypatch, capsys):
    def run(argv: list[str]) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
        status = cli.main(argv)
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_starttls_verified(smtpd_factory, certs):
    server = smtpd_factory(starttls=True)
    result = probe(LOOPBACK, server.port, ssl_context=certs.client_context(), local_hostname="c.test")
    assert len(result.greeting) == 1 and result.greeting[0].startswith("220 mx.test")
    assert "STARTTLS" in result.capabilities_before_tls
    assert "STARTTLS" not in result.capabilities_after_tls
    assert "AUTH LOGIN PLAIN" in result.capabilities_after_tls
    assert result.auth_mechanisms == ["LOGIN", "PLAIN"]
    assert result.tls_version is not None and result.tls_version.startswith("TLSv1")
    assert result.cipher and result.cipher_bits
    cert = result.certificate
    assert cert is not None and cert.verified and cert.verify_error is None
    assert "smtp-sansio test CA" in cert.issuer and "IP Address:127.0.0.1" in cert.alt_names
    assert cert.not_after == "3000-01-01T00:00:00+00:00"
    assert server.messages == [] and "MAIL" not in server.commands()


def test_unverified_certificate_is_reported_not_fatal(smtpd_factory, run):
    server = smtpd_factory(starttls=True)
    status, out, err = run(["probe", LOOPBACK, "--port", str(server.port), "--json"])
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert data["certificate"]["verified"] is False
    assert "not accepted" in data["certificate"]["verify_error"]
    assert "smtp-sansio test CA" in data["certificate"]["issuer"]  # decoded all the same
    assert data["auth_mechanisms"] == ["LOGIN", "PLAIN"]
    assert "STARTTLS" in data["capabilities_before_tls"]


def test_text_output_with_cafile(smtpd_factory, certs, run, tmp_path):
    server = smtpd_factory(starttls=True)
    ca = certs.write_ca(tmp_path / "ca.pem")
    status, out, _ = run(["probe", LOOPBACK, "--port", str(server.port), "--cafile", str(ca),
                          "--local-domain", "c.test", "--timeout", "10"])
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"server: {LOOPBACK}:{server.port} (tls starttls)"
    assert lines[1].startswith("greeting: 220 ")
    assert any(line.startswith("capabilities before TLS: ") and "STARTTLS" in line for line in lines)
    assert any(line.startswith("TLS: TLSv1") and "cipher " in line for line in lines)
    assert "certificate verified: yes" in lines
    assert "certificate expires: 3000-01-01T00:00:00+00:00" in lines
    assert "AUTH mechanisms: LOGIN PLAIN" in lines


def test_implicit_tls(smtpd_factory, certs):
    server = smtpd_factory(implicit_tls=True)
    result = probe(LOOPBACK, server.port, tls="implicit", ssl_context=certs.client_context())
    assert result.capabilities_before_tls == []
    assert result.capabilities_after_tls and result.tls_version
    assert result.certificate is not None and result.certificate.verified


def test_plaintext(smtpd_factory, run):
    server = smtpd_factory()
    status, out, _ = run(["probe", LOOPBACK, "--port", str(server.port), "--tls", "none"])
    assert status == 0
    assert "TLS: none" in out.splitlines()
    assert "AUTH mechanisms: none offered" in out.splitlines()
    assert "certificate" not in out


def test_errors(run):
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    with pytest.raises(SMTPConnectError):
        probe(LOOPBACK, port, tls="none")
    status, _, err = run(["probe", LOOPBACK, "--port", str(port), "--tls", "none"])
    assert status == cli.EX_TEMPFAIL and "cannot connect" in err
    status, _, err = run(["probe", LOOPBACK, "--port", "99999"])
    assert status == cli.EX_USAGE
    status, _, err = run(["probe", LOOPBACK, "--cafile", "/nonexistent/ca.pem"])
    assert status == cli.EX_NOINPUT
    status, _, _ = run(["probe"])
    assert status == cli.EX_USAGE


def test_starttls_not_offered_is_an_error(smtpd_factory, run):
    server = smtpd_factory()
    status, _, err = run(["probe", LOOPBACK, "--port", str(server.port)])
    assert status == cli.EX_NOPERM and "STARTTLS" in err
