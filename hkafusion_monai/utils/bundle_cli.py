"""Imported by the bundle configs (``"$import hkafusion_monai.utils.bundle_cli"``, after ``monai``): installs the
command-line behaviour of :func:`hkafusion_monai.utils.cli.install_cli_handlers` for
``python -m monai.bundle run ...``. A config's ``imports`` run while MONAI parses it, before any component is
built, so errors while building the workflow are covered too. Library code never imports this module."""

from hkafusion_monai.utils.cli import install_cli_handlers

install_cli_handlers()
