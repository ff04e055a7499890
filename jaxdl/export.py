"""`python -m jaxdl.export --workdir RUN --output FILE`: see `jaxdl.deploy.export`."""

import sys

from jaxdl.deploy.export import main

if __name__ == "__main__":
    sys.exit(main())
