"""Evaluation after training: prediction passes over a split and what they say.

passes (one compiled pass per split) -> analysis (per-class scores, worst errors, overfitting),
activations (sown layer outputs), baseline (softmax regression under the same budget), members
(sweeps and ensembles), attributions (integrated gradients) and why (a few test answers explained),
review (all of it for the run report), questions (the questions before trusting a network: simpler,
good_enough, data_checks, learning_curve, compute; intervals).
"""
