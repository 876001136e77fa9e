"""Command-line behaviour shared by the bundle workflows and the Deploy application.

:func:`install_cli_handlers`:

- **Ctrl-C works, from the first second.** Python's own SIGINT handler is installed, also where the process
  was started with SIGINT ignored (a background job of a shell script) and where Holoscan (imported with
  ``monai`` when the MONAI Deploy SDK is installed) replaced it, so Ctrl-C raises ``KeyboardInterrupt``.
- **SIGTERM cleans up.** SIGTERM raises :class:`Terminated` (a ``SystemExit(143)``) in the main thread, so
  ``finally`` blocks (the atomic writers' temporary files) and the run-status handlers run, instead of the
  process vanishing; one that arrives while the interpreter exits still ends it with 143, never 0.
- **One line per error.** An uncaught exception a user can cause ends with one line, :func:`error_line`:
  ``error: <message>`` for an :class:`~hkafusion_monai.utils.errors.HKAFusionError` anywhere in its chain (MONAI's
  ``ConfigExpression`` wrappers, and a DataLoader worker's re-raised copy, are left out), and
  ``error: <file>: <problem>`` for an ``OSError`` that names a file (a path that is missing, a file where a
  folder must be, no permission). The full traceback is printed first when ``HKAFUSION_DEBUG=1``.
  Interruptions print one line too. Other exceptions keep their traceback: they are bugs, and the traceback
  is what a bug report needs.

When it is installed:

- ``python -m monai.bundle run ...`` imports ``monai`` (several seconds) before it reads a config, so the
  installed package adds a start-up hook, ``hkafusion_monai-cli.pth`` in site-packages (see ``setup.py``), which
  calls :func:`install_at_startup` when the interpreter starts: it installs the handlers for that command
  only, and does nothing (at no cost) for any other. The bundle configs also import
  :mod:`hkafusion_monai.utils.bundle_cli`, which installs them again (a checkout run without the hook, and after
  anything that replaced them).
- ``python -m hkafusion_monai.deploy`` installs them first thing in ``main()``, before the SDK is imported.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from types import TracebackType

from hkafusion_monai.utils.errors import HKAFusionError

__all__ = [
    "QuietRefusedInput",
    "Terminated",
    "debug_enabled",
    "error_line",
    "exception_chain",
    "install_at_startup",
    "install_cli_handlers",
    "one_line",
    "project_error",
    "restore_sigint",
    "runs_module",
]

DEBUG_VARIABLE = "HKAFUSION_DEBUG"

#: the ``python -m`` modules whose processes get the handlers at start-up (:func:`install_at_startup`)
STARTUP_MODULES = ("monai.bundle",)


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread: ``SystemExit(128 + SIGTERM)``, so that the process exits 143 after
    its clean-up, and a caller can tell it from another ``SystemExit`` (an argument parser's usage error)."""


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and its causes and contexts, outermost first (each once)."""
    found: list[BaseException] = []
    while exc is not None and all(exc is not e for e in found):
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def project_error(exc: BaseException | None) -> HKAFusionError | None:
    """The first :class:`HKAFusionError` in ``exc``'s chain of causes and contexts, or None."""
    return next((e for e in exception_chain(exc) if isinstance(e, HKAFusionError)), None)


def one_line(text: BaseException | str) -> str:
    """An error's message (or any text) on one line; an exception without a message gives its type's name."""
    words = " ".join(str(text).split())
    return words or (type(text).__name__ if isinstance(text, BaseException) else "")


def _our_error_names() -> set[str]:
    names, todo = set(), [HKAFusionError]
    while todo:
        kind = todo.pop()
        names.add(kind.__name__)
        todo.extend(kind.__subclasses__())
    return names


#: errors about a path that a user names: never a bug of ours, one line even without a file name
_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)

#: the last line of a traceback that a DataLoader worker formatted into its re-raised error's message
_WORKER_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+): (.+)$")


def _worker_error(exc: BaseException) -> str | None:
    """The message of a project error raised in a DataLoader worker: torch re-raises it in the main process as a
    new exception whose message holds the worker's formatted traceback (and no ``__cause__``)."""
    text = str(exc)
    if "Original Traceback (most recent call last)" not in text:
        return None
    ours = _our_error_names()
    for line in reversed(text.strip().splitlines()):
        match = _WORKER_ERROR.match(line.strip())
        if match and match.group(1) in ours:
            return match.group(2)
    return None


def error_line(exc: BaseException) -> str | None:
    """The one line an uncaught ``exc`` ends the command with, or None for a bug (which keeps its traceback).

    - an :class:`HKAFusionError` in the chain: ``error: <its message>``;
    - one re-raised from a DataLoader worker: the same, from the worker's traceback text;
    - an ``OSError`` naming a file (missing, a file where a folder must be, a link loop, no permission):
      ``error: <file>: <problem>``; one about a path without the file's name (MONAI's missing
      ``--config_file``): ``error: <its message>``.
    """
    ours = project_error(exc)
    if ours is not None:
        return f"error: {one_line(ours)}"
    for e in exception_chain(exc):
        message = _worker_error(e)
        if message is not None:
            return f"error: {one_line(message)}"
    for e in exception_chain(exc):
        if isinstance(e, OSError) and e.filename is not None:
            names = str(e.filename) + (f" -> {e.filename2}" if e.filename2 is not None else "")
            return f"error: {names}: {one_line(e.strerror or e)}"
        if isinstance(e, _PATH_ERRORS):  # raised with a message only, e.g. MONAI's "Cannot find the config file"
            return f"error: {one_line(e)}"
    return None


class QuietRefusedInput(logging.Filter):
    """A filter for an ignite engine's logger: it drops the engine's own ERROR lines ("... run is terminating
    due to exception: applying transform <... object at 0x7f...>") while an error that ends the command with its
    one clear line (:func:`error_line`) is in flight, so that line is the only one; a bug's, and every line
    under ``HKAFUSION_DEBUG=1``, are kept.

    ignite logs these inside its ``except`` block, so the exception is the one being handled
    (``sys.exc_info()``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or debug_enabled():
            return True
        exc = sys.exc_info()[1]
        return exc is None or "terminating due to exception" not in record.getMessage() or error_line(exc) is None

    @classmethod
    def attach(cls, engine: object) -> None:
        """Add the filter to ``engine.logger`` once."""
        log = getattr(engine, "logger", None)
        if isinstance(log, logging.Logger) and not any(isinstance(f, cls) for f in log.filters):
            log.addFilter(cls())


def debug_enabled() -> bool:
    """Whether ``HKAFUSION_DEBUG=1`` asks for tracebacks."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if isinstance(value, KeyboardInterrupt) and project_error(value) is None:
        if debug_enabled():
            traceback.print_exception(kind, value, tb, file=sys.stderr)
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return
    line = error_line(value)
    if line is None:
        sys.__excepthook__(kind, value, tb)
        return
    if debug_enabled():
        traceback.print_exception(kind, value, tb, file=sys.stderr)
    else:
        print(f"(set {DEBUG_VARIABLE}=1 for the traceback)", file=sys.stderr)
    print(line, file=sys.stderr)


#: the exit status of a SIGTERM that arrived, for :func:`_exit_status_at_exit`
_terminated: list[int] = []
_at_exit_registered: list[bool] = []


def _terminate(signum: int, frame: object) -> None:
    _terminated.append(128 + signum)
    raise Terminated(128 + signum)


def _exit_status_at_exit() -> None:
    """The last exit handler: a SIGTERM that arrived while the interpreter exits (after the outputs were
    published, in another exit handler, where its ``Terminated`` is printed and ignored) still ends the process
    with 143, not 0; and from here on SIGTERM ends it by the signal itself, as nothing is left to clean up."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _terminated:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_terminated[0])


def restore_sigint() -> None:
    """Put Python's own SIGINT handler back (main thread only), whatever replaced or ignored it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def install_cli_handlers() -> None:
    """Install the behaviour above for this process (idempotent; signals only from the main thread)."""
    sys.excepthook = _excepthook
    if threading.current_thread() is threading.main_thread():
        restore_sigint()
        signal.signal(signal.SIGTERM, _terminate)
    if not _at_exit_registered:  # once, at the first install: exit handlers run last registered first
        _at_exit_registered.append(True)
        atexit.register(_exit_status_at_exit)


def runs_module(argv: Sequence[str], modules: Sequence[str] = STARTUP_MODULES) -> bool:
    """Whether a command line (``sys.orig_argv``) is ``python [options] -m <one of modules> ...``."""
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg.startswith("--") or arg == "-":  # a script, stdin, --help ...
            return False
        for i, flag in enumerate(arg[1:], start=1):  # python -u -m x, -um x, -mx
            if flag == "m":
                rest = arg[i + 1 :] or (args[0] if args else "")
                return rest in modules
            if flag == "c":
                return False
            if flag in "XW":  # options with a value: -X importtime, -Wignore
                if i + 1 == len(arg) and args:
                    args.pop(0)
                break
    return False


def install_at_startup(argv: Sequence[str] | None = None) -> bool:
    """The start-up hook's call (``hkafusion_monai-cli.pth``): install the handlers when this interpreter runs one
    of :data:`STARTUP_MODULES` (``python -m monai.bundle ...``; ``argv`` default ``sys.orig_argv``), else do
    nothing. Returns whether it installed them."""
    if not runs_module(list(sys.orig_argv if argv is None else argv)):
        return False
    install_cli_handlers()
    return True
