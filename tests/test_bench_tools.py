"""The command-level benchmarks' own arithmetic and parsing (`jaxstyle bench cli`, `video`,
`export`): cheap checks; the benchmarks themselves are run by hand (BENCHMARKS.md)."""

import pytest

from jaxstyle.bench.cli_commands import case_table, stage_rows, warm_per_image
from jaxstyle.bench.timing import Timing
from jaxstyle.bench.video import parse_size
from jaxstyle.cli import main
from jaxstyle.cli.pipeline import StageClock
from jaxstyle.errors import ConfigError


def test_stage_rows_read_apply_timings_table():
    clock = StageClock()
    clock.seconds.update({"decode": 0.004, "first call": 0.5, "to device": 0.002})
    clock.images.update({"decode": 2, "first call": 2, "to device": 2})
    rows = stage_rows("some log line\n" + clock.table(0.6, 2))
    assert rows == {"decode": 2.0, "to device": 1.0, "first call": 250.0,
                    "sum": pytest.approx(253.0), "wall": 300.0}


def test_warm_per_image_pairs_the_runs_of_each_repeat():
    one, many = Timing((1.0, 2.0, 1.5)), Timing((1.7, 2.7, 2.9))
    assert warm_per_image(one, many, 8).samples == pytest.approx((0.1, 0.1, 0.2))


def test_case_table_ratio_to_the_package():
    results = {"jaxstyle": {1: Timing((2.0,)), 3: Timing((2.2,))},
               "peer": {1: Timing((0.5,)), 3: Timing((0.9,))}}
    table = case_table(results, {"jaxstyle": "ours", "peer": "theirs"}, 3, 1).splitlines()
    assert table[0] == "| command | T(1) s | T(3) s | warm ms/image (1 runs) | vs the package |"
    assert table[2] == "| ours | 2.00 | 2.20 | 100 (100) | 0.50x |"
    assert table[3] == "| theirs | 0.50 | 0.90 | 200 (200) | 1.00x |"


def test_parse_size():
    assert parse_size("1280x720") == (1280, 720)
    for bad in ("1280", "x720", "0x10", "axb"):
        with pytest.raises(ConfigError):
            parse_size(bad)


@pytest.mark.parametrize("argv,said", [
    (["bench", "cli", "--peer", "no-such-peer-command"], "no peer command"),
    (["bench", "cli", "--count", "1"], "--count must be >= 2"),
    (["bench", "export", "--peer-model", "/nonexistent/multistyle26.onnx"], "no peer model"),
    (["bench", "video", "--sizes", "640"], "not WIDTHxHEIGHT"),
])
def test_bad_options_are_one_line_errors(argv, said, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1


def test_the_shared_timing_helper_warms_up_takes_turns_and_summarises():
    from jaxstyle.bench.timing import markdown_table, time_alternating, time_calls

    calls = []
    timed = time_alternating({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             repeats=3, warmup=1, block=2)
    # One untimed call each, then turns of two calls: a a b b a b.
    assert calls == ["a", "b", "a", "a", "b", "b", "a", "b"]
    assert [len(t.samples) for t in timed.values()] == [3, 3]
    assert all(t.min <= t.median <= t.max for t in timed.values())
    assert len(time_calls(lambda: None, repeats=4, warmup=0).samples) == 4
    t = Timing((0.003, 0.001, 0.002))
    assert (t.median, t.min, t.max) == (0.002, 0.001, 0.003)
    assert t.summary() == "2.0 ms (min 1.0, max 3.0, 3 runs)"
    assert markdown_table(["x", "y"], [[1, "a"]]) == "| x | y |\n| --- | --- |\n| 1 | a |"
    with pytest.raises(ValueError):
        markdown_table(["x", "y"], [[1]])
    with pytest.raises(ValueError):
        time_calls(lambda: None, repeats=0)
