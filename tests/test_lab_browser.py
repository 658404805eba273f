"""JupyterLab in a real headless browser: notebook 04's image outputs render (``make test-lab``).

Starts JupyterLab the way ``make lab`` does (``scripts/lab.py``) on a free localhost port with a
token, in a temporary runtime/config/settings/workspace directory, opens
``notebooks/04_reranking_demo.ipynb`` in Debian's Chromium (headless) and checks in the DOM that

* the notebook opened with the project's ``python3`` kernel (the spec ``make setup`` writes into
  ``.venv/share/jupyter/kernels/python3``, pin included) and that kernel came up idle;
* every cell of the ``.ipynb`` is in the page;
* the number of ``<img>`` elements in output areas equals the number of image outputs the
  ``.ipynb`` holds, each loaded with ``naturalWidth > 0``. An image output is one whose mimetype
  JupyterLab prefers is an image (``image/png``, ``image/gif``, ``image/svg+xml``, ...) or an HTML
  output with ``<img>`` tags (counted by tag). So the rollout animation of issue 18 item 2 is
  covered as soon as it is committed as an ``image/gif`` output, with no change here; and a
  notebook without any image output fails, it does not pass vacuously. (A notebook from a clone
  is untrusted, and JupyterLab then does not render ``image/svg+xml`` outputs: an SVG figure fails
  here, as it would show nothing to a reader; PNG and GIF render.)

Screenshots (the viewport with the notebook open, then one per image output scrolled into view) go
to ``artifacts/test/lab_04.png``, ``lab_04_img1.png``, ... (git-ignored) and are checked to be real,
non-blank PNGs. JupyterLab, its kernel and Chromium are always shut down, and the test checks
afterwards that no process it started (or any descendant) is left.

**Why the Chrome DevTools protocol over a websocket, not Selenium or Playwright.** Playwright
downloads its own browser build at install time, which cannot be fetched here (nothing but PyPI and
Debian's archive is reachable). Selenium would work with Debian's ``chromium-driver``, but adds a
second Debian package whose version must match the browser's, plus selenium's own dependency tree
(trio, urllib3[socks], ...) and Selenium Manager, which tries to download a driver whenever the path
is not found. The DevTools protocol is what chromedriver itself speaks to Chromium: with
``--remote-debugging-port`` Chromium serves it on localhost, and the five commands this test needs
(``Page.navigate``, ``Runtime.evaluate``, ``Emulation.setDeviceMetricsOverride``,
``Page.captureScreenshot``) are a few lines over ``websockets`` (already pinned). Only one Debian
package (``chromium``) is needed; ``--host-resolver-rules`` keeps the browser off every host but
localhost, and JupyterLab's news feed and update check are off, so the test fetches nothing.

A missing browser is a failure naming the fix (``make test-lab`` installs Debian's ``chromium``
through ``scripts/install_system_deps.sh chromium``), not a skip. ``VGPS_CHROMIUM`` points at
another Chromium binary; ``VGPS_LAB_NOTEBOOK`` (any ``.ipynb``; JupyterLab then serves its
folder) checks another notebook the same way.
"""
from __future__ import annotations

import base64
import contextlib
import html.parser
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from vgps import isa
from vgps.paths import REPO

sys.path.insert(0, str(REPO / "scripts"))
import lab  # noqa: E402  (scripts/lab.py: the server `make lab` runs)

NOTEBOOK = (REPO / os.environ.get("VGPS_LAB_NOTEBOOK", "notebooks/04_reranking_demo.ipynb")).resolve()
ARTEFACTS = REPO / "artifacts" / "test"
SHOT_PREFIX = "lab_" + NOTEBOOK.stem.split("_")[0]          # lab_04
VIEWPORT = (1400, 1000)

SERVER_TIMEOUT = 120      # s: JupyterLab answering /api/status (2 shared cores)
PAGE_TIMEOUT = 180        # s: the notebook in the page with every cell and image loaded
KERNEL_TIMEOUT = 120      # s: the notebook's kernel idle
SHUTDOWN_TIMEOUT = 30     # s: per process group, before SIGKILL

# JupyterLab's renderers by rank (@jupyterlab/rendermime: lower rank is preferred). Only the ones
# that produce <img> matter here; a text/html output renders its own <img> tags.
_RANKED = ["text/html", "text/markdown", "text/latex", "image/svg+xml",
           "image/bmp", "image/png", "image/jpeg", "image/gif", "image/webp"]
_IMAGE_MIMES = set(_RANKED[3:])


class _ImgCounter(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.n = 0

    def handle_starttag(self, tag, attrs):
        self.n += tag == "img"


def expected_images(nb) -> list[tuple[int, str]]:
    """(cell index, mimetype) for every <img> JupyterLab renders in the notebook's outputs."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            preferred = next((m for m in _RANKED if m in data), None)
            if preferred in _IMAGE_MIMES:
                found.append((i, preferred))
            elif preferred == "text/html":
                src = data["text/html"]
                counter = _ImgCounter()
                counter.feed("".join(src) if isinstance(src, list) else src)
                found += [(i, "text/html <img>")] * counter.n
    return found


# --------------------------------------------------------------------------------------------
# processes: started in their own session, every descendant remembered, all ended at the end

def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _tree(pid: int) -> set[int]:
    kids, seen, todo = _children(), set(), [pid]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += kids.get(p, [])
    return seen


def _alive(pid: int) -> str | None:
    """The command line of a live (not zombie) process, else None."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else cmd.strip() or "?"


def _by_marker(marker: str) -> set[int]:
    """Live processes whose command line names ``marker`` (our temporary directory)."""
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            cmd = _alive(int(d.name))
            if cmd and marker in cmd:
                pids.add(int(d.name))
    return pids


class _Group:
    """A process started in its own session; ``stop()`` ends it and every descendant it had."""

    def __init__(self, name: str, cmd: list[str], log: Path, env=None, tracked: set | None = None):
        self.name, self.log_path = name, log
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.tracked = tracked if tracked is not None else set()
        self.tracked.add(self.proc.pid)

    def snapshot(self) -> None:
        self.tracked |= _tree(self.proc.pid)

    def tail(self, n: int = 40) -> str:
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return f"--- last lines of {self.name}'s log ({self.log_path}) ---\n" + "\n".join(lines[-n:])

    def stop(self, graceful=None) -> None:
        self.snapshot()
        if self.proc.poll() is None:
            if graceful is not None:
                with contextlib.suppress(Exception):
                    graceful()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(SHUTDOWN_TIMEOUT)
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(SHUTDOWN_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.log.close()


def _leftovers(tracked: set[int], marker: str, grace: float = 10.0) -> dict[int, str]:
    """Processes we started that are still alive after ``grace`` s; SIGKILLed, then returned."""
    deadline = time.monotonic() + grace
    while True:
        left = {p: c for p in tracked | _by_marker(marker) if (c := _alive(p))}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return left


# --------------------------------------------------------------------------------------------
# JupyterLab

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(url: str, method: str = "GET", timeout: float = 10.0):
    req = urllib.request.Request(url, method=method, data=b"" if method != "GET" else None)
    with _NO_PROXY.open(req, timeout=timeout) as r:
        body = r.read()
    return json.loads(body) if body else None


class _Lab:
    def __init__(self, tmp: Path, tracked: set[int]):
        self.port, self.token = lab.free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = tmp / "jupyter-config"
        cfg.mkdir()
        # nothing fetched from outside: no news feed, no update check, no PyPI extension manager
        # (LabApp), no news toast (settings)
        (cfg / "jupyter_server_config.json").write_text(json.dumps({"LabApp": {
            "news_url": None, "extension_manager": "readonly",
            "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"}}))
        settings = tmp / "lab-settings" / "@jupyterlab"
        for plugin, values in {
                "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                # the kernel's language_info differs from the committed one (Python 3.11.x) and
                # marks the notebook dirty: never write it back
                "docmanager-extension/plugin": {"autosave": False}}.items():
            (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
            (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
        env = lab.lab_env(JUPYTER_CONFIG_DIR=str(cfg),
                          JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
                          JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
                          JUPYTERLAB_SETTINGS_DIR=str(tmp / "lab-settings"),
                          JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-workspaces"))
        self.root = NOTEBOOK.parent                     # notebooks/, as for `make lab`
        cmd = lab.lab_command(self.port, self.token, self.root, extra=["--no-browser"])
        self.group = _Group("jupyterlab", cmd, tmp / "jupyterlab.log", env=env, tracked=tracked)

    def api(self, path: str, method: str = "GET", timeout: float = 10.0):
        sep = "&" if "?" in path else "?"
        return _http(f"{self.base}/api/{path}{sep}token={self.token}", method, timeout)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if self.group.proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with status {self.group.proc.returncode} "
                            f"before answering\n{self.group.tail()}")
            with contextlib.suppress(OSError, ValueError):
                self.api("status", timeout=5)
                return
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {self.base} within {SERVER_TIMEOUT} s\n"
                            f"{self.group.tail()}")
            time.sleep(0.5)

    def url(self, notebook: Path) -> str:
        return lab.lab_url(self.port, self.token, notebook.relative_to(self.root).as_posix())

    def _shutdown(self) -> None:
        for s in self.api("sessions") or []:
            with contextlib.suppress(OSError, ValueError):
                self.api(f"sessions/{s['id']}", "DELETE", timeout=30)
        self.api("shutdown", "POST", timeout=30)

    def stop(self) -> None:
        self.group.stop(graceful=self._shutdown)


# --------------------------------------------------------------------------------------------
# Chromium over the DevTools protocol

def chromium_binary() -> str:
    path = os.environ.get("VGPS_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("no Chromium found (looked for $VGPS_CHROMIUM, `chromium`, `chromium-browser` "
                    "on PATH). Run `make test-lab`, which installs Debian's chromium package "
                    "(scripts/install_system_deps.sh chromium), or `apt-get install chromium`.")
    return path


class _Chromium:
    def __init__(self, tmp: Path, tracked: set[int]):
        from websockets.sync.client import connect

        profile = tmp / "chromium-profile"
        cmd = [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
               f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "--hide-scrollbars",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--disable-breakpad", "--mute-audio",
               "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
               "about:blank"]
        self.group = _Group("chromium", cmd, tmp / "chromium.log", tracked=tracked)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if self.group.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not open its DevTools port\n{self.group.tail()}")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        pages = [t for t in _http(f"http://127.0.0.1:{port}/json/list") if t["type"] == "page"]
        self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, proxy=None,
                          open_timeout=30, ping_interval=None)
        self._id = 0
        self.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, timeout: float = 60.0, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, js: str):
        r = self.call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"JavaScript error: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def stop(self) -> None:
        def close():
            with contextlib.suppress(Exception):
                self.ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
            with contextlib.suppress(Exception):
                self.ws.close()
        self.group.stop(graceful=close)


# --------------------------------------------------------------------------------------------
# what the page shows

_STATE_JS = r"""
(() => {
  const panel = document.querySelector('.jp-NotebookPanel');
  if (!panel) return {panel: false};
  const tab = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel');
  const imgs = [...panel.querySelectorAll('.jp-OutputArea-output img')].map(i => ({
    complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
    renderer: (i.closest('.jp-RenderedImage, .jp-RenderedSVG, .jp-RenderedHTMLCommon') || {}).className || '',
    src: (i.getAttribute('src') || '').slice(0, 24)}));
  const kernel = panel.querySelector('.jp-KernelName, .jp-Toolbar-kernelName');
  return {panel: true, title: tab ? tab.textContent : null,
          cells: panel.querySelectorAll('.jp-Notebook .jp-Cell').length,
          outputs: panel.querySelectorAll('.jp-OutputArea-output').length,
          kernel: kernel ? kernel.textContent.trim() : null, imgs};
})()
"""


def _scroll_to_img(i: int) -> str:
    return (f"(() => {{ const im = document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output img')[{i}];"
            " if (!im) return false; im.scrollIntoView({block: 'center'});"
            " return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true)))); })()")


def _wait_rendered(browser: _Chromium, n_cells: int, n_imgs: int) -> dict:
    """Poll the DOM until every cell is there and at least ``n_imgs`` output images are loaded,
    and the count stayed so for one more poll; return the last state (checked by the caller)."""
    deadline, last, stable = time.monotonic() + PAGE_TIMEOUT, None, 0
    while time.monotonic() < deadline:
        state = browser.eval(_STATE_JS)
        done = (state.get("panel") and state["cells"] >= n_cells and len(state["imgs"]) >= n_imgs
                and all(im["complete"] for im in state["imgs"]))
        stable = stable + 1 if done and state == last else 0
        if stable >= 1:
            return state
        last = state
        time.sleep(1.0)
    return last or {}


def _check_png(path: Path) -> str | None:
    """None if ``path`` is a real screenshot: a PNG of the viewport's size, not blank."""
    from PIL import Image

    raw = path.read_bytes()
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return f"{path} is not a PNG"
    with Image.open(path) as im:
        im.load()
        size, colours = im.size, im.convert("RGB").getcolors(maxcolors=1 << 20)
    if size != VIEWPORT:
        return f"{path} is {size[0]}x{size[1]}, not the {VIEWPORT[0]}x{VIEWPORT[1]} viewport"
    if len(raw) < 10_000 or colours is None or len(colours) < 32:
        return f"{path} looks blank ({len(raw)} bytes, {len(colours or [])} colours)"
    return None


# --------------------------------------------------------------------------------------------

def test_lab_renders_notebook_images(tmp_path):
    """JupyterLab + headless Chromium: notebook 04 opens with the project's kernel, every cell and
    every image output (figures, and the animation once it exists) renders; screenshots saved."""
    t0 = time.monotonic()
    assert NOTEBOOK.is_file(), f"no notebook {NOTEBOOK}"
    rel = NOTEBOOK.relative_to(REPO) if NOTEBOOK.is_relative_to(REPO) else NOTEBOOK
    nb = nbformat.read(NOTEBOOK, as_version=4)
    expected = expected_images(nb)
    nb_bytes = NOTEBOOK.read_bytes()
    spec = lab.check_kernel()
    chromium_binary()                     # fail before starting anything if there is no browser
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTEFACTS.glob(f"{SHOT_PREFIX}*.png"):
        old.unlink()

    tracked: set[int] = set()
    server = browser = None
    shots: list[Path] = []
    try:
        server = _Lab(tmp_path, tracked)
        server.wait_ready()
        specs = server.api("kernelspecs")
        browser = _Chromium(tmp_path, tracked)
        nav = browser.call("Page.navigate", url=server.url(NOTEBOOK))
        if nav.get("errorText"):
            pytest.fail(f"Chromium could not load {server.base}/lab: {nav['errorText']}")
        state = _wait_rendered(browser, len(nb.cells), len(expected))

        # the notebook's session runs the project's kernel, and that kernel comes up
        deadline, session = time.monotonic() + KERNEL_TIMEOUT, None
        while state.get("panel") and time.monotonic() < deadline:
            session = next((s for s in server.api("sessions")
                            if s.get("path", "").endswith(NOTEBOOK.name)), None)
            if session and server.api(f"kernels/{session['kernel']['id']}").get(
                    "execution_state") == "idle":
                break
            time.sleep(1.0)
        kernel_state = server.api(f"kernels/{session['kernel']['id']}") if session else None
        shots.append(browser.screenshot(ARTEFACTS / f"{SHOT_PREFIX}.png"))
        for i in range(len(state.get("imgs", []))):
            if browser.eval(_scroll_to_img(i)):
                shots.append(browser.screenshot(ARTEFACTS / f"{SHOT_PREFIX}_img{i + 1}.png"))
        server.group.snapshot()
        browser.group.snapshot()
    finally:
        if browser is not None:
            browser.stop()
        if server is not None:
            server.stop()
        orphans = _leftovers(tracked, str(tmp_path))    # SIGKILLed; reported below
    wall = time.monotonic() - t0
    print(f"\n{rel}: {state.get('cells')} cells, {len(state.get('imgs', []))} output images "
          f"rendered of {len(expected)} expected; screenshots {[p.name for p in shots]}; "
          f"{wall:.1f} s")

    assert not orphans, f"processes left after shutting JupyterLab and Chromium down: {orphans}"
    assert NOTEBOOK.read_bytes() == nb_bytes, f"opening {rel} in JupyterLab modified it"

    # the project's kernel
    assert specs["default"] == lab.KERNEL_NAME, specs["default"]
    served = specs["kernelspecs"][lab.KERNEL_NAME]["spec"]
    assert served["argv"] == spec["argv"], (served["argv"], spec["argv"])
    assert Path(served["argv"][0]).parent.parent == Path(sys.prefix), \
        f"kernel python {served['argv'][0]} is not this venv's ({sys.prefix})"
    assert set(isa.ENV) <= set(served.get("env", {})), \
        f"kernel spec lacks the instruction-set pin {sorted(isa.ENV)}: run `make setup`"
    assert session is not None, f"JupyterLab opened no session for {rel}"
    assert session["kernel"]["name"] == lab.KERNEL_NAME, session["kernel"]
    assert kernel_state and kernel_state["execution_state"] == "idle", \
        f"the {lab.KERNEL_NAME} kernel of {rel} did not come up idle in {KERNEL_TIMEOUT} s: " \
        f"{kernel_state}"

    # the page
    for p in shots:
        assert (bad := _check_png(p)) is None, bad
    assert state.get("panel"), f"{rel} did not open in JupyterLab within {PAGE_TIMEOUT} s: {state}"
    assert state["title"] == NOTEBOOK.name, f"current tab is {state['title']!r}, not {NOTEBOOK.name}"
    assert state["cells"] == len(nb.cells), \
        f"{state['cells']} cells in the page, {len(nb.cells)} in {rel}"
    imgs = state["imgs"]
    svg = " (JupyterLab renders no image/svg+xml output of an untrusted notebook: use PNG)" \
        if any(m == "image/svg+xml" for _, m in expected) else ""
    assert len(imgs) == len(expected), (
        f"{len(imgs)} <img> in {rel}'s output areas, but the .ipynb holds {len(expected)} image "
        f"outputs{svg} (cell, mimetype): {expected}; rendered: {imgs}")
    broken = [(e, im) for e, im in zip(expected, imgs) if not (im["complete"] and im["w"] > 0)]
    assert not broken, f"output images that did not load (naturalWidth 0): {broken}"
    assert expected, (
        f"{rel} holds no image outputs in its committed outputs, so there is no figure or "
        f"animation to see render (JupyterLab and the browser worked: {state['cells']} cells "
        f"shown, screenshot {shots[0].relative_to(REPO)}). Commit the notebook with its figures "
        f"inline (issue 18 items 1 and 2) for this test to pass.")
