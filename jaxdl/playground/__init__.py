"""The live Neural Network Playground: `python -m jaxdl.playground` (see `jaxdl.playground.app`)."""
