"""A working directory with modules planted in it, that record being imported.

For the tests that a process Cadena starts (``serve``'s, the key agent) imports
nothing from the directory it was started in (tests/app/test_serve_cwd.py,
tests/client/test_agent.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def plant(where: Path, marker: Path, packages: Iterable[str],
          modules: Iterable[str] = ()) -> Path:
    """Make ``where`` with each of ``packages`` (and ``modules``, single files) planted:
    imported, one appends its name to ``marker`` and exits."""
    where.mkdir()
    payload = (f"import pathlib\npathlib.Path({str(marker)!r}).open('a').write(__name__ + '\\n')\n"
               "raise SystemExit('planted module imported')\n")
    for package in packages:
        (where / package).mkdir()
        (where / package / "__init__.py").write_text(payload)
    for module in modules:
        (where / f"{module}.py").write_text(payload)
    return where
