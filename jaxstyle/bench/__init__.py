"""Benchmarks: the timing harness (`harness`, no argparse) and the TF/PyTorch peers (`peers`)."""
