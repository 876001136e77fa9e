"""``python -m hkafusion_monai.deploy``: the Deploy application's command line (:mod:`hkafusion_monai.deploy.cli`)."""

import sys

from hkafusion_monai.deploy.cli import main

if __name__ == "__main__":
    sys.exit(main())
