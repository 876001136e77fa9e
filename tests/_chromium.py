"""Headless Chromium driven over the DevTools protocol, for the tests that read or click a rendered web page.

Chromium's ``--remote-debugging-pipe`` speaks the protocol as NUL-terminated JSON messages on the browser's file
descriptors 3 (commands in) and 4 (replies out), so a test needs no WebSocket client, browser driver or package
beyond Chromium itself (playwright and selenium are not among the project's requirements). Unlike
``--dump-dom`` with a fixed virtual-time budget, a page is read as soon as what the test waits for is shown, and
the test can click what a user clicks; the profile folder keeps what the page stores (``localStorage``) from one
browser to the next, as a user's browser does.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["Browser", "Page"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: the trampoline, argv (commands fd, replies fd, command...): the replies' end is first moved off 3 if it is there,
#: so that putting the commands' end on 3 cannot overwrite it
_ONTO_3_AND_4 = (
    "import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); w = os.dup(w) if w == 3 else w; "
    "os.dup2(r, 3); os.dup2(w, 4); [os.close(fd) for fd in {r, w} - {3, 4}]; os.execvp(sys.argv[3], sys.argv[3:])"
)


class Page:
    """A tab of a :class:`Browser`, attached (flat session) so that scripts run in it."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", url=url)["targetId"]
        self.session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        reply = self.browser.send(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression!r}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90) -> None:
        """Wait until a JavaScript expression is truthy in the page (what the test waits for is rendered)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} not true within {timeout:.0f} s at {self.url}:\n{self.text[-1500:]}")
            time.sleep(0.5)

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    @property
    def text(self) -> str:
        """The text a user sees (``document.body.innerText``)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    @property
    def html(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))


class Browser:
    """A headless Chromium on its own profile folder, driven through ``--remote-debugging-pipe``; a context
    manager that closes the browser.

    Args:
        chromium: the ``chromium`` command.
        profile: the profile folder (``--user-data-dir``); a second browser on the same folder sees what the
            first stored.
    """

    def __init__(self, chromium: str, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile.parent / f"{profile.name}.chromium.log"
        with open(self.log, "ab") as log:
            # a Python trampoline moves the pipes' ends onto 3 and 4, then execs the launcher (Debian's
            # /usr/bin/chromium, a script that execs the browser); sh cannot name a descriptor above 9
            self.process = subprocess.Popen(
                [sys.executable, "-c", _ONTO_3_AND_4, str(commands_read), str(replies_write), chromium, *FLAGS]
                + [f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                pass_fds=(commands_read, replies_write),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        os.close(commands_read)
        os.close(replies_write)
        self._ids = itertools.count(1)
        self._buffer = b""

    def _gone(self, what: str) -> RuntimeError:
        """The error for a browser that stopped answering, with the end of its log."""
        tail = self.log.read_text(errors="replace").splitlines()[-15:] if self.log.is_file() else []
        return RuntimeError(f"chromium {what} (exit status {self.process.poll()}); its log ends:\n" + "\n".join(tail))

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: Any) -> dict:
        """Send one protocol command and return its result (events that arrive meanwhile are dropped)."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise self._gone(f"closed its pipe before {method}") from None
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise TimeoutError(f"chromium did not answer {method} within {timeout:.0f} s")
                chunk = os.read(self._replies, 1 << 16)
                if not chunk:
                    raise self._gone(f"closed its pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> Page:
        """Open ``url`` in a new tab."""
        return Page(self, url)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError):
            pass  # already gone
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
