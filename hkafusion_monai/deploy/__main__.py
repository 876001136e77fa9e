"""``python -m hkafusion_monai.deploy -i <dicom folder> -o <output folder> [-m <model>] [-l LEVEL]``.

Exit status 0 when the fused series was written; 1 with one ``error:`` line (the input and the problem) when
the input, the selection, the geometry or the output folder is at fault, and nothing is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from hkafusion_monai.deploy.app import HKAFusionDeployApp
    from hkafusion_monai.transforms.reader import FusionInputError

    # holoscan drops the first item (the interpreter); the SDK's parser then drops the program name
    argv = [sys.executable, "hkafusion_monai.deploy", *(sys.argv[1:] if argv is None else argv)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = HKAFusionDeployApp(argv)
        app.run()
    except (FusionInputError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    written = app.writer.written if app.writer is not None else {}
    if not written.get("mr"):
        print("error: the application ended without writing a fused series (see the log above)", file=sys.stderr)
        return 1
    print(f"wrote {len(written['mr'])} fused MR instance(s) to {written['mr'][0].parent}")
    if written.get("sc"):
        print(f"wrote {len(written['sc'])} RGB secondary capture instance(s) beside them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
