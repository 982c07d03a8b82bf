"""Tests for resolving the ``timeout`` option into seconds per phase (RFC 5321 section 4.5.3.2)."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest

from smtp_sansio import DEFAULT_TIMEOUTS, PHASES, LocalProtocolError, resolve_timeouts


def test_phases() -> None:
    assert {
        "connect", "greeting", "command", "starttls", "auth", "mail", "rcpt", "data", "data_block", "data_end"
    } == PHASES
    assert set(DEFAULT_TIMEOUTS) == PHASES


@pytest.mark.parametrize(
    ("phase", "seconds"),
    [
        ("greeting", 300.0),  # 4.5.3.2.1 initial 220 message: 5 minutes
        ("mail", 300.0),  # 4.5.3.2.2 MAIL command: 5 minutes
        ("rcpt", 300.0),  # 4.5.3.2.3 RCPT command: 5 minutes
        ("data", 120.0),  # 4.5.3.2.4 DATA initiation: 2 minutes
        ("data_block", 180.0),  # 4.5.3.2.5 data block: 3 minutes
        ("data_end", 600.0),  # 4.5.3.2.6 DATA termination: 10 minutes
        ("connect", 300.0),
        ("command", 300.0),
        ("starttls", 300.0),
        ("auth", 300.0),
    ],
)
def test_defaults_follow_rfc_5321(phase: str, seconds: float) -> None:
    assert DEFAULT_TIMEOUTS[phase] == seconds
    assert resolve_timeouts(None)[phase] == seconds


def test_none_gives_the_defaults() -> None:
    assert dict(resolve_timeouts(None)) == dict(DEFAULT_TIMEOUTS)


@pytest.mark.parametrize("spec", [30, 30.0, 0.5, math.inf])
def test_a_number_applies_to_every_phase(spec: float) -> None:
    resolved = resolve_timeouts(spec)
    assert set(resolved) == PHASES
    assert all(seconds == float(spec) and isinstance(seconds, float) for seconds in resolved.values())


def test_a_mapping_overrides_some_phases() -> None:
    resolved = resolve_timeouts({"greeting": 10, "data_end": 1200.5})
    assert resolved["greeting"] == 10.0
    assert isinstance(resolved["greeting"], float)
    assert resolved["data_end"] == 1200.5
    assert {phase: resolved[phase] for phase in PHASES - {"greeting", "data_end"}} == {
        phase: DEFAULT_TIMEOUTS[phase] for phase in PHASES - {"greeting", "data_end"}
    }


def test_none_in_a_mapping_means_no_limit() -> None:
    resolved = resolve_timeouts({"data_end": None, "mail": 5})
    assert resolved["data_end"] is None
    assert resolved["mail"] == 5.0
    assert resolved["rcpt"] == 300.0


def test_an_empty_mapping_gives_the_defaults() -> None:
    assert dict(resolve_timeouts({})) == dict(DEFAULT_TIMEOUTS)


def test_the_spec_is_not_modified() -> None:
    spec = {"mail": 5}
    resolve_timeouts(spec)
    assert spec == {"mail": 5}


@pytest.mark.parametrize("spec", [None, 5, {"mail": 5}])
def test_the_result_is_read_only(spec: object) -> None:
    resolved = resolve_timeouts(spec)  # type: ignore[arg-type]
    assert isinstance(resolved, MappingProxyType)
    with pytest.raises(TypeError):
        resolved["mail"] = 1.0  # type: ignore[index]


def test_the_defaults_are_read_only() -> None:
    with pytest.raises(TypeError):
        DEFAULT_TIMEOUTS["mail"] = 1.0  # type: ignore[index]
    resolved = resolve_timeouts({"mail": 1})
    assert DEFAULT_TIMEOUTS["mail"] == 300.0
    assert resolved is not DEFAULT_TIMEOUTS


@pytest.mark.parametrize("phase", ["Mail", "MAIL", "quit", "data-end", "", "greetings"])
def test_unknown_phase(phase: str) -> None:
    with pytest.raises(LocalProtocolError, match="unknown timeout phase") as info:
        resolve_timeouts({phase: 5})
    assert "data_end" in str(info.value)  # the message lists the known phases


@pytest.mark.parametrize("seconds", [0, 0.0, -1, -0.5, -math.inf, math.nan])
def test_zero_negative_and_nan_are_refused(seconds: float) -> None:
    with pytest.raises(LocalProtocolError, match="positive number"):
        resolve_timeouts(seconds)
    with pytest.raises(LocalProtocolError, match="positive number"):
        resolve_timeouts({"mail": seconds})


@pytest.mark.parametrize("flag", [True, False])
def test_bools_are_refused(flag: bool) -> None:
    with pytest.raises(LocalProtocolError, match="number or a mapping"):
        resolve_timeouts(flag)
    with pytest.raises(LocalProtocolError, match="positive number"):
        resolve_timeouts({"mail": flag})


@pytest.mark.parametrize("seconds", ["5", b"5", [5], object()])
def test_non_numbers_are_local_errors(seconds: object) -> None:
    with pytest.raises(LocalProtocolError, match="positive number"):
        resolve_timeouts({"mail": seconds})  # type: ignore[dict-item]
