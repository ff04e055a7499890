"""Project builders whose examples are sequences of a length the user picks.

The length is a TFDS builder config named `length_<n>`, so each length is prepared once into its
own folder. A few lengths are declared (the first is the default); any other is made on demand,
from `data.name = "adding/length_73"` or from `data.sequence_length = 73`.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds


@dataclasses.dataclass(eq=False)
class LengthConfig(tfds.core.BuilderConfig):
    """A builder config that fixes the sequence length (steps, or frames)."""

    length: int = 0


def length_config(length: int) -> LengthConfig:
    return LengthConfig(name=f"length_{length}", length=length, description=f"sequences of length {length}")


class SequenceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the project's sequence builders: `BUILDER_CONFIGS` are `length_config`s."""

    MIN_LENGTH = 1

    def __init__(self, *, config: str | tfds.core.BuilderConfig | None = None, **kwargs):
        if isinstance(config, str) and config.startswith("length_") and config[len("length_"):].isdigit():
            config = self.config_for_length(int(config[len("length_"):]))
        super().__init__(config=config, **kwargs)

    @classmethod
    def config_for_length(cls, length: int) -> LengthConfig:
        """The declared config of that length, or a new one."""
        return cls.builder_configs.get(f"length_{length}") or length_config(length)

    @property
    def length(self) -> int:
        return self.builder_config.length
