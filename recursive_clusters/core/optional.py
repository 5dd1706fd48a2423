"""Optional accelerated backends, imported only when the settings choose them."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINTS = {
    "fast_hdbscan": "pip install 'recursive_clusters[fast]'",
    "cuml": "RAPIDS cuML on a machine with an NVIDIA GPU (see docs/deployment.md)",
}


def import_backend(module: str, setting: str) -> ModuleType:
    """Import ``module`` for the backend chosen by ``setting``; when it is not installed, say
    which setting chose it and how to get it, instead of a bare ImportError."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(
            f"{setting} '{package}' needs the {package} package, which cannot be imported "
            f"here ({exc}); install {INSTALL_HINTS[package]}, or choose a CPU backend."
        ) from None
