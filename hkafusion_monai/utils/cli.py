"""Command-line behaviour shared by the bundle workflows and the Deploy application.

:func:`install_cli_handlers`:

- **Ctrl-C works.** Importing ``monai`` with the MONAI Deploy SDK installed also imports Holoscan, which
  replaces Python's SIGINT handler; Python's own handler is put back, so Ctrl-C raises ``KeyboardInterrupt``.
- **SIGTERM cleans up.** SIGTERM raises ``SystemExit(143)`` in the main thread, so ``finally`` blocks (the
  atomic writers' temporary files) and the run-status handlers run, instead of the process vanishing.
- **One line per error.** An uncaught exception that is, or was caused by, an
  :class:`~hkafusion_monai.utils.errors.HKAFusionError` prints ``error: <message>`` as the last line of stderr
  (MONAI's ``ConfigExpression`` wrappers and their tracebacks are left out); the full traceback is printed
  first when ``HKAFUSION_DEBUG=1``. Interruptions print one line too. Other exceptions keep their traceback:
  they are bugs, and the traceback is what a bug report needs.

The bundle configs import :mod:`hkafusion_monai.utils.bundle_cli`, which calls it once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from types import TracebackType

from hkafusion_monai.utils.errors import HKAFusionError

__all__ = ["install_cli_handlers", "project_error", "restore_sigint"]

DEBUG_VARIABLE = "HKAFUSION_DEBUG"


def project_error(exc: BaseException | None) -> HKAFusionError | None:
    """The first :class:`HKAFusionError` in ``exc``'s chain of causes and contexts, or None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, HKAFusionError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    debug = os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes")
    ours = project_error(value)
    if isinstance(value, KeyboardInterrupt) and ours is None:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return
    if ours is None:
        sys.__excepthook__(kind, value, tb)
        return
    if debug:
        traceback.print_exception(kind, value, tb, file=sys.stderr)
    else:
        print(f"(set {DEBUG_VARIABLE}=1 for the traceback)", file=sys.stderr)
    print(f"error: {_one_line(str(ours))}", file=sys.stderr)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def restore_sigint() -> None:
    """Put Python's own SIGINT handler back (main thread only), whatever replaced it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def install_cli_handlers() -> None:
    """Install the behaviour above for this process (idempotent; signals only from the main thread)."""
    sys.excepthook = _excepthook
    if threading.current_thread() is threading.main_thread():
        restore_sigint()
        signal.signal(signal.SIGTERM, _terminate)
