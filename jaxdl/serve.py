"""`python -m jaxdl.serve --workdir RUN [--port 8000]`: see `jaxdl.deploy.serve`."""

import sys

from jaxdl.deploy.serve import main

if __name__ == "__main__":
    sys.exit(main())
