"""Wall time of the whole `python -m experiments.mlp` run against a hand-written JAX script.

All run as fresh subprocesses (imports, data loading, compilation, 300 epochs with patience off,
test evaluation, files written), in turn, so machine noise hits each alike; the script prints the
median wall times and their ratios. "jaxdl" does the hand-written script's work: it runs with
`eval.baseline` and `eval.report` off (checkpoints, metrics.jsonl, TensorBoard events and the review
stay on). "jaxdl default" is the command as a user runs it, which also trains the softmax
baseline and draws report.html: more work, shown for what it costs.

    python benchmarks/whole_run.py [--repeats 3] [--epochs 300] [--data_dir DIR]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    data = [f"--config.data.data_dir={args.data_dir}"] if args.data_dir else []
    times = {"jaxdl": [], "hand-written": [], "jaxdl default": []}
    same_work = ["--config.eval.baseline=false", "--config.eval.report=false"]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, extra in (("jaxdl", same_work), ("jaxdl default", [])):
                times[name].append(timed([sys.executable, "-m", "experiments.mlp", "--quiet", *data, *extra,
                                          f"--config.train.epochs={args.epochs}", "--config.train.patience=0",
                                          f"--workdir={tmp}/{name.replace(' ', '_')}{i}"]))
            times["hand-written"].append(timed([sys.executable, "benchmarks/handwritten_mlp.py",
                                                f"--epochs={args.epochs}", f"--out={tmp}/hand{i}",
                                                *([f"--data_dir={args.data_dir}"] if args.data_dir else [])]))
    for name, values in times.items():
        print(f"  {name:<14} median {statistics.median(values):7.2f} s   runs {', '.join(f'{v:.2f}' for v in values)}")
    hand = statistics.median(times["hand-written"])
    print(f"  ratio jaxdl / hand-written wall time (same work): {statistics.median(times['jaxdl']) / hand:.3f}")
    print(f"  ratio jaxdl default / hand-written wall time (+ baseline, report): "
          f"{statistics.median(times['jaxdl default']) / hand:.3f}")


if __name__ == "__main__":
    main()
