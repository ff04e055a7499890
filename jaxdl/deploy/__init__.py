"""Deployment: from a finished workdir to answers on new data.

run_loader (`load_run` -> `Predictor`) -> inputs (files to stored-form arrays) -> predict (the
`python -m jaxdl.predict` command), export (`python -m jaxdl.export`: a StableHLO file that
needs only jax and numpy) and serve (`python -m jaxdl.serve`: HTTP, batched; batcher,
serve_metrics, serve_page). drift_features (what a run keeps of its training data:
drift_reference.json) -> drift (`check_drift`, `DriftMonitor`: new data against it) ->
drift_report (the `python -m jaxdl.drift` command and its page). explainer (`Explainer`: attributions
of new inputs) -> explain (the `python -m jaxdl.explain` command; the server's /explain). See docs/deploy.md.
"""
