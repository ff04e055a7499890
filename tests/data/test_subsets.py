"""Tasks carved from a dataset: class subsets, label budgets, epochs of repeated small sets."""

import numpy as np
import pytest

from jaxdl.data import DataInfo, Splits
from jaxdl.data.subsets import common_epoch_examples, label_budget, repeat_to, select_classes
from jaxdl.errors import InputError


def splits():
    y = np.arange(40) % 4
    arrays = {"x": np.arange(40, dtype=np.float32)[:, None] * 10 + y[:, None], "y": y.astype(np.int32)}
    info = DataInfo("toy", "classification", (1,), num_classes=4, class_names=("a", "b", "c", "d"))
    return Splits(train=arrays, validation=arrays, test=arrays, info=info)


def test_select_classes_keeps_their_examples_and_renumbers_them_in_the_given_order():
    subset = select_classes(splits(), (3, 1))
    assert subset.info.num_classes == 2 and subset.info.class_names == ("d", "b")
    original = subset.test["x"][:, 0].astype(int) % 10  # the old label is in the input's last digit
    np.testing.assert_array_equal(subset.test["y"], np.where(original == 3, 0, 1))
    assert len(subset.train["y"]) == 20
    assert select_classes(splits(), ()).info.num_classes == 4  # () keeps every class


@pytest.mark.parametrize("classes", [(1,), (1, 1), (0, 7)])
def test_bad_class_lists_are_input_errors(classes):
    with pytest.raises(InputError, match="config.data.classes: bad class list"):
        select_classes(splits(), classes)


def test_a_label_budget_is_per_class_and_seeded():
    train = splits().train
    chosen = label_budget(train, 3, seed=7, num_classes=4)
    assert np.bincount(chosen["y"]).tolist() == [3, 3, 3, 3]
    np.testing.assert_array_equal(chosen["x"], label_budget(train, 3, seed=7, num_classes=4)["x"])
    assert not np.array_equal(chosen["x"], label_budget(train, 3, seed=8, num_classes=4)["x"])
    assert label_budget(train, 0, seed=7, num_classes=4) is train
    with pytest.raises(InputError, match="class 0 has only 10 training examples"):
        label_budget(train, 11, seed=0, num_classes=4)


def test_small_sets_are_repeated_whole_to_one_epoch_length():
    assert common_epoch_examples([5, 25, 50, 100, 250], 320) == 500  # every set divides it
    assert common_epoch_examples([7, 11, 13], 100) == 100  # lcm 1001 is too long: per-set lengths
    chosen = label_budget(splits().train, 2, seed=0, num_classes=4)
    repeated = repeat_to(chosen, 20)
    assert len(repeated["y"]) == 24 and np.bincount(repeated["y"]).tolist() == [6, 6, 6, 6]
