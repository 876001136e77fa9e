"""Build hook only; the project's metadata is in pyproject.toml.

The wheel carries the bundle's run-time files (:data:`hkafusion_monai.io.bundle.BUNDLE_RUNTIME_FILES`: the
network definition, the preprocessing settings and the version) as package data under
``hkafusion_monai/_bundle/``, so that the installed package, and a MONAI Application Package built from it,
runs without the source tree. ``bundle/`` stays their one home; they are copied when the wheel is built.

It also installs the start-up hook ``hkafusion_monai-cli.pth`` into site-packages, for a wheel and for an editable
install alike: ``python -m monai.bundle run ...`` imports ``monai`` for several seconds before it reads a config,
and the hook installs the command-line handlers (Ctrl-C, SIGTERM, one line per error:
:func:`hkafusion_monai.utils.cli.install_at_startup`) as the interpreter starts, for that command only.
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# the list's one home, read without importing the package
_spec = importlib.util.spec_from_file_location("_bundle_files", Path(__file__).parent / "hkafusion_monai/io/bundle.py")
_bundle_files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bundle_files)
BUNDLE_RUNTIME_FILES = _bundle_files.BUNDLE_RUNTIME_FILES
#: the start-up hook, installed at the top of site-packages: site runs a .pth file's "import" line as the
#: interpreter starts; this one imports the package only for ``python -m monai.bundle`` (a cheap test first)
STARTUP_HOOK = "hkafusion_monai-cli.pth"
STARTUP_LINE = (
    'import sys; any(a.endswith("monai.bundle") for a in sys.orig_argv[1:6]) and '
    '__import__("hkafusion_monai.utils.cli", fromlist=["cli"]).install_at_startup()\n'
)


class BuildPyWithBundleFiles(build_py):
    """``build_py`` that also copies the bundle's run-time files into the built package, and the start-up hook
    beside it."""

    def _write_hook(self, folder: str) -> None:
        self.mkpath(folder)
        (Path(folder) / STARTUP_HOOK).write_text(STARTUP_LINE, encoding="utf-8")

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads <repo>/bundle itself
            # setuptools' editable wheel installs what its "install" command puts in install_lib
            self._write_hook(self.get_finalized_command("install").install_lib)
            return
        self._write_hook(self.build_lib)
        for relative in BUNDLE_RUNTIME_FILES:
            target = Path(self.build_lib) / "hkafusion_monai" / "_bundle" / relative
            self.mkpath(str(target.parent))
            self.copy_file(str(Path("bundle") / relative), str(target))


setup(cmdclass={"build_py": BuildPyWithBundleFiles})
