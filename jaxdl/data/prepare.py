"""Prepare a dataset once, so later runs read it offline.

    python -m jaxdl.data.prepare NAME [--data_dir DIR]

Project builders (`digits`, ...) need nothing else; catalog sets (`mnist`, `cifar10`, ...) need the
network and, for some builders, TensorFlow (`pip install 'jaxdl[catalog]'`).
"""

from __future__ import annotations

import argparse
import sys

from jaxdl.data import tfds_door
from jaxdl.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxdl.data.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a jaxdl builder or TFDS catalog name")
    parser.add_argument("--data_dir", default="",
                        help="TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    args = parser.parse_args(argv)
    try:
        builder = tfds_door.get_builder(args.name, args.data_dir or None)
        tfds_door.prepare(builder)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"prepared {builder.name} in {builder.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
