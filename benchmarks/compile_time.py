"""Compile time of random draws over a shape vs over one flat axis (jaxdl.models.flat_random).

Times XLA compilation (no persistent cache; JAX's in-memory caches cleared before each) of:

1. a dropout mask, `jax.random.bernoulli(key, 0.75, shape)` for a CNN's (32, 8, 8, 16) activations,
   Flax's way (the shape) and jaxdl's (one flat axis, reshaped);
2. `lecun_normal` for a (3, 3, 16, 32) kernel, Flax's and jaxdl's;
3. a small CNN's initialisation and its training step (conv 16 / conv 32 3x3, ReLU, dropout 0.25,
   dense 10, Adam, batch 32 of 8x8x1), once with Flax's `Conv`, `Dense`, `Dropout`, once with jaxdl's.

The two ways give the same bits (checked here: the same initial parameters and the same loss after
the step). Interleaved repeats, medians; prints the ratio jaxdl / Flax per row.

    python benchmarks/compile_time.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax

jax.config.update("jax_enable_compilation_cache", False)

import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxdl.models import conv, flat_random  # noqa: E402

LAYERS = {"flax": (nn.Conv, nn.Dense, nn.Dropout), "jaxdl": (conv.Conv, flat_random.Dense, flat_random.Dropout)}


class SmallCNN(nn.Module):
    way: str

    @nn.compact
    def __call__(self, x, train: bool):
        conv_layer, dense, dropout = LAYERS[self.way]
        for width in (16, 32):
            x = nn.relu(conv_layer(width, (3, 3), padding="SAME")(x))
            x = dropout(0.25, deterministic=not train)(x)
        return dense(10)(x.reshape(x.shape[0], -1))


def compile_seconds(function, *args) -> float:
    jax.clear_caches()
    start = time.perf_counter()
    jax.jit(function).lower(*args).compile()
    return time.perf_counter() - start


def cases():
    key = jax.random.key(0)
    mask = (32, 8, 8, 16)
    kernel = (3, 3, 16, 32)
    x = jnp.ones((32, 8, 8, 1))
    y = jnp.zeros((32,), jnp.int32)
    tx = optax.adam(1e-3)

    def model_parts(way):
        model = SmallCNN(way)

        def init(key):
            params = model.init(key, x, train=False)["params"]
            return params, tx.init(params)

        def step(params, opt_state, key):
            def loss(p):
                logits = model.apply({"params": p}, x, train=True, rngs={"dropout": key})
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            value, grads = jax.value_and_grad(loss)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, value
        return init, step

    flax_init, flax_step = model_parts("flax")
    ours_init, ours_step = model_parts("jaxdl")
    params, opt_state = jax.jit(flax_init)(key)
    # The same bits both ways: initial parameters and the loss after one step.
    same = jax.tree.map(np.array_equal, params, jax.jit(ours_init)(key)[0])
    assert all(jax.tree.leaves(same)), "initial parameters differ"
    assert jax.jit(flax_step)(params, opt_state, key)[2] == jax.jit(ours_step)(params, opt_state, key)[2]
    return [
        (f"dropout mask {mask}", (lambda k: jax.random.bernoulli(k, 0.75, mask), (key,)),
         (lambda k: flat_random.bernoulli_mask(k, 0.75, mask), (key,))),
        (f"lecun_normal {kernel}", (lambda k: nn.initializers.lecun_normal()(k, kernel), (key,)),
         (lambda k: flat_random.lecun_normal()(k, kernel), (key,))),
        ("small CNN init", (flax_init, (key,)), (ours_init, (key,))),
        ("small CNN train step", (flax_step, (params, opt_state, key)), (ours_step, (params, opt_state, key))),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        print(f"error: --repeats: must be >= 1 (got {args.repeats})", file=sys.stderr)
        return 2
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; compile seconds, median of {args.repeats}")
    print(f"{'program':<34} {'flax':>8} {'jaxdl':>8} {'jaxdl/flax':>11}")
    for name, (flax_fn, flax_args), (ours_fn, ours_args) in cases():
        timed = {"flax": [], "jaxdl": []}
        for _ in range(args.repeats):
            timed["flax"].append(compile_seconds(flax_fn, *flax_args))
            timed["jaxdl"].append(compile_seconds(ours_fn, *ours_args))
        flax_s, ours_s = statistics.median(timed["flax"]), statistics.median(timed["jaxdl"])
        print(f"{name:<34} {flax_s:>7.2f}s {ours_s:>7.2f}s {ours_s / flax_s:>10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
