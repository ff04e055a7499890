"""jaxdl's `fit` against a hand-written `jax.jit` + `lax.scan` loop, side by side in one process.

Both train the same Flax MLP with the same optax Adam on the same digits training set, batch size
and epochs, validate once per epoch, and sync with the host once per epoch. Runs alternate
(A, B, A, B, ...) so machine noise hits both alike. Throughput is the steady state: the median
epoch time over epochs 2.. of every repeat (epoch 1 holds the compilation, reported apart).
With PyTorch installed it also times an eager PyTorch loop over the same work.

    python benchmarks/fit_throughput.py [--hidden 512,512] [--batch 64] [--epochs 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxdl.data import load
from jaxdl.fit import fit
from jaxdl.losses import classification_metrics
from jaxdl.models import MLP
from jaxdl.train import create_state


def handwritten(model, x, y, val_x, val_y, *, batch_size: int, epochs: int, seed: int) -> list[float]:
    """A plain jit + scan training loop with per-epoch validation; returns seconds per epoch."""
    tx = optax.adam(1e-3)
    params = model.init(jax.random.PRNGKey(seed), x[:1])["params"]
    opt_state = tx.init(params)
    steps = x.shape[0] // batch_size

    def loss_fn(params, bx, by):
        logits = model.apply({"params": params}, bx)
        return optax.softmax_cross_entropy_with_integer_labels(logits, by).mean(), logits

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def epoch(params, opt_state, key):
        order = jax.random.permutation(key, x.shape[0])[: steps * batch_size].reshape(steps, batch_size)

        def body(carry, index):
            params, opt_state = carry
            (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x[index], y[index])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), order)
        val_loss, val_logits = loss_fn(params, val_x, val_y)
        return params, opt_state, losses.mean(), val_loss, (val_logits.argmax(-1) == val_y).mean()

    key = jax.random.PRNGKey(seed)
    seconds = []
    for e in range(epochs):
        tick = time.perf_counter()
        params, opt_state, *metrics = epoch(params, opt_state, jax.random.fold_in(key, e))
        jax.device_get(metrics)
        seconds.append(time.perf_counter() - tick)
    return seconds


def with_jaxdl(model, splits, *, batch_size: int, epochs: int, seed: int) -> list[float]:
    """jaxdl's fit over the same work; returns seconds per epoch (fit's own per-epoch clock)."""
    state = create_state(model, optax.adam(1e-3), splits.info.input_shape, seed, classification_metrics)
    result = fit(state, splits.train, splits.validation, epochs=epochs, batch_size=batch_size, patience=0)
    return [record["seconds"] for record in result.history]


def torch_eager(hidden, x, y, val_x, val_y, *, batch_size: int, epochs: int, seed: int) -> list[float] | None:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    torch.manual_seed(seed)
    layers, width = [torch.nn.Flatten()], int(np.prod(x.shape[1:]))
    for size in hidden:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        width = size
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y).long()
    vx, vy = torch.from_numpy(val_x), torch.from_numpy(val_y).long()
    steps = len(tx) // batch_size
    seconds = []
    for _ in range(epochs):
        tick = time.perf_counter()
        order = torch.randperm(len(tx))
        for s in range(steps):
            index = order[s * batch_size:(s + 1) * batch_size]
            loss = torch.nn.functional.cross_entropy(net(tx[index]), ty[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = net(vx)
            float(torch.nn.functional.cross_entropy(logits, vy)), float((logits.argmax(-1) == vy).float().mean())
        seconds.append(time.perf_counter() - tick)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="512,512")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data_dir", default="")
    args = parser.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(",") if h)
    splits = load(ml_collections.ConfigDict(dict(name="digits", data_dir=args.data_dir, validation_fraction=0.1,
                                                 split_seed=0, download=False)))
    model = MLP(num_outputs=10, hidden_sizes=hidden)
    x, y = jnp.asarray(splits.train["x"]), jnp.asarray(splits.train["y"])
    val_x, val_y = jnp.asarray(splits.validation["x"]), jnp.asarray(splits.validation["y"])
    common = dict(batch_size=args.batch, epochs=args.epochs, seed=0)

    times = {"jaxdl fit": [], "hand-written jit+scan": [], "pytorch eager": []}
    for _ in range(args.repeats):
        times["jaxdl fit"].append(with_jaxdl(model, splits, **common))
        times["hand-written jit+scan"].append(handwritten(model, x, y, val_x, val_y, **common))
        t = torch_eager(hidden, splits.train["x"], splits.train["y"], splits.validation["x"],
                        splits.validation["y"], **common)
        if t is not None:
            times["pytorch eager"].append(t)

    per_epoch = (len(splits.train["y"]) // args.batch) * args.batch
    print(f"MLP {hidden}, batch {args.batch}, {args.epochs} epochs x {len(splits.train['y'])} digits, "
          f"{args.repeats} alternating repeats, {jax.device_count()} x {jax.devices()[0].device_kind}")
    rates = {}
    for name, runs in times.items():
        if not runs:
            continue
        steady = statistics.median(s for run in runs for s in run[1:])
        first = statistics.median(run[0] for run in runs)
        rates[name] = per_epoch / steady
        print(f"  {name:<24} {rates[name]:>10,.0f} examples/s steady   first epoch (compile) {first:6.2f} s")
    ratio = rates["jaxdl fit"] / rates["hand-written jit+scan"]
    print(f"  ratio jaxdl / hand-written (steady examples/s): {ratio:.3f}")
    if "pytorch eager" in rates:
        print(f"  ratio jaxdl / pytorch eager (steady examples/s): {rates['jaxdl fit'] / rates['pytorch eager']:.2f}")


if __name__ == "__main__":
    main()
