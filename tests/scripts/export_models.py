"""Run in a subprocess (tests/conftest.py starts it when collection ends): `jaxstyle export` of
the shipped models into $JAXSTYLE_TEST_EXPORTS, the files tests/test_export.py checks. Prints
one JSON line: each file's exit code (0 when written) and error output."""

import contextlib
import io
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jaxstyle.cli import main  # noqa: E402
from jaxstyle.demo import DEMO_STYLE  # noqa: E402

OUT = Path(os.environ["JAXSTYLE_TEST_EXPORTS"])
FILES = {
    "p.stablehlo": ["paintings"],
    "any.bin": ["any"],
    "p.onnx": ["paintings"],
    "any.onnx": ["any"],
    "baked.onnx": ["any", "--style-image", str(DEMO_STYLE), "--style-size", "64", "--alpha",
                   "0.7"],
}
results = {}
for name, args in FILES.items():
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = main(["export", *args, "-o", str(OUT / name), "-q"])
    results[name] = {"code": code, "stderr": errors.getvalue()[-2000:]}
print(json.dumps(results))
