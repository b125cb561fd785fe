"""The paper-trading notebook as a Voilà app, driven in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, which ``make test`` installs when missing; Selenium drives them).

The test starts ``voila notebooks/paper_trading.ipynb`` on 127.0.0.1 (a free port) over a temporary data root, opens
the page, clicks "Place paper trade", "Confirm" and "Mark now", and checks the positions table the page shows and
the ledger file (a :class:`PaperLedger` on the same path) with its mark. Voilà takes no notebook parameters: the
notebook's parameters cell leaves them empty and :meth:`PaperPanel.from_parameters` falls back to the environment
(``RESEARCH_LIB_DATA``, ``RESEARCH_LIB_PAPER_DATE``; the source is the settings file's ``market.source``). The server
and the browser are stopped in a ``finally``; a screenshot of the page is left in the system temp folder.

Skips (with the reason) when chromium, chromedriver, selenium or voila is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import EOD_ARCHIVE, ROOT
from paper_quotes import mid_mark

from research_lib.paper import config as paper_config
from research_lib.records.paper.ledger import PaperLedger

pytestmark = pytest.mark.browser

NOTEBOOK = ROOT / "notebooks" / "paper_trading.ipynb"
SYNTHETIC_DAY = dt.date(2024, 3, 6)
REAL_DAY = dt.date(2026, 7, 15)
#: Seconds to wait for the server, for the page's widgets (the kernel runs the notebook first), for an action.
SERVER_WAIT, PAGE_WAIT, ACTION_WAIT = 60, 180, 90


def _browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or skip saying what is missing and how to get it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists()
                                              else None)
    if chromium is None or driver is None:
        pytest.skip("headless Chromium not found (apt-get install chromium chromium-driver; make test does it "
                    "when run as root)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"voila exited with {proc.returncode} before serving:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)
    pytest.fail(f"voila did not answer on {url} within {SERVER_WAIT} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM voila (it shuts its kernels down), then kill what is left of its process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session (start_new_session): only what it started
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def synthetic_archive(tmp_path_factory):
    from fixtures import fixture_chain, write_eod_archive

    path = tmp_path_factory.mktemp("browser_chain") / "spx_eod_one_day.parquet"
    return write_eod_archive(path, {SYNTHETIC_DAY: fixture_chain(SYNTHETIC_DAY)},
                             days={SYNTHETIC_DAY: (SYNTHETIC_DAY, "OK")})


@pytest.mark.parametrize("archive", ["synthetic", *(["real"] if EOD_ARCHIVE.exists() else [])])
def test_place_and_mark_in_a_real_browser(archive, tmp_path, request):
    _, driver_path = _browser()
    webdriver = pytest.importorskip("selenium.webdriver")
    pytest.importorskip("voila")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    source, day = ((request.getfixturevalue("synthetic_archive"), SYNTHETIC_DAY) if archive == "synthetic"
                   else (EOD_ARCHIVE, REAL_DAY))
    root = tmp_path / "data"
    paper_config.save_config(paper_config.PaperConfig(source=str(source), strategy="bull_put", contracts=1,
                                                      width=25.0), root / paper_config.CONFIG_FILE)
    env = {**os.environ, "RESEARCH_LIB_DATA": str(root), "RESEARCH_LIB_OFFLINE": "1",
           "RESEARCH_LIB_PAPER_DATE": day.isoformat(), "MPLBACKEND": "Agg",
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter_runtime")}
    for name in ("RESEARCH_LIB_PAPER_ACCOUNT", "RESEARCH_LIB_PAPER_SOURCE"):
        env.pop(name, None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "voila.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}",
                                 "--Voila.ip=127.0.0.1", "--show_tracebacks=True"], cwd=str(NOTEBOOK.parent),
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    driver = None
    try:
        _wait_for_server(url, proc, log)
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.get(url)

        def wait(seconds=ACTION_WAIT):
            return WebDriverWait(driver, seconds)

        def status_has(text):
            return lambda d: text in d.find_element(By.CSS_SELECTOR, ".rl-status").text

        try:
            wait(PAGE_WAIT).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.rl-place")))
        except Exception:
            pytest.fail(f"the panel did not appear: page text {driver.find_element(By.TAG_NAME, 'body').text[:2000]!r}"
                        f"\nvoila log:\n{log.read_text()[-3000:]}")
        assert "no open position" in driver.find_element(By.CSS_SELECTOR, ".rl-positions").text
        driver.find_element(By.CSS_SELECTOR, "button.rl-place").click()
        wait().until(ec.visibility_of_element_located((By.CSS_SELECTOR, "button.rl-confirm")))
        assert "Confirm?" in driver.find_element(By.CSS_SELECTOR, ".rl-confirm-text").text
        with PaperLedger(root / "paper.sqlite") as ledger:
            assert ledger.open_positions("paper") == []  # nothing placed before "Confirm"
        driver.find_element(By.CSS_SELECTOR, "button.rl-confirm").click()
        wait().until(status_has("placed paper position #"))
        driver.find_element(By.CSS_SELECTOR, "button.rl-mark").click()
        wait().until(status_has("marked 1 position"))
        table = driver.find_element(By.CSS_SELECTOR, ".rl-positions table")
        header = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        cells = [td.text for td in table.find_elements(By.CSS_SELECTOR, "tbody tr td")]
        shown = dict(zip(header[-len(cells):], cells, strict=True))
        shot = Path(tempfile.gettempdir()) / f"research_lib_paper_panel_{archive}.png"
        driver.save_screenshot(str(shot))
    finally:
        if driver is not None:
            driver.quit()
        _stop(proc)

    with PaperLedger(root / "paper.sqlite") as ledger:
        (position,) = ledger.open_positions("paper")
        marks = ledger.marks("paper", position.position_id)
        assert ledger.check() == []
    assert len(marks) == 1
    expected = mid_mark(source, day, position)  # the file's quotes, read with pandas alone
    assert marks["mark"].iloc[0] == pytest.approx(expected, abs=1e-9)
    assert shown["id"] == str(position.position_id) and shown["strategy"] == "bull_put"
    assert shown["mark (per share)"] == f"{expected:+.2f}"
    assert shown["entry (per share, credit +)"] == f"{position.entry_price:+.2f}"
    assert shown["marked at"] == f"{pd.Timestamp(marks['marked_at'].iloc[0]):%Y-%m-%d %H:%M}"
    assert proc.poll() is not None
