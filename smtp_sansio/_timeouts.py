"""Per-phase timeouts, with the defaults of RFC 5321 section 4.5.3.2.

The core never reads a clock: it only attaches the number of seconds a phase may take to each I/O
request, and the adapter enforces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._errors import LocalProtocolError

__all__ = ["DEFAULT_TIMEOUTS", "PHASES", "TimeoutSpec", "resolve_timeouts"]

#: Seconds each phase may take when the user does not say otherwise.
#: RFC 5321 section 4.5.3.2 gives the server-facing minimums a client should wait; the phases it
#: does not name (connecting, EHLO, STARTTLS, AUTH, QUIT) get five minutes like MAIL.
DEFAULT_TIMEOUTS: Mapping[str, float] = MappingProxyType(
    {
        "connect": 300.0,
        "greeting": 300.0,  # 4.5.3.2.1 initial 220 message: 5 minutes
        "command": 300.0,  # EHLO/HELO, VERB, RSET, NOOP, VRFY, QUIT
        "starttls": 300.0,
        "auth": 300.0,
        "mail": 300.0,  # 4.5.3.2.2 MAIL command: 5 minutes
        "rcpt": 300.0,  # 4.5.3.2.3 RCPT command: 5 minutes
        "data": 120.0,  # 4.5.3.2.4 DATA initiation: 2 minutes
        "data_block": 180.0,  # 4.5.3.2.5 data block: 3 minutes
        "data_end": 600.0,  # 4.5.3.2.6 DATA termination: 10 minutes
    }
)

#: The phase names a timeout mapping may use.
PHASES: frozenset[str] = frozenset(DEFAULT_TIMEOUTS)

TimeoutSpec = float | int | Mapping[str, float | int | None] | None


def _is_positive_number(value: object) -> bool:
    # bool is an int, and NaN compares false with everything: both are refused.
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def resolve_timeouts(spec: TimeoutSpec) -> Mapping[str, float | None]:
    """Turn a user's ``timeout`` option into seconds for every phase.

    Args:
        spec: ``None`` for the RFC defaults; a number of seconds for every phase; or a mapping
            from phase name to seconds (``None`` meaning no limit) overriding some defaults.

    Returns:
        A read-only mapping from every phase name in :data:`PHASES` to seconds or ``None``.

    Raises:
        LocalProtocolError: for an unknown phase name or a negative or zero number.
    """
    resolved: dict[str, float | None] = dict(DEFAULT_TIMEOUTS)
    if spec is None:
        return MappingProxyType(resolved)
    if isinstance(spec, bool):
        raise LocalProtocolError(f"timeout must be a number or a mapping, not {spec!r}")
    if isinstance(spec, int | float):
        overrides: Mapping[str, float | int | None] = dict.fromkeys(PHASES, spec)
    else:
        overrides = spec
    for phase, seconds in overrides.items():
        if phase not in PHASES:
            known = ", ".join(sorted(PHASES))
            raise LocalProtocolError(f"unknown timeout phase {phase!r} (known: {known})")
        if seconds is not None and not _is_positive_number(seconds):
            raise LocalProtocolError(f"timeout for {phase!r} must be a positive number, not {seconds!r}")
        resolved[phase] = None if seconds is None else float(seconds)
    return MappingProxyType(resolved)
