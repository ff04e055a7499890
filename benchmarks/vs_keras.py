"""jaxdl against Keras 3 (on its JAX backend) and PyTorch (eager, CPU): the same models on the same data.

Four models, each built the same way in the three frameworks and trained with Adam (learning rate
1e-3, epsilon 1e-8), batch 64, softmax cross-entropy on integer labels, with one validation pass per
epoch:

  mlp      digits (8x8x1), flattened -> Dense 512 ReLU -> Dense 512 ReLU -> Dense 10 (configs/mlp.py)
  cnn      digits: Conv 16 3x3 SAME ReLU, 2x2 max pool, Conv 32 3x3 SAME ReLU, 2x2 max pool, Dense 10
  lstm     digits read as 8 steps (rows) of 8 pixels: LSTM 128, its last output -> Dense 10 (configs/rnn.py)
  signals  the generated `signals` set (128 steps): the 1-D CNN of configs/cnn.py:signals (3 blocks of
           Conv 5 without bias, batch norm (momentum 0.9, epsilon 1e-5), ReLU, max pool 2, dropout 0.1;
           Dense 64 ReLU, dropout 0.1; Dense 4)

Data: the splits `jaxdl.load_data` gives (digits: 1,294 training and 144 validation images); every
framework sees the same float32 arrays, the training set cut to whole batches (jaxdl drops the last
partial batch of an epoch; Keras and PyTorch would run it as an extra, smaller step). Each framework
shuffles with its own generator.

Runs are interleaved in one process (repeat 1: mlp in jaxdl, Keras, PyTorch, cnn ..., repeat 2 ...,
the framework order rotated each repeat) so machine noise hits all alike; JAX's compilation caches
are cleared before every jaxdl and Keras run, so each whole fit compiles. Printed per model and
framework: the steady-state epoch (median over epochs 2.. of every repeat; epoch 1 holds the
compilation) and the whole fit (model built, compiled and trained for `--epochs`, median of the
repeats), then the ratios jaxdl / Keras and jaxdl / PyTorch (below 1: jaxdl is faster).

Keras 3 and PyTorch are benchmark-only: `pip install 'jaxdl[bench]'`. KERAS_BACKEND is set to jax
here; PyTorch uses all cores (`torch.set_num_threads`, `--torch_threads`) with OMP_WAIT_POLICY=PASSIVE
unless the environment sets it. `--steps_per_call` is passed to `jaxdl.fit`
when this jaxdl's fit takes it (how many steps one compiled call runs: an int, `epoch` or `auto`).

    python benchmarks/vs_keras.py [--models mlp,cnn,lstm,signals] [--epochs 3] [--repeats 3]
                                  [--batch 64] [--steps_per_call auto] [--json FILE]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported
# PyTorch's OpenMP threads spin while they wait; on a machine shared with other jobs a spinning thread
# holds the cores the others need (measured here: an MLP epoch 14 s with 2 spinning threads, 0.64 s passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxdl  # noqa: E402
from jaxdl.models import CNN, MLP  # noqa: E402
from jaxdl.run.config import load_config  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
MODELS = ("mlp", "cnn", "lstm", "signals")
FRAMEWORKS = ("jaxdl", "keras", "torch")
LEARNING_RATE, EPSILON = 1e-3, 1e-8
SIGNALS = {"channels": (16, 32, 32), "kernel": 5, "dense": 64, "dropout": 0.1}  # configs/cnn.py:signals


def load_splits(name: str) -> jaxdl.Splits:
    return jaxdl.load_data(ml_collections.ConfigDict({
        "name": name, "data_dir": "", "validation_fraction": 0.1, "split_seed": 0, "download": False}))


# --- jaxdl -----------------------------------------------------------------------------------------


def jaxdl_model(name: str, info):
    if name == "mlp":
        return MLP(num_outputs=info.num_classes, hidden_sizes=(512, 512))
    if name == "cnn":
        return CNN(num_outputs=info.num_classes, channels=(16, 32), kernel_size=3, pooling="max", pool_size=2,
                   batch_norm=False, dropout=0.0, dense_sizes=())
    if name == "lstm":
        return jaxdl.build_model(load_config(os.path.join(CONFIGS, "rnn.py")).model, info)
    config = load_config(os.path.join(CONFIGS, "cnn.py") + ":signals").model
    assert tuple(config.channels) == SIGNALS["channels"] and config.kernel_size == SIGNALS["kernel"]
    assert tuple(config.dense_sizes) == (SIGNALS["dense"],) and config.dropout == SIGNALS["dropout"]
    return jaxdl.build_model(config, info)


def run_jaxdl(name: str, splits, train, *, epochs: int, batch: int, seed: int, fit_options: dict) -> dict:
    jax.clear_caches()
    tick = time.perf_counter()
    model = jaxdl_model(name, splits.info)
    tx = optax.adam(LEARNING_RATE, eps=EPSILON)
    state = jaxdl.create_state(model, tx, splits.info.input_shape, seed, jaxdl.classification_metrics)
    result = jaxdl.fit(state, train, splits.validation, epochs=epochs, batch_size=batch, **fit_options)
    jax.block_until_ready(result.state.params)
    whole = time.perf_counter() - tick
    chosen = getattr(result, "steps_per_call", None)
    return {"epochs": [record["seconds"] for record in result.history], "fit": whole,
            "val_accuracy": float(result.history[-1]["val_accuracy"]), "chosen": chosen}


# --- Keras 3 (JAX backend) -------------------------------------------------------------------------


def keras_model(name: str, info):
    import keras  # noqa: PLC0415
    from keras import layers  # noqa: PLC0415

    classes = info.num_classes
    if name == "mlp":
        body = [layers.Flatten(), layers.Dense(512, activation="relu"), layers.Dense(512, activation="relu")]
    elif name == "cnn":
        body = [layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
                layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(2), layers.Flatten()]
    elif name == "lstm":
        body = [layers.Reshape(info.input_shape[:1] + (-1,)), layers.LSTM(128)]
    else:
        body = [layers.Reshape((info.input_shape[0], 1))]
        for width in SIGNALS["channels"]:
            body += [layers.Conv1D(width, SIGNALS["kernel"], padding="same", use_bias=False),
                     layers.BatchNormalization(momentum=0.9, epsilon=1e-5), layers.ReLU(), layers.MaxPooling1D(2),
                     layers.Dropout(SIGNALS["dropout"])]
        body += [layers.Flatten(), layers.Dense(SIGNALS["dense"], activation="relu"),
                 layers.Dropout(SIGNALS["dropout"])]
    return keras.Sequential([keras.Input(info.input_shape), *body, layers.Dense(classes)])


def run_keras(name: str, splits, train, *, epochs: int, batch: int, seed: int) -> dict:
    import keras  # noqa: PLC0415

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.tick = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.tick)

    jax.clear_caches()
    keras.utils.set_random_seed(seed)
    seconds = []
    tick = time.perf_counter()
    model = keras_model(name, splits.info)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE, epsilon=EPSILON),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(train["x"], train["y"], batch_size=batch, epochs=epochs, shuffle=True, verbose=0,
                        validation_data=(splits.validation["x"], splits.validation["y"]),
                        callbacks=[EpochTimes()])
    whole = time.perf_counter() - tick
    return {"epochs": seconds, "fit": whole, "val_accuracy": float(history.history["val_accuracy"][-1])}


# --- PyTorch (eager) -------------------------------------------------------------------------------


def torch_model(name: str, info):
    from torch import nn  # noqa: PLC0415

    classes = info.num_classes
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(info.input_shape)), 512), nn.ReLU(),
                             nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, classes))
    if name == "cnn":
        height, width, channels = info.input_shape
        return nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(32 * (height // 4) * (width // 4), classes))
    if name == "lstm":
        return LastStepLSTM(int(np.prod(info.input_shape[1:])), 128, classes)
    blocks, cin, length = [], 1, info.input_shape[0]
    for width in SIGNALS["channels"]:
        blocks += [nn.Conv1d(cin, width, SIGNALS["kernel"], padding=SIGNALS["kernel"] // 2, bias=False),
                   nn.BatchNorm1d(width, momentum=0.1, eps=1e-5), nn.ReLU(), nn.MaxPool1d(2),
                   nn.Dropout(SIGNALS["dropout"])]
        cin, length = width, length // 2
    return nn.Sequential(*blocks, nn.Flatten(), nn.Linear(cin * length, SIGNALS["dense"]), nn.ReLU(),
                         nn.Dropout(SIGNALS["dropout"]), nn.Linear(SIGNALS["dense"], classes))


def LastStepLSTM(features: int, hidden: int, classes: int):  # noqa: N802 (a module class made on demand)
    from torch import nn  # noqa: PLC0415

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(features, hidden, batch_first=True), nn.Linear(hidden, classes)

        def forward(self, x):
            out, _ = self.lstm(x.reshape(x.shape[0], x.shape[1], -1))
            return self.head(out[:, -1])

    return Module()


def torch_layout(name: str, x: np.ndarray) -> np.ndarray:
    """NHWC images to PyTorch's NCHW, (N, length) signals to (N, 1, length); the rest as they are."""
    if name == "cnn":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if name == "signals":
        return x.reshape(x.shape[0], 1, -1)
    return x


def run_torch(name: str, splits, train, *, epochs: int, batch: int, seed: int) -> dict:
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)
    x, y = torch.from_numpy(torch_layout(name, train["x"])), torch.from_numpy(train["y"].astype(np.int64))
    val_x = torch.from_numpy(torch_layout(name, splits.validation["x"]))
    val_y = torch.from_numpy(splits.validation["y"].astype(np.int64))
    tick = time.perf_counter()
    model = torch_model(name, splits.info)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=EPSILON)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds, steps = [], len(x) // batch
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x))
        for i in range(steps):
            at = order[i * batch:(i + 1) * batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[at]), y[at])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(val_x).argmax(1) == val_y).float().mean().item()
        seconds.append(time.perf_counter() - start)
    return {"epochs": seconds, "fit": time.perf_counter() - tick, "val_accuracy": accuracy}


# --- the comparison --------------------------------------------------------------------------------


def fit_options(steps_per_call: str | None) -> dict:
    """{"steps_per_call": ...} when asked for and this jaxdl's fit takes it."""
    if steps_per_call is None:
        return {}
    if "steps_per_call" not in inspect.signature(jaxdl.fit).parameters:
        print(f"error: --steps_per_call: this jaxdl's fit has no steps_per_call (got {steps_per_call!r}, "
              "expected no --steps_per_call)", file=sys.stderr)
        raise SystemExit(2)
    return {"steps_per_call": int(steps_per_call) if steps_per_call.isdigit() else steps_per_call}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {jax.devices()[0].platform}"


def summarize(runs: dict) -> dict:
    """framework -> {"epoch": steady median seconds, "fit": median whole fit, "val_accuracy"}."""
    out = {}
    for framework, reps in runs.items():
        steady = [s for rep in reps for s in (rep["epochs"][1:] or rep["epochs"])]
        out[framework] = {"epoch": statistics.median(steady), "fit": statistics.median(r["fit"] for r in reps),
                          "val_accuracy": statistics.median(r["val_accuracy"] for r in reps),
                          "chosen": reps[-1].get("chosen")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of " + ", ".join(MODELS))
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated, of jaxdl, keras, torch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first one compiles)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps_per_call", default=None, help="passed to jaxdl.fit (when it takes it)")
    parser.add_argument("--torch_threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    frameworks = [f for f in args.frameworks.split(",") if f]
    for value, known, flag in ((models, MODELS, "--models"), (frameworks, FRAMEWORKS, "--frameworks")):
        unknown = sorted(set(value) - set(known))
        if unknown or not value:
            print(f"error: {flag}: unknown or empty (got {unknown or value}, expected some of {', '.join(known)})",
                  file=sys.stderr)
            raise SystemExit(2)
    if args.epochs < 2 or args.repeats < 1 or args.batch < 1:
        print(f"error: --epochs/--repeats/--batch: too small (got {args.epochs}/{args.repeats}/{args.batch}, "
              "expected epochs >= 2, repeats >= 1, batch >= 1)", file=sys.stderr)
        raise SystemExit(2)
    options = fit_options(args.steps_per_call)
    if "torch" in frameworks:
        import torch  # noqa: PLC0415

        torch.set_num_threads(max(1, args.torch_threads))
    data, loaded = {}, {}
    for name in models:
        dataset = "signals" if name == "signals" else "digits"
        splits = loaded[dataset] = loaded.get(dataset) or load_splits(dataset)
        whole = len(splits.train["y"]) // args.batch * args.batch
        data[name] = (splits, {key: value[:whole] for key, value in splits.train.items()})
    runs = {name: {framework: [] for framework in frameworks} for name in models}
    runners = {"jaxdl": lambda *a, **k: run_jaxdl(*a, **k, fit_options=options), "keras": run_keras,
               "torch": run_torch}
    for repeat in range(args.repeats):
        order = frameworks[repeat % len(frameworks):] + frameworks[:repeat % len(frameworks)]
        for name in models:
            splits, train = data[name]
            for framework in order:
                runs[name][framework].append(runners[framework](name, splits, train, epochs=args.epochs,
                                                                batch=args.batch, seed=repeat))
    versions = ", ".join(f"{module} {sys.modules[module].__version__}" for module in ("jax", "keras", "torch")
                         if module in sys.modules)
    print(f"{machine()}; {versions}; "
          f"batch {args.batch}, {args.epochs} epochs x {args.repeats} interleaved repeats"
          + (f"; jaxdl steps_per_call={args.steps_per_call}" if options else ""))
    print(f"{'model':<8} {'framework':<6} {'steady epoch':>13} {'whole fit':>10} {'val acc':>8}")
    results = {}
    for name in models:
        steps = len(data[name][1]["y"]) // args.batch
        results[name] = summary = summarize(runs[name])
        for framework, row in summary.items():
            print(f"{name:<8} {framework:<6} {1e3 * row['epoch']:>10.1f} ms {row['fit']:>8.2f} s "
                  f"{row['val_accuracy']:>8.3f}")
            chosen = row.get("chosen")
            if isinstance(chosen, dict):  # FitResult.steps_per_call: what ran, and what "auto" measured
                timed = ", ".join(f"{k}: {v:.2f}" for k, v in chosen.get("ms_per_step", {}).items())
                print(f"{'':<8} jaxdl steps_per_call {chosen.get('chosen')} (ms per step: {timed or 'not timed'})")
            elif chosen is not None:
                print(f"{'':<8} jaxdl steps_per_call {chosen}")
        for other in ("keras", "torch"):
            if "jaxdl" in summary and other in summary:
                epoch = summary["jaxdl"]["epoch"] / summary[other]["epoch"]
                print(f"{'':<8} jaxdl / {other}: steady epoch {epoch:.2f}x,"
                      f" whole fit {summary['jaxdl']['fit'] / summary[other]['fit']:.2f}x   ({steps} steps an epoch)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "args": vars(args), "results": results, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
