"""Config files of the experiments, `get_config(variant) -> ConfigDict`; installed with jaxdl, so that
`--config NAME[:VARIANT]` (e.g. `mlp:tiny`) finds them from any folder (jaxdl.run.config.resolve_config)."""
