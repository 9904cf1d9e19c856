"""The Dagster UI as an operator uses it: `fraud ui` (`dg dev`: webserver + daemon over the PostgreSQL-backed
instance), driven in headless Chromium. The asset graph shows the six assets and their edges; "Materialize all" from
the UI runs the whole graph; a new raw batch makes the sensor start a run that scores exactly that batch, and the
automation sensor then a run of the alerts and the report; two runs launched at once both succeed. Screenshots land
in test-artifacts/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text

from bench.api import wait_healthy
from fraud.app.ui import STOP_SECONDS
from fraud.core.schema import batch_id_of
from fraud.core.settings import REPO_ROOT, Settings
from fraud.core.storage import object_store
from fraud.db.engine import get_engine, stop_embedded
from fraud.db.queries import loaded_batch_ids
from fraud.ingest.raw_zone import transaction_keys
from tests.helpers.chromium import ARTIFACTS, CHROMIUM
from tests.helpers.homes import SMALL_WORLD, free_port, make_home

ASSETS = ("raw_transactions", "processed_transactions", "fraud_model", "fraud_flags", "fraud_report", "customer_alerts")
EDGE_COUNT = (
    7  # tests/e2e/test_graph.py's EDGES: raw→processed→model, processed+model→flags→alerts→report, flags→report
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"),
]

RUNS_QUERY = """query { runsOrError(limit: 50) { ... on Runs {
    results { runId status tags { key value } assetSelection { path } } } } }"""
FAILURES_QUERY = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
    ... on ExecutionStepFailureEvent { stepKey error { message causes { message } } } } } } }"""
AUTOMATION_TAG = {"key": "fraud/trigger", "value": "automation"}  # the runs of alerts_and_report_automation


class Ui:
    def __init__(self, url: str, env: dict[str, str], process: subprocess.Popen):
        self.url, self.env, self.process = url, env, process

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        response.raise_for_status()
        return response.json()["data"]

    def sensor(self, action: str, name: str) -> None:
        """`dagster sensor start|stop NAME`, as the operator's guide shows (state kept in the instance)."""
        env = {**self.env, "DAGSTER_HOME": str(Path(self.env["FRAUD_HOME"]) / "dagster")}
        subprocess.run(
            [sys.executable, "-m", "dagster", "sensor", action, name, "-w", str(REPO_ROOT / "workspace.yaml")],
            env=env,
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )

    def runs(self) -> list[dict]:
        return self.graphql(RUNS_QUERY)["runsOrError"]["results"]

    def failure(self, run_id: str) -> str:
        """The failed steps of a run and their innermost errors, for the assertion's message."""
        events = self.graphql(FAILURES_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
        failed = []
        for event in (e for e in events if "stepKey" in e):  # the other events come back empty
            error = event["error"] or {}
            innermost = (error.get("causes") or [error])[-1]
            failed.append(f"{event['stepKey']}: {innermost.get('message', '').strip()}")
        return "; ".join(failed) or "no step failed"

    def wait_for_run(self, predicate, timeout: float, what: str) -> dict:
        """The first run matching `predicate`, once it has finished; fails on a failed run or a timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matching = [run for run in self.runs() if predicate(run)]
            if matching and matching[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                assert matching[0]["status"] == "SUCCESS", (
                    f"{what}: run {matching[0]['runId']} ended {matching[0]['status']}: "
                    f"{self.failure(matching[0]['runId'])}"
                )
                return matching[0]
            time.sleep(3)
        runs = [(run["runId"][:8], run["status"]) for run in self.runs()]
        raise AssertionError(f"{what}: no finished run within {timeout:.0f} s (runs: {runs})")


@pytest.fixture(scope="module")
def ui(fraud_env):
    home = make_home("fraud-ui-")
    port = free_port()
    env = {**os.environ, **SMALL_WORLD, "FRAUD_HOME": str(home)}
    log = open(home / "ui.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "fraud.app.cli", "ui", "--port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, timeout=300, path="/server_info", interval=2, log=home / "ui.log")
        yield Ui(url, env, process)
    finally:
        process.send_signal(signal.SIGTERM)  # fraud ui stops dg dev's process group
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        stop_embedded(home / "pg")


def _names_match(label: str, name: str) -> bool:
    head, _, tail = label.partition("…")
    return label == name or (bool(tail) and name.startswith(head) and name.endswith(tail))


def _open_lineage(browser, ui: Ui):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{ui.url}/asset-groups", wait_until="networkidle", timeout=120_000)
    page.get_by_role("button", name="Materialize all").wait_for(timeout=60_000)
    skip = page.get_by_role("button", name="Skip")  # the one-time "join the community" dialog
    if skip.count():
        skip.click()
    return page


def _drawn_edges(page) -> set[str]:
    return set(
        page.locator("svg[class*=AssetGraphExplorer_svgContainer] path[marker-end]").evaluate_all(
            "paths => paths.map(p => p.getAttribute('d'))"
        )
    )


def test_asset_graph_materialize_all_and_sensor(browser, ui):
    page = _open_lineage(browser, ui)
    page.keyboard.press("Alt+e")  # "Expand all groups": the graph starts with one box per group
    nodes = page.locator("[class*=AssetNode_assetName]")
    nodes.nth(len(ASSETS) - 1).wait_for(timeout=30_000)
    shown = nodes.all_inner_texts()
    # zoomed out to fit, the UI shortens long names in the middle ("proc…_transactions")
    assert all(any(_names_match(label, name) for label in shown) for name in ASSETS), shown
    # The UI draws only the edges inside its viewport, chosen in a web worker after each change of the viewport
    # (AssetEdges.tsx, getEdgesToShow), so right after the expand and zoom to fit it can still show the edges of an
    # earlier viewport: a few of them, not yet all. Wait for the drawing to catch up rather than read it once.
    deadline = time.monotonic() + 30
    while len(edges := _drawn_edges(page)) < EDGE_COUNT and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    page.screenshot(path=str(ARTIFACTS / "ui-asset-graph.png"))
    assert len(edges) >= EDGE_COUNT, f"expected the graph's {EDGE_COUNT} edges to be drawn, found {len(edges)}"

    # while the whole graph runs, the raw-batch sensor is off (it would only queue no-op runs for the batches
    # Materialize all is loading); it is turned back on for the new batch below
    ui.sensor("stop", "raw_batch_sensor")
    page.get_by_role("button", name="Materialize all").click()
    launched_from_ui = ui.wait_for_run(
        lambda run: len(run["assetSelection"] or []) == len(ASSETS), 900, "Materialize all"
    )
    page.goto(f"{ui.url}/runs/{launched_from_ui['runId']}", wait_until="networkidle", timeout=120_000)
    page.get_by_text("Success", exact=False).first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "ui-run-success.png"))

    # a new day of traffic lands in the raw zone; nothing else is done by hand
    subprocess.run(
        [sys.executable, "-m", "fraud.app.cli", "simulate", "--start-day", "2026-11-09", "--days", "1"],
        env=ui.env,
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    ui.sensor("start", "raw_batch_sensor")
    settings = Settings(home=Path(ui.env["FRAUD_HOME"]))
    engine = get_engine(settings)
    known = loaded_batch_ids(engine)
    new_batches = {batch_id_of(k) for k in transaction_keys(object_store(settings, settings.raw_bucket))} - known
    assert len(new_batches) == 1, new_batches
    new_batch = new_batches.pop()
    # the daemon ticks the sensor every minute; its run waits behind any queued run
    ui.wait_for_run(
        lambda run: (
            {"key": "fraud/batch_id", "value": new_batch} in run["tags"]
            and any(t["key"] == "dagster/sensor_name" for t in run["tags"])
        ),
        900,
        "raw_batch_sensor",
    )
    with engine.connect() as connection:
        scored = connection.execute(
            text("""
            SELECT count(*) FILTER (WHERE s.trans_num IS NOT NULL), count(*)
            FROM fact_transaction t LEFT JOIN fraud_score s USING (trans_num) WHERE t.batch_id = :batch"""),
            {"batch": new_batch},
        ).one()
    assert scored[1] > 0 and scored[0] == scored[1], (
        f"batch {new_batch}: {scored[0]} of {scored[1]} transactions scored"
    )
    # then, still with nobody pressing anything, one run of the alerts and the report (the automation sensor,
    # every 30 s); Materialize all above built both in its own run, so this is the first such run
    reporting = ui.wait_for_run(lambda run: AUTOMATION_TAG in run["tags"], 600, "alerts_and_report_automation")
    assert sorted(key["path"][0] for key in reporting["assetSelection"]) == ["customer_alerts", "fraud_report"]


def test_two_materializations_at_once_both_succeed(ui):
    # on a platform with no promoted model both would fail ("no promoted model yet"): this runs after the test above
    # materialized the graph, and says so if it did not
    assert any(run["status"] == "SUCCESS" and len(run["assetSelection"] or []) == len(ASSETS) for run in ui.runs()), (
        "the graph was never materialized: test_asset_graph_materialize_all_and_sensor failed before Materialize all"
    )
    launch = """mutation($selection: [AssetKeyInput!]) { launchRun(executionParams: {
        selector: {repositoryLocationName: "fraud", repositoryName: "__repository__", jobName: "__ASSET_JOB",
                   assetSelection: $selection}}) { __typename ... on LaunchRunSuccess { run { runId } }
                   ... on PythonError { message } } }"""
    run_ids = []
    for asset in ("fraud_report", "customer_alerts"):
        result = ui.graphql(launch, {"selection": [{"path": [asset]}]})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        run_ids.append(result["run"]["runId"])
    for run_id in run_ids:
        ui.wait_for_run(lambda run, run_id=run_id: run["runId"] == run_id, 600, f"concurrent run {run_id}")


def _running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:  # a zombie has ended
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_ctrl_c_stops_the_ui_and_everything_it_started(ui):
    """Last in this module (it stops the shared UI): Ctrl-C on `fraud ui`, with the browser's pages still open,
    stops dg dev, its webserver, daemon and code servers within seconds, and the command exits 0."""
    started = psutil.Process(ui.process.pid).children(recursive=True)
    assert len(started) >= 3, [p.name() for p in started]  # dg dev, webserver, daemon, code servers
    interrupted = time.monotonic()
    ui.process.send_signal(signal.SIGINT)
    assert ui.process.wait(timeout=90) == 0
    assert time.monotonic() - interrupted < STOP_SECONDS + 3, f"stopped in {time.monotonic() - interrupted:.0f} s"
    deadline = time.monotonic() + 15
    while _running(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _running(started), [(p.pid, p.cmdline()[:4]) for p in _running(started)]
