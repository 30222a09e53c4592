"""The API reference: scripts/build_docs.py builds it with pdoc, every warning an error, and
every public function and class (in the `__all__` of jaxstyle and of its subpackages) has a
short example in its docstring, run here as a doctest with tiny random VGG19 weights."""

from __future__ import annotations

import ast
import doctest
import importlib
import io
import os
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle

ROOT = Path(__file__).resolve().parent.parent


def public_objects() -> dict[str, object]:
    """Every function and class that jaxstyle or one of its subpackages lists in `__all__`,
    by the first name it is listed under (jaxstyle's own names first)."""
    packages = [jaxstyle] + [importlib.import_module(info.name) for info in
                             pkgutil.walk_packages(jaxstyle.__path__, "jaxstyle.") if info.ispkg]
    found: dict[str, object] = {}
    seen: set[int] = set()
    for package in packages:
        for name in getattr(package, "__all__", ()):
            obj = getattr(package, name)
            if isinstance(obj, types.GenericAlias) or not callable(obj) or id(obj) in seen:
                continue  # a constant or a type alias; or listed already
            seen.add(id(obj))
            found[f"{package.__name__}.{name}"] = obj
    return found


PUBLIC = public_objects()


def test_reference_builds_without_warnings(tmp_path):
    out = tmp_path / "api"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_docs.py"), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr  # any pdoc warning fails the build
    top = (out / "jaxstyle.html").read_text()
    for name in ("make_step", "stylize", "loss_fn", "StyleConfig", "apply_any"):
        assert f'id="{name}"' in top, name
    assert (out / "index.html").is_file()
    serve = (out / "jaxstyle" / "serve.html").read_text()
    assert 'id="create_app"' in serve  # a lazily imported name is documented where listed
    # The examples are rendered as code.
    assert "&gt;&gt;&gt;" in top and "jaxstyle.StyleConfig" in top


def test_every_public_object_has_an_example():
    assert len(PUBLIC) > 100  # the walk found the subpackages' names too
    missing = [name for name, obj in PUBLIC.items() if ">>>" not in (obj.__doc__ or "")]
    assert not missing, f"public objects without a `>>>` example in their docstring: {missing}"


def test_examples_import_what_plain_import_jaxstyle_lacks():
    """Here every subpackage is imported already, so an example that uses `jaxstyle.video`
    without `import jaxstyle.video` would pass yet fail for a reader. Only the subpackages
    that jaxstyle/__init__.py imports itself may be used without their own import."""
    tree = ast.parse((ROOT / "jaxstyle" / "__init__.py").read_text())
    imported = {node.module.split(".")[1] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxstyle.")}
    unimported = []
    for name, obj in PUBLIC.items():
        code = "\n".join(line.strip()[4:] for line in (obj.__doc__ or "").splitlines()
                         if line.strip().startswith((">>> ", "... ")))
        for sub in set(re.findall(r"\bjaxstyle\.(\w+)\.", code)) - imported:
            if f"import jaxstyle.{sub}" not in code:
                unimported.append(f"{name}: jaxstyle.{sub}")
    assert not unimported, unimported


@pytest.fixture(scope="module")
def doctest_globals(tiny_params):
    """What every example may use without defining it: the usual imports and `params`, here
    random VGG19-shaped weights (the real ones are `jaxstyle.load_vgg19(path)`)."""
    return {"jax": jax, "jnp": jnp, "np": np, "jaxstyle": jaxstyle,
            "params": jax.tree.map(jnp.asarray, tiny_params)}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_example_runs(name, doctest_globals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples write their files into the working directory
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(PUBLIC[name], name, globs=doctest_globals)
    assert tests and tests[0].examples, f"{name}: no example"
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
