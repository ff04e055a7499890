"""`python -m jaxdl.playground`: see `jaxdl.playground.app`."""

import sys

from jaxdl.playground.app import main

if __name__ == "__main__":
    sys.exit(main())
