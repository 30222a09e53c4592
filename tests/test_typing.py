"""jaxstyle is typed (PEP 561): every public function and class, as `__all__` of jaxstyle and
of its subpackages lists them, has an annotation for each parameter and for its return.
mypy (pinned in the test extra, configured in pyproject.toml) checks the bodies in CI."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from test_docs import PUBLIC

ROOT = Path(__file__).resolve().parent.parent

# Methods every class has or that Python calls on its own; not part of the documented API.
SPECIAL = ("__init__", "__call__")


def _signature_gaps(name: str, fn: Any, bound: bool = False) -> list[str]:
    """'name(param)' for each unannotated parameter and 'name -> return' if the return is
    unannotated; `bound` skips the first parameter (self or cls)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return []
    params = list(signature.parameters.values())[1 if bound else 0:]
    gaps = [f"{name}({p.name})" for p in params if p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty:
        gaps.append(f"{name} -> return")
    return gaps


def _class_gaps(name: str, cls: type) -> list[str]:
    """Gaps of the public methods and properties a class defines, or inherits from a class
    of jaxstyle's own (not from object, tuple, Exception, flax's Module ...)."""
    gaps: list[str] = []
    seen: set[str] = set()
    for owner in cls.__mro__:
        if not owner.__module__.startswith("jaxstyle"):
            continue
        for attr, member in vars(owner).items():
            if attr in seen or (attr.startswith("_") and attr not in SPECIAL):
                continue
            seen.add(attr)
            qualified = f"{name}.{attr}"
            if isinstance(member, staticmethod):
                gaps += _signature_gaps(qualified, member.__func__)
            elif isinstance(member, classmethod):
                gaps += _signature_gaps(qualified, member.__func__, bound=True)
            elif isinstance(member, property):
                if member.fget is not None:
                    gaps += _signature_gaps(qualified, member.fget, bound=True)
            elif inspect.isfunction(member):
                gaps += _signature_gaps(qualified, member, bound=True)
    return gaps


def annotation_gaps() -> list[str]:
    gaps: list[str] = []
    for name, obj in PUBLIC.items():
        if inspect.isclass(obj):
            gaps += _class_gaps(name, obj)
        else:
            gaps += _signature_gaps(name, obj)
    return gaps


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines()
                if line.startswith("python3 -m venv") and '".[test]"' in line]
    assert len(commands) == 1, commands
    return commands[0]


def _ci_command() -> str:
    """.ci/run's install-and-test chain, its continuation lines joined, without the `||`
    that reports a failure."""
    text = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    chains = [line for line in text.splitlines() if line.startswith("python3 -m venv")]
    assert len(chains) == 1, chains
    return " ".join(chains[0].split(" || ")[0].split())


def test_ci_type_checks_as_the_readme_says():
    """CI runs exactly the README's test command, and that command ends in mypy."""
    assert _ci_command() == " ".join(_readme_test_command().split())
    assert _readme_test_command().endswith("&& ruff check . && mypy")


def test_the_package_is_marked_typed():
    assert (ROOT / "jaxstyle" / "py.typed").is_file()


def test_every_public_function_and_method_is_annotated():
    assert len(PUBLIC) > 100  # the walk found the subpackages' names too
    gaps = annotation_gaps()
    assert not gaps, f"public callables lacking annotations: {gaps}"


def test_the_check_finds_what_lacks_annotations():
    """A negative control: the walk reports an unannotated parameter, a missing return, and
    a class's unannotated method, and not an annotated one."""
    def plain(a, b: int):
        return a

    def typed(a: int, *rest: str, **more: float) -> int:
        return a

    class Sample:
        def method(self, x) -> None: ...

        def fine(self, x: int) -> None: ...

        def _private(self, x): ...

    Sample.__module__ = "jaxstyle.sample"
    assert _signature_gaps("plain", plain) == ["plain(a)", "plain -> return"]
    assert _signature_gaps("typed", typed) == []
    assert _class_gaps("Sample", Sample) == ["Sample.method(x)"]
