"""examples/: each script run as a reader runs it, with --tiny (random weights, 32 px), in a
process of its own. Each exits non-zero when one of its checks fails; the negative control
shows that it does. The real-weights runs (no --tiny) are not part of the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# What each example must print: its numbers, and every one of its checks passed.
EXPECTED = {
    "custom_loss": ["loss (seed + brushwork) before", "brushwork term at the end:",
                    "check loss after / before:", "check brushwork with the term / without:"],
    "weight_gradient": ["|dL/dparams|", "along d: finite difference",
                        "check finite difference vs gradient, relative:",
                        "check prepared params' gradient vs plain, relative:",
                        "check remat's gradient vs plain, relative:"],
    "vmap_styles": ["loss of the photo per style, vmapped:", "check vmapped loss vs loop",
                    "check batched images vs loop after 5 steps, max |diff|:"],
    "optax_schedule": ["step  learning rate", "check rates used vs the schedule",
                       "check loss after / before:"],
    "export_step": ["exported for cpu, cuda, tpu: 32x32 px", "tpu: custom calls",
                    "read back for cpu, cuda, tpu",
                    "check image from the file vs the step on cpu, max |diff|:",
                    "check loss from the file vs the step on cpu, relative:"],
}


def run_example(name: str, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    # The test session's XLA compilation cache (conftest.py) is inherited through os.environ.
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--tiny", *arguments], cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "JAXSTYLE_NO_DOWNLOAD": "1",
             "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=180)


def test_every_example_is_tested():
    scripts = {path.stem for path in EXAMPLES.glob("*.py")} - {"_common"}
    assert scripts == set(EXPECTED)
    listed = (EXAMPLES / "README.md").read_text()
    assert all(f"examples/{name}.py" in listed for name in scripts)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_its_checks_pass(name):
    done = run_example(name)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "FAILED" not in done.stdout, output
    for line in EXPECTED[name]:
        assert line in done.stdout, f"{line!r} missing:\n{output}"
    checks = [line for line in done.stdout.splitlines() if line.startswith("check ")]
    assert checks and all(line.endswith(" ok") for line in checks), output


def test_a_failing_check_exits_non_zero(tmp_path):
    """The negative control: an error added to every measured one (JAXSTYLE_EXAMPLES_PERTURB)
    must fail the first check and the script. Run without the shared images, as CI runs
    (the package's demo photo and painting, random others), whatever this machine has."""
    done = run_example("vmap_styles", JAXSTYLE_EXAMPLES_PERTURB="1e-3",
                       JAXSTYLE_IMAGES=str(tmp_path / "none"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "check vmapped loss vs loop, relative: 0.001 <= 1e-05 FAILED" in done.stdout
    assert "check batched images" not in done.stdout  # it stopped at the first failure
