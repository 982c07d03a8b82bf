"""``smtp-sansio probe``: what a server offers, before and after TLS, and its certificate.

The probe connects with the blocking client, as ``send`` would, records the dialogue through the
trace, and quits without sending anything.  A certificate that does not verify is reported, and
the probe goes on over a connection that does not verify it, to show what the server offers.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import ssl
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from smtp_sansio import SecurityError

from .sync import SMTPClient

__all__ = ["CertificateInfo", "ProbeResult", "probe"]


@dataclass(slots=True, kw_only=True)
class CertificateInfo:
    """The server's certificate.

    Attributes:
        subject: its subject, as ``key=value`` pairs joined by commas.
        issuer: its issuer, the same way.
        not_after: when it expires (ISO 8601, UTC), or ``None`` if unknown.
        alt_names: its subject alternative names.
        verified: whether it verified against the trusted authorities and the host name.
        verify_error: why it did not, or ``None``.
    """

    subject: str = ""
    issuer: str = ""
    not_after: str | None = None
    alt_names: list[str] = field(default_factory=list)
    verified: bool = False
    verify_error: str | None = None


@dataclass(slots=True, kw_only=True)
class ProbeResult:
    """What the probe saw.

    Attributes:
        host: the server.
        port: its port.
        tls_mode: the TLS mode used.
        greeting: the greeting's lines (``220 ...``).
        capabilities_before_tls: the EHLO keywords before STARTTLS (empty with implicit TLS).
        capabilities_after_tls: the EHLO keywords after TLS (empty without TLS).
        tls_version: ``"TLSv1.3"``, ..., or ``None`` without TLS.
        cipher: the cipher suite, or ``None``.
        cipher_bits: its secret bits, or ``None``.
        certificate: the server's certificate, or ``None`` without TLS.
        auth_mechanisms: the SASL mechanisms the server offers on the final connection.
    """

    host: str
    port: int
    tls_mode: str
    greeting: list[str] = field(default_factory=list)
    capabilities_before_tls: list[str] = field(default_factory=list)
    capabilities_after_tls: list[str] = field(default_factory=list)
    tls_version: str | None = None
    cipher: str | None = None
    cipher_bits: int | None = None
    certificate: CertificateInfo | None = None
    auth_mechanisms: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data, for JSON."""
        return asdict(self)


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def probe(
    host: str | None,
    port: int | str | None = None,
    *,
    tls: str = "starttls",
    ssl_context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    timeout: float | None = None,
) -> ProbeResult:
    """Connect, greet, start TLS as ``tls`` says, record what the server offers, and quit.

    Raises:
        SMTPError: the server cannot be reached or refuses the dialogue (a certificate that does
            not verify is reported in the result instead).
    """
    context = ssl_context or ssl.create_default_context()
    try:
        return _probe(host, port, tls, context, local_hostname, timeout, None)
    except SecurityError as exc:
        already_unverified = not context.check_hostname and context.verify_mode == ssl.CERT_NONE
        if "certificate" not in str(exc) or already_unverified:
            raise
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        return _probe(host, port, tls, unverified, local_hostname, timeout, str(exc))


def _probe(
    host: str | None, port: int | str | None, tls: str, context: ssl.SSLContext,
    local_hostname: str | None, timeout: float | None, verify_error: str | None,
) -> ProbeResult:
    recorder = _Recorder()
    logger = logging.Logger("smtp_sansio.probe", logging.INFO)  # noqa: LOG001 - deliberately unregistered
    logger.addHandler(recorder)
    client = SMTPClient(
        host, port, tls=tls, ssl_context=context, local_hostname=local_hostname, trace=logger,
        timeout=timeout,
    )
    with client:
        result = ProbeResult(host=client.host, port=client.port, tls_mode=tls)
        sock = client.tls_socket
        if sock is not None:
            result.tls_version = sock.version()
            cipher = sock.cipher()
            if cipher is not None:
                result.cipher, result.cipher_bits = cipher[0], cipher[2]
            result.certificate = _certificate(sock, verify_error)
    _read_trace(result, recorder.lines)
    return result


def _read_trace(result: ProbeResult, lines: list[str]) -> None:
    # Splits the dialogue: the greeting, then each EHLO reply, before and after STARTTLS.
    replies: list[list[str]] = []
    current: list[str] | None = None
    commanded = starttls = False
    ehlo_after_tls = result.tls_mode == "implicit"
    for line in lines:
        if line.startswith("S: "):
            if not commanded:
                result.greeting.append(line[3:])
            elif current is not None:
                current.append(line[3:])
        elif line.startswith("C: "):
            commanded = True
            command = line[3:].split(" ", 1)[0].upper()
            if command in ("EHLO", "HELO"):
                current = []
                replies.append(current)
                ehlo_after_tls = ehlo_after_tls or starttls
            else:
                current = None
                starttls = starttls or command == "STARTTLS"
    keywords = [[text[4:] for text in reply[1:]] for reply in replies]
    if ehlo_after_tls and keywords:
        result.capabilities_after_tls = keywords[-1]
        if len(keywords) > 1:
            result.capabilities_before_tls = keywords[0]
    elif keywords:
        result.capabilities_before_tls = keywords[0]
    final = result.capabilities_after_tls or result.capabilities_before_tls
    for keyword in final:
        name, _, params = keyword.partition(" ")
        if name.upper() == "AUTH":
            result.auth_mechanisms = params.split()


def _certificate(sock: ssl.SSLSocket, verify_error: str | None) -> CertificateInfo:
    info = CertificateInfo(verified=verify_error is None, verify_error=verify_error)
    decoded: dict[str, Any] = dict(sock.getpeercert() or {})
    if not decoded:
        der = sock.getpeercert(binary_form=True)
        if der:
            decoded = _decode_der(der)
    info.subject = _name(decoded.get("subject", ()))
    info.issuer = _name(decoded.get("issuer", ()))
    not_after = decoded.get("notAfter")
    if isinstance(not_after, str):
        stamp = ssl.cert_time_to_seconds(not_after)
        info.not_after = datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat()
    info.alt_names = [f"{kind}:{value}" for kind, value in decoded.get("subjectAltName", ())]
    return info


def _decode_der(der: bytes) -> dict[str, Any]:
    # The standard library decodes only verified certificates; its test helper decodes any PEM file.
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:  # pragma: no cover - present in every CPython
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as file:
        file.write(ssl.DER_cert_to_PEM_cert(der))
    try:
        return dict(decode(file.name))
    except (ssl.SSLError, OSError, ValueError):  # pragma: no cover - a certificate OpenSSL accepted
        return {}
    finally:
        with contextlib.suppress(OSError):
            os.unlink(file.name)


def _name(rdns: Any) -> str:
    return ", ".join(f"{key}={value}" for rdn in rdns for key, value in rdn)
