"""The HTML page in a real browser: headless Chromium, driven over the DevTools protocol on a pipe
(stdlib only: fd 3 carries commands in, fd 4 replies out, each a NUL-terminated JSON message).
The layers are in the rendered DOM, the charts are drawn, no script fails, nothing is fetched,
a click on a column header sorts the tree by it (again: reversed), and a fold hides a subtree."""

import dataclasses
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time

import pytest


MOVE_FDS_AND_EXEC = """import os, sys
os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.close(int(sys.argv[1])); os.close(int(sys.argv[2]))
os.execv(sys.argv[3], sys.argv[3:])"""  # Chromium reads DevTools commands on fd 3 and writes on fd 4


class Chromium:
    """One headless Chromium and one page in it; ``events`` collects what the page reported."""

    def __init__(self, executable: str, profile_dir: str):
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        # the child's ends above fd 10, so that moving them onto 3 and 4 cannot overwrite one with the other
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser))
        os.close(to_browser)
        os.close(from_browser)
        command = [executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                   f"--user-data-dir={profile_dir}", "--window-size=1280,900", "about:blank"]
        self.process = subprocess.Popen(
            [sys.executable, "-c", MOVE_FDS_AND_EXEC, str(child_in), str(child_out), *command],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self._buffer, self._next_id, self.events = b"", 0, []
        target = self.send("Target.createTarget", {"url": "about:blank"}, timeout=60.0)["targetId"]  # the cold start
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 10.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._message(deadline))

    def open(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str):
        """The value of ``expression`` in the page; a script error in it fails the test."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real left click (mouse pressed and released) at the middle of the element."""
        x, y, hit = self.js(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: "center"}});
            const r = e.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
            return [x, y, e.contains(document.elementFromPoint(x, y))];
        }})()""")
        assert hit, f"{selector} is covered at its own middle"
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                      session=True)

    def problems(self) -> list[str]:
        """Script errors, console errors and any request that is not for a local file."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']}")
            elif method == "Network.requestWillBeSent" and not params["request"]["url"].startswith("file:"):
                found.append(f"fetched: {params['request']['url']}")
        return found

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._in)
        os.close(self._out)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("chromium is not installed: apt-get install -y --no-install-recommends chromium "
                    "(.ci/run installs it when missing)", pytrace=False)
    chromium = Chromium(executable, str(tmp_path_factory.mktemp("chromium-profile")))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def page(browser, html_profile, tmp_path_factory):
    """The profile's page, loaded once; each test checks that its own steps logged no problem."""
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html_profile.to_html())
    browser.open(path.as_uri())
    return browser


ROWS = "Array.from(document.querySelectorAll('#layer-table tbody tr'))"


def tree_order(layers, key, descending):
    """The order the page's sort should give: siblings by ``key`` under their parent (a missing
    value last, ties in tree order), each followed by its own subtree."""
    names = [r.name for r in layers]
    parent = {n: max((p for p in names if n.startswith(p + ".")), key=len, default=None) for n in names}
    order = []

    def walk(above):
        kids = [(i, r) for i, r in enumerate(layers) if parent[r.name] == above]
        for _, r in sorted(kids, key=lambda ir: (key(ir[1]) is None, 0 if key(ir[1]) is None else
                                                 -key(ir[1]) if descending else key(ir[1]), ir[0])):
            order.append(r.name)
            walk(r.name)

    walk(None)
    return order


def test_every_layer_name_is_in_the_rendered_dom(page, html_profile):
    shown = page.js(f"{ROWS}.map(r => [r.querySelector('.lname').textContent, r.offsetHeight > 0])")
    assert [name for name, _ in shown] == [r.name for r in html_profile.layers]  # the <script> one as text
    assert all(visible for _, visible in shown)
    assert page.js("document.querySelectorAll('script').length") == 1
    assert page.problems() == []


def test_the_charts_are_drawn(page, html_profile):
    charts = page.js("""Object.fromEntries(Array.from(document.querySelectorAll('svg.chart')).map(svg => [svg.id,
        Array.from(svg.querySelectorAll('.mark, .oom')).map(e => {
            const b = e.getBBox(); return [e.getAttribute('class'), b.width, b.height, e.dataset.name || null];
        })]))""")
    assert set(charts) == {"chart-throughput", "chart-latency", "chart-roofline", "chart-memory"}
    for key, marks in charts.items():
        assert any(w > 0 and h > 0 for _, w, h, _ in marks), key
        assert all(w > 0 or h > 0 for _, w, h, _ in marks), key
    for key in ("chart-throughput", "chart-latency"):
        assert [h > 100 for cls, w, h, _ in charts[key] if cls == "oom"] == [True]  # batch 64 ran out of memory
    # a layer with work is a point unless layers inside it do the work (then they are the points)
    leaves = {r.name for r in html_profile.layers if r.flops and r.bytes
              and not any(o.name.startswith(r.name + ".") and o.flops for o in html_profile.layers)}
    assert "3" not in leaves and {"3.0", "6"} <= leaves
    assert {name for cls, _, _, name in charts["chart-roofline"] if "layer" in cls.split()} == leaves
    assert sum(1 for cls, _, _, _ in charts["chart-memory"] if "area" in cls.split()) >= 2
    assert page.problems() == []


def test_clicking_a_header_sorts_and_a_second_click_reverses(page, html_profile):
    def names():
        return page.js(f"{ROWS}.map(r => r.querySelector('.lname').textContent)")

    def header(text):
        index = page.js(f"Array.from(document.querySelectorAll('#layer-table thead th'))"
                        f".findIndex(th => th.textContent === {text!r})")
        assert index >= 0, text
        return f"#layer-table thead th:nth-child({index + 1})"

    layers = html_profile.layers
    page.click(header("FLOPs"))
    assert names() == tree_order(layers, lambda r: r.flops, descending=True)
    assert page.js(f"document.querySelector('{header('FLOPs')}').getAttribute('aria-sort')") == "descending"
    page.click(header("FLOPs"))
    assert names() == tree_order(layers, lambda r: r.flops, descending=False)
    page.click(header("Latency ms"))  # another column starts again, largest first
    assert names() == tree_order(layers, lambda r: r.latency, descending=True)
    page.click(header("Layer"))  # text: A to Z first
    assert names() == tree_order(layers, lambda r: r.name, descending=False)
    page.click("#tree-order")
    assert names() == [r.name for r in layers]
    assert page.problems() == []


def test_folding_a_layer_hides_its_subtree(page):
    def shown():
        return page.js(f"Object.fromEntries({ROWS}.map(r => [r.dataset.name, r.offsetHeight > 0]))")

    def choose_depth(value):  # as a user picks it in the list
        page.js(f"{{ const d = document.getElementById('depth'); d.value = '{value}'; "
                "d.dispatchEvent(new Event('change')) }")

    toggle = '#layer-table tr[data-name="3"] button.toggle'
    page.click(toggle)
    after = shown()
    assert not after["3.0"] and not after["3.1"] and after["3"] and after["4"]
    assert page.js(f"document.querySelector('{toggle}').getAttribute('aria-expanded')") == "false"
    page.click(toggle)
    assert all(shown().values())
    choose_depth(1)
    assert [name for name, visible in shown().items() if not visible] == ["3.0", "3.1"]
    assert page.js(f"document.querySelector('{toggle}').textContent") == "\u25b8"  # folded
    choose_depth("all")
    assert all(shown().values())
    assert page.problems() == []


def test_the_widest_layer_table_fits_a_1400_pixel_window(page, html_profile, tmp_path):
    """Every column a profile can have (training: backward FLOPs, saved-for-backward and the backward
    peak; the roofline; per-layer latency; memory) shows without a horizontal scrollbar at 1400 px."""
    back = page.js("location.href")
    widest = dataclasses.replace(html_profile, backward=True,
                                 memory=dataclasses.replace(html_profile.memory, mode="train"))
    path = tmp_path / "widest.html"
    path.write_text(widest.to_html())
    page.send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 900, "deviceScaleFactor": 1,
                                                     "mobile": False}, session=True)
    try:
        page.open(path.as_uri())
        columns, scroll, shown = page.js("""(() => { const s = document.querySelector('#layers .scroll');
            return [document.querySelectorAll('#layer-table thead th').length, s.scrollWidth, s.clientWidth]; })()""")
        assert columns == 17 and scroll <= shown
    finally:
        page.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)
        page.open(back)
    assert page.problems() == []
