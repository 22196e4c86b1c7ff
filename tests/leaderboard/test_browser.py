"""The built leaderboard in a real headless Chromium: sorting by header click, entry links, no console
errors (which includes CSP violations: the pages forbid inline scripts and styles), a screenshot.

Needs the Debian packages `chromium chromium-driver` and the `selenium` package (dev extra); skipped
with the reason when chromium is not installed. The site is served by http.server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

from test_leaderboard import make_site

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="chromium/chromedriver not installed (apt-get install -y chromium chromium-driver)")


@pytest.fixture
def server(tmp_path):
    site = make_site(tmp_path)
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def driver(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def _severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _column(driver, header: str) -> list[str]:
    from selenium.webdriver.common.by import By

    heads = [h.text.strip() for h in driver.find_elements(By.CSS_SELECTOR, "#board thead th")]
    col = next(i for i, h in enumerate(heads) if h.startswith(header)) + 1
    return [c.text.strip() for c in driver.find_elements(By.CSS_SELECTOR, f"#board tbody tr td:nth-child({col})")]


def test_site_in_chromium(server, driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.get(server + "/index.html")
    assert driver.title == "forgetbench leaderboard"
    entries = lambda: [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#board tbody td.entry a")]  # noqa: E731
    before = entries()
    # Server order: by target, then gain descending.
    assert before == ["Strong SFT", "Weak RL", "Forgetful SFT", "Noop other"]

    header = next(h for h in driver.find_elements(By.CSS_SELECTOR, "#board thead th") if h.text.startswith("mean drop"))
    header.click()  # numbers sort descending first: most forgetting first
    drops = [float(c.split()[0]) for c in _column(driver, "mean drop")]
    assert drops == sorted(drops, reverse=True) and entries() != before
    assert entries()[0] == "Forgetful SFT"
    header.click()  # and ascending on the second click
    drops = [float(c.split()[0]) for c in _column(driver, "mean drop")]
    assert drops == sorted(drops)
    assert header.get_attribute("aria-sort") == "ascending"

    # Filtering by method hides the other rows.
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "f-method")).select_by_value("rl")
    visible = [r for r in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr") if r.is_displayed()]
    assert [r.find_element(By.CSS_SELECTOR, "td.entry a").text for r in visible] == ["Weak RL"]
    Select(driver.find_element(By.ID, "f-method")).select_by_value("")

    shot = tmp_path / "leaderboard_index.png"
    driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert _severe(driver) == []

    driver.find_element(By.LINK_TEXT, "Strong SFT").click()
    assert driver.current_url.endswith("/entries/strong-sft.html")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Strong SFT"
    assert "forgotten" in driver.find_element(By.CSS_SELECTOR, "details.forgotten summary").text
    entry_shot = tmp_path / "leaderboard_entry.png"
    driver.save_screenshot(str(entry_shot))
    print(f"screenshot: {entry_shot}")
    assert _severe(driver) == []

    # The plots pages: SVG present, the matched-gain slider recomputes from the embedded JSON.
    driver.get(server + "/pareto.html")
    assert driver.find_elements(By.CSS_SELECTOR, "svg.scatter circle.pt")
    slider = driver.find_element(By.CSS_SELECTOR, "input.gain-level")
    driver.execute_script("arguments[0].value = arguments[0].min; arguments[0].dispatchEvent(new Event('input'))", slider)
    assert driver.find_element(By.CSS_SELECTOR, "output.gain-value").text != ""
    pareto_shot = tmp_path / "leaderboard_pareto.png"
    driver.save_screenshot(str(pareto_shot))
    print(f"screenshot: {pareto_shot}")
    driver.get(server + "/kl.html")
    assert "R²" in driver.find_element(By.CSS_SELECTOR, "p.fit").text
    assert _severe(driver) == []
