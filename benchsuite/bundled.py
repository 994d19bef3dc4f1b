"""Where the method folders shipped with the suite live (a checkout or an installed wheel)."""

from __future__ import annotations

from pathlib import Path


def bundled_plugin_dirs() -> list[Path]:
    """The ``baselines/`` and ``plugins/`` folders shipped with the suite.

    In a wheel they are installed as ``benchsuite/_bundled/<folder>``; in a source checkout (or an
    editable install) they sit next to the package.
    """
    package = Path(__file__).resolve().parent
    out = []
    for folder in ("baselines", "plugins"):
        for candidate in (package / "_bundled" / folder, package.parent / folder):
            if candidate.is_dir():
                out.append(candidate)
                break
    return out
