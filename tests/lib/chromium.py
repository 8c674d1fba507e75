"""chromium - headless Chromium (Debian's `chromium`) for the web console's tests (tests/e2e/console_test.py).

dump_dom(url) and screenshot(url, path) run one bounded `chromium --headless=new` each: a temporary
--user-data-dir removed afterwards, the process group killed at the timeout. Browser(url) starts one that
stays up with --remote-debugging-port=0 (the port is read from DevToolsActivePort in its profile
directory) and drives the page through the DevTools protocol over its websocket (python3-websocket):
evaluate(js) runs Runtime.evaluate and returns the value. Browser.close() kills it by its pid and removes
the profile. Loopback only: Chromium is given the node's 127.0.0.1 URL and nothing else.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--disable-background-networking", "--disable-sync", "--metrics-recording-only",
         "--disable-component-update", "--disable-dev-shm-usage"]


def _env(profile):
    """Chromium's environment: HOME and the XDG directories inside its profile, so that nothing it writes
    (NSS database, caches, crash reports) outlives the run."""
    return dict(os.environ, HOME=profile, XDG_CONFIG_HOME=os.path.join(profile, ".config"),
                XDG_CACHE_HOME=os.path.join(profile, ".cache"))


def available():
    return os.path.exists(CHROMIUM)


def _run(args, timeout):
    """One chromium run in its own process group and profile: (returncode, stdout bytes)."""
    profile = tempfile.mkdtemp(prefix="ringmail-chromium-")
    p = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + profile] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
                         env=_env(profile))
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        shutil.rmtree(profile, ignore_errors=True)


def dump_dom(url, budget_ms=6000, timeout=60):
    """The DOM as the page made it after budget_ms of virtual time (its scripts, timers and fetches run)."""
    rc, out = _run(["--virtual-time-budget=%d" % budget_ms, "--dump-dom", url], timeout)
    if rc != 0:
        raise RuntimeError("chromium --dump-dom exited %d" % rc)
    return out.decode("utf-8", "replace")


def screenshot(url, path, size=(1280, 900), budget_ms=6000, timeout=60):
    rc, _ = _run(["--virtual-time-budget=%d" % budget_ms, "--screenshot=" + path,
                  "--window-size=%d,%d" % size, url], timeout)
    if rc != 0:
        raise RuntimeError("chromium --screenshot exited %d" % rc)


class Browser:
    """A headless Chromium kept up and driven through the DevTools protocol (one page)."""

    def __init__(self, url, timeout=20):
        import websocket  # python3-websocket
        self.profile = tempfile.mkdtemp(prefix="ringmail-chromium-")
        self.proc = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + self.profile,
                                                           "--remote-debugging-address=127.0.0.1",
                                                           "--remote-debugging-port=0", "--window-size=1280,900",
                                                           "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=_env(self.profile))
        self.ws = None
        self.next_id = 0
        try:
            port = self._devtools_port(timeout)
            deadline = time.monotonic() + timeout
            while True:
                with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=5) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if not pages:
                raise RuntimeError("chromium has no page to drive")
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout,
                                                  suppress_origin=True)
            self.call("Page.enable")
            self.call("Page.navigate", url=url)
        except Exception:
            self.close()
            raise

    def _devtools_port(self, timeout):
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chromium exited %d at start" % self.proc.returncode)
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port within %d s" % timeout)

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    def evaluate(self, js):
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        res = self.call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError("page script failed: %s" % json.dumps(res["exceptionDetails"])[:500])
        return res["result"].get("value")

    def wait(self, js, timeout, what="condition"):
        """Until the expression is truthy in the page; its value. An exception counts as not yet (the page
        may still be loading: right after Page.navigate the document is about:blank's)."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = self.evaluate(js)
                if v:
                    return v
            except RuntimeError as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError("timed out after %s s waiting in the page for %s%s" %
                                     (timeout, what, " (last: %s)" % last if last else ""))
            time.sleep(0.1)

    def close(self):
        if self.ws:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
