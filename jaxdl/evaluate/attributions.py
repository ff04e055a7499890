"""Why did the model answer that? Integrated gradients and gradient x input, for any jaxdl model.

Attributions are taken with respect to the model's own input (what `jaxdl.data.load` fed it in
training: pixels scaled to [0, 1], a table's standardised columns), which has the stored input's
shape, so each value belongs to one stored pixel, step or feature. The explained output is one
number per example: the logit of a class (by default the predicted one) for classification, one
output (by default the first) for regression.

Integrated gradients (Sundararajan et al., 2017) for input x, baseline b and output f:

    IG_i(x) = (x_i - b_i) * integral_0^1 df/dx_i(b + a (x - b)) da

approximated by the trapezoid rule over `steps` intervals of the straight path from b to x. The
attributions then sum to f(x) - f(b) (completeness) up to the rule's error, which `relative_gap`
reports. Gradient x input is df/dx(x) * (x - b). The default baseline is zeros in the model's
input space: a black image, a silent signal, or a table row with each numeric column at its
training mean and no category set (the standardised mean is 0).

One compiled program per (model, chunk shape, steps) computes everything for a chunk of examples:
the points of every path (`jax.vmap` over the examples and the steps), the model's outputs and
their gradients at all of them (one forward and one backward pass), and the trapezoid sums.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import parallel
from jaxdl.train.state import TrainState

DEFAULT_STEPS = 64
MAX_STEPS = 1024
# Examples per compiled call: chunks are padded to a power of two up to this, so at most
# log2(MAX_CHUNK) + 1 shapes are compiled; memory grows with chunk x (steps + 1) model passes.
MAX_CHUNK = 8
# ... and fewer for large inputs: one call holds at most this many input values, chunk x (steps + 1)
# x input size (a 224x224x3 image: one example of 65 points per call; the model's activations grow alike).
MAX_POINT_VALUES = 1 << 22


def baseline_words(stored: dict) -> str:
    """What the zero baseline is for a run whose data source stores inputs as `stored` (`DataInfo.stored`)."""
    if stored.get("dtype") == "uint8":
        return "zeros in the model's input space: a black image (every pixel 0)"
    if stored.get("kind") == "table":
        return "zeros in the model's input space: every numeric column at its training mean, no category set"
    return "zeros in the model's input space: every input value 0"


@dataclasses.dataclass
class Attributions:
    """Attributions of n examples of shape S (the model's input shape).

    Attributes:
      integrated_gradients: (n, *S) float32, summing to at_input - at_baseline (up to `gap`).
      gradient_x_input: (n, *S) float32, df/dx(x) * (x - baseline).
      targets: (n,) int64, the explained output of each example (a class, or an index into the
        flattened regression output).
      at_input, at_baseline: (n,) float32, the explained output at x and at the baseline.
      outputs: (n, *output_shape) float32, the model's outputs at x (logits for classification).
      steps: trapezoid intervals along the path.
    """

    integrated_gradients: np.ndarray
    gradient_x_input: np.ndarray
    targets: np.ndarray
    at_input: np.ndarray
    at_baseline: np.ndarray
    outputs: np.ndarray
    steps: int

    @property
    def gap(self) -> np.ndarray:
        """(n,) sum of the attributions minus (f(x) - f(baseline)), in float64."""
        total = self.integrated_gradients.reshape(len(self.targets), -1).astype(np.float64).sum(axis=1)
        return total - (self.at_input.astype(np.float64) - self.at_baseline.astype(np.float64))

    @property
    def relative_gap(self) -> np.ndarray:
        """(n,) |gap| / |f(x) - f(baseline)| (the completeness check: below 0.01 is within 1%)."""
        delta = np.abs(self.at_input.astype(np.float64) - self.at_baseline.astype(np.float64))
        return np.abs(self.gap) / np.maximum(delta, 1e-12)


def trapezoid_weights(steps: int) -> jax.Array:
    """(steps + 1,) weights of the trapezoid rule over [0, 1] in `steps` equal intervals."""
    weights = jnp.full((steps + 1,), 1.0 / steps, jnp.float32)
    return weights.at[0].set(0.5 / steps).at[-1].set(0.5 / steps)


def attribution_program(apply_fn, variables, x: jax.Array, baseline: jax.Array, targets: jax.Array, *, steps: int):
    """The compiled body: x, baseline (c, *S) float32, targets (c,) int32 (-1: the largest output at x).

    The points of every path, (c, steps + 1, *S), are made by `jax.vmap` over the examples and the
    steps, and go through the model as one batch of c * (steps + 1) inputs with one `jax.vjp`: the
    same as vmapping the model over both (a model in evaluation mode treats each example alone),
    but it compiles faster (the default CNN on digits, 8 examples: 2.1 s of CPU time against 3.1 s).

    Returns (integrated gradients (c, *S), gradient x input (c, *S), targets (c,), f(x) (c,),
    f(baseline) (c,), outputs at x (c, ...)).
    """
    count, points = len(x), steps + 1
    alphas = jnp.linspace(0.0, 1.0, points, dtype=jnp.float32)
    paths = jax.vmap(lambda xi, bi: jax.vmap(lambda a: bi + a * (xi - bi))(alphas))(x, baseline)  # (c, points, *S)
    raw, pullback = jax.vjp(lambda inputs: apply_fn(variables, inputs, train=False).astype(jnp.float32),
                            paths.reshape((count * points, *x.shape[1:])))
    outputs = raw.reshape((count, points, -1))
    targets = jnp.where(targets < 0, jnp.argmax(outputs[:, -1], axis=-1).astype(jnp.int32), targets)
    chosen = jnp.broadcast_to(jax.nn.one_hot(targets, outputs.shape[-1], dtype=jnp.float32)[:, None], outputs.shape)
    (gradients,) = pullback(chosen.reshape(raw.shape))
    gradients = gradients.reshape(paths.shape)
    delta = x - baseline
    integrated = delta * jnp.tensordot(trapezoid_weights(steps), jnp.moveaxis(gradients, 1, 0), axes=1)
    values = jnp.sum(outputs * chosen, axis=-1)  # (c, points): the explained output along each path
    return (integrated, gradients[:, -1] * delta, targets, values[:, -1], values[:, 0],
            raw.reshape((count, points, *raw.shape[1:]))[:, -1])


# Compiled once per (model, variables' structure, chunk shape, steps); the cache lives with this object.
attribution_compiled = jax.jit(attribution_program, static_argnames=("apply_fn", "steps"))


def chunk_size(n: int, max_chunk: int = MAX_CHUNK) -> int:
    """The padded number of examples per call for n examples: a power of two, at most `max_chunk`."""
    return min(1 << max(n - 1, 0).bit_length(), 1 << (max(max_chunk, 1).bit_length() - 1))


def padded(a: np.ndarray, size: int, fill) -> np.ndarray:
    """`a` (m, ...) with rows of `fill` appended up to `size` rows."""
    return np.concatenate([a, np.full((size - len(a), *a.shape[1:]), fill, a.dtype)])


def integrated_gradients(apply_fn, variables, x: np.ndarray, *, targets: np.ndarray | None = None,
                         baseline: np.ndarray | None = None, steps: int = DEFAULT_STEPS,
                         max_chunk: int = MAX_CHUNK) -> Attributions:
    """Attributions of the model `apply_fn(variables, x, train=False)` for model inputs x (n, *S).

    targets: (n,) the output to explain per example (a class index, or an index into the flattened
      regression output); None or -1: the largest output (the predicted class).
    baseline: (*S) or (n, *S); None: zeros (see the module docstring).
    steps: trapezoid intervals from the baseline to x (64 keeps completeness within 1% for the
      project's models; more for sharper models).
    max_chunk: examples per compiled call (padded to a power of two; fewer for large inputs, see
      MAX_POINT_VALUES), so memory is bounded whatever n is.
    """
    x = np.asarray(x, np.float32)
    n, shape = len(x), x.shape[1:]
    base = np.zeros_like(x) if baseline is None else np.broadcast_to(np.asarray(baseline, np.float32), x.shape)
    wanted = np.full((n,), -1, np.int32) if targets is None else np.asarray(targets, np.int32).reshape(n)
    fits = MAX_POINT_VALUES // ((steps + 1) * max(int(np.prod(shape)), 1))
    size = chunk_size(n, max(1, min(max_chunk, fits)))
    parts = []
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        count = rows.stop - rows.start
        chunk = [padded(a[rows], size, fill) for a, fill in ((x, 0), (base, 0), (wanted, -1))]
        result = attribution_compiled(apply_fn, variables, *chunk, steps=steps)
        parts.append([np.asarray(value)[:count] for value in parallel.host_get(result)])
    integrated, times_input, chosen, at_input, at_baseline, outputs = (
        np.concatenate(p) for p in zip(*parts, strict=True))
    return Attributions(integrated_gradients=integrated.reshape(n, *shape),
                        gradient_x_input=times_input.reshape(n, *shape), targets=chosen.astype(np.int64),
                        at_input=at_input, at_baseline=at_baseline, outputs=outputs, steps=steps)


def attribute(state: TrainState, x: np.ndarray, **options) -> Attributions:
    """`integrated_gradients` of a train state's model (options as there)."""
    return integrated_gradients(state.apply_fn, state.variables(), x, **options)


def not_attributable(model_config) -> str | None:
    """Why a model's inputs cannot be attributed, or None: token ids (an embedding lookup) have no gradient."""
    if model_config.get("vocab_size", 0):
        return ("the model reads token ids through an embedding, which has no gradient with respect to the ids: "
                "attributions over token ids are not computed")
    return None
