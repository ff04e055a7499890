"""One prepared check for an accelerator: the device, what `auto` steps_per_call chooses, step times and MFU.

Prints, in under 5 minutes on one GPU or TPU chip:

1. The device (kind, platform, count) and the JAX version.
2. When this jaxdl's `fit` takes `steps_per_call`: for the digits MLP and the default CNN
   (configs/mlp.py, configs/cnn.py), the steady epoch time with `auto`, 1 and `epoch`, and what
   `auto` chose (the FitResult's `steps_per_call`, when it has one).
3. For the MLP, the default CNN and ResNet-50 (`jaxdl.models`, ImageNet layout, 224x224x3, batch
   128, bfloat16 and float32): the time of one jitted `jaxdl.train_step` (median of `--steps` calls
   issued back to back, the host reading nothing in between), the step's model FLOPs
   (`jaxdl.evaluate.compute.model_flops`: counted on the step lowered for the host's CPU, since a GPU's
   count of its compiled step leaves out cuDNN's convolutions), the achieved TFLOP/s and the model
   FLOPs utilisation, MFU = FLOPs / step time / the chip's peak.

Peaks (dense, TFLOP/s) by device kind: bfloat16, and float32 as these chips run XLA's default
float32 matmuls (TF32 tensor cores on A100/H100/H200; bf16 passes on TPUs). `--peak_tflops` sets one
peak for every dtype (a chip not in the table, a CPU). Without a peak the MFU column says n/a.

`--quick` shrinks everything (the configs' `tiny` MLP and CNN fitted with `auto` only, ResNet-18 at
32x32, batch 2, 3 timed steps, 2 epochs: the same code, a tenth of ResNet-50's compile time) so the
script runs on a CPU in a test (tests/test_benchmarks.py).

    python benchmarks/accelerator.py [--quick] [--steps 20] [--resnet resnet50] [--resnet_batch 128]
                                     [--resnet_size 224] [--peak_tflops X]
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

import jaxdl
from jaxdl.evaluate.compute import model_flops, step_cost
from jaxdl.models import MLP
from jaxdl.models.resnet_imagenet import ResNetImageNet
from jaxdl.run.config import load_config

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

# device-kind substring -> (bfloat16, float32) dense peak TFLOP/s; the first match wins.
PEAK_TFLOPS = (
    ("H100 PCIe", (756.0, 378.0)),
    ("H100", (989.0, 494.5)),
    ("H200", (989.0, 494.5)),
    ("A100", (312.0, 156.0)),
    ("TPU v4", (275.0, 275.0)),
    ("TPU v5 lite", (197.0, 197.0)),
    ("TPU v5e", (197.0, 197.0)),
    ("TPU v5p", (459.0, 459.0)),
    ("TPU v5", (459.0, 459.0)),
)


def peak_for(kind: str, dtype: str, override: float) -> float | None:
    """The peak TFLOP/s of device `kind` for `dtype` ("bfloat16" or "float32"), or `override` if > 0."""
    if override > 0:
        return override
    for name, (bf16, fp32) in PEAK_TFLOPS:
        if name.lower() in kind.lower():
            return bf16 if dtype == "bfloat16" else fp32
    return None


def time_step(model, input_shape: tuple[int, ...], classes: int, batch: int, steps: int) -> dict:
    """Compiles `jaxdl.train_step` for `model` on a random batch, runs it `steps` times back to back
    (after one warm-up call) -> {"seconds": median per step, "flops": per step, "compile": seconds}."""
    state = jaxdl.create_state(model, optax.adam(1e-3), input_shape, 0, jaxdl.classification_metrics)
    rng = np.random.default_rng(0)
    data = {"x": jnp.asarray(rng.random((batch, *input_shape), dtype=np.float32)),
            "y": jnp.asarray(rng.integers(0, classes, batch, dtype=np.int32))}
    flops = model_flops(state, data)
    tick = time.perf_counter()
    compiled = jax.jit(jaxdl.train_step, donate_argnums=0).lower(state, data).compile()
    compile_seconds = time.perf_counter() - tick
    state, metrics = compiled(state, data)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(3):  # three timed runs of `steps` calls; the host syncs once per run
        tick = time.perf_counter()
        for _ in range(steps):
            state, metrics = compiled(state, data)
        jax.block_until_ready((state.params, metrics))
        times.append((time.perf_counter() - tick) / steps)
    if flops is None:  # no CPU backend in this process: the device's own count (on a GPU without cuDNN's calls)
        flops = step_cost(compiled)["flops"] or 0.0
    return {"seconds": statistics.median(times), "flops": flops, "compile": compile_seconds}


def digits_splits() -> jaxdl.Splits:
    return jaxdl.load_data(ml_collections.ConfigDict({
        "name": "digits", "data_dir": "", "validation_fraction": 0.1, "split_seed": 0, "download": False}))


STEPS_PER_CALL_CHOICES = ("auto", 1, "epoch")


def steps_per_call_report(splits, epochs: int, variant: str = "default",
                          choices: tuple = STEPS_PER_CALL_CHOICES) -> None:
    """Steady epoch time of `fit` with each of `choices` of steps_per_call (auto, 1 and epoch), for the MLP
    and the CNN of the configs' `variant`; with auto, also what it chose and the ms per step it measured
    of each candidate."""
    if "steps_per_call" not in inspect.signature(jaxdl.fit).parameters:
        print("steps_per_call: not available (this jaxdl's fit has no steps_per_call: every epoch is one scan)")
        return
    for name, config in (("mlp", "mlp.py"), ("cnn", "cnn.py")):
        cfg = load_config(os.path.join(CONFIGS, f"{config}:{variant}"))
        model = jaxdl.build_model(cfg.model, splits.info)
        cells = []
        for choice in choices:
            state = jaxdl.create_state(model, optax.adam(1e-3), splits.info.input_shape, 0,
                                       jaxdl.classification_metrics)
            result = jaxdl.fit(state, splits.train, splits.validation, epochs=epochs,
                               batch_size=cfg.train.batch_size, steps_per_call=choice)
            steady = statistics.median(r["seconds"] for r in result.history[1:] or result.history)
            found = getattr(result, "steps_per_call", None)
            chosen = found.get("chosen") if isinstance(found, dict) else found  # {"chosen", "ms_per_step"}
            measured = found.get("ms_per_step") if isinstance(found, dict) else None
            trials = ("; measured " + ", ".join(f"{name}: {ms:.3g}" for name, ms in measured.items()) + " ms/step"
                      if measured else "")
            note = f" (chose {chosen}{trials})" if choice == "auto" else ""
            cells.append(f"{choice}: {1e3 * steady:.1f} ms{note}")
        print(f"steps_per_call, {name} epoch (batch {cfg.train.batch_size}): " + ", ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU (a test)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run (3 runs)")
    parser.add_argument("--resnet", default="resnet50", choices=("resnet18", "resnet34", "resnet50"))
    parser.add_argument("--resnet_batch", type=int, default=128)
    parser.add_argument("--resnet_size", type=int, default=224, help="ResNet-50 input height and width")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each steps_per_call fit")
    parser.add_argument("--peak_tflops", type=float, default=0.0, help="the chip's peak TFLOP/s (all dtypes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.resnet, args.resnet_batch, args.resnet_size, args.epochs = 3, "resnet18", 2, 32, 2
    if min(args.steps, args.resnet_batch, args.resnet_size, args.epochs) < 1 or args.peak_tflops < 0:
        print("error: --steps/--resnet_batch/--resnet_size/--epochs: must be >= 1, --peak_tflops >= 0 "
              f"(got {args.steps}/{args.resnet_batch}/{args.resnet_size}/{args.epochs}, {args.peak_tflops})",
              file=sys.stderr)
        return 2
    device = jax.devices()[0]
    print(f"device: {jax.device_count()} x {device.device_kind} ({device.platform}); jax {jax.__version__}")
    splits = digits_splits()
    variant = "tiny" if args.quick else "default"
    # --quick: auto alone (it times the candidates itself): 4 s here instead of 11 s for three fits of each model
    steps_per_call_report(splits, args.epochs, variant, ("auto",) if args.quick else STEPS_PER_CALL_CHOICES)
    info = splits.info
    cnn = jaxdl.build_model(load_config(os.path.join(CONFIGS, f"cnn.py:{variant}")).model, info)
    side = args.resnet_size
    cases = [
        ("mlp 512-512 (digits)", MLP(num_outputs=10, hidden_sizes=(512, 512)), info.input_shape, 64, "float32"),
        (f"cnn {variant} (digits)", cnn, info.input_shape, 64, "float32"),
    ] + [(f"{args.resnet} {side}x{side}", ResNetImageNet(num_outputs=1000, architecture=args.resnet,
                                                         dtype=jnp.dtype(dt)),
          (side, side, 3), args.resnet_batch, dt) for dt in ("bfloat16", "float32")]
    print(f"{'model':<22} {'dtype':<9} {'batch':>5} {'step':>10} {'GFLOP/step':>11} {'TFLOP/s':>8} {'MFU':>7} "
          f"{'compile':>8}")
    for label, model, shape, batch, dtype in cases:
        row = time_step(model, tuple(shape), 1000 if "resnet" in label else 10, batch, args.steps)
        achieved = row["flops"] / row["seconds"] / 1e12
        peak = peak_for(device.device_kind, dtype, args.peak_tflops)
        mfu = f"{100 * achieved / peak:6.1f}%" if peak and row["flops"] else "    n/a"
        print(f"{label:<22} {dtype:<9} {batch:>5} {1e3 * row['seconds']:>7.2f} ms {row['flops'] / 1e9:>11.3g} "
              f"{achieved:>8.3f} {mfu:>7} {row['compile']:>6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
