"""Experiments: `run(config, workdir) -> summary`, and `python -m experiments.<name>`."""
