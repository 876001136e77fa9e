"""``python -m hkafusion_monai.data.phantom``: write the phantom data set (see the package docstring)."""

import sys

from hkafusion_monai.data.phantom import main

sys.exit(main())
