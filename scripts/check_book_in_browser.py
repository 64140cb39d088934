#!/usr/bin/env python3
"""Build the book, open pages in headless Chromium, and fail if math or figures do not show.

    python scripts/check_book_in_browser.py              # build with -W -n --all, then check
    python scripts/check_book_in_browser.py --no-build   # check the existing _build/html

For each page it waits for MathJax, then fails if visible text still holds raw ``$$``, ``\\(`` or
``\\[`` TeX, if math elements were not typeset (no ``mjx-container``), if MathJax reports a TeX
error, if a local ``<img>`` did not load (``naturalWidth`` 0), or if a widget shows as text (its
Python repr or an error) instead of being drawn. Screenshots of whole pages go
to ``_build/screenshots/``. The machine may be offline: MathJax 3 (npm package ``mathjax@3``) is
installed once into ``~/.cache/aelib-book/`` (``$AELIB_BOOK_CACHE``) and served on 127.0.0.1 in
place of the CDN; other outside hosts are blocked, and outside images (the Colab badge) are listed
but not checked. Needs only the standard library, Debian's ``chromium`` and ``npm`` (once).

Exit status: 0 all pages pass (or Chromium is missing: SKIPPED), 1 a check failed, 2 the build failed.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PAGES = ("book/intro.html", "notebooks/02_encoder_decoder_objective.html",
         "notebooks/07_latent_explorer.html", "book/scaling.html")
CACHE = Path(os.environ.get("AELIB_BOOK_CACHE") or Path.home() / ".cache" / "aelib-book")
MATHJAX_CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/mathjax@3[^/\"']*/es5/")
MATHJAX_PREFIX = "/__mathjax__/"
WIDTH, HEIGHT, MAX_SHOT_HEIGHT = 1280, 900, 16000
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                  "--no-default-browser-check", f"--window-size={WIDTH},{HEIGHT}",
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                  "--remote-debugging-pipe"]

# Runs in the page: wait for MathJax and the images, then report what a reader would see.
CHECK_JS = r"""
(async (timeoutMs) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (cond, ms) => {
    const t0 = performance.now();
    while (!cond() && performance.now() - t0 < ms) await sleep(50);
    return Boolean(cond());
  };
  const mathEls = [...document.querySelectorAll("span.math, div.math")];
  const mathjax = await until(() => window.MathJax && MathJax.startup && MathJax.startup.promise,
                              mathEls.length ? timeoutMs : 2000);
  let typesetError = null;
  if (mathjax) { try { await MathJax.startup.promise; } catch (e) { typesetError = String(e); } }

  // TeX errors: MathJax's noerrors/noundefined packages draw them (in red) instead of failing.
  const texErrors = [];
  if (mathjax && MathJax.startup.document && MathJax.startup.toMML) {
    for (const item of MathJax.startup.document.math) {
      const mml = MathJax.startup.toMML(item.root);
      if (/<merror|mathcolor="red"/.test(mml)) texErrors.push(String(item.math).trim().slice(0, 120));
    }
  }

  const imgs = [...document.images];
  imgs.forEach((img) => { if (img.loading === "lazy") img.loading = "eager"; });
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, timeoutMs);
  })));
  const isLocal = (img) => new URL(img.currentSrc || img.src, location.href).origin === location.origin;

  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const el = node.parentElement;
      if (!el || el.closest("pre, code, script, style, noscript, textarea, mjx-container") || !visible(el))
        return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    }});
  const rawTex = [];
  // a widget that failed to render shows its Python repr or an error text instead
  const widgetText = /(^|\n)\s*(interactive|VBox|HBox|Box|IntSlider|FloatSlider|Image|Output|Label)\(|Error (displaying|rendering) widget|Loading widget/;
  const rawWidgets = [];
  for (let node; (node = walker.nextNode());) {
    if (/\$\$|\\\(|\\\[/.test(node.nodeValue)) rawTex.push(node.nodeValue.trim().slice(0, 120));
    if (widgetText.test(node.nodeValue)) rawWidgets.push(node.nodeValue.trim().slice(0, 120));
  }
  for (const el of document.querySelectorAll(".cell_output pre, .output pre")) {
    if (visible(el) && widgetText.test(el.textContent)) rawWidgets.push(el.textContent.trim().slice(0, 120));
  }
  return {
    mathjaxVersion: mathjax ? (MathJax.version || "?") : null,
    typesetError,
    mathCount: mathEls.length,
    containers: document.querySelectorAll("mjx-container").length,
    untypeset: mathEls.filter((el) => !el.querySelector("mjx-container"))
                      .map((el) => el.textContent.trim().slice(0, 80)),
    texErrors,
    rawTex,
    rawWidgets,
    images: imgs.length,
    brokenImages: imgs.filter((img) => isLocal(img) && img.naturalWidth === 0)
                      .map((img) => img.getAttribute("src")),
    externalImages: imgs.filter((img) => !isLocal(img)).map((img) => img.getAttribute("src")),
    height: Math.ceil(document.documentElement.scrollHeight),
  };
})
"""


class CheckFailed(RuntimeError):
    """The browser or a page could not be checked."""


# ---------------------------------------------------------------- MathJax and the local server

def ensure_mathjax(cache: Path) -> Path:
    """The ``es5`` folder of MathJax 3, installed with npm into ``cache`` on first use."""
    es5 = cache / "mathjax" / "node_modules" / "mathjax" / "es5"
    if (es5 / "tex-mml-chtml.js").is_file():
        return es5
    npm = shutil.which("npm")
    if npm is None:
        raise CheckFailed("npm is needed once to fetch MathJax 3 (apt-get install npm), "
                          f"or put the npm package mathjax@3 under {cache / 'mathjax'}")
    print(f"installing MathJax 3 into {cache / 'mathjax'} (npm, once)")
    done = subprocess.run([npm, "install", "--prefix", str(cache / "mathjax"), "--no-audit", "--no-fund",
                           "--no-save", "mathjax@3"], capture_output=True, text=True)
    if done.returncode != 0 or not (es5 / "tex-mml-chtml.js").is_file():
        raise CheckFailed(f"npm install mathjax@3 failed:\n{done.stdout}{done.stderr}")
    return es5


class BookHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the built HTML, with MathJax's CDN address pointed at the local copy."""

    mathjax_dir: Path

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def translate_path(self, path: str) -> str:
        url_path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if url_path.startswith(MATHJAX_PREFIX):
            target = (self.mathjax_dir / url_path[len(MATHJAX_PREFIX):]).resolve()
            return str(target) if target.is_relative_to(self.mathjax_dir.resolve()) else "/nonexistent"
        return super().translate_path(path)

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or not path.is_file():
            return super().do_GET()
        body = MATHJAX_CDN.sub(MATHJAX_PREFIX, path.read_text(encoding="utf-8")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(html_dir: Path, mathjax_dir: Path) -> http.server.ThreadingHTTPServer:
    handler = type("Handler", (BookHandler,), {"mathjax_dir": mathjax_dir})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(handler, directory=str(html_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- Chromium over the DevTools pipe

class Chromium:
    """Headless Chromium driven through ``--remote-debugging-pipe`` (fd 3 in, fd 4 out)."""

    def __init__(self, log_path: Path):
        self.profile = tempfile.mkdtemp(prefix="aelib-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        # Move the child's ends above fd 9 so that "3<&a 4>&b" cannot clobber them (bash: dash
        # cannot redirect fds above 9).
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        self.log = open(log_path, "wb")
        cmd = ["/bin/bash", "-c", f'exec "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-', "bash",
               CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(cmd, pass_fds=(child_r, child_w), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        os.close(child_r)
        os.close(child_w)
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed("Chromium did not answer in time")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise CheckFailed(f"Chromium exited (status {self.proc.poll()}); see {self.log.name}")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.to_browser, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CheckFailed(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (CheckFailed, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.to_browser, self.from_browser):
            os.close(fd)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def check_page(browser: Chromium, url: str, shot: Path, timeout: float) -> tuple[dict, list[str]]:
    """Load ``url``, run CHECK_JS, save a full-page screenshot; returns (report, JS errors)."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for method in ("Page.enable", "Runtime.enable"):
        browser.send(method, session=session)
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session)
    navigation = browser.send("Page.navigate", {"url": url}, session)
    if navigation.get("errorText"):
        raise CheckFailed(f"could not open {url}: {navigation['errorText']}")
    browser.wait_event("Page.loadEventFired", session, timeout)
    result = browser.send("Runtime.evaluate", {
        "expression": f"({CHECK_JS})({int(timeout * 1000)})", "awaitPromise": True,
        "returnByValue": True}, session, timeout=3 * timeout)
    if "exceptionDetails" in result:
        raise CheckFailed(f"the check script failed on {url}: {result['exceptionDetails']}")
    report = result["result"]["value"]
    height = min(max(report["height"], HEIGHT), MAX_SHOT_HEIGHT)
    image = browser.send("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}}, session, timeout=timeout)
    shot.write_bytes(base64.b64decode(image["data"]))
    errors = [e["params"]["exceptionDetails"].get("exception", {}).get("description")
              or e["params"]["exceptionDetails"].get("text", "?")
              for e in browser.events
              if e.get("sessionId") == session and e.get("method") == "Runtime.exceptionThrown"]
    # sphinx-thebe 0.3 loads its script twice on every page; harmless, and not the book's doing.
    errors = [e for e in errors if "THEBE_JS_URL" not in e]
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
    browser.send("Target.closeTarget", {"targetId": target})
    return report, errors


def problems(report: dict) -> list[str]:
    """What a reader would notice, as sentences; empty when the page is fine."""
    found = []
    if report["mathCount"] and not report["mathjaxVersion"]:
        found.append(f"MathJax never loaded, so {report['mathCount']} math elements show raw TeX")
        report = {**report, "untypeset": []}  # said already, for all of them
    elif report["mathCount"] and not report["containers"]:
        found.append(f"MathJax did not typeset: {report['mathCount']} math elements, no mjx-container")
        report = {**report, "untypeset": []}
    for key, say in (("typesetError", lambda v: f"MathJax failed: {v}"),
                     ("untypeset", lambda v: f"{len(v)} math elements not typeset, e.g. {v[:3]}"),
                     ("texErrors", lambda v: f"TeX errors shown by MathJax: {v[:5]}"),
                     ("rawWidgets", lambda v: f"widgets shown as text instead of drawn: {v[:5]}"),
                     ("rawTex", lambda v: f"raw TeX in the visible text: {v[:5]}"),
                     ("brokenImages", lambda v: f"images that did not load (naturalWidth 0): {v}")):
        if report[key]:
            found.append(say(report[key]))
    return found


# ---------------------------------------------------------------- main

def build(root: Path) -> bool:
    jupyter_book = shutil.which("jupyter-book")
    if jupyter_book is None:
        print("FAILED: jupyter-book is not installed (pip install -r requirements.txt)")
        return False
    cmd = ["build", ".", "--all", "-W", "-n", "--keep-going"]
    print(f"$ cd {root} && jupyter-book {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    done = subprocess.run([jupyter_book, *cmd], cwd=root)
    print(f"build took {time.monotonic() - start:.1f} s")
    if done.returncode != 0:
        print(f"FAILED: jupyter-book build exited with {done.returncode} (see its warnings above)")
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="check the existing _build/html")
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's folder (default: this repo)")
    parser.add_argument("--page", action="append", dest="pages", metavar="PATH",
                        help=f"page under _build/html to check (repeatable; default {', '.join(PAGES)})")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for one page")
    args = parser.parse_args(argv)
    root = args.root.resolve()

    if not Path(CHROMIUM).exists():
        print("SKIPPED: chromium is not installed (apt-get install chromium)")
        return 0
    if not args.no_build and not build(root):
        return 2
    html_dir = root / "_build" / "html"
    pages = args.pages or list(PAGES)
    missing = [p for p in pages if not (html_dir / p).is_file()]
    if missing:
        print(f"FAILED: not in {html_dir}: {missing} (build the book first, or drop --no-build)")
        return 1
    try:
        mathjax_dir = ensure_mathjax(CACHE)
    except CheckFailed as error:
        print(f"FAILED: {error}")
        return 1

    shots = root / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    browser = Chromium(shots / "chromium.log")
    server = serve(html_dir, mathjax_dir)
    failed = False
    try:
        for page in pages:
            url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
            shot = shots / f"{Path(page).stem}.png"
            try:
                report, js_errors = check_page(browser, url, shot, args.timeout)
            except CheckFailed as error:
                print(f"FAILED {page}: {error}")
                failed = True
                continue
            found = problems(report)
            failed |= bool(found)
            status = "FAILED" if found else "PASS"
            print(f"{status} {page}: {report['containers']} formulas typeset by MathJax "
                  f"{report['mathjaxVersion'] or '(not loaded)'} ({report['mathCount']} math elements), "
                  f"{report['images'] - len(report['externalImages']) - len(report['brokenImages'])} "
                  f"local images loaded; "
                  f"screenshot {shot.relative_to(root)}")
            for item in found:
                print(f"  - {item}")
            if report["externalImages"]:
                print(f"  note: outside images not checked (offline): {report['externalImages']}")
            for error in js_errors[:5]:
                print(f"  note: JavaScript error on the page: {error.splitlines()[0]}")
    finally:
        server.shutdown()
        browser.close()
    print(f"browser check took {time.monotonic() - start:.1f} s")
    if failed:
        print("FAILED: the book does not show as a reader would expect (details above)")
        return 1
    print("OK: math typeset and figures loaded on every checked page")
    return 0


if __name__ == "__main__":
    sys.exit(main())
