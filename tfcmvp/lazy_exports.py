"""A package's names that load their module on first use (standard library only).

``tfcmvp.embedding`` and ``tfcmvp.search`` offer their main names at the
package level without importing TensorFlow when the package is imported:
``__getattr__ = lazy_getattr(__name__, {"name": "module", ...})``.
"""

import importlib
from typing import Callable, Dict


def lazy_getattr(package: str, exports: Dict[str, str]) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for ``package``: ``name`` is imported from the module
    ``exports[name]`` when first asked for; any other name is an AttributeError."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
