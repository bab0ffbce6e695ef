"""The built documentation site, in a real browser (headless Chromium driven by selenium).

Checks that MathJax (served by the site itself) typeset the equations of a topic page and of
the errata, that no raw TeX delimiters are left in the text, that every resource the pages
load comes from the local server (the site works with no network), that the site search
finds the LSTM page for "peephole", and saves a screenshot of the LSTM page.

Needs the built site (``python -m sphinx -W --keep-going -b html docs docs/_build/html``, or
``HANDGRAD_DOCS_SITE=DIR``), Debian's ``chromium`` and ``chromium-driver``, and selenium (the
``test`` extra); skipped, saying which is missing, otherwise. The screenshot goes to
``$HANDGRAD_ARTIFACTS`` when set, else to pytest's temporary folder; its path is printed.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("HANDGRAD_DOCS_SITE", ROOT / "docs" / "_build" / "html"))
BUILD = "python -m sphinx -W --keep-going -b html docs docs/_build/html"
LSTM_PAGE = "auto_examples/plot_09_lstm.html"
TIMEOUT = 30  # seconds for any one page load, script or wait
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1600"]

# Text outside code, scripts and typeset math: any TeX left there was not rendered.
VISIBLE_TEXT_JS = """
const skip = new Set(['PRE', 'CODE', 'SCRIPT', 'STYLE', 'MJX-CONTAINER', 'TEXTAREA', 'NOSCRIPT']);
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const parts = [];
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  let hidden = false;
  for (let p = n.parentElement; p; p = p.parentElement) {
    if (skip.has(p.tagName)) { hidden = true; break; }
  }
  if (!hidden) parts.push(n.nodeValue);
}
return parts.join(' ');
"""

MATHJAX_DONE_JS = """
const done = arguments[arguments.length - 1];
if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { done('no MathJax'); return; }
MathJax.startup.promise.then(() => done('ok'), (e) => done('MathJax failed: ' + e));
"""


def _executable(name: str, debian_path: str) -> str | None:
    found = shutil.which(name)
    return found or (debian_path if Path(debian_path).is_file() else None)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest's output clean
        pass


def _kill_leftovers(marker: str) -> None:
    """SIGKILL every process whose command line holds ``marker`` (our unique profile folder):
    the browser processes this test started, should ``quit`` have left any behind."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="module")
def site_browser(tmp_path_factory):
    """(driver, base URL): the built site on a local http server, and headless Chromium."""
    if not (SITE / "index.html").is_file():
        pytest.skip(f"documentation site not built at {SITE}; build it with: {BUILD}")
    chromium = _executable("chromium", "/usr/bin/chromium")
    driver_path = _executable("chromedriver", "/usr/bin/chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("headless Chromium not available (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install '.[test]')")
    from selenium.webdriver.chrome.service import Service

    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="docs-site-server", daemon=True)
    thread.start()
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        driver.set_page_load_timeout(TIMEOUT)
        driver.set_script_timeout(TIMEOUT)
        yield driver, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        try:
            if driver is not None:
                driver.quit()
        finally:
            _kill_leftovers(str(profile))
            server.shutdown()
            server.server_close()
            thread.join(TIMEOUT)


def _open_typeset(driver, url: str) -> None:
    driver.get(url)
    state = driver.execute_async_script(MATHJAX_DONE_JS)
    assert state == "ok", f"{url}: {state}"


@pytest.mark.parametrize("page, at_least", [(LSTM_PAGE, 10), ("errata.html", 10)])
def test_equations_are_typeset_by_the_local_mathjax(site_browser, page, at_least):
    driver, base = site_browser
    _open_typeset(driver, f"{base}/{page}")
    rendered = driver.execute_script("return document.querySelectorAll('mjx-container').length")
    assert rendered >= at_least, f"{page}: only {rendered} equations typeset by MathJax"
    math_sources = driver.execute_script(
        "return document.querySelectorAll('span.math, div.math').length")
    unrendered = driver.execute_script(
        "return Array.from(document.querySelectorAll('span.math, div.math'))"
        ".filter(e => !e.querySelector('mjx-container')).length")
    assert math_sources > 0 and unrendered == 0, f"{page}: {unrendered} of {math_sources} math elements left as TeX"
    text = driver.execute_script(VISIBLE_TEXT_JS)
    for raw in ("$$", "\\(", "\\[", "\\frac", "\\begin{"):
        assert raw not in text, f"{page}: raw TeX {raw!r} left in the page text"
    origins = driver.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
        ".concat([location.href])")
    foreign = [u for u in origins if not u.startswith(base + "/") and not u.startswith("data:")]
    assert not foreign, f"{page} loads resources from outside the site: {foreign}"
    mathjax = [u for u in origins if "mathjax" in u.lower()]
    assert any(u.startswith(f"{base}/_static/mathjax/") for u in mathjax), f"MathJax not served by the site: {mathjax}"


def test_search_finds_the_lstm_page_for_peephole(site_browser):
    driver, base = site_browser
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/search.html?q=peephole")
    links = WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.execute_script(
            "const a = document.querySelectorAll('#search-results ul.search li a');"
            "return a.length ? Array.from(a).map(x => x.getAttribute('href')) : null"),
        message="search for 'peephole' returned no results")
    assert any(LSTM_PAGE in href for href in links), f"LSTM page not among the results: {links}"


def test_screenshot_of_the_lstm_page(site_browser, tmp_path):
    driver, base = site_browser
    _open_typeset(driver, f"{base}/{LSTM_PAGE}")
    folder = Path(os.environ.get("HANDGRAD_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "docs-lstm-page.png"
    driver.execute_script("document.querySelector('div.math, mjx-container[display=\"true\"]')"
                          ".scrollIntoView({block: 'start'}); window.scrollBy(0, -120);")
    assert driver.save_screenshot(str(path)), "Chromium did not write the screenshot"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"{path}: not a real screenshot"
    print(f"screenshot: {path}")
