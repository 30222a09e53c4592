"""Build the API reference: HTML from jaxstyle's docstrings, with pdoc, into docs/api/.

    python scripts/build_docs.py [OUTPUT_DIR]       # default docs/api/ (gitignored)

Any warning pdoc emits (an unimportable submodule, a bad docstring reference, ...) is an
error: the build exits non-zero, so CI (tests/test_docs.py) catches it. Every submodule is
imported; none imports a peer framework (tensorflow, torch) or an optional extra outside
the test extra at import time, so none is excluded.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Modules left out of the reference (pdoc's "!module" syntax), e.g. one that imports a
# peer framework at import time. None is needed today.
EXCLUDED: list[str] = []


def modules() -> list[str]:
    """jaxstyle, and each module that pdoc would not reach from its package: pdoc follows a
    package's `__all__` (the public API, not the submodules) where one is defined."""
    import importlib
    import pkgutil

    import jaxstyle

    names = ["jaxstyle"]
    _resolve_lazy_names(jaxstyle)
    for info in pkgutil.walk_packages(jaxstyle.__path__, "jaxstyle."):
        parent, _, leaf = info.name.rpartition(".")
        listed = getattr(importlib.import_module(parent), "__all__", None)
        if leaf != "__main__" and listed is not None and leaf not in listed:
            names.append(info.name)
        if leaf != "__main__":
            module = importlib.import_module(info.name)
            _namedtuple_modules(module)
            _resolve_lazy_names(module)
    return names


def _resolve_lazy_names(module: object) -> None:
    """pdoc reads a module's `__dict__`, not its `__getattr__`: a name in `__all__` that a
    package imports only on first use (`jaxstyle.serve.create_app`, which needs the serve
    extra, so that `import jaxstyle.serve` does not) would be missing from the reference, and
    pdoc warns. Import it now and store it where pdoc looks, as a first use would."""
    for name in getattr(module, "__all__", ()):
        if name not in vars(module) and hasattr(module, "__getattr__"):
            setattr(module, name, getattr(module, name))


def _namedtuple_modules(module: object) -> None:
    """A NamedTuple's generated `__new__` belongs to no module ("namedtuple_Name"), so pdoc
    cannot resolve its string annotations (`from __future__ import annotations`) and warns;
    give it its class's module."""
    for value in vars(module).values():
        new = getattr(value, "__new__", None)
        if (isinstance(value, type) and issubclass(value, tuple) and hasattr(value, "_fields")
                and getattr(new, "__module__", "").startswith("namedtuple_")):
            new.__module__ = value.__module__


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "docs" / "api"
    # pdoc refuses subprocesses while importing; h5py's import asks platform for the CPU
    # (`uname -p`), which is harmless.
    os.environ.setdefault("PDOC_ALLOW_EXEC", "1")
    import pdoc

    # pdoc reports problems (a submodule that fails to import, a docstring it cannot
    # render) through the warnings module and carries on; collect them all, then fail.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules(), *(f"!{m}" for m in EXCLUDED), output_directory=out)
    for w in caught:
        print(f"build_docs: {w.filename}:{w.lineno}: {w.category.__name__}: {w.message}",
              file=sys.stderr)
    if caught:
        print(f"build_docs: {len(caught)} warning(s), failing", file=sys.stderr)
        return 1
    print(f"build_docs: wrote {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
