"""jaxdl's `fit` against a hand-written `jax.jit` + `lax.scan` loop, side by side in one process.

Both train the same Flax model (the MLP, or with `--model cnn` the default CNN of configs/cnn.py:
batch norm and dropout) with the same optax Adam on the same digits training set, batch size and
epochs, validate once per epoch, and sync with the host once per epoch. Runs alternate
(A, B, A, B, ...) so machine noise hits both alike. Throughput is the steady state: the median
epoch time over epochs 2.. of every repeat (epoch 1 holds the compilation, reported apart). On a
machine shared with other jobs the median moves with their load; the ratio is also printed at the
fastest tenth of each loop's steady epochs ("p10"), the epochs the other jobs disturbed least.
With PyTorch installed it also times an eager PyTorch loop over the same work.

    python benchmarks/fit_throughput.py [--model mlp|cnn] [--hidden 512,512] [--batch 64] [--epochs 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdl.data import load
from jaxdl.models import MLP, build_model
from jaxdl.run.config import load_config
from jaxdl.train.fit import fit
from jaxdl.train.losses import classification_metrics
from jaxdl.train.state import create_state

CNN_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "cnn.py")


def handwritten(model, x, y, val_x, val_y, *, batch_size: int, epochs: int, seed: int) -> list[float]:
    """A plain jit + scan training loop with per-epoch validation; returns seconds per epoch.

    Models with batch norm update their statistics in training and use them in validation;
    dropout gets a key per step.
    """
    tx = optax.adam(1e-3)
    variables = model.init(jax.random.PRNGKey(seed), x[:1], train=False)
    params, stats = variables["params"], variables.get("batch_stats", {})
    opt_state = tx.init(params)
    steps = x.shape[0] // batch_size

    def loss_fn(params, stats, bx, by, key):
        if stats:
            logits, updates = model.apply({"params": params, "batch_stats": stats}, bx, train=True,
                                          rngs={"dropout": key}, mutable=["batch_stats"])
            stats = updates["batch_stats"]
        else:
            logits = model.apply({"params": params}, bx, train=True, rngs={"dropout": key})
        return optax.softmax_cross_entropy_with_integer_labels(logits, by).mean(), stats

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def epoch(params, stats, opt_state, key):
        order = jax.random.permutation(key, x.shape[0])[: steps * batch_size].reshape(steps, batch_size)

        def body(carry, step_index):
            params, stats, opt_state = carry
            step, index = step_index
            (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x[index], y[index],
                                                                             jax.random.fold_in(key, step))
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), stats, opt_state), loss

        (params, stats, opt_state), losses = jax.lax.scan(body, (params, stats, opt_state),
                                                          (jnp.arange(steps), order))
        val_logits = model.apply({"params": params, **({"batch_stats": stats} if stats else {})}, val_x, train=False)
        val_loss = optax.softmax_cross_entropy_with_integer_labels(val_logits, val_y).mean()
        return params, stats, opt_state, losses.mean(), val_loss, (val_logits.argmax(-1) == val_y).mean()

    key = jax.random.PRNGKey(seed)
    seconds = []
    for e in range(epochs):
        tick = time.perf_counter()
        params, stats, opt_state, *metrics = epoch(params, stats, opt_state, jax.random.fold_in(key, e))
        jax.device_get(metrics)
        seconds.append(time.perf_counter() - tick)
    return seconds


def with_jaxdl(model, splits, *, batch_size: int, epochs: int, seed: int) -> list[float]:
    """jaxdl's fit over the same work; returns seconds per epoch (fit's own per-epoch clock)."""
    state = create_state(model, optax.adam(1e-3), splits.info.input_shape, seed, classification_metrics)
    result = fit(state, splits.train, splits.validation, epochs=epochs, batch_size=batch_size, patience=0)
    return [record["seconds"] for record in result.history]


def torch_net(torch, model_name: str, hidden: tuple[int, ...], input_shape: tuple[int, ...]):
    """The PyTorch twin of the benchmarked model: the MLP, or the default CNN (NCHW inputs)."""
    if model_name == "mlp":
        layers, width = [torch.nn.Flatten()], int(np.prod(input_shape))
        for size in hidden:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            width = size
        return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    cnn = load_config(CNN_CONFIG).model
    layers, channels, side = [], input_shape[-1], input_shape[0]
    for width in cnn.channels:
        layers += [torch.nn.Conv2d(channels, width, cnn.kernel_size, padding="same", bias=False),
                   torch.nn.BatchNorm2d(width, momentum=0.1), torch.nn.ReLU(), torch.nn.MaxPool2d(cnn.pool_size),
                   torch.nn.Dropout(cnn.dropout)]
        channels, side = width, side // cnn.pool_size
    layers.append(torch.nn.Flatten())
    width = channels * side * side
    for size in cnn.dense_sizes:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU(), torch.nn.Dropout(cnn.dropout)]
        width = size
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def torch_eager(model_name: str, x, y, val_x, val_y, *, hidden: tuple[int, ...], batch_size: int, epochs: int,
                seed: int) -> list[float] | None:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    torch.manual_seed(seed)
    net = torch_net(torch, model_name, hidden, x.shape[1:])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if model_name == "cnn":  # NHWC -> NCHW
        x, val_x = x.transpose(0, 3, 1, 2).copy(), val_x.transpose(0, 3, 1, 2).copy()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y).long()
    vx, vy = torch.from_numpy(val_x), torch.from_numpy(val_y).long()
    steps = len(tx) // batch_size
    seconds = []
    for _ in range(epochs):
        tick = time.perf_counter()
        net.train()
        order = torch.randperm(len(tx))
        for s in range(steps):
            index = order[s * batch_size:(s + 1) * batch_size]
            loss = torch.nn.functional.cross_entropy(net(tx[index]), ty[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            logits = net(vx)
            float(torch.nn.functional.cross_entropy(logits, vy)), float((logits.argmax(-1) == vy).float().mean())
        seconds.append(time.perf_counter() - tick)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                        help="mlp: the MLP of --hidden; cnn: the default CNN of configs/cnn.py")
    parser.add_argument("--hidden", default="512,512")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    splits = load(ml_collections.ConfigDict(dict(name="digits", data_dir=args.data_dir, validation_fraction=0.1,
                                                 split_seed=0, download=False)))
    if args.model == "mlp":
        model, name = MLP(num_outputs=10, hidden_sizes=hidden), f"MLP {hidden}"
    else:
        cnn = load_config(CNN_CONFIG).model
        model, name = build_model(cnn, splits.info), f"CNN {tuple(cnn.channels)} (batch norm, dropout {cnn.dropout})"
    x, y = jnp.asarray(splits.train["x"]), jnp.asarray(splits.train["y"])
    val_x, val_y = jnp.asarray(splits.validation["x"]), jnp.asarray(splits.validation["y"])
    common = dict(batch_size=args.batch, epochs=args.epochs, seed=0)

    times = {"jaxdl fit": [], "hand-written jit+scan": [], "pytorch eager": []}
    for _ in range(args.repeats):
        times["jaxdl fit"].append(with_jaxdl(model, splits, **common))
        times["hand-written jit+scan"].append(handwritten(model, x, y, val_x, val_y, **common))
        t = torch_eager(args.model, splits.train["x"], splits.train["y"], splits.validation["x"],
                        splits.validation["y"], hidden=hidden, **common)
        if t is not None:
            times["pytorch eager"].append(t)

    per_epoch = (len(splits.train["y"]) // args.batch) * args.batch
    print(f"{name}, batch {args.batch}, {args.epochs} epochs x {len(splits.train['y'])} digits, "
          f"{args.repeats} alternating repeats, {jax.device_count()} x {jax.devices()[0].device_kind}")
    rates, fastest = {}, {}
    for name, runs in times.items():
        if not runs:
            continue
        steady = sorted(s for run in runs for s in run[1:])
        first = statistics.median(run[0] for run in runs)
        rates[name] = per_epoch / statistics.median(steady)
        fastest[name] = per_epoch / steady[len(steady) // 10]
        print(f"  {name:<24} {rates[name]:>10,.0f} examples/s steady (p10 epoch: {fastest[name]:,.0f})   "
              f"first epoch (compile) {first:6.2f} s")
    ratio = rates["jaxdl fit"] / rates["hand-written jit+scan"]
    print(f"  ratio jaxdl / hand-written (steady examples/s): {ratio:.3f}   "
          f"at the p10 epoch: {fastest['jaxdl fit'] / fastest['hand-written jit+scan']:.3f}")
    if "pytorch eager" in rates:
        print(f"  ratio jaxdl / pytorch eager (steady examples/s): {rates['jaxdl fit'] / rates['pytorch eager']:.2f}")


if __name__ == "__main__":
    main()
