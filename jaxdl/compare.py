"""`python -m jaxdl.compare RUN [RUN ...]`: see `jaxdl.run.compare`."""

import sys

from jaxdl.run.compare import main

if __name__ == "__main__":
    sys.exit(main())
