"""Imported by the bundle configs (``"$import hkafusion_monai.utils.bundle_cli"``, after ``monai``): installs the
command-line behaviour of :func:`hkafusion_monai.utils.cli.install_cli_handlers` for
``python -m monai.bundle run ...``. A config's ``imports`` run while MONAI parses it, before any component is
built, so errors while building the workflow are covered too. Library code never imports this module.

``python -m monai.bundle`` imports ``monai`` (seconds) before it reads a config: the installed start-up hook
(``hkafusion_monai-cli.pth``, :func:`hkafusion_monai.utils.cli.install_at_startup`) has installed the same
handlers when the interpreter started; this import installs them again, for a checkout run without the hook and
after anything that replaced them since."""

from hkafusion_monai.utils.cli import install_cli_handlers

install_cli_handlers()
