"""Throughput measurements of gcrl-bench: timing primitives shared by the benchmark tests
(:mod:`gcrl_bench.benchmarks.timing`) and the accelerator verification kit
(``python -m gcrl_bench.benchmarks.gpu``)."""
