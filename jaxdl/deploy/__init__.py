"""Deployment: from a finished workdir to answers on new data.

run_loader (`load_run` -> `Predictor`) -> inputs (files to stored-form arrays) -> predict (the
`python -m jaxdl.predict` command) and export (`python -m jaxdl.export`: a StableHLO file that
needs only jax and numpy). See docs/deploy.md.
"""
