"""Main-job speed: activation reuse in the per-layer sweep, and executors.

The per-layer sweep (seed 002 §5, Figures 2-4) changes one layer at a time;
with ``reuse=True`` the evaluator caches the float activations entering each
layer and recomputes only from the modified layer onward.  This script times
the same sweep with and without reuse on the shipped models (results are
identical bit for bit: tests/test_study.py), then the whole default study
serially and with 2 worker processes.  It prints the median of ``--repeat``
runs and the ratios.

    python benchmarks/bench_study.py [--repeat 3]
"""

import argparse

import refcomp
from refcomp.data import default_data_dir, load_split
from refcomp.study.run import run_study
from _timing import timeit


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    x, y = load_split("test")
    print(f"test split: {x.shape[0]} samples; median of {args.repeat} runs\n")
    print(f"{'model':<14}{'per-layer, reuse':>18}{'no reuse':>12}{'speed-up':>10}")
    for name in ("digits_cnn", "digits_mlp", "digits_lstm"):
        model = refcomp.load(default_data_dir() / f"{name}.h5")
        kw = dict(methods=("uniform", "kmeans"), experiments=("per_layer",), progress=False)
        t_reuse = timeit(lambda: run_study(model, x, y, reuse=True, **kw), args.repeat)
        t_plain = timeit(lambda: run_study(model, x, y, reuse=False, **kw), args.repeat)
        print(f"{name:<14}{t_reuse * 1e3:>16.0f}ms{t_plain * 1e3:>10.0f}ms"
              f"{t_plain / t_reuse:>9.2f}x")
    model = refcomp.load(default_data_dir() / "digits_cnn.h5")
    print("\nwhole default study on digits_cnn (per-layer + whole + adaptive 1-4 bits):")
    t1 = timeit(lambda: run_study(model, x, y, progress=False), 1)
    t2 = timeit(lambda: run_study(model, x, y, workers=2, progress=False), 1)
    print(f"  serial {t1:.2f} s, 2 worker processes {t2:.2f} s ({t1 / t2:.2f}x)")


if __name__ == "__main__":
    main()
