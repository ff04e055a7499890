"""Writes one of scikit-learn's bundled tables as a CSV file and prints the command that trains on it.

    python benchmarks/sklearn_table_as_csv.py --table wine --out /tmp/wine.csv

The label column is `target` (class names as in scikit-learn, e.g. class_0); the others are the
table's numeric features. Used for the `csv:` figures in the README.
"""

from __future__ import annotations

import argparse
import csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("wine", "breast_cancer", "iris"), default="wine")
    parser.add_argument("--out", default=None, help="the CSV file to write (default /tmp/<table>.csv)")
    args = parser.parse_args()
    from sklearn import datasets  # noqa: PLC0415 (a benchmark-only dependency)

    bunch = getattr(datasets, f"load_{args.table}")()
    out = args.out or f"/tmp/{args.table}.csv"
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*bunch.feature_names, "target"])
        for features, label in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*(f"{value:g}" for value in features), bunch.target_names[label]])
    print(f"wrote {len(bunch.target)} rows x {len(bunch.feature_names)} features to {out}")
    print(f"python -m experiments.mlp --config.data.name=csv:{out} --config.data.label=target "
          f"--workdir /tmp/{args.table}_run")


if __name__ == "__main__":
    main()
