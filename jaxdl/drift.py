"""`python -m jaxdl.drift --workdir RUN NEW_DATA...`: see `jaxdl.deploy.drift_report`."""

import sys

from jaxdl.deploy.drift_report import main

if __name__ == "__main__":
    sys.exit(main())
