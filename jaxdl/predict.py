"""`python -m jaxdl.predict --workdir RUN INPUTS...`: see `jaxdl.deploy.predict`."""

import sys

from jaxdl.deploy.predict import main

if __name__ == "__main__":
    sys.exit(main())
