"""A hand-written JAX script that does the work of `python -m experiments.mlp` with patience off.

Same data (the digits TFDS builder and validation carve), same 512-512 MLP, Adam 1e-3, batch 64,
300 epochs, a validation pass and one host sync per epoch, a test evaluation at the end, and a
metrics.jsonl line per epoch. No framework beyond JAX, Flax, Optax. Used by `whole_run.py`.

    python benchmarks/handwritten_mlp.py [--epochs 300] [--data_dir DIR] [--out DIR]
"""

import argparse
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxdl.data import load


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        for width in (512, 512):
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(10)(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--out", default="runs/handwritten")
    args = parser.parse_args()
    start = time.perf_counter()
    splits = load(ml_collections.ConfigDict(dict(name="digits", data_dir=args.data_dir, validation_fraction=0.1,
                                                 split_seed=0, download=False)))
    x, y = jnp.asarray(splits.train["x"]), jnp.asarray(splits.train["y"])
    vx, vy = jnp.asarray(splits.validation["x"]), jnp.asarray(splits.validation["y"])
    model, tx, batch = MLP(), optax.adam(1e-3), 64
    params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
    opt_state = tx.init(params)
    steps = x.shape[0] // batch

    def loss_fn(params, bx, by):
        logits = model.apply({"params": params}, bx)
        return optax.softmax_cross_entropy_with_integer_labels(logits, by).mean(), (logits.argmax(-1) == by).mean()

    @jax.jit
    def epoch(params, opt_state, key):
        order = jax.random.permutation(key, x.shape[0])[: steps * batch].reshape(steps, batch)

        def body(carry, index):
            params, opt_state = carry
            (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x[index], y[index])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, acc)

        (params, opt_state), (losses, accs) = jax.lax.scan(body, (params, opt_state), order)
        val_loss, val_acc = loss_fn(params, vx, vy)
        return params, opt_state, (losses.mean(), accs.mean(), val_loss, val_acc)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.jsonl"), "w") as log:
        for e in range(args.epochs):
            tick = time.perf_counter()
            params, opt_state, metrics = epoch(params, opt_state, jax.random.fold_in(jax.random.PRNGKey(1), e))
            tl, ta, vl, va = (float(m) for m in jax.device_get(metrics))
            log.write(json.dumps({"epoch": e + 1, "train_loss": tl, "train_accuracy": ta, "val_loss": vl,
                                  "val_accuracy": va, "seconds": time.perf_counter() - tick}) + "\n")
    test_loss, test_acc = jax.device_get(loss_fn(params, jnp.asarray(splits.test["x"]), jnp.asarray(splits.test["y"])))
    print(json.dumps({"test_loss": float(test_loss), "test_accuracy": float(test_acc),
                      "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
