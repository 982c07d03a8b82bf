"""Suite-wide pytest configuration.

Kept deliberately small.  Fixtures shared by several test files live in their own modules in this
directory (for example ``servers.py`` for loopback SMTP servers) and are registered by naming the
module in :data:`pytest_plugins` below; pytest puts this directory on ``sys.path``, so those modules
are importable by their plain name.  Markers (``postfix``, ``slow``) are declared in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

#: Fixture modules of this directory, by module name (``"servers"`` for ``tests/servers.py``).
pytest_plugins = ["servers", "postfix", "session_driver", "adapters"]

# Hypothesis' default per-example deadline is a timing assertion in disguise, and the machines the
# suite runs on are small and shared: no deadline, and no health check that depends on speed.
settings.register_profile(
    "smtp-sansio",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("smtp-sansio")


@pytest.fixture(autouse=True, scope="session")
def _no_user_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the user's own smtp-sansio configuration file out of every test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("no-config-home")))
        yield
