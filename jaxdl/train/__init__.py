"""Training: the train state and its pure steps, optimizers, the fit loop and what keeps a run alive.

state (TrainState) -> step (train_step, train_epoch, evaluate_batches) -> optimizer (optax from a
config) -> early_stopping -> fit (compiled epochs, validation, checkpoints) -> sweep (vmapped
stacks of runs) -> build (a fresh state from a run's config). Beside them: losses, nonfinite (NaN
policy), loss_scale (float16's dynamic loss scaling), checkpoint (Orbax), digest (fingerprints), paths
(parameter path patterns), preemption (signals).

The public names are re-exported by `jaxdl`; import the rest from their modules.
"""
