"""The command line of the Deploy application:
``python -m hkafusion_monai.deploy -i <study folder> -o <output folder> [-m <model>] [options]``.

Exit status: 0 when every derived series was written (and sent, with ``--send``); 1 with one ``error:`` line
(the input and the problem) when the input, the selection, a pair, the model or the output folder is at
fault, and nothing is written; 2 for a bad command line (one ``error:`` line naming the option, e.g. ``-o``
naming a file); 3 when the series were written but the DICOM destination refused them or could not be
reached; 130 (143) when interrupted by Ctrl-C (SIGTERM), from the first second on, with no partial series
left behind.

The signal handlers and the one-line error hook (:func:`hkafusion_monai.utils.cli.install_cli_handlers`) are
installed first thing, before the SDK and Holoscan are imported (several seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from hkafusion_monai.utils.cli import Terminated, error_line, install_cli_handlers, one_line
from hkafusion_monai.utils.errors import HKAFusionError, StorageError

__all__ = ["main", "parser"]

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_SENT = 1, 2, 3
_STACK_BYTES = 32 << 20  # what Holoscan recommends


def parser() -> argparse.ArgumentParser:
    """The application's own options (``--help`` prints them before the MONAI Deploy SDK's)."""
    p = argparse.ArgumentParser(
        prog="python -m hkafusion_monai.deploy",
        description=(
            "HKAFusion (research use only): fuse the MR series of a DICOM study with each of its CT, PET (PT) and "
            "SPECT (NM) series, writing one derived MR series per pair (docs/deploy.md)."
        ),
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-i", "--input", metavar="FOLDER", help="the study folder (default: HOLOSCAN_INPUT_PATH)")
    p.add_argument(
        "-o", "--output", metavar="FOLDER", help="where the series folders go (default: HOLOSCAN_OUTPUT_PATH)"
    )
    p.add_argument(
        "-m",
        "--model",
        metavar="MODEL",
        help="model.ts (TorchScript), model.pt (checkpoint), a folder holding one, or a bundle folder (its "
        "configs/inference.json declares the transforms) (default: HOLOSCAN_MODEL_PATH, else the source checkout's "
        "bundle/models)",
    )
    p.add_argument("--rules", metavar="FILE", help="selection rules (default: HKAFUSION_RULES, else the packaged file)")
    p.add_argument(
        "--send", metavar="AE@HOST:PORT", help="send every written series to this DICOM destination (C-STORE)"
    )
    p.add_argument(
        "--calling-ae", metavar="AE", default=None, help="this application's AE title when sending (default HKAFUSION)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace series folders of an earlier run")
    p.add_argument("--task", default="mri_pet", help="the bundle task whose network config a .pt checkpoint uses")
    p.add_argument(
        "-l",
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"],
        default="INFO",
        help="INFO: one line per selected series, per written series, and the result; DEBUG adds the SDK's and "
        "Holoscan's own logs",
    )
    p.add_argument("-h", "--help", action="store_true", help="show this help (and the SDK's options) and exit")
    return p


def _sdk_help() -> str:
    """The MONAI Deploy SDK's own options, from its parser."""
    from monai.deploy.core.arg_parser import parse_args

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parse_args([sys.executable, "--help"])
    text = out.getvalue()
    return text[text.find("options:") :] if "options:" in text else text


def _quiet_runtime(debug: bool) -> None:
    """Before the SDK (and Holoscan) load: no stack-size, CUDA or nvImageCodec notices on a CPU run.

    The stack limit is raised to Holoscan's recommended 32 MiB where the hard limit allows it (a container's
    ``--ulimit stack`` is the other way); Holoscan's own log shows errors only, unless ``debug``.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    raisable = hard == resource.RLIM_INFINITY or hard >= _STACK_BYTES
    if soft != resource.RLIM_INFINITY and soft < _STACK_BYTES and raisable:
        resource.setrlimit(resource.RLIMIT_STACK, (_STACK_BYTES, hard))
    if not debug:
        os.environ.setdefault("HOLOSCAN_LOG_LEVEL", "OFF")
        warnings.filterwarnings("ignore", message=r"Current stack size", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=r".*nvImageCodec.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)


def _check_paths(args: argparse.Namespace) -> tuple[int, str] | None:
    """``(exit status, message)`` for a missing ``-m`` or ``-i`` (1), an ``-o`` that names a file (2, a usage
    error) or that cannot be written or has too little room (1), checked before the SDK's own parser sees them
    (it would exit on its own); None when they are usable."""
    if args.model is not None and not Path(args.model).exists():
        return EXIT_ERROR, f"-m {args.model}: no such model file or folder"
    if args.input is not None and not Path(args.input).is_dir():
        return EXIT_ERROR, f"-i {args.input}: not a folder (the input is a folder holding one DICOM study)"
    output = args.output or os.environ.get("HOLOSCAN_OUTPUT_PATH")
    if output is not None and os.path.lexists(output) and not Path(output).is_dir():
        return EXIT_USAGE, f"-o {output}: exists and is not a folder (-o names the folder the derived series go into)"
    from hkafusion_monai.io.atomic import check_room

    try:  # a read-only or full output folder, found before the SDK loads and the series are fused
        check_room(output or "output", option="-o")
    except StorageError as e:
        return EXIT_ERROR, str(e)
    return None


def _signal_status(e: KeyboardInterrupt | SystemExit) -> int:
    """130 for Ctrl-C, 143 (or the code it carries) for SIGTERM."""
    return 130 if isinstance(e, KeyboardInterrupt) else (e.code if isinstance(e.code, int) else 143)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see the module docstring), except on Ctrl-C or SIGTERM,
    which end the process itself (130 or 143, :func:`_exit_now`): ``python -m hkafusion_monai.deploy`` is the
    way to run it, and an in-process caller is ended with it."""
    install_cli_handlers()  # Ctrl-C and SIGTERM from the first second, before the SDK (and Holoscan) load
    try:
        return _main(argv)
    except (KeyboardInterrupt, Terminated) as e:  # before the graph started: nothing was written
        print("interrupted: nothing was written", file=sys.stderr)
        _exit_now(_signal_status(e))


def _exit_now(status: int) -> NoReturn:
    """End the process with ``status`` at once, past the interpreter's own exit: once Holoscan is loaded (the
    signal may land while it is imported) its handlers can deliver the SIGINT again at exit (status -2, not
    130), and the graph's worker thread cannot be stopped mid-operator."""
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(status)


def _main(argv: Sequence[str] | None) -> int:
    args, rest = parser().parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if args.help:
        _quiet_runtime(debug=False)
        print(parser().format_help().rstrip())
        print("\nMONAI Deploy SDK options, also accepted (" + "-i, -o, -m and -l are the ones above):\n")
        print(_sdk_help().rstrip())
        return 0
    unknown = [a for a in rest if a.startswith("-") and a not in ("-w", "--workdir", "-t", "--triton-server-netloc")]
    if unknown:
        parser().print_usage(sys.stderr)
        print(f"error: unknown option {unknown[0]} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    _quiet_runtime(args.log_level == "DEBUG")
    problem = _check_paths(args)
    if problem is not None:
        print(f"error: {problem[1]}", file=sys.stderr)
        return problem[0]
    return _run(args, rest)


def _sdk_argv(args: argparse.Namespace, rest: list[str]) -> list[str]:
    """The SDK's command line: holoscan drops the first item (the interpreter), the SDK's parser then drops the
    program name."""
    sdk_argv = [sys.executable, "hkafusion_monai.deploy", *rest]
    for flag, value in (("-i", args.input), ("-o", args.output), ("-m", args.model)):
        if value is not None:
            sdk_argv += [flag, str(value)]
    return sdk_argv + ["-l", "DEBUG" if args.log_level == "DEBUG" else "CRITICAL"]  # the SDK logs its arguments at INFO


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    """Run the application, with Ctrl-C and SIGTERM reaching the main thread while the graph runs."""
    # here, not at the top: the SDK, Holoscan and torch (seconds to import) load after the handlers are installed
    from hkafusion_monai.deploy.app import HKAFusionDeployApp, configure_logging
    from hkafusion_monai.deploy.operators import remove_partial_output
    from hkafusion_monai.io.pacs import DEFAULT_CALLING_AE

    install_cli_handlers()  # again: Ctrl-C back from Holoscan, SIGTERM -> Terminated: both reach the loop below
    configure_logging(args.log_level)
    output = Path(args.output or os.environ.get("HOLOSCAN_OUTPUT_PATH", "output"))
    before = set(os.listdir(output)) if output.is_dir() else set()
    start = time.perf_counter()
    app = None
    try:
        app = HKAFusionDeployApp(
            _sdk_argv(args, rest),
            rules=args.rules,
            send=args.send,
            calling_ae=args.calling_ae or DEFAULT_CALLING_AE,
            overwrite=args.overwrite,
            task=args.task,
            log_level=args.log_level,
        )
        future = app.run_async()
        while True:  # the main thread waits here, so that Ctrl-C and SIGTERM reach Python at once
            install_cli_handlers()  # Holoscan installs its own signal handlers when the graph starts
            try:
                future.result(timeout=0.2)
                break
            except TimeoutError:
                continue
    except (KeyboardInterrupt, Terminated) as e:
        remove_partial_output(output, before)
        print("interrupted: no partial series left in the output folder", file=sys.stderr)
        _exit_now(_signal_status(e))
    except SystemExit as e:  # the SDK's own argument parser refused the command line (it printed why)
        if e.code in (0, None):
            return 0
        print("error: the MONAI Deploy SDK refused the command line (its reason is above; see --help)", file=sys.stderr)
        return EXIT_USAGE
    except (HKAFusionError, OSError, ValueError) as e:
        return _failed(app, e, output, debug=args.log_level == "DEBUG")
    return _report(app, output, time.perf_counter() - start)


def _failed(app: Any, e: Exception, output: Path, debug: bool) -> int:
    """The exit status and the one ``error:`` line of a failed run: 3 when the series were written but not sent."""
    if app is not None and app.sender is not None and app.writer is not None and app.writer.written:
        written = sum(len(f.written) for f in app.writer.written)
        print(f"error: {one_line(e)} (the {written} written instance(s) stay in {output})", file=sys.stderr)
        return EXIT_NOT_SENT
    if debug:
        raise e
    print(error_line(e) or f"error: {one_line(e)}", file=sys.stderr)
    return EXIT_ERROR


def _report(app: Any, output: Path, seconds: float) -> int:
    """The result line of a run that wrote every series (exit status 0), or an error when it wrote none."""
    written = app.writer.written if app.writer is not None else []
    if not written:
        print("error: the application ended without writing a fused series (run with -l DEBUG)", file=sys.stderr)
        return EXIT_ERROR
    sent = f", sent to {app.destination}" if app.sender is not None else ""
    print(
        f"HKAFusion {app.model_version}: {len(written)} derived series written to {output}{sent} "
        f"({sum(len(f.written) for f in written)} instances, {seconds:.1f} s)"
    )
    return 0
