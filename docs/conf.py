"""Sphinx configuration for the smtp-sansio documentation.

Build with ``make docs`` (``sphinx-build -W -b html docs docs/_build/html``): warnings are errors.
The package must be installed (``pip install -e '.[dev]'``) so that autodoc can import it.  The
state-machine page is generated at build time from ``smtp_sansio._state`` by
``gen_state_diagram.py`` into ``_generated/`` (not kept in version control).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # for gen_state_diagram; the package itself comes from its installation

import gen_state_diagram  # noqa: E402  (needs the path above)

try:
    import smtp_sansio
except ImportError as error:  # pragma: no cover - a configuration error, reported to the builder
    raise RuntimeError(
        f"cannot import smtp_sansio ({error}); install the project first: pip install -e '.[dev]'"
    ) from error

gen_state_diagram.write(HERE / "_generated" / "state_table.rst")

project = "smtp-sansio"
author = "the smtp-sansio authors"
copyright = "the smtp-sansio authors"
release = getattr(smtp_sansio, "__version__", "0.1.0")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
# No intersphinx: the build must not touch the network.

exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
root_doc = "index"
language = "en"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "alabaster"
html_title = "smtp-sansio"
html_static_path: list[str] = []
