"""`jaxstyle bench` (filled in by the benchmark issue)."""


def add_bench_parser(commands, formatter, add_weights_option):
    bench = commands.add_parser("bench", help="time the step", formatter_class=formatter)
    add_weights_option(bench)


def cmd_bench(args) -> int:
    raise NotImplementedError
