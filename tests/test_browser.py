"""End to end in a real browser: `streamlit run app.py`, the regularization preset, Run, Compare.

    python -m pytest tests/test_browser.py -q          # needs Debian's chromium (apt-get install chromium)
    SCREENSHOT_DIR=docs python -m pytest tests/test_browser.py   # also refreshes the README's screenshots

Playwright drives the system chromium (its own browser download cannot work offline). Skipped
when chromium is missing, unless REQUIRE_BROWSER=1 (CI), where that is a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
RUN_NAMES = ("baseline", "l2", "dropout", "batchnorm")
PRESET = "Regularization"            # the preset's button label
PROJECTOR = {"width": 1280, "height": 720}      # a classroom projector: every page must read there
SERVER_LOG: dict[str, Path] = {}                # the running app_server's log, for failure messages
# Text that must never be cut: a label or heading whose element (or a part of it) is narrower than
# its text has been truncated ("Ca..." for Cancel) or overflows its box.
CUT_TEXT_JS = """() => {
  const cut = [];
  const roots = document.querySelectorAll(
    'button, h1, h2, h3, [data-testid="stMetricValue"], [data-testid="stMetricLabel"], [data-testid="stTab"]');
  for (const root of roots) {
    if (!root.offsetParent) continue;                      // not displayed
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (el.offsetParent && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'auto') {
        cut.push(`${root.tagName.toLowerCase()}: ${root.innerText.trim().slice(0, 60)}`);
        break;
      }
    }
  }
  return cut;
}"""


def _browser_available() -> str:
    """'' when the test can run, else why not."""
    if not Path(CHROMIUM).exists():
        return "no chromium (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "no playwright package (pip install playwright)"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_server(tmp_path, request):
    """A real `streamlit run app.py` on a free localhost port, with its own runs folder (and the
    environment of the test's `server_env` marker)."""
    missing = _browser_available()
    if missing:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    port = _free_port()
    # A fake run 'running' in this process must not turn interrupted while a slow machine loads pages.
    env = {**os.environ, "TRAINLIB_RUNS_DIR": str(tmp_path / "runs"), "TRAINLIB_OFFLINE": "1",
           "TRAINLIB_WORKERS": "1", "TRAINLIB_DATA_ROOT": str(tmp_path / "data"), "TRAINLIB_HEARTBEAT_TTL": "3600"}
    marker = request.node.get_closest_marker("server_env")
    env.update(marker.kwargs if marker else {})
    log = open(tmp_path / "streamlit.log", "w")
    SERVER_LOG["path"] = tmp_path / "streamlit.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.3)
    # app.py starts the runner with the server, before any page asks for it: its workers warm while
    # the browser loads the first page (dashboard/startup.py). Its log line says it has.
    while "runner started with the server" not in (tmp_path / "streamlit.log").read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the runner did not start with the server: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.3)
    yield url, tmp_path
    server.terminate()
    try:
        server.wait(timeout=60)          # its runner's runs stop and its workers end first
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()
    # .streamlit/config.toml turns the file watcher off: run data written under the app's folder
    # must not make the server watch, reload or flood its terminal.
    assert "Inotify" not in (tmp_path / "streamlit.log").read_text()


def wait_for_script_run(page) -> None:
    """Until the app's script (or a fragment of it) has finished running: Streamlit marks its root
    element with the state. What the run draws is all on screen then, and a click starts a new run
    instead of landing on an element that the run under way is about to replace."""
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for()


def wait_for_heading(page, text: str) -> None:
    """Until the page's h1 reads `text`. When it does not come, the failure says what the page
    showed instead and what the server printed: a timeout alone says nothing of its cause."""
    try:
        page.locator("h1", has_text=text).first.wait_for()
    except Exception as exc:                       # playwright's TimeoutError
        shown = page.evaluate("() => document.body ? document.body.innerText.slice(0, 1500) : ''")
        state = page.evaluate("() => document.querySelector(\"[data-testid='stApp']\")"
                              "?.getAttribute('data-test-script-state')")
        log = SERVER_LOG.get("path")
        tail = log.read_text()[-3000:] if log and log.exists() else "(no server log)"
        raise AssertionError(f"no h1 '{text}' at {page.url} (script state {state}); the page shows:\n{shown}\n"
                             f"--- server log:\n{tail}") from exc


HEADINGS = {"New experiment": "New experiment", "Runs": "Runs", "Compare": "Compare runs",
            "Run detail": "Run detail", "LR finder": "Learning-rate finder"}     # link -> the page's h1


def open_page(page, link: str) -> None:
    """Click a page in the sidebar navigation and wait until it is drawn."""
    page.get_by_role("link", name=link, exact=True).click()
    wait_for_heading(page, HEADINGS[link])
    wait_for_script_run(page)


def assert_nothing_cut(page, where: str) -> None:
    cut = page.evaluate(CUT_TEXT_JS)
    assert not cut, f"{where}: text cut at {page.viewport_size}: {cut}"


def _shoot(page, tmp_path: Path, name: str) -> None:
    page.mouse.move(0, 0)               # no tooltip over the picture
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    target = os.environ.get("SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


def test_regularization_preset_runs_four_and_compares_them(app_server):
    from playwright.sync_api import expect, sync_playwright

    url, tmp_path = app_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        # The projector's size: every page is checked for cut text there and pictured for docs/.
        page = browser.new_page(viewport=PROJECTOR)
        page.set_default_timeout(60_000)

        # A fresh server's first request is a page's own URL: it still gets navigation.py's navigation
        # and sidebar (Streamlit's old pages/ folder mode must not take over).
        page.goto(f"{url}/compare")
        # The first run of a fresh server imports the engine (seconds on a cold CPU): wait for the page.
        wait_for_heading(page, "Compare runs")
        wait_for_script_run(page)
        sidebar = page.locator("[data-testid='stSidebar']")
        expect(sidebar).to_contain_text("Training now")
        expect(page.locator("[data-testid='stSidebarNav']")).to_contain_text("LR finder")

        # New experiment: one click on the preset, the preview shows four scenarios, Run.
        page.goto(url)
        wait_for_heading(page, "New experiment")
        wait_for_script_run(page)
        # While a preset is picked, the browser loads the charts' code that Run will need (every page
        # asks, once per tab: dashboard/charts.py): the plotly package's plotly.js, served by app.py.
        page.wait_for_function("() => window.__trainlibChartsLoaded === true")
        loaded = page.evaluate("() => performance.getEntriesByType('resource').map(r => r.name)"
                               ".filter(name => /\\/_trainlib\\/plotly-[^/]+\\.min\\.js$/.test(name))")
        assert len(loaded) == 1, loaded
        # The first screen says what the app is for, and a preset and Run are on it without scrolling.
        expect(page.get_by_text("pick a preset and press Run").first).to_be_visible()
        page.get_by_role("button", name=PRESET, exact=True).first.click()
        run_button = page.get_by_role("button", name="Run 4 scenarios").first
        run_button.wait_for()                       # the preset's rerun has drawn the four scenarios
        wait_for_script_run(page)
        expect(run_button).to_be_enabled()
        for above_the_fold in (page.get_by_role("button", name=PRESET, exact=True).first, run_button):
            box = above_the_fold.bounding_box()
            assert box and box["y"] + box["height"] <= PROJECTOR["height"], f"below the fold at 1280x720: {box}"
        assert_nothing_cut(page, "New experiment")
        _shoot(page, tmp_path, "new_experiment")
        run_button.click()

        # Runs: the four progress live, with their train and validation curves as they come.
        wait_for_heading(page, "Runs")
        page.get_by_text("Queued 4 runs").first.wait_for()          # drawn by the same run, just after
        page.get_by_text("4 runs: 4 finished").first.wait_for(timeout=120_000)   # the sweep trains
        wait_for_script_run(page)
        # Compare was offered from the first epoch on; after the sweep it stays the one button.
        compare = page.get_by_role("button", name="Compare", exact=True)
        expect(compare).to_have_count(1)
        chart = page.locator(".trainlib-chart").first
        expect(chart).to_be_visible()                  # the curves stay when the runs have ended
        assert_nothing_cut(page, "Runs")
        _shoot(page, tmp_path, "runs")
        compare.click()
        wait_for_heading(page, "Compare runs")
        wait_for_script_run(page)

        # Compare: the four runs' curves and their test accuracies, the best one named.
        charts = page.locator(".trainlib-chart")
        expect(charts.first).to_be_visible()
        curves = charts.filter(has_text="solid: train, dashed: validation").first
        results = charts.filter(has_text="Test accuracy").first
        for name in RUN_NAMES:
            expect(curves).to_contain_text(name)
            expect(results).to_contain_text(name)
        expect(results).to_contain_text("best: ")
        page.wait_for_timeout(500)          # let Plotly finish its transitions before the picture
        assert_nothing_cut(page, "Compare")
        _shoot(page, tmp_path, "compare")

        # Every other page renders for these runs without an exception.
        open_page(page, "Run detail")
        expect(page.locator(".trainlib-chart").filter(has_text="Confusion matrix").first).to_be_visible()
        assert_nothing_cut(page, "Run detail")
        _shoot(page, tmp_path, "run_detail")
        open_page(page, "LR finder")
        page.get_by_role("button", name="Find the learning rate").first.click()
        # The search trains a few hundred batches in the page's run: wait for it to draw its result.
        page.get_by_role("button", name="Use this lr in New experiment").first.wait_for()
        assert_nothing_cut(page, "LR finder")
        _shoot(page, tmp_path, "lr_finder")
        for link in ("Runs", "Compare", "Run detail", "LR finder", "New experiment"):
            open_page(page, link)
            assert page.locator("[data-testid='stException']").count() == 0, f"{link} shows an exception"
            assert_nothing_cut(page, link)
        browser.close()

    assert (tmp_path / "compare.png").stat().st_size > 20_000
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 4
    assert all('"finished"' in (p / "status.json").read_text() for p in runs)


def test_the_dataset_picked_is_the_dataset_trained(app_server):
    """Preset -> Dataset mnist -> type a data folder -> Run: every run trains mnist from that folder.
    (The picker's labels once carried each dataset's status; typing a folder changed the label, the
    label the browser sent back matched no option and the runs trained 'shapes' under a box showing
    mnist. Only a real browser sends labels back, so this is checked here as well as under AppTest.)"""
    from playwright.sync_api import expect, sync_playwright

    from test_data import write_idx_mnist

    url, tmp_path = app_server
    digits = tmp_path / "data" / "digits"          # inside the server's TRAINLIB_DATA_ROOT
    write_idx_mnist(digits)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(url)
        wait_for_heading(page, "New experiment")
        wait_for_script_run(page)
        page.get_by_role("button", name=PRESET).first.click()
        page.get_by_role("button", name="Run 4 scenarios").first.wait_for()
        wait_for_script_run(page)

        page.locator("[data-testid='stSelectbox']").filter(has_text="Dataset").first.click()
        page.get_by_role("option", name="mnist", exact=True).click()
        folder = page.get_by_label("Data folder")
        folder.wait_for()                             # shown once a torchvision dataset is chosen
        wait_for_script_run(page)
        folder.fill(str(digits))
        folder.press("Enter")
        page.get_by_text("mnist: downloaded").first.wait_for()     # the rerun with the new folder
        wait_for_script_run(page)
        expect(page.get_by_text(f"All 4 runs: dataset mnist (data folder {digits})").first).to_be_visible()
        page.get_by_role("button", name="Run 4 scenarios").first.click()
        wait_for_heading(page, "Runs")
        browser.close()

    folders = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 4
    for folder_path in folders:
        spec = json.loads((folder_path / "scenario.json").read_text())
        assert (spec["dataset"], spec["data_dir"]) == ("mnist", str(digits)), folder_path.name


def running_run(runs_dir: Path, name: str, sweep: str | None = None):
    """A 5-epoch run 'running' in this (living) process, as a run of a terminal's sweep would be, and
    a function that writes its next epoch: (folder, add_epoch)."""
    sys.path.insert(0, str(REPO))
    from trainlib import ScenarioSpec
    from trainlib.store import RunStore, now_iso, update_status

    folder = RunStore(runs_dir).new_run(ScenarioSpec(name=name, epochs=5), sweep=sweep)
    update_status(folder, state="running", pid=os.getpid(), started_at=now_iso(), heartbeat_at=now_iso())

    def add_epoch(epoch: int) -> None:
        header = "" if (folder / "metrics.csv").exists() else "epoch,train_loss,val_loss,train_acc,val_acc,lr,seconds\n"
        with open(folder / "metrics.csv", "a") as out:
            out.write(header + f"{epoch},{1 / epoch},{1.2 / epoch},0.8,0.7,0.001,0.5\n")
        update_status(folder, epoch=epoch, heartbeat_at=now_iso())

    return folder, add_epoch


# Counts a page's polls of the server (dashboard/watch.py: the browser asks whether the folder moved)
# and its script runs (Streamlit marks its root element while one runs).
COUNTERS_JS = """(() => {
  window.__polls = 0;
  window.__pollTimes = [];
  const realFetch = window.fetch;
  window.fetch = function (resource, options) {
    if (String((resource && resource.url) || resource).includes('/_trainlib/changed')) {
      window.__polls++;
      window.__pollTimes.push(performance.now());
    }
    return realFetch.apply(this, arguments);
  };
  window.__scriptRuns = 0;
  new MutationObserver(() => {
    const app = document.querySelector("[data-testid='stApp']");
    if (app && !app.__counted) {
      app.__counted = true;
      new MutationObserver(() => { if (app.getAttribute('data-test-script-state') === 'running') window.__scriptRuns++; })
        .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
    }
  }).observe(document, {childList: true, subtree: true});
})()"""
# Makes the page believe the browser hides it (another tab in front), as a browser tells a page in a
# background tab; window.__tabShown(true) shows it again, with the event a browser sends.
BACKGROUND_TAB_JS = """(() => {
  let state = window.__startShown ? 'visible' : 'hidden';
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => state === 'hidden'});
  window.__tabShown = shown => { state = shown ? 'visible' : 'hidden'; document.dispatchEvent(new Event('visibilitychange')); };
})()"""


# A budget of 40: after a redraw the tab waits 39 times its cost (more than the usual second for any
# redraw over 26 ms), so the test can tell the budget's wait from a poll's.
@pytest.mark.server_env(TRAINLIB_REDRAW_BUDGET="40")
def test_a_tab_in_the_background_is_redrawn_only_once_shown(app_server):
    """A hidden tab neither polls nor draws (its browser would lay out charts nobody sees with the CPU
    the training needs); a shown one polls the server, not a script run, and redraws only on a change,
    updating its chart in place, then waits out its redraw budget; the hidden one, shown again, asks
    at once and catches up."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(REPO))
    from trainlib.store import now_iso, update_status

    url, tmp_path = app_server
    folder, add_epoch = running_run(tmp_path / "runs", "watched", sweep="demo")
    add_epoch(1)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        tabs = {}
        for name in ("hidden", "shown"):
            tab = browser.new_page(viewport=PROJECTOR)
            tab.set_default_timeout(60_000)
            tab.add_init_script(COUNTERS_JS)
            if name == "shown":
                tab.add_init_script("window.__startShown = true")
            tab.add_init_script(BACKGROUND_TAB_JS)
            tab.goto(f"{url}/live")
            tab.get_by_text("epoch 1/5").first.wait_for()
            wait_for_script_run(tab)
            tabs[name] = tab
        hidden, shown = tabs["hidden"], tabs["shown"]
        # Reruns the poll did not cause (three clicks) leave one poller, not four (Streamlit calls a
        # component again for new data without ending the call before).
        toggle = shown.get_by_text("Show all runs")
        for _ in range(3):
            before = shown.evaluate("() => window.__scriptRuns")
            toggle.click()
            shown.wait_for_function(f"() => window.__scriptRuns > {before}")
            wait_for_script_run(shown)
        clicked_at = shown.evaluate("() => performance.now()")
        # The shown tab polls every second while the run moves; between changes it runs no script.
        polls, runs = shown.evaluate("() => [window.__polls, window.__scriptRuns]")
        shown.wait_for_function(f"() => window.__polls >= {polls + 2}")
        assert shown.evaluate("() => window.__scriptRuns") == runs
        hidden_runs = hidden.evaluate("() => window.__scriptRuns")
        shown.evaluate("() => { document.querySelector('.trainlib-chart').__kept = true; }")
        add_epoch(2)
        shown.get_by_text("epoch 2/5").first.wait_for()         # its next poll saw the change: redrawn
        # The chart took the new point in place: the same plot, with two epochs now.
        shown.wait_for_function("() => Math.max(...document.querySelector('.trainlib-chart')._fullData"
                                ".map(trace => trace.x ? trace.x.length : 0)) === 2")
        assert shown.evaluate("() => document.querySelector('.trainlib-chart').__kept === true")
        polls_after = shown.evaluate("() => window.__polls")
        shown.wait_for_function(f"() => window.__polls >= {polls_after + 2}")
        wait_for_script_run(shown)
        assert shown.evaluate("() => window.__scriptRuns") == runs + 1     # one poller: one redraw
        # The redraw budget: after that redraw the tab waited 39 times what it cost (at most 5 s; a
        # redraw, a script run and a frame, costs more than the 26 ms that would make it the usual
        # second) before it asked again; the gap between its polls shows it.
        redraw = shown.evaluate("() => window.__trainlibRedraw")
        assert redraw and redraw["wait_ms"] == pytest.approx(max(1000, min(5000, 39 * redraw["cost_ms"])), abs=0.01), redraw
        assert redraw["wait_ms"] > 1000, redraw
        # ... asking once a second: never more than 3 polls within 2 s of the page's clock (a slow
        # machine polls less often, not more; four pollers would ask ~8 times).
        times = shown.evaluate(f"() => window.__pollTimes.filter(t => t > {clicked_at})")
        assert len(times) >= 3
        assert max(later - earlier for earlier, later in zip(times, times[1:])) >= redraw["wait_ms"] - 5, (times, redraw)
        assert max(sum(1 for t in times if start <= t < start + 2000) for start in times) <= 3, times
        # Meanwhile the hidden tab asked nothing and drew nothing.
        assert hidden.evaluate("() => [window.__polls, window.__scriptRuns]") == [0, hidden_runs]
        assert hidden.get_by_text("epoch 2/5").count() == 0
        assert hidden.get_by_text("epoch 1/5").count() == 1
        # Shown again: it asks at once and shows the new epoch, without waiting for a tick.
        hidden.evaluate("() => window.__tabShown(true)")
        hidden.get_by_text("epoch 2/5").first.wait_for()
        assert hidden.evaluate("() => window.__polls") >= 1
        # Hidden and shown again within such a wait, a tab asks at once, not when the wait ends.
        shown.evaluate("() => { window.__lastRedraw = window.__trainlibRedraw; }")
        add_epoch(3)
        shown.get_by_text("epoch 3/5").first.wait_for()
        shown.wait_for_function("() => window.__trainlibRedraw !== window.__lastRedraw")    # waiting now
        asked = shown.evaluate("() => { const before = window.__polls; window.__tabShown(false);"
                               " window.__tabShown(true); return [before, window.__polls]; }")
        assert asked[1] == asked[0] + 1, asked
        browser.close()
    update_status(folder, state="finished", ended_at=now_iso())


def test_run_detail_and_its_sidebar_follow_a_training_run(app_server):
    """Run detail's status and curves (a fragment) and the sidebar's count (another) are redrawn when
    the run's folder moves: each asks the server on its own and redraws only itself."""
    from playwright.sync_api import expect, sync_playwright

    sys.path.insert(0, str(REPO))
    from trainlib.store import now_iso, update_status

    url, tmp_path = app_server
    folder, add_epoch = running_run(tmp_path / "runs", "followed")
    add_epoch(1)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport=PROJECTOR)
        page.set_default_timeout(60_000)
        page.goto(f"{url}/run_detail?run={folder.name}")
        wait_for_heading(page, "Run detail")
        epochs = page.locator("[data-testid='stMetric']").filter(has_text="Epochs")
        expect(epochs).to_contain_text("1 / 5", timeout=60_000)
        sidebar = page.locator("[data-testid='stSidebar']")
        expect(sidebar).to_contain_text("1 running · 0 queued", timeout=60_000)
        add_epoch(2)
        expect(epochs).to_contain_text("2 / 5", timeout=60_000)
        update_status(folder, state="finished", epoch=2, ended_at=now_iso())
        expect(sidebar).to_contain_text("0 running · 0 queued", timeout=60_000)
        expect(page.locator("[data-testid='stMetric']").filter(has_text="State")).to_contain_text("finished", timeout=60_000)
        browser.close()
