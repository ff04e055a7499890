"""Question 5, "do you have the processing power and storage?", answered before training.

From the training step: its FLOPs (a multiply-add counts 2, an add or compare 1, gradients and
optimizer update included) as XLA's cost analysis counts them on the step lowered for the host's CPU
(`model_flops`: the model's arithmetic, the same whatever device runs it), and the memory analysis of
the step compiled for the run's devices (`jax.jit(train_step).lower(state, batch).compile()`: the bytes
of its arguments, outputs and temporaries on the device). The dataset's size in memory (the host arrays
of every split) and on disk (its prepared ArrayRecord files). The run time projected from the first
steps: the compiled step is run a few times and timed, times the steps of an epoch (plus the
validation pass, counted as a third of a step per example: forward only) and the epochs. Host
work between epochs (reading the metrics, writing metrics.jsonl) is not counted: it matters only
for models that train an epoch in milliseconds.
After the run, `check_projection` sets it against the epochs' measured time.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxdl import parallel
from jaxdl.data import Splits
from jaxdl.data import loader as data_loader
from jaxdl.data.splits import size
from jaxdl.train.state import TrainState
from jaxdl.train.step import train_step

TIMED_SECONDS = 0.25  # time the step for about this long (at least MIN_TIMED_STEPS steps, at most MAX_TIMED_STEPS)
MIN_TIMED_STEPS, MAX_TIMED_STEPS = 3, 50


def example_batch(splits: Splits, batch_size: int) -> dict[str, np.ndarray]:
    """A training batch of real examples ({"x", "y"} as the step takes them; from validation when
    the training split is streamed), repeated when the split is smaller than a batch."""
    arrays = splits.train if isinstance(splits.train, dict) else splits.validation
    index = np.arange(batch_size) % len(arrays["y"])
    return {"x": np.asarray(arrays["x"][index], np.float32), "y": np.asarray(arrays["y"][index])}


def step_function(*, members: int, skip_nonfinite: bool):
    """`train_step`, vmapped over a stack of `members` (0: a single state)."""
    step = functools.partial(train_step, skip_nonfinite=skip_nonfinite)
    return jax.vmap(step, in_axes=(0, None)) if members else step


def compile_step(state: TrainState, batch: dict, *, members: int, mesh: Mesh, skip_nonfinite: bool):
    """(compiled step, placed state, placed batch): `train_step` (vmapped over a stack of `members`)
    compiled for the batch sharded over `mesh`, as the run places it."""
    step = step_function(members=members, skip_nonfinite=skip_nonfinite)
    state = jax.device_put(state, parallel.replicated(mesh))
    batch = jax.device_put(batch, parallel.batch_sharded(mesh))
    return jax.jit(step).lower(state, batch).compile(), state, batch


def step_cost(compiled) -> dict:
    """{"flops", "bytes_accessed"} of one step from XLA's cost analysis (None where XLA gives none)."""
    try:
        cost = compiled.cost_analysis()
    except (NotImplementedError, RuntimeError):  # a backend without cost analysis
        cost = None
    cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
    flops, accessed = cost.get("flops"), cost.get("bytes accessed")
    return {"flops": float(flops) if flops is not None else None,
            "bytes_accessed": float(accessed) if accessed is not None else None}


def model_flops(state: TrainState, batch: dict, *, members: int = 0, skip_nonfinite: bool = False) -> float | None:
    """FLOPs of one training step on `batch` ({"x": (B, ...), "y": (B, ...)}), as XLA's cost analysis counts
    them on the step lowered for the host's CPU (not compiled): the model's arithmetic, whatever device runs
    it. An accelerator's count of its own compiled step is not that: it leaves out what the backend hands
    to a library (an H200 counted ResNet-50's step, batch 128, at 55 GFLOP, its cuDNN convolutions missing,
    against 3,040 GFLOP here). None when XLA gives no count, or the process has no CPU backend
    (JAX_PLATFORMS naming only an accelerator)."""
    try:
        cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    except RuntimeError:  # "Unknown backend cpu"
        return None
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=cpu), (state, batch))
    lowered = jax.jit(step_function(members=members, skip_nonfinite=skip_nonfinite)).lower(*abstract)
    return step_cost(lowered)["flops"]


def step_memory(compiled) -> dict:
    """Device bytes of the step: {"arguments", "outputs", "temporaries", "aliased", "code", "total"}
    (total = arguments + outputs + temporaries - aliased + code); {} when the backend gives none."""
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, RuntimeError):  # a backend without memory analysis
        stats = None
    if stats is None:
        return {}
    found = {"arguments": stats.argument_size_in_bytes, "outputs": stats.output_size_in_bytes,
             "temporaries": stats.temp_size_in_bytes, "aliased": stats.alias_size_in_bytes,
             "code": stats.generated_code_size_in_bytes}
    found = {k: int(v) for k, v in found.items()}
    found["total"] = found["arguments"] + found["outputs"] + found["temporaries"] - found["aliased"] + found["code"]
    return found


def seconds_per_step(compiled, state, batch) -> tuple[float, int]:
    """(median wall seconds of one call of `compiled(state, batch)` after a first untimed call, steps timed)."""
    jax.block_until_ready(compiled(state, batch))
    times, started = [], time.perf_counter()
    while len(times) < MAX_TIMED_STEPS and (len(times) < MIN_TIMED_STEPS
                                            or time.perf_counter() - started < TIMED_SECONDS):
        tick = time.perf_counter()
        jax.block_until_ready(compiled(state, batch))
        times.append(time.perf_counter() - tick)
    return float(np.median(times)), len(times)


def memory_bytes(splits: Splits) -> dict:
    """Host bytes of each split's arrays held in memory ({"train", "validation", "test", "total"});
    a streamed training split counts 0 here (it is read chunk by chunk)."""
    found = {}
    for name in ("train", "validation", "test"):
        arrays = getattr(splits, name)
        found[name] = int(sum(np.asarray(a).nbytes for a in arrays.values())) if isinstance(arrays, dict) else 0
    found["total"] = sum(found.values())
    return found


def disk_bytes(data_config: ml_collections.ConfigDict | None) -> int | None:
    """Bytes of the prepared dataset's files (its TFDS data directory); None when the data came from the
    caller, or cannot be found."""
    if data_config is None:
        return None
    try:
        folder = str(data_loader.open_dataset(data_config)[0].data_dir)
    except Exception:  # noqa: BLE001 (a size is a nicety: never a reason to stop a run that has its data)
        return None
    if not os.path.isdir(folder):
        return None
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)


def answer_compute(state: TrainState, splits: Splits, *, batch_size: int, epochs: int, members: int, mesh: Mesh,
                   skip_nonfinite: bool = False, data_config: ml_collections.ConfigDict | None = None) -> dict:
    """Compiles and times one training step; returns {"run": True, "flops_per_step", "bytes_accessed_per_step",
    "device_memory" (step_memory), "data_bytes" (memory_bytes), "disk_bytes", "steps_per_epoch",
    "seconds_per_step", "steps_timed", "compile_seconds", "projected_epoch_seconds", "projected_seconds"
    (compile + epochs * epoch: an upper bound when early stopping ends the run sooner), "devices",
    "answer"}. Costs are of the program on each device (the batch is split across `mesh`)."""
    if jax.process_count() > 1:
        return {"run": False, "reason": "a run of several processes (the step is compiled across them)"}
    example = example_batch(splits, batch_size)
    share = {k: v[:max(1, batch_size // int(mesh.devices.size))] for k, v in example.items()}  # one device's
    flops = model_flops(state, share, members=members, skip_nonfinite=skip_nonfinite)
    tick = time.perf_counter()
    compiled, placed, batch = compile_step(state, example, members=members, mesh=mesh,
                                           skip_nonfinite=skip_nonfinite)
    compile_seconds = time.perf_counter() - tick
    per_step, timed = seconds_per_step(compiled, placed, batch)
    steps = size(splits.train) // batch_size
    # Validation: a forward pass, about a third of a training step (forward and backward) per example.
    validation_seconds = per_step * size(splits.validation) / (3 * batch_size)
    cost = step_cost(compiled)
    result = {"run": True, "flops_per_step": flops if flops is not None else cost["flops"],
              "bytes_accessed_per_step": cost["bytes_accessed"],
              "device_memory": step_memory(compiled), "data_bytes": memory_bytes(splits),
              "disk_bytes": disk_bytes(data_config), "steps_per_epoch": steps, "batch_size": batch_size,
              "members": members, "seconds_per_step": per_step, "steps_timed": timed,
              "compile_seconds": compile_seconds, "projected_epoch_seconds": per_step * steps + validation_seconds,
              "projected_seconds": compile_seconds + (per_step * steps + validation_seconds) * epochs, "epochs": epochs,
              "devices": int(mesh.devices.size)}
    result["answer"] = sentence(result)
    return result


def check_projection(result: dict, history: list[dict], train_seconds: float) -> dict:
    """`result` (answer_compute's) with "actual": {"epoch_seconds" (median of the epochs after the first,
    which compiles), "train_seconds", "epochs_run", "projected_for_epochs_run", "ratio" (actual over
    projected epoch time)} and the answer's last sentence saying how close the projection came."""
    if not result.get("run") or not history:
        return result
    by_epoch = {r["epoch"]: r["seconds"] for r in history if "seconds" in r}  # a sweep logs each epoch per member
    seconds = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    steady = seconds[1:] or seconds
    epoch = float(np.median(steady))
    projected = result["projected_epoch_seconds"]
    actual = {"epoch_seconds": epoch, "train_seconds": float(train_seconds), "epochs_run": len(seconds),
              "projected_for_epochs_run": result["compile_seconds"] + projected * len(seconds),
              "ratio": epoch / projected if projected > 0 else None}
    result = {**result, "actual": actual}
    result["answer"] = sentence(result)
    return result


def human_bytes(count: float | None) -> str:
    if count is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def human_flops(count: float | None) -> str:
    if count is None:
        return "unknown"
    for unit, scale in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} FLOP"


def sentence(result: dict) -> str:
    memory = result["device_memory"].get("total")
    parts = [f"One training step (batch {result['batch_size']}) is {human_flops(result['flops_per_step'])} and needs "
             f"{human_bytes(memory)} of device memory; the data takes {human_bytes(result['data_bytes']['total'])} "
             f"in memory and {human_bytes(result['disk_bytes'])} on disk.",
             f"Projected: {1000 * result['seconds_per_step']:.3g} ms per step, "
             f"{result['projected_epoch_seconds']:.3g} s per epoch of {result['steps_per_epoch']} steps, "
             f"at most {result['projected_seconds']:.3g} s for "
             f"{result['epochs']} epochs (with {result['compile_seconds']:.2g} s of compiling)."]
    actual = result.get("actual")
    if actual and actual["ratio"] is not None:
        parts.append(f"Measured: {actual['epoch_seconds']:.3g} s per epoch ({actual['ratio']:.2f}x the projection; "
                     f"the epoch also validates), {actual['train_seconds']:.3g} s for the {actual['epochs_run']} "
                     f"epochs run (projected {actual['projected_for_epochs_run']:.3g} s).")
    return " ".join(parts)
