"""`python -m jaxdl.explain --workdir RUN INPUTS...`: see `jaxdl.deploy.explain`."""

import sys

from jaxdl.deploy.explain import main

if __name__ == "__main__":
    sys.exit(main())
