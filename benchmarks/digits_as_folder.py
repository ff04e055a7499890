"""Writes scikit-learn's 1,797 digits as grayscale PNG files in class folders, for `folder:PATH`.

    python benchmarks/digits_as_folder.py [--out /tmp/digits_png] [--size 32]

Each 8x8 digit (0..16) becomes a size x size uint8 PNG (0..255, each pixel a block: nearest
neighbour). The split is the built-in `digits` set's own (the same stratified 20% test images), as
split folders `OUT/train/<digit>/<index>.png` and `OUT/test/<digit>/<index>.png`, so the CNN's test
accuracy on the folder compares with `python -m experiments.cnn` on the same test images. Prints
the command that trains on it.
"""

import argparse
import os
import shutil

from PIL import Image

from jaxdl.data.digits import digit_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/digits_png")
    parser.add_argument("--size", type=int, default=32, help="side of the written images, in pixels")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    for split, test in (("train", False), ("test", True)):
        images, labels, indices = digit_images(test)
        for image, label, index in zip(images, labels, indices, strict=True):
            folder = os.path.join(args.out, split, str(label))
            os.makedirs(folder, exist_ok=True)
            big = Image.fromarray(image[..., 0]).resize((args.size, args.size), Image.Resampling.NEAREST)
            big.save(os.path.join(folder, f"{index:04d}.png"))
    print(f"wrote {len(list_pngs(args.out))} PNG files under {args.out}; train a CNN on them with\n"
          f"  python -m experiments.cnn --config.data.name=folder:{args.out} --workdir /tmp/digits_png_run")


def list_pngs(root: str) -> list[str]:
    return [f for _, _, files in os.walk(root) for f in files if f.endswith(".png")]


if __name__ == "__main__":
    main()
