"""Benchmarks, side by side in one run (ratios, medians), JSON under bench/results/.

A package: run each as a module from the repository root (`make bench`, `make bench-serving`,
`make bench-mobile`, `make bench-scale`, or `python -m bench.<name>`), so `bench.common` and `tfxp`
import as packages and no script edits sys.path. `bench/tfx_example.py` is TFX's own example,
run as a script in a subprocess.
"""
