"""``python -m hkafusion_monai.data.phantom``: write the phantom data set (see the package docstring)."""

import sys

from .cli import main

sys.exit(main())
