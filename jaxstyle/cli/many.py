"""`jaxstyle stylize` over many images: contents x styles (x a sweep) into a folder, batched,
sharded over every device, and split over processes with `jax.distributed`.

Every process plans the same jobs from the image headers, then loads and optimises only its
rows of each global batch and writes its own outputs; process 0 prints the summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from jaxstyle.cli.common import EXIT_ERROR, Reporter, UsageError, log
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ImageError, JaxstyleError
from jaxstyle.interrupts import by_signal, exit_code

if TYPE_CHECKING:  # annotations only: the command imports it when it runs
    from jax.sharding import Mesh


@dataclasses.dataclass
class FileJob:
    """One output: which content and style files, which sweep setting, where it goes."""

    content: Path
    style: Path
    settings: tuple
    output: Path
    shape: tuple = ()


def output_name(content: Path, style: Path, settings: tuple) -> str:
    """`<content>_<style>[_<field>-<value>].png`."""
    suffix = "".join(f"_{field}-{value:g}" for field, value in settings)
    return f"{content.stem}_{style.stem}{suffix}.png"


def plan_file_jobs(contents: Sequence[Path], styles: Sequence[Path], sweep: Optional[tuple],
                   out_dir: Path) -> list[FileJob]:
    settings = [()] if sweep is None else [((sweep[0], float(v)),) for v in sweep[1]]
    jobs = [FileJob(c, s, setting, out_dir / output_name(c, s, setting))
            for c in contents for s in styles for setting in settings]
    names = [job.output.name for job in jobs]
    if len(set(names)) != len(names):
        clash = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"two jobs would both write {clash}: content or style files share a "
                         "name; run them separately")
    return jobs


def prepare_output_dir(out_dir: Path, inputs: Iterable[str | os.PathLike]) -> None:
    """Create the folder and prove it is writable before any work."""
    for path in inputs:
        if out_dir.resolve() == Path(path).resolve():
            raise UsageError(f"output folder {out_dir} is also an input")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ImageError(f"output folder {out_dir}: not writable ({exc.strerror or exc})") from None


class ManyRun:
    """Plans, runs and reports a many-image stylization."""

    def __init__(self, args: argparse.Namespace, cfg: StyleConfig, sweep: Optional[tuple],
                 painter: Any = None) -> None:
        self.args, self.cfg, self.sweep = args, cfg, sweep
        self.painter = painter  # --init MODEL: jaxstyle.cli.onepass.OnePass
        self.failures: list[str] = []  # one line each, this process's
        self.written = 0

    def fail(self, message: str) -> None:
        self.failures.append(message)
        log(f"skipped: {message}")

    def scan(self, jobs: list[FileJob]) -> list[FileJob]:
        """Jobs whose inputs have readable headers, with their working shapes; others failed."""
        from jaxstyle.images import working_size

        cfg, args = self.cfg, self.args
        shapes, usable = {}, []
        style_dim = cfg.style_max_dim or round(cfg.max_dim * cfg.style_scale)
        for job in jobs:
            try:
                if job.content not in shapes:
                    shapes[job.content] = working_size(job.content, cfg.max_dim,
                                                       args.max_pixels, "content image")
                working_size(job.style, style_dim, args.max_pixels, "style image")
            except JaxstyleError as exc:
                if str(exc) not in self.failures:
                    self.fail(str(exc))
                continue
            job.shape = shapes[job.content]
            usable.append(job)
        return usable

    def load_job(self, job: FileJob) -> Any:
        """The engine's Job for a file job; a file that fails to decode now becomes a grey
        stand-in of the planned shape (batches stay the same on every process) and a failure."""
        import numpy as np

        from jaxstyle.gatys.batch import Job
        from jaxstyle.images import load_image

        cfg, args = self.cfg, self.args
        style_dim = cfg.style_max_dim or round(cfg.max_dim * cfg.style_scale)
        try:
            content = load_image(job.content, cfg.max_dim, args.max_pixels, "content image")
            style = load_image(job.style, style_dim, args.max_pixels, "style image")
            if content.shape[:2] != tuple(job.shape):
                raise ImageError(f"content image {job.content}: changed while running")
            init = None
            if self.painter is not None:
                from jaxstyle.cli.onepass import one_pass_start

                init, _ = one_pass_start(self.painter, content, [style], [job.style], None, cfg)
            return Job(content, (style,), job.settings, init), True
        except JaxstyleError as exc:
            self.fail(str(exc))
            grey = np.full(tuple(job.shape) + (3,), 0.5, np.float32)
            return Job(grey, (grey,), job.settings), False


def run_many(args: argparse.Namespace, cfg: StyleConfig, contents: list[Path],
             styles: list[Path], sweep: Optional[tuple], mesh: Optional[Mesh],
             painter: Optional[str] = None) -> int:
    """The many-image `stylize`; returns the exit code. painter: --init MODEL's name."""
    import jax
    import numpy as np

    from jaxstyle.cli.common import load_params
    from jaxstyle.config import sized_budget
    from jaxstyle.gatys.batch import BatchRunner, fill_batch, plan_batches
    from jaxstyle.gatys.loop import StylizeInterrupted, to_host
    from jaxstyle.gatys.pipeline import finish_image, total_steps
    from jaxstyle.images import save_image
    from jaxstyle.mesh import process_slice

    out_dir = Path(args.output)
    lead = jax.process_index() == 0
    prepare_output_dir(out_dir, [*contents, *styles])
    run = ManyRun(args, cfg, sweep)
    jobs = run.scan(plan_file_jobs(contents, styles, sweep, out_dir))
    skipped = 0
    if args.skip_existing:
        skipped = sum(job.output.exists() for job in jobs)
        jobs = [job for job in jobs if not job.output.exists()]
    params = load_params(args.weights, args.quiet or not lead)
    if painter is not None:
        from jaxstyle.cli.onepass import make_one_pass

        run.painter = make_one_pass(painter, [job.style for job in jobs], args.init_style,
                                    lambda: params)
    runner = BatchRunner(params, cfg, mesh, None if sweep is None else sweep[0])
    budgets = [total_steps(sized_budget(cfg, *job.shape)) for job in jobs] or [0]
    report = Reporter(sum(budgets), args.quiet or not lead, unit="img-step")
    each = (f"{budgets[0]} steps each" if min(budgets) == max(budgets)
            else f"{min(budgets)}-{max(budgets)} steps, by image size")
    report.line(f"{len(jobs)} jobs ({skipped} done before) on {jax.device_count()} devices, "
                f"{jax.process_count()} processes; {each}")
    done = [0]  # jobs finished, read by the progress callback
    started = time.perf_counter()
    batch_jobs = [0]  # real jobs in the running batch (the bar counts image-steps)

    def progress(step, metrics, state):
        report.advance(batch_jobs[0], images=f"{done[0]}/{len(jobs)}")

    for indices in plan_batches([job.shape for job in jobs], args.batch):
        filled = fill_batch(indices, runner.multiple)
        rows = process_slice(len(filled))
        mine = filled[rows]
        loaded = [run.load_job(jobs[i]) for i in mine]
        # Rows past the real jobs are fill-up copies; a job whose file failed has no output.
        real = [k for k in range(len(mine)) if rows.start + k < len(indices) and loaded[k][1]]
        batch_jobs[0] = len(indices)
        try:
            images, finite = runner.run([job for job, _ in loaded], len(filled), progress)
        except StylizeInterrupted as stop:
            report.close()
            partial = [np.asarray(finish_image(image, loaded[k][0].content, cfg))[0]
                       for k, image in enumerate(to_host(stop.image))]
            for k in real:
                save_image(jobs[mine[k]].output, partial[k])
            print(f"interrupted{by_signal(stop.signum)}: kept {run.written + len(real)} "
                  f"finished or current images in {out_dir}", file=sys.stderr)
            return exit_code(stop.signum)
        for k in real:
            job = jobs[mine[k]]
            save_image(job.output, images[k])
            run.written += 1
            if not finite[k]:
                run.fail(f"{job.output.name}: loss became non-finite; saved the last finite image")
        done[0] += len(indices)
    report.close()
    return _summary(run, len(jobs), skipped, out_dir, time.perf_counter() - started, lead)


def _summary(run: ManyRun, total: int, skipped: int, out_dir: Path, seconds: float,
             lead: bool) -> int:
    """Every process names its failures; process 0 prints the totals over all processes."""
    import jax
    import numpy as np

    counts = np.array([run.written, len(run.failures)])
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        counts = np.asarray(multihost_utils.process_allgather(counts)).reshape(-1, 2).sum(0)
    # Each failure was reported when it happened; the summary names them once more.
    names = ", ".join(sorted({f.split(":")[0].split()[-1] for f in run.failures}))
    if run.failures and not lead:
        print(f"process {jax.process_index()} failed on {len(run.failures)}: {names}",
              file=sys.stderr)
    if lead and not (run.args.quiet and not counts[1]):
        print(f"wrote {int(counts[0])} images to {out_dir} in {seconds:.1f} s"
              + (f"; {skipped} already there" if skipped else "")
              + (f"; {int(counts[1])} failed" if counts[1] else "")
              + (f" ({names})" if names else ""), file=sys.stderr)
    return EXIT_ERROR if counts[1] else 0
