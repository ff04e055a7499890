"""`folder:PATH`: a folder of images, one subfolder per class, as a TFDS builder.

    PATH/cat/0001.jpg, PATH/cat/0002.png, PATH/dog/a.jpg, ...          (splits carved by the loader)
    PATH/train/cat/..., PATH/validation/cat/..., PATH/test/cat/...     (the user's own splits)

Class names are the class folder names, sorted (label i = the i-th name). With split folders the
classes are those of `train`; `validation` and `test` are optional, and a class folder there that
`train` lacks is an error. Images may sit anywhere below their class folder; files that are not
images by their extension (.txt, .DS_Store, ...) and hidden files or folders are ignored; a
symbolic link that loops or points nowhere is skipped with a `warning:` line.

Each image is decoded with Pillow, turned upright by its EXIF orientation, and made grayscale (1
channel) or RGB (3 channels): RGBA and other modes with alpha drop the alpha (no blending), and a
set that mixes grayscale and colour images is all RGB. Resize rule: the whole image is resized to
`data.image_size` = (height, width) with Pillow's bilinear filter (antialiased when shrinking), no
crop, so the aspect ratio is not kept. `data.image_size = ()` (the default) keeps the images' own
size, which must then be the same for all. Examples are stored as uint8 (height, width, channels),
raw bytes (`Encoding.BYTES`), with a ClassLabel label.

A corrupt image (one Pillow cannot decode) among readable ones is skipped with a `warning:` line
that names it, printed when the folder is prepared; a class folder without any readable image is
an error. Preparing decodes every image twice (once to check all of them before anything is
written, once to write them); later runs read the prepared copy until a file or option changes.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence

import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageOps

from jaxdl.errors import InputError

logger = logging.getLogger("jaxdl")

WHERE = "config.data.name"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "validation", "test")
# Bumped when the way files become examples changes, so old prepared copies are not reused.
FORMAT = "folder-2"  # 2: pixels stored as raw bytes (Encoding.BYTES), not int64 varints
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


@dataclasses.dataclass(eq=False, repr=False)
class FolderConfig(tfds.core.BuilderConfig):
    """One prepared form of one folder; `name` is the fingerprint of its files and options.

    `files` maps a split to its (path, label) pairs (empty when the folder is already prepared:
    then `features` holds the features read back from the prepared copy).
    """

    root: str = ""
    class_names: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] = (0, 0, 0)  # (height, width, channels)
    files: dict[str, list[tuple[str, int]]] = dataclasses.field(default_factory=dict)
    features: tfds.features.FeatureConnector | None = None

    def __repr__(self) -> str:  # TFDS logs the config; the file list can be long
        return f"FolderConfig({self.name}, {self.root})"


class Folder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """The images of a class-folder tree: image uint8 (height, width, channels), label ClassLabel."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images of class folders, upright, gray or RGB, resized to data.image_size."}
    OWN_FILES = True

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        features = config.features or tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=config.image_shape, dtype=np.uint8,
                                          encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(names=list(config.class_names)),
        })
        return tfds.core.DatasetInfo(builder=self, description=f"Image folder {config.root}",
                                     features=features, supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        del dl_manager  # The files are local.
        return {split: self._generate_examples(files) for split, files in self.builder_config.files.items()}

    def _generate_examples(self, files: list[tuple[str, int]]):
        height, width, channels = self.builder_config.image_shape
        for path, label in files:
            image = to_array(decode(path), channels, (height, width))
            yield os.path.relpath(path, self.builder_config.root), {"image": image, "label": label}

    def download_and_prepare(self, *args, **kwargs) -> None:
        """TFDS's, but a failure leaves no half-written dataset folder behind."""
        try:
            super().download_and_prepare(*args, **kwargs)
        except BaseException:
            remove_unfinished(os.fspath(self.data_path))
            raise


def remove_unfinished(data_path: str) -> None:
    """Removes what a failed preparation left in `<data_dir>/folder/<fingerprint>/` (TFDS writes into
    `<version>.incomplete*` folders next to `data_path`) and the fingerprint folder once empty."""
    parent = os.path.dirname(data_path)
    if not os.path.isdir(parent):
        return
    version = os.path.basename(data_path)
    for entry in os.listdir(parent):
        if entry.startswith(f"{version}.incomplete") or (entry == version and not is_prepared_dir(data_path)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
    for folder in (parent, os.path.dirname(parent)):  # <fingerprint>/, then folder/, once empty
        if not os.listdir(folder):
            os.rmdir(folder)


def is_prepared_dir(data_path: str) -> bool:
    return os.path.isfile(os.path.join(data_path, "dataset_info.json")) and os.path.isfile(
        os.path.join(data_path, "features.json"))


def builder(path: str, data_config: ml_collections.ConfigDict, data_dir: str) -> Folder:
    """The `folder:PATH` builder (the factory registered in `jaxdl.data.sources.KINDS`).

    Checks the folder and, unless this fingerprint is prepared already, every image, before
    anything is written; raises InputError on bad input.
    """
    image_size = check_image_size(data_config.get("image_size", ()))
    root = os.path.abspath(os.path.expanduser(path))
    listing = list_files(root)
    name = fingerprint(root, listing, image_size)
    prepared = os.path.join(os.path.expanduser(data_dir), Folder.name, name, str(Folder.VERSION))
    if is_prepared_dir(prepared):
        config = FolderConfig(name=name, root=root, features=tfds.features.FeatureConnector.from_config(prepared))
    else:
        config = check_images(root, listing, image_size, name)
    return Folder(config=config, data_dir=data_dir, file_format="array_record")


def check_image_size(value) -> tuple[int, ...]:
    """() or (height, width) with positive integers."""
    if isinstance(value, (tuple, list)) and (
            len(value) == 0 or (len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                         for v in value))):
        return tuple(value)
    raise InputError("config.data.image_size", "not an image size", got=value,
                     expected="(height, width) with positive integers, or () for the images' own size")


def list_files(root: str) -> dict[str, dict[str, list[str]]]:
    """split -> class name -> sorted image paths (by extension; not decoded yet).

    Only `train` (and the optional `validation`, `test`) with split folders, only `train` without.
    """
    if not os.path.exists(root):
        raise InputError(WHERE, "folder not found", got=root, expected="folder:PATH with one subfolder per class")
    if not os.path.isdir(root):
        raise InputError(WHERE, "not a folder", got=root, expected="folder:PATH with one subfolder per class")
    subfolders = visible_subfolders(root)
    if "train" not in subfolders:
        return {"train": class_files(root, subfolders)}
    others = sorted(set(subfolders) - set(SPLITS))
    if others:
        raise InputError(WHERE, "a folder with a 'train' folder may hold only split folders (train, validation, "
                         "test)", got=others, expected="class folders inside the split folders")
    listing = {split: class_files(os.path.join(root, split), visible_subfolders(os.path.join(root, split)))
               for split in SPLITS if split in subfolders}
    for split, classes in listing.items():
        unknown = sorted(set(classes) - set(listing["train"]))
        if unknown:
            raise InputError(WHERE, f"label not present in train: class folder(s) in {split}/ that train/ lacks",
                             got=unknown, expected="a subset of " + ", ".join(listing["train"]))
    return listing


def visible_subfolders(folder: str) -> list[str]:
    """The subfolders not hidden; a link that loops or points nowhere is skipped with a warning."""
    names = []
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        raise InputError(WHERE, f"cannot list the folder ({error.strerror or error})", got=folder) from error
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                names.append(entry.name)
            elif entry.is_symlink() and not os.path.exists(entry.path):
                warn_link(entry.path, "points to nothing")
        except OSError:  # ELOOP: a link to itself
            warn_link(entry.path, "loops")
    return names


WARNED: set[str] = set()  # links already warned about in this process (a folder is listed more than once)


def warn_link(path: str, what: str) -> None:
    if path not in WARNED:
        WARNED.add(path)
        logger.warning("skipped %s: a symbolic link that %s", path, what)


def readable_file(path: str) -> bool:
    """False (and a warning) for a file entry that is a link looping or pointing nowhere."""
    try:
        os.stat(path)
    except OSError as error:
        warn_link(path, "loops" if error.errno == errno.ELOOP else "points to nothing")
        return False
    return True


def class_files(folder: str, classes: list[str]) -> dict[str, list[str]]:
    """class name -> sorted paths of the image files below `folder/<class>` (hidden entries skipped)."""
    if not classes:
        raise InputError(WHERE, "no class folders", got=folder, expected="one subfolder of images per class")
    listing = {}
    for name in classes:
        paths = []
        for parent, dirs, files in os.walk(os.path.join(folder, name)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            paths += [os.path.join(parent, f) for f in sorted(files)
                      if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
                      and readable_file(os.path.join(parent, f))]
        listing[name] = paths
    return listing


def fingerprint(root: str, listing: dict[str, dict[str, list[str]]], image_size: tuple[int, ...]) -> str:
    """A short name for the prepared form: sha256 of the image paths, sizes, modification times and options."""
    digest = hashlib.sha256(f"{FORMAT}\n{root}\n{image_size}\n".encode())
    for split in sorted(listing):
        for name in sorted(listing[split]):
            for path in listing[split][name]:
                stat = os.stat(path)
                digest.update(f"{split}\t{name}\t{os.path.relpath(path, root)}\t{stat.st_size}\t"
                              f"{stat.st_mtime_ns}\n".encode())
    return "fp_" + digest.hexdigest()[:16]


def check_images(root: str, listing: dict[str, dict[str, list[str]]], image_size: tuple[int, ...],
                 name: str) -> FolderConfig:
    """Decodes every image once: skips corrupt ones (a warning), finds the size and channels.

    Raises InputError for a class folder without a readable image, for a train split with fewer
    than two classes, and for images of different sizes when no `image_size` is given.
    """
    class_names = tuple(sorted(listing["train"]))
    if len(class_names) < 2:
        raise InputError(WHERE, "one class only: a classifier needs at least two class folders", got=list(class_names),
                         expected="two or more subfolders of images")
    files, sizes, colour = {}, {}, False
    split_folders = os.path.isdir(os.path.join(root, "train"))
    for split, classes in listing.items():
        files[split] = []
        for class_name, paths in classes.items():
            readable, bad = 0, []
            for path in paths:
                try:
                    image = decode(path)
                except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
                    bad.append((path, error))
                    continue
                readable += 1
                sizes.setdefault((image.height, image.width), path)
                colour |= image.mode not in GRAY_MODES
                files[split].append((path, class_names.index(class_name)))
            folder = os.path.join(root, split, class_name) if split_folders else os.path.join(root, class_name)
            if not readable:
                raise InputError(WHERE, f"class folder {folder} has no readable image",
                                 got=bad[0][0] if bad else "no .jpg/.png/... file",
                                 expected="JPEG or PNG images Pillow can read",
                                 hint=f"{bad[0][1]}" if bad else None)
            for path, error in bad:
                logger.warning("skipped %s: not a readable image (%s)", path, error)
    if image_size:
        height, width = image_size
    elif len(sizes) == 1:
        (height, width), = sizes
    else:
        found = ", ".join(f"{h}x{w} ({os.path.relpath(path, root)})" for (h, w), path in sorted(sizes.items())[:5])
        raise InputError("config.data.image_size", "images of different sizes: say which (height, width) to "
                         "resize them to", got=(), expected=f"e.g. --config.data.image_size='(32, 32)'; "
                         f"found height x width {found}" + (", ..." if len(sizes) > 5 else ""))
    return FolderConfig(name=name, root=root, class_names=class_names, image_shape=(height, width, 3 if colour else 1),
                        files=files)


def decode(path: str) -> Image.Image:
    """The image in `path`, fully decoded and turned upright by its EXIF orientation."""
    with Image.open(path) as image:
        image.load()
        return ImageOps.exif_transpose(image)


def to_array(image: Image.Image, channels: int, size: Sequence[int]) -> np.ndarray:
    """uint8 (height, width, channels) of `image` in gray (channels 1) or RGB (3), resized to `size`."""
    if image.mode.startswith("I"):  # 16-bit (or 32-bit integer) gray: scale 0..65535 to 0..255
        values = np.asarray(image, dtype=np.int64)
        image = Image.fromarray(((np.clip(values, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8))
    image = image.convert("L" if channels == 1 else "RGB")
    height, width = size
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if channels == 1 else array
