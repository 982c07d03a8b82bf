"""Every option of an SMTP client, checked once, and the session of each connection made from them.

The blocking, asyncio and trio adapters take the same keyword options.  :class:`ClientConfig` turns
them into concrete values before anything touches the network -- the server and port, the TLS
context with its client certificate, the EHLO name, the credentials' sources -- so a bad option fails
at construction, and then makes a fresh :class:`~smtp_sansio.Session` for every connection, with
credentials looked up for that connection (a token provider is called, a missing password asked
for) just before it is opened.
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Sequence

from smtp_sansio import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_IN_FLIGHT,
    Credentials,
    LocalProtocolError,
    Session,
    TimeoutSpec,
    resolve_timeouts,
)

from ._credentials import (
    AskCallback,
    ClientCertOption,
    CredentialTable,
    TokenProvider,
    credential_table,
    load_client_cert,
    resolve_client_cert,
    resolve_credentials,
)
from ._netrc import CredentialEntry, CredentialsError
from ._options import ServerOptions, TraceOption, address_literal, resolve_server_options, trace_callback

__all__ = ["ClientConfig", "CredentialsOption"]

#: The ``credentials`` option: the seed's table of (host, port, user, password) rows, or the path of
#: a netrc/authinfo file.
CredentialsOption = CredentialTable | Sequence[CredentialEntry] | str | os.PathLike[str] | None


def _scram_nonce() -> str:
    # RFC 5802 section 5.1: a fresh, unguessable nonce of printable characters without ",";
    # 24 URL-safe characters carry 144 random bits.
    return secrets.token_urlsafe(18)


class ClientConfig:
    """The checked options of one client; see :class:`~smtp_sansio.adapters.sync.SMTPClient` for each.

    Raises:
        LocalProtocolError: an option is invalid (a
            :class:`~smtp_sansio.adapters.CredentialsError` for credentials and
            client certificates).
    """

    def __init__(
        self,
        *,
        host: str | None,
        port: int | str | None,
        tls: str,
        ssl_context: ssl.SSLContext | None,
        local_hostname: str | None,
        sendto_domain: str | None,
        verb: bool,
        trace: TraceOption,
        timeout: TimeoutSpec,
        username: str | None = None,
        password: str | None = None,
        credentials: CredentialsOption = None,
        ask: AskCallback | None = None,
        oauth_token: TokenProvider | None = None,
        client_cert: ClientCertOption = None,
        auth_mechanisms: Sequence[str] | None = None,
        allow_insecure_auth: bool = False,
        pipelining: bool = True,
        chunking: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        lmtp: bool = False,
    ) -> None:
        self.server: ServerOptions = resolve_server_options(
            host=host, port=port, tls=tls, ssl_context=ssl_context, local_hostname=local_hostname
        )
        #: Seconds for each phase; ``timeouts["connect"]`` bounds connecting (and implicit TLS).
        self.timeouts = resolve_timeouts(timeout)
        cert = resolve_client_cert(client_cert, host=self.server.host, port=self.server.port)
        if cert is not None:
            # The seed's smtpmail-starttls-credentials: presented in the STARTTLS or implicit TLS
            # handshake.  It goes into the context given (or the default one made for this client).
            load_client_cert(self.server.ssl_context, cert)
        self._client_certificate = cert is not None
        if credentials is not None and not isinstance(credentials, str | os.PathLike):
            credentials = credential_table(credentials)  # checked now, not at the first connection
        if password is not None and oauth_token is not None:
            # Refused when the client is made, not at its first connection.
            raise CredentialsError("give password= or oauth_token=, not both: which to use would be a guess")
        self._username = username
        self._password = password
        self._credentials = credentials
        self._ask = ask
        self._oauth_token = oauth_token
        self._sendto_domain = sendto_domain
        self._verb = verb
        self._timeout = timeout
        self._trace = trace_callback(trace)
        self._auth_mechanisms = auth_mechanisms
        self._allow_insecure_auth = allow_insecure_auth
        for name, flag in (("pipelining", pipelining), ("chunking", chunking), ("lmtp", lmtp)):
            if not isinstance(flag, bool):
                raise LocalProtocolError(f"{name} must be True or False, not {flag!r}")
        self._pipelining = pipelining
        self._chunking = chunking
        #: The BDAT chunk size, also the size of each read of a file given as a message.
        self.chunk_size = chunk_size
        self._max_in_flight = max_in_flight
        self._lmtp = lmtp
        self.new_session("127.0.0.1", None)  # checks the session's own options now

    @property
    def credentials_may_block(self) -> bool:
        """Whether :meth:`connection_credentials` may block: it reads a file, asks, or calls a provider.

        An event loop adapter then calls it in a worker thread.
        """
        return (
            isinstance(self._credentials, str | os.PathLike)
            or self._ask is not None
            or callable(self._oauth_token)
        )

    def connection_credentials(self) -> Credentials | None:
        """What the next connection authenticates with; call it just before connecting.

        A token provider is called and a missing user name or password asked for here, once per
        connection, so that an expired token is replaced and nobody is asked while a server waits.

        Returns:
            The credentials, or ``None`` when none are configured for this host and port.

        Raises:
            CredentialsError: the credentials cannot be found, read or completed.
        """
        return resolve_credentials(
            host=self.server.host,
            port=self.server.port,
            username=self._username,
            password=self._password,
            credentials=self._credentials,
            ask=self._ask,
            oauth_token=self._oauth_token,
        )

    def new_session(self, local_address: str, credentials: Credentials | None) -> Session:
        """The session of a new connection.

        Args:
            local_address: the IP address of the client's end, for the EHLO name when the machine's
                own name is unusable (:func:`~smtp_sansio.adapters._options.resolve_local_hostname`).
            credentials: from :meth:`connection_credentials`.

        Returns:
            A session whose handshake starts with the server's greeting.

        Raises:
            LocalProtocolError: an option is invalid.
        """
        server = self.server
        return Session(
            server_hostname=server.host,
            server_port=server.port,
            local_hostname=server.local_hostname or address_literal(local_address),
            tls=server.tls,
            tls_verified=server.tls_verified,
            verb=self._verb,
            sendto_domain=self._sendto_domain,
            timeout=self._timeout,
            trace=self._trace,
            credentials=credentials,
            auth_mechanisms=self._auth_mechanisms,
            allow_insecure_auth=self._allow_insecure_auth,
            client_certificate=self._client_certificate,
            nonce=_scram_nonce,
            pipelining=self._pipelining,
            chunking=self._chunking,
            chunk_size=self.chunk_size,
            max_in_flight=self._max_in_flight,
            lmtp=self._lmtp,
        )
