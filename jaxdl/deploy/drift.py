"""Has the data moved? New inputs and the model's answers on them, against the run's reference.

`check_drift(RUN, x)` compares a batch of new inputs (stored form, as `jaxdl.load_run(RUN)`
takes them) with the reference the run wrote at the end of training (`drift_reference.json`, see
`jaxdl.deploy.drift_features`); `DriftMonitor` keeps the same measure over a rolling window of
served requests. `python -m jaxdl.drift` (`jaxdl.deploy.drift_report`) writes drift.json and a page.

The measure, per component, is the population stability index over the reference's bins,
PSI = sum_b (new_b - ref_b) ln(new_b / ref_b) of the two fractions (each count + SMOOTHING):
  - inputs: every feature (block means, per-channel mean / std / roughness, table columns) and
    every channel's pooled value histogram;
  - predictions: the predicted class mix and the confidence (largest probability), or each
    regression output.
A component has shifted when its PSI exceeds its threshold, the larger of
  - PSI_SHIFTED (0.25), the usual reading of PSI (< 0.1 stable, 0.1 to 0.25 moderate, > 0.25 a
    significant shift), so that a large sample does not flag changes too small to matter; and
  - what sampling noise alone reaches with probability ALPHA: between two samples of n and m
    examples from one distribution over B bins, PSI is about chi2(B - 1) * (1/n + 1/m)
    (Yurdakul 2018), so the threshold is its 1 - ALPHA / F quantile, F the number of features
    compared (Bonferroni), so that a small sample is not flagged for its noise.
The verdict: drift when any component shifted. The score is the largest PSI / threshold ratio:
above 1 is drift. The Kolmogorov-Smirnov distance at the bin edges is reported beside each PSI.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from jaxdl.data import DataInfo
from jaxdl.deploy import drift_features as features_lib
from jaxdl.deploy.run_loader import Predictor, load_run
from jaxdl.errors import InputError

PSI_SHIFTED = 0.25  # PSI's customary "significant shift" level (see the module docstring)
ALPHA = 0.001  # chance that a component of a batch without drift is flagged by sampling noise alone
SMOOTHING = 0.5  # added to each bin's count: an empty bin gets a finite logarithm (Jeffreys' prior)
MIN_EXAMPLES = 30  # fewer new examples: the chi-square estimate of PSI's noise does not hold
MOST_SHIFTED = 8  # features whose histograms drift.json keeps (all keep their PSI)
WINDOW = 1000  # DriftMonitor's default rolling window, in examples
MAX_WINDOW = 1_000_000  # its largest (the window's summaries are held in memory)


def psi(reference: np.ndarray, new: np.ndarray) -> float:
    """Population stability index of two count vectors (B,), each smoothed by SMOOTHING."""
    p = (np.asarray(reference, np.float64) + SMOOTHING) / (np.sum(reference) + SMOOTHING * len(reference))
    q = (np.asarray(new, np.float64) + SMOOTHING) / (np.sum(new) + SMOOTHING * len(new))
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: np.ndarray, new: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of two count vectors, the CDFs compared at the bin edges."""
    reference, new = np.asarray(reference, np.float64), np.asarray(new, np.float64)
    if not reference.sum() or not new.sum():
        return 0.0
    return float(np.max(np.abs(np.cumsum(reference) / reference.sum() - np.cumsum(new) / new.sum())))


def threshold(reference: np.ndarray, n: int, m: int, compared: int) -> float:
    """The PSI above which a component of n new and m reference examples has shifted (see the
    module docstring); `compared`: how many components share ALPHA."""
    bins = max(int(np.count_nonzero(reference)), 2)
    # chdtri(df, p): the chi-square quantile of upper-tail probability p (scipy.stats' chi2.ppf(1 - p, df)).
    # Imported here: scipy.special costs ~0.3 s of start-up (its array-API layer loads all of numpy), and a
    # training command never calls this.
    from scipy import special  # noqa: PLC0415

    noise = special.chdtri(bins - 1, ALPHA / max(compared, 1)) * (1.0 / max(n, 1) + 1.0 / max(m, 1))
    return float(max(PSI_SHIFTED, noise))


def compared(name: str, ref_counts: np.ndarray, new_counts: np.ndarray, *, n: int, m: int, count: int,
             **extra) -> dict:
    """One component's record: its PSI, KS, threshold and whether it shifted, plus `extra` fields."""
    limit = threshold(ref_counts, n, m, count)
    value = psi(ref_counts, new_counts)
    return {"name": name, "psi": value, "ks": ks(ref_counts, new_counts), "threshold": limit,
            "shifted": bool(value > limit), **extra}


class Summaries:
    """Per-example summaries of a batch, what a window is made of: feature bins (N, D) int16,
    pooled value counts (N, C, B) int32 or None, predicted class (N,) and confidence bin (N,), or
    regression output bins (N, O)."""

    def __init__(self, reference: dict, x: np.ndarray, outputs: np.ndarray):
        layout = features_lib.layout_from_record(reference["layout"])
        values = features_lib.features(x, layout)
        self.feature_bins = features_lib.bin_index(values, [np.asarray(e) for e in reference["features"]["edges"]])
        self.pooled = None
        if "pooled" in reference:
            self.pooled = features_lib.pooled_counts(x, layout, reference["pooled"]["edges"])
        predictions = reference["predictions"]
        if predictions["task"] == "classification":
            outputs = np.asarray(outputs, np.float64)
            self.predicted = outputs.argmax(axis=1).astype(np.int16)
            edges = np.asarray(predictions["confidence"]["edges"])
            self.outputs = features_lib.bin_index(outputs.max(axis=1)[:, None], [edges])
        else:
            self.predicted = None
            columns = features_lib.output_columns(outputs)
            self.outputs = features_lib.bin_index(columns, [np.asarray(o["edges"]) for o in predictions["outputs"]])
        self.values = values

    def __len__(self) -> int:
        return len(self.feature_bins)


def check_batch(reference: dict, x: np.ndarray, outputs: np.ndarray) -> None:
    """InputError unless x is (N, *input_shape) and outputs (N, ...) fit the reference."""
    shape = tuple(reference["input_shape"])
    x = np.asarray(x)
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape:
        raise InputError("x", "wrong input shape", got=x.shape, expected=f"(N, {', '.join(map(str, shape))})")
    outputs = np.asarray(outputs)
    if reference["task"] == "classification":
        k = len(reference["predictions"]["class_counts"])
        if outputs.ndim != 2 or outputs.shape != (len(x), k):
            raise InputError("probabilities", "wrong shape", got=outputs.shape, expected=f"({len(x)}, {k})")
    elif len(outputs) != len(x):
        raise InputError("outputs", "not one per input", got=outputs.shape, expected=f"({len(x)}, ...)")


def compare(reference: dict, bins: np.ndarray, pooled: np.ndarray | None, predicted: np.ndarray | None,
            output_bins: np.ndarray) -> dict:
    """The drift record of new examples given as per-example summaries (the arrays of `Summaries`).

    Returns {"drifted", "score", "examples", "reasons", "inputs", "pooled", "predictions"}: each
    component with its PSI, KS, threshold and whether it shifted (drift.json; see the module docstring).
    """
    n = len(bins)
    features = reference["features"]
    m = reference["train"]["sampled"]
    sizes = [len(e) + 1 for e in features["edges"]]
    new_counts = features_lib.counts_of(bins, sizes)
    rows = [compared(name, np.asarray(ref), new, n=n, m=m, count=len(sizes))
            for name, ref, new in zip(features["names"], features["counts"], new_counts, strict=True)]
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["psi"] / rows[i]["threshold"])
    most = [{**rows[i], "edges": features["edges"][i], "reference": features["counts"][i],
             "new": new_counts[i].tolist()} for i in order[:MOST_SHIFTED]]
    inputs = {"features": len(rows), "features_shifted": sum(r["shifted"] for r in rows),
              "names": features["names"], "psi": [r["psi"] for r in rows], "ks": [r["ks"] for r in rows],
              "threshold": [r["threshold"] for r in rows], "shifted": [r["name"] for r in rows if r["shifted"]],
              "most_shifted": most}
    parts = [*rows]
    record = {"examples": n, "inputs": inputs}
    if pooled is not None:
        channels = reference["pooled"]
        totals = pooled.sum(axis=0)
        record["pooled"] = [compared(name, np.asarray(ref), totals[c, :len(ref)], n=n, m=m,
                                     count=len(channels["channels"]), edges=edges, reference=ref,
                                     new=totals[c, :len(ref)].tolist())
                            for c, (name, edges, ref) in enumerate(zip(channels["channels"], channels["edges"],
                                                                       channels["counts"], strict=True))]
        parts += record["pooled"]
    record["predictions"] = prediction_drift(reference, predicted, output_bins)
    parts += [p for p in record["predictions"].values() if isinstance(p, dict)]
    parts += record["predictions"].get("outputs", [])
    score = max((p["psi"] / p["threshold"] for p in parts), default=0.0)
    enough = n >= MIN_EXAMPLES
    record.update(drifted=bool(enough and score > 1.0), score=score, reasons=reasons(record) if enough else [])
    return {key: record[key] for key in ("drifted", "score", "examples", "reasons", "inputs", "pooled",
                                         "predictions") if key in record}


def prediction_drift(reference: dict, predicted: np.ndarray | None, output_bins: np.ndarray) -> dict:
    held_out = reference["predictions"]
    n, m = len(output_bins), held_out["examples"]
    if held_out["task"] != "classification":
        sizes = [len(o["edges"]) + 1 for o in held_out["outputs"]]
        counts = features_lib.counts_of(output_bins, sizes)
        return {"outputs": [compared(o["name"], np.asarray(o["counts"]), c, n=n, m=m, count=len(sizes),
                                     edges=o["edges"], reference=o["counts"], new=c.tolist())
                            for o, c in zip(held_out["outputs"], counts, strict=True)]}
    names = reference["class_names"]
    mix = np.bincount(predicted, minlength=len(names))
    reference_mix = np.asarray(held_out["class_counts"])
    vanished = [names[k] for k in range(len(names)) if mix[k] == 0 and reference_mix[k] >= 0.02 * m]
    confidence = held_out["confidence"]
    conf_counts = features_lib.counts_of(output_bins, [len(confidence["edges"]) + 1])[0]
    return {
        "class_mix": compared("class mix", reference_mix, mix, n=n, m=m, count=1, class_names=names,
                              reference=reference_mix.tolist(), new=mix.tolist(), vanished=vanished),
        "confidence": compared("confidence", np.asarray(confidence["counts"]), conf_counts, n=n, m=m, count=1,
                               edges=confidence["edges"], reference=confidence["counts"], new=conf_counts.tolist(),
                               reference_mean=confidence["mean"]),
    }


def reasons(record: dict) -> list[str]:
    """One sentence per shifted component."""
    out = []
    inputs = record["inputs"]
    if inputs["features_shifted"]:
        top = ", ".join(f"{r['name']} (PSI {r['psi']:.2f})" for r in inputs["most_shifted"] if r["shifted"])
        out.append(f"{inputs['features_shifted']} of {inputs['features']} input features shifted; most: {top}")
    for channel in record.get("pooled", []):
        if channel["shifted"]:
            out.append(f"the {channel['name']} value histogram shifted (PSI {channel['psi']:.2f})")
    predictions = record["predictions"]
    if predictions.get("class_mix", {}).get("shifted"):
        mix = predictions["class_mix"]
        gone = f"; no {', '.join(mix['vanished'])} predicted any more" if mix["vanished"] else ""
        out.append(f"the predicted class mix shifted (PSI {mix['psi']:.2f}){gone}")
    if predictions.get("confidence", {}).get("shifted"):
        confidence = predictions["confidence"]
        now = f", {confidence['new_mean']:.3f} now" if "new_mean" in confidence else ""
        out.append(f"the confidence shifted (PSI {confidence['psi']:.2f}, mean {confidence['reference_mean']:.3f} "
                   f"in the reference{now})")
    out += [f"{o['name']} shifted (PSI {o['psi']:.2f})" for o in predictions.get("outputs", []) if o["shifted"]]
    return out


def check_drift(run: str | Predictor, x: Any, *, reference: dict | None = None) -> dict:
    """The drift record (drift.json's content) of new inputs against a finished run's reference.

    Args:
      run: the run's workdir, or its `Predictor` (`jaxdl.load_run(workdir)`).
      x: new inputs (N, *input_shape) as the dataset stores them (what the predictor takes);
        at least MIN_EXAMPLES of them.
      reference: the run's drift_reference.json record (read from the workdir when None).

    Raises InputError for a run without a reference, inputs of the wrong shape, too few inputs.
    """
    predictor = run if isinstance(run, Predictor) else load_run(run)
    reference = reference if reference is not None else features_lib.read_reference(predictor.workdir)
    x = predictor.check(x)
    if len(x) < MIN_EXAMPLES:
        raise InputError("inputs", "too few inputs to tell drift from chance", got=len(x),
                         expected=f"at least {MIN_EXAMPLES}")
    outputs = predictor(x)
    check_batch(reference, x, outputs)
    summaries = Summaries(reference, x, outputs)
    record = compare(reference, summaries.feature_bins, summaries.pooled, summaries.predicted, summaries.outputs)
    new_means = summaries.values.mean(axis=0)
    for row in record["inputs"]["most_shifted"]:
        index = record["inputs"]["names"].index(row["name"])
        row["reference_mean"], row["new_mean"] = reference["features"]["mean"][index], float(new_means[index])
    if "confidence" in record["predictions"]:
        record["predictions"]["confidence"]["new_mean"] = float(np.asarray(outputs).max(axis=1).mean())
        record["reasons"] = reasons(record) if record["reasons"] else []
    thresholds = {"psi_shifted": PSI_SHIFTED, "alpha": ALPHA, "smoothing": SMOOTHING, "min_examples": MIN_EXAMPLES}
    return {"verdict": "drift" if record["drifted"] else "no drift", **record, "thresholds": thresholds,
            "workdir": predictor.workdir, "reference": {"train": reference["train"],
                                                        "predictions": reference["predictions"]["split"],
                                                        "held_out_examples": reference["predictions"]["examples"]}}


class DriftMonitor:
    """The drift measure over the last `window` served examples (thread-safe).

    monitor = DriftMonitor(workdir_or_reference, predictor_or_info, window=1000)
    monitor.observe(raw_inputs, probabilities)   # each served batch: (N, *input_shape) stored, (N, K)
    monitor.gauges()  # {"score", "drifted" (0/1), "features_shifted", "window" (examples held),
                      #  "class_mix_psi", "confidence_psi", "largest_feature_psi"}

    `drifted` stays 0 until the window holds MIN_EXAMPLES examples.
    """

    def __init__(self, reference: dict | str, predictor_or_info: Predictor | DataInfo, window: int = WINDOW):
        if isinstance(reference, str):
            reference = features_lib.read_reference(reference)
        info = predictor_or_info.info if isinstance(predictor_or_info, Predictor) else predictor_or_info
        if tuple(info.input_shape) != tuple(reference["input_shape"]) or info.task != reference["task"]:
            raise InputError("reference", "the drift reference is of another model's data",
                             got=f"{reference['task']} {tuple(reference['input_shape'])}",
                             expected=f"{info.task} {tuple(info.input_shape)}")
        if not isinstance(window, int) or not MIN_EXAMPLES <= window <= MAX_WINDOW:
            raise InputError("window", "out of range", got=window,
                             expected=f"an integer in [{MIN_EXAMPLES}, {MAX_WINDOW:,}]")
        self.reference, self.window = reference, window
        self.lock = threading.Lock()
        self.buffers: dict[str, np.ndarray] = {}
        self.next, self.held, self.seen = 0, 0, 0

    def observe(self, raw_inputs: np.ndarray, probabilities: np.ndarray) -> None:
        """Adds one served batch: inputs (N, *input_shape) in the stored form and the model's
        probabilities (N, K) (regression outputs for a regression run)."""
        check_batch(self.reference, raw_inputs, probabilities)
        summaries = Summaries(self.reference, raw_inputs, probabilities)  # outside the lock: the costly part
        parts = {"bins": summaries.feature_bins, "outputs": summaries.outputs}
        if summaries.pooled is not None:
            parts["pooled"] = summaries.pooled
        if summaries.predicted is not None:
            parts["predicted"] = summaries.predicted
        with self.lock:
            for name, value in parts.items():
                kept = value[-self.window:]
                if name not in self.buffers:
                    self.buffers[name] = np.zeros((self.window, *kept.shape[1:]), kept.dtype)
                self.buffers[name][(self.next + np.arange(len(kept))) % self.window] = kept
            count = min(len(summaries), self.window)
            self.next = (self.next + count) % self.window
            self.held = min(self.held + count, self.window)
            self.seen += len(summaries)

    def record(self) -> dict | None:
        """compare()'s record of the examples in the window, None before any."""
        with self.lock:
            if not self.held:
                return None
            held = {name: buffer[:self.held].copy() for name, buffer in self.buffers.items()}
        return compare(self.reference, held["bins"], held.get("pooled"), held.get("predicted"), held["outputs"])

    def gauges(self) -> dict[str, float]:
        record = self.record()
        if record is None:
            return {"score": 0.0, "drifted": 0, "features_shifted": 0, "window": 0, "class_mix_psi": 0.0,
                    "confidence_psi": 0.0, "largest_feature_psi": 0.0}
        predictions = record["predictions"]
        return {"score": record["score"], "drifted": int(record["drifted"]),
                "features_shifted": record["inputs"]["features_shifted"], "window": record["examples"],
                "class_mix_psi": predictions.get("class_mix", {}).get("psi", 0.0),
                "confidence_psi": predictions.get("confidence", {}).get("psi", 0.0),
                "largest_feature_psi": max(record["inputs"]["psi"], default=0.0)}


__all__ = ["ALPHA", "MIN_EXAMPLES", "PSI_SHIFTED", "DriftMonitor", "check_drift", "compare", "psi"]
