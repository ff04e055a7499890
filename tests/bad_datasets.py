"""A test-only TFDS builder of small broken datasets, one BuilderConfig per way data goes wrong.

`register()` adds it to jaxdl's builder registry as `bad_data`, so `--config.data.name=bad_data/<config>`
reaches it through the real TFDS door (prepared as ArrayRecord like any project builder).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

CONFIGS = {
    "label_out_of_range": "one train label is -1 (TFDS's 'no label'), outside 0..2",
    "nan_input": "one train input holds a NaN",
    "inf_input": "one test input holds +inf",
    "one_per_class": "one train example per class: nothing left to carve a validation split from",
    "ragged_input": "inputs of varying length",
    "text_input": "inputs are strings",
}


class BadData(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """3 classes, inputs (4,) float32 unless the config says otherwise."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name, description=text) for name, text in CONFIGS.items()]

    def _info(self) -> tfds.core.DatasetInfo:
        name = self.builder_config.name
        if name == "ragged_input":
            x = tfds.features.Tensor(shape=(None,), dtype=np.float32)
        elif name == "text_input":
            x = tfds.features.Text()
        else:
            x = tfds.features.Tensor(shape=(4,), dtype=np.float32)
        features = tfds.features.FeaturesDict({"x": x, "label": tfds.features.ClassLabel(num_classes=3)})
        return tfds.core.DatasetInfo(builder=self, features=features, supervised_keys=("x", "label"))

    def _split_generators(self, dl_manager):
        del dl_manager
        train = 3 if self.builder_config.name == "one_per_class" else 30
        return {"train": self._generate_examples(train, test=False), "test": self._generate_examples(6, test=True)}

    def _generate_examples(self, count: int, test: bool):
        name = self.builder_config.name
        rng = np.random.default_rng(int(test))
        for i in range(count):
            x = rng.normal(size=(4,)).astype(np.float32)
            label = i % 3
            if name == "label_out_of_range" and not test and i == 7:
                label = -1
            if name == "nan_input" and not test and i == 5:
                x[2] = np.nan
            if name == "inf_input" and test and i == 1:
                x[0] = np.inf
            if name == "ragged_input":
                x = x[: 1 + i % 4]
            if name == "text_input":
                x = f"example {i}"
            yield i, {"x": x, "label": label}


def register() -> None:
    from jaxdl.data import tfds_door

    tfds_door.PROJECT_BUILDERS["bad_data"] = BadData
