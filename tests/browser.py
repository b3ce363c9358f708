"""Open an HTML file in headless Chromium and report what a person would see.

Drives Debian's `chromium` over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages separated by NUL bytes on file descriptors 3 and 4), so it needs no package beyond the
browser: no websocket client, no port. For one page it records every <img> with its natural size
after decoding, every console error, uncaught exception and browser log error, and can write a
PNG screenshot of the whole page.

    python tests/browser.py runs/laptop/report/report.html --screenshot runs/laptop/report/screenshot.png
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-pipe")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


@dataclass
class PageReport:
    url: str
    images: list[dict] = field(default_factory=list)      # {alt, width, height, error}
    errors: list[str] = field(default_factory=list)       # console errors, exceptions, log errors
    title: str = ""
    height: int = 0
    screenshot: str | None = None


TRAMPOLINE = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); os.dup2(w, 4); "
              "os.close(r); os.close(w); os.execv(sys.argv[3], sys.argv[3:])")


def _high_fd(fd: int) -> int:
    """A copy of fd numbered 10 or above (so the shell's 3< and 4> cannot clobber it)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class Chromium:
    """One headless browser process and its DevTools pipe."""

    def __init__(self, executable: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_browser_r, to_browser_w = (_high_fd(x) for x in os.pipe())
        from_browser_r, from_browser_w = (_high_fd(x) for x in os.pipe())
        args = [executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        # The browser reads commands from fd 3 and writes replies to fd 4: a small Python
        # trampoline moves the pipe ends there, then becomes the browser.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TRAMPOLINE, str(to_browser_r), str(from_browser_w), *args],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.w, self.r = to_browser_w, from_browser_r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    # -- protocol ---------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for the browser")
            ready, _, _ = select.select([self.r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise BrowserError(f"the browser closed its pipe (exit status {self.proc.poll()})")
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str | None = None) -> dict:
        deadline = time.monotonic() + self.timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                return ev
        while True:
            ev = self._read_message(deadline)
            self.events.append(ev)
            if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                return ev

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.w, self.r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


IMAGES_JS = """
Promise.all(Array.from(document.images).map(img =>
  img.decode().then(
    () => ({alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, error: null}),
    e => ({alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, error: String(e)}))))
"""


def _errors(events: list[dict], session: str) -> list[str]:
    out = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
    return out


def inspect(html_path: str | Path, screenshot: str | Path | None = None, width: int = 1280,
            height: int = 900, executable: str | None = None, timeout: float = 60.0) -> PageReport:
    """Load a local HTML file, wait for it and its images, and report images, errors, and
    optionally write a full-page PNG screenshot."""
    exe = executable or find_chromium()
    if exe is None:
        raise BrowserError("no chromium found (" + ", ".join(CANDIDATES) + ")")
    url = Path(html_path).resolve().as_uri()
    report = PageReport(url)
    with Chromium(exe, timeout) as b:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.send(f"{domain}.enable", session=session)
        b.send("Emulation.setDeviceMetricsOverride",
               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
        b.send("Page.navigate", {"url": url}, session)
        b.wait_event("Page.loadEventFired", session)
        res = b.send("Runtime.evaluate", {"expression": IMAGES_JS, "awaitPromise": True,
                                          "returnByValue": True}, session)
        report.images = res.get("result", {}).get("value", [])
        report.title = b.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                              session).get("result", {}).get("value", "")
        metrics = b.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics.get("contentSize")
        report.height = int(size["height"])
        if screenshot is not None:
            shot = b.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": report.height, "scale": 1}}, session)
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            report.screenshot = str(screenshot)
        # let late console messages arrive
        b.send("Runtime.evaluate", {"expression": "1"}, session)
        report.errors = _errors(b.events, session)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html")
    ap.add_argument("--screenshot", help="write a full-page PNG screenshot here")
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args(argv)
    try:
        r = inspect(args.html, args.screenshot, width=args.width)
    except BrowserError as e:
        print(f"browser: error: {e}", file=sys.stderr)
        return 2
    bad = [i for i in r.images if not i["width"] or i["error"]]
    print(f"{r.url}: {len(r.images)} images ({len(bad)} not decoded), {len(r.errors)} errors, "
          f"page height {r.height} px" + (f"; screenshot {r.screenshot}" if r.screenshot else ""))
    for e in r.errors:
        print(f"  {e}")
    return 1 if bad or r.errors else 0


if __name__ == "__main__":
    sys.exit(main())
