"""Question 4, "do you have plenty of varied training data?": checks on the run's splits.

Class balance per split; test examples that also occur in the training split (leakage), exactly
(same stored values) or nearly (the same after coarsening: images averaged over blocks to at most
8x8, every value cut to COARSE_LEVELS levels, on two grids half a level apart), found by hashing
each example's bytes;
constant and all-missing (NaN) input features of the training split; a test set smaller than
MIN_TEST_EXAMPLES, which gets a `warning:` line. The learning curve is `jaxdl.evaluate.learning_curve`.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np

from jaxdl.data import Splits
from jaxdl.data.splits import size

log = logging.getLogger("jaxdl")

# Below this many test examples a 95% interval on an accuracy near 0.5 is wider than +-0.1.
MIN_TEST_EXAMPLES = 100
COARSE_LEVELS = 8
POOLED_SIDE = 8  # images are compared as at most 8x8 block averages
SHOWN = 10  # indices or names listed of each finding
BLOCK_BYTES = 32 << 20  # rows checked at a time: the copies a check makes are a block's, not the split's
RANGE_SAMPLE_BYTES = 64 << 20  # the most float32 inputs `value_range` takes its percentiles of


def row_hashes(x: np.ndarray) -> list[bytes]:
    """One digest per example of `x` (n, ...): equal digests <=> equal bytes (dtype and values)."""
    flat = np.ascontiguousarray(x).reshape(len(x), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def pooled(x: np.ndarray) -> np.ndarray:
    """Images (n, H, W, ...) averaged over blocks to at most POOLED_SIDE x POOLED_SIDE; other inputs as they are."""
    if x.ndim < 3 or max(x.shape[1], x.shape[2]) <= POOLED_SIDE:
        return x
    bh, bw = -(-x.shape[1] // POOLED_SIDE), -(-x.shape[2] // POOLED_SIDE)
    h, w = x.shape[1] // bh * bh, x.shape[2] // bw * bw
    return x[:, :h, :w].reshape(len(x), h // bh, bh, w // bw, bw, *x.shape[3:]).mean(axis=(2, 4))


def blocks(x: np.ndarray):
    """`x` (n, ...) as consecutive blocks of rows of about BLOCK_BYTES each (views, no copy); at least one."""
    step = max(1, BLOCK_BYTES // max(1, x[:1].nbytes))
    return [x[start:start + step] for start in range(0, len(x), step)] or [x]


def coarsen(x: np.ndarray, low, high, offset: float = 0.0) -> np.ndarray:
    """`x` (n, ...) as uint8 levels 0..COARSE_LEVELS between `low` and `high` (scalars, or one value per
    feature of a table), the level edges shifted by `offset` (a fraction of a level); images pooled first.
    A block of rows at a time: the float copies it needs are a block's, not the split's."""
    def levels(block: np.ndarray) -> np.ndarray:
        block = pooled(np.nan_to_num(np.asarray(block, np.float32)))
        scaled = (block - low) / np.where(high > low, high - low, 1.0)
        return np.clip(np.floor(scaled * COARSE_LEVELS + offset), 0, COARSE_LEVELS).astype(np.uint8)

    return np.concatenate([levels(block) for block in blocks(x)])


def value_range(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): 1st and 99th percentiles of the training inputs, per feature for a table (n, F), over
    all values otherwise (an image's border pixels would have no range of their own). NaN counts as 0
    and +-inf as float32's extremes (`np.nan_to_num`). A split of more than RANGE_SAMPLE_BYTES is
    sampled: every k-th example, k the smallest that keeps the sample within it (percentiles sort a
    copy of what they are given: a copy of a sample, not of the whole split)."""
    x = np.asarray(x, np.float32)
    x = x[::max(1, -(-x.nbytes // RANGE_SAMPLE_BYTES))]
    if not np.isfinite(x).all():
        x = np.nan_to_num(x)
    if x.ndim == 2:
        return np.percentile(x, 1, axis=0), np.percentile(x, 99, axis=0)
    return np.percentile(x, 1), np.percentile(x, 99)


def shared(train_hashes: list[bytes], test_hashes: list[bytes]) -> list[int]:
    """Indices of test examples whose hash is among the training hashes."""
    seen = set(train_hashes)
    return [i for i, digest in enumerate(test_hashes) if digest in seen]


def duplicates(train_x: np.ndarray, test_x: np.ndarray) -> dict:
    """Test examples found in the training split: {"exact": count, "exact_indices" (first SHOWN test
    indices), "near": count of the others whose coarsened form is in train, "near_indices"}."""
    exact = shared(row_hashes(train_x), row_hashes(test_x))
    low, high = value_range(train_x)
    near = set()
    for offset in (0.0, 0.5):  # a small change that crosses a level edge of one grid rarely crosses both
        near |= set(shared(row_hashes(coarsen(train_x, low, high, offset)),
                           row_hashes(coarsen(test_x, low, high, offset))))
    near = sorted(near - set(exact))
    return {"exact": len(exact), "exact_indices": exact[:SHOWN], "near": len(near), "near_indices": near[:SHOWN]}


def feature_names(width: int, preprocessing: dict) -> list[str]:
    """A name per input feature: a table's column (and category), else x[i]."""
    names = [f"x[{i}]" for i in range(width)]
    for column in preprocessing.get("columns", []):
        first, end = column["inputs"]
        for offset, i in enumerate(range(first, min(end, width))):
            categories = column.get("categories")
            names[i] = f"{column['name']}={categories[offset]}" if categories else column["name"]
    return names


def feature_problems(train_x: np.ndarray, preprocessing: dict | None = None) -> dict:
    """Input features (flattened) that cannot help: {"features", "constant": count, "constant_names"
    (first SHOWN), "all_missing": count, "all_missing_names"}; constant = one value over the training
    split, all-missing = NaN in every training example."""
    flat = np.asarray(train_x, np.float32).reshape(len(train_x), -1)
    # A block of rows at a time (no copy of the split): fmax/fmin skip NaN as nanmax/nanmin do.
    missing = np.ones(flat.shape[1], bool)
    high = np.full(flat.shape[1], np.nan, np.float32)
    low = high.copy()
    for block in blocks(flat):
        missing &= np.isnan(block).all(axis=0)
        high = np.fmax(high, np.fmax.reduce(block, axis=0, initial=np.nan))
        low = np.fmin(low, np.fmin.reduce(block, axis=0, initial=np.nan))
    spread = np.where(missing, 0, high - low)
    constant = (spread == 0) & ~missing
    names = feature_names(flat.shape[1], preprocessing or {})
    return {"features": int(flat.shape[1]), "constant": int(constant.sum()),
            "constant_names": [names[i] for i in np.flatnonzero(constant)[:SHOWN]],
            "all_missing": int(missing.sum()), "all_missing_names": [names[i] for i in np.flatnonzero(missing)[:SHOWN]]}


def class_balance(splits: Splits) -> dict:
    """{"counts": {split: [count per class]}, "majority_share" (of train: the accuracy of always
    answering the commonest class), "imbalance" (largest over smallest train class count)}."""
    k = splits.info.num_classes
    counts = {}
    for name in ("train", "validation", "test"):
        arrays = getattr(splits, name)
        if isinstance(arrays, dict):
            counts[name] = np.bincount(np.asarray(arrays["y"]).reshape(-1).astype(np.int64), minlength=k).tolist()
    train = np.asarray(counts.get("train") or counts["test"])
    return {"counts": counts, "majority_share": float(train.max() / max(train.sum(), 1)),
            "imbalance": float(train.max() / train.min()) if train.min() > 0 else None}


def answer_data(splits: Splits) -> dict:
    """The checks on the splits (see module doc); warns once when the test set is small."""
    info, test_count = splits.info, size(splits.test)
    result = {"run": True, "sizes": splits.sizes(), "min_test_examples": MIN_TEST_EXAMPLES,
              "tiny_test": test_count < MIN_TEST_EXAMPLES}
    if result["tiny_test"]:
        log.warning("the test set has only %d examples (fewer than %d): its accuracy is known only to within about "
                    "+-%.2f (95%%); a larger test set (more data, or a larger test share) would say more",
                    test_count, MIN_TEST_EXAMPLES, 1.96 * 0.5 / max(test_count, 1) ** 0.5)
    if info.task == "classification":
        result["balance"] = class_balance(splits)
    if isinstance(splits.train, dict):
        result["duplicates"] = duplicates(splits.train["x"], splits.test["x"])
        result["features"] = feature_problems(splits.train["x"], info.preprocessing)
    else:
        result["not_checked"] = "duplicates and features: the training split was streamed, not held in memory"
    result["answer"] = sentence(result, info.class_names)
    return result


def sentence(result: dict, class_names: tuple = ()) -> str:
    sizes = result["sizes"]
    parts = [f"{sizes['train']} training, {sizes['validation']} validation and {sizes['test']} test examples."]
    if result["tiny_test"]:
        parts.append(f"The test set is tiny (under {result['min_test_examples']}): its figures are rough.")
    balance = result.get("balance")
    if balance:
        train = balance["counts"].get("train", [])
        smallest = int(np.argmin(train)) if train else 0
        name = class_names[smallest] if class_names else smallest
        ratio = f"{balance['imbalance']:.1f}" if balance["imbalance"] else "inf"
        parts.append(f"Classes: the commonest is {100 * balance['majority_share']:.0f}% of train (always answering "
                     f"it would score that), largest/smallest {ratio} (smallest: {name}, {min(train, default=0)}).")
    found = result.get("duplicates")
    if found:
        if found["exact"] or found["near"]:
            parts.append(f"Leakage: {found['exact']} test examples also occur exactly in train, {found['near']} more "
                         "nearly (the same after coarsening): their test figures flatter the model.")
        else:
            parts.append("No test example occurs in train, exactly or nearly.")
    features = result.get("features")
    if features and (features["constant"] or features["all_missing"]):
        parts.append(f"{features['constant']} of {features['features']} input features are constant and "
                     f"{features['all_missing']} all missing in train: they carry no information.")
    return " ".join(parts)
