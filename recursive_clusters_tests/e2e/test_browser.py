"""The demo end to end, as a user sees it: Dagster's webserver and daemon, and a real browser.

A temporary ``DAGSTER_HOME`` gets the repository's ``dagster.yaml``; ``dagster dev`` serves the
code location on loopback. The test launches ``grow_tree`` through the GraphQL endpoint (what
the UI's launch button calls), lets the daemon's ``tree_growth_sensor`` grow and publish the
tree, then opens in headless chromium (Debian's ``/usr/bin/chromium``, driven by Playwright;
no browser is downloaded) the UI's asset graph, which must show the lineage, and the report,
which must open offline without console errors and show every node of the tree. A second
launch from the UI must then grow and publish a new tree, whose partitions replace the first
tree's in the UI. Last, a batch file dropped in the watched folder must be scored by the
daemon's ``batch_sensor``, and the UI must show the tree's and the batch's Checks tabs and the
batch's partition.

Screenshots go to ``artifacts/e2e/`` at the repository root (and the ``dagster dev`` log too
when the test fails). The test is skipped, saying why, only where chromium or the
``playwright`` package is missing; CI (``.ci/run``) installs both.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recursive_clusters.defs.keys import TREE_ID_TAG
from recursive_clusters.io.tables import load_demo_digits

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    PLAYWRIGHT_MISSING = None
except ImportError as error:  # skipped below, with the reason
    PlaywrightTimeoutError = TimeoutError
    sync_playwright = None
    PLAYWRIGHT_MISSING = str(error)

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCATION = "recursive_clusters"
REPOSITORY = "__repository__"
SENSOR = "tree_growth_sensor"
# A small tree keeps the test short: two levels, fewer rows explained by SHAP per child.
E2E_SETTINGS = {"recursion": {"max_depth": 2}, "explanation": {"shap_sample_per_child": 50}}
LINEAGE = [
    "source_table",
    "features",
    "embedding_l1",
    "clusters_l1",
    "classifiers_l1",
    "shap_l1",
    "embedding_l2",
    "clusters_l2",
    "cluster_tree",
    "tree_report",
]
SERVER_TIMEOUT_S = 120
SENSOR_TIMEOUT_S = 90
TREE_TIMEOUT_S = 420
UI_TIMEOUT_MS = 60_000
# Loopback only: never through an HTTP proxy from the environment.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        typeSpecificData { ... on SensorData { lastCursor lastTickTimestamp } }
      }
    }
    ... on Error { message }
  }
}
"""
LAUNCH_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""
RUNS_QUERY = """
query Runs {
  runsOrError(limit: 200) {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
    ... on Error { message }
  }
}
"""
PARTITIONS_QUERY = """
query Partitions {
  assetNodeOrError(assetKey: {path: ["clusters_l2"]}) {
    __typename
    ... on AssetNode { partitionKeys }
  }
}
"""
LOGS_QUERY = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message }
        ... on ExecutionStepFailureEvent { stepKey error { message stack } }
      }
    }
    ... on Error { message }
  }
}
"""
BATCHES_QUERY = """
query Batches {
  assetNodeOrError(assetKey: {path: ["scored_batches"]}) {
    __typename
    ... on AssetNode { partitionKeys }
  }
}
"""
TREE_CHECK_NAMES = ["tree_complete", "noise_share", "median_roc_auc", "predict_agreement"]
FINISHED_BAD = {"FAILURE", "CANCELED", "CANCELING"}


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return (
            f"browser test skipped: {CHROMIUM} is missing; install Debian's chromium "
            "(apt-get install -y --no-install-recommends chromium), as .ci/run does"
        )
    if PLAYWRIGHT_MISSING:
        return (
            f"browser test skipped: the playwright package cannot be imported "
            f"({PLAYWRIGHT_MISSING}); install the test extra: pip install -e '.[test]'"
        )
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop_group(process: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM to the whole process group, then SIGKILL to whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    # The webserver, daemon, code server and run workers share the group; a backgrounded
    # ``dagster dev`` may ignore SIGTERM, and children may outlive it: kill the group anyway.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def post_graphql(url: str, query: str, variables: dict | None = None, timeout_s=60) -> dict:
    """The data of a GraphQL query to the webserver at ``url``, failing on any error."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with HTTP.open(request, timeout=timeout_s) as response:
        payload = json.load(response)
    assert not payload.get("errors"), f"GraphQL errors: {payload['errors']}"
    return payload["data"]


@dataclass
class DagsterDev:
    """A running ``dagster dev`` on a temporary instance, and a GraphQL client for it."""

    url: str
    home: Path
    log: Path
    process: subprocess.Popen
    batches: Path  # the watched batch folder (batches.path)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        return post_graphql(self.url, query, variables)

    def log_tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def ensure_alive(self) -> None:
        code = self.process.poll()
        assert code is None, f"dagster dev exited with {code}:\n{self.log_tail()}"


def _wait_for_server(server: DagsterDev) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while time.monotonic() < deadline:
        server.ensure_alive()
        try:
            with HTTP.open(f"{server.url}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError(
        f"dagster dev did not answer {server.url}/server_info within {SERVER_TIMEOUT_S} s:\n"
        f"{server.log_tail()}"
    )


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory, request) -> Iterator[DagsterDev]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("e2e")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    settings = root / "settings.yaml"
    batches = root / "batches"
    batches.mkdir()
    settings.write_text(yaml.safe_dump({**E2E_SETTINGS, "batches": {"path": str(batches)}}))
    env = dict(os.environ)
    env.pop("RECURSIVE_CLUSTERS_STORAGE", None)
    env.update(
        DAGSTER_HOME=str(home),
        RECURSIVE_CLUSTERS_CONFIG=str(settings),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    log = root / "dagster_dev.log"
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    failed_before = request.session.testsfailed
    (ARTIFACTS / "dagster_dev.log").unlink(missing_ok=True)  # from an earlier failed run
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(f"http://127.0.0.1:{port}", home, log, process, batches)
    ok = False
    try:
        _wait_for_server(server)
        ok = True
        yield server
    finally:
        _stop_group(process)
        if not ok or request.session.testsfailed > failed_before:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            kept = ARTIFACTS / "dagster_dev.log"
            shutil.copy(log, kept)
            print(f"\ndagster dev log kept at {kept}")


def _wait_for_sensor_cursor(server: DagsterDev) -> None:
    """The sensor's first tick only sets its cursor at the newest materialization: a run that
    clustered the root before that tick would be missed, so launch only after it."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    selector["sensorName"] = SENSOR
    deadline = time.monotonic() + SENSOR_TIMEOUT_S
    state: dict = {}
    while time.monotonic() < deadline:
        server.ensure_alive()
        result = server.graphql(SENSOR_QUERY, {"selector": selector})["sensorOrError"]
        assert result["__typename"] == "Sensor", f"sensor not found: {result}"
        state = result["sensorState"]
        assert state["status"] == "RUNNING", f"{SENSOR} is not running: {state}"
        if (state.get("typeSpecificData") or {}).get("lastCursor") is not None:
            return
        time.sleep(2)
    raise AssertionError(
        f"{SENSOR} did not tick within {SENSOR_TIMEOUT_S} s (is the daemon up?): {state}\n"
        f"{server.log_tail()}"
    )


def _launch_grow_tree(server: DagsterDev) -> str:
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": "grow_tree",
        },
        "mode": "default",
    }
    result = server.graphql(LAUNCH_MUTATION, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", f"launch failed: {result}"
    return result["run"]["runId"]


def _failure_details(server: DagsterDev, run_id: str) -> str:
    result = server.graphql(LOGS_QUERY, {"runId": run_id})["logsForRun"]
    lines = []
    for event in result.get("events", []):
        if event["__typename"] == "ExecutionStepFailureEvent":
            error = event.get("error") or {}
            lines.append(f"{event['stepKey']}: {error.get('message')}\n{error.get('stack')}")
        elif event["__typename"] in {"RunFailureEvent", "EngineEvent"} and event.get("message"):
            lines.append(event["message"])
    return "\n".join(lines[-10:]) or json.dumps(result)[-4000:]


def _wait_for_published_tree(
    server: DagsterDev, publishes: int = 1, replacing: str | None = None
) -> list[dict]:
    """Poll the runs until ``publishes`` ``publish_tree`` runs succeeded and, given
    ``replacing``, another tree than that one is current; fail fast if any run failed."""
    deadline = time.monotonic() + TREE_TIMEOUT_S
    runs: list[dict] = []
    while time.monotonic() < deadline:
        server.ensure_alive()
        result = server.graphql(RUNS_QUERY)["runsOrError"]
        assert result["__typename"] == "Runs", f"cannot list runs: {result}"
        runs = result["results"]
        for run in runs:
            if run["status"] in FINISHED_BAD:
                details = _failure_details(server, run["runId"])
                raise AssertionError(
                    f"run {run['runId']} ({run['jobName']}) ended {run['status']}:\n{details}"
                )
        done = [r for r in runs if r["jobName"] == "publish_tree" and r["status"] == "SUCCESS"]
        if len(done) >= publishes and (replacing is None or _current_tree(server) != replacing):
            return runs
        time.sleep(3)
    summary = "\n".join(f"  {r['jobName']}: {r['status']}" for r in runs)
    raise AssertionError(
        f"no publish_tree run succeeded within {TREE_TIMEOUT_S} s; runs:\n{summary}\n"
        f"{server.log_tail()}"
    )


@contextlib.contextmanager
def _browser() -> Iterator:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _check_asset_graph(browser, server: DagsterDev) -> Path:
    """The global asset lineage, every group expanded: each asset and the edges between them."""
    page = browser.new_page(viewport={"width": 1920, "height": 1200})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{server.url}/asset-groups", wait_until="domcontentloaded")
    page.get_by_text("Global asset lineage").first.wait_for(state="visible")
    # A fresh browser profile is greeted by a "Join the Dagster community" dialog.
    skip = page.get_by_role("button", name="Skip")
    with contextlib.suppress(PlaywrightTimeoutError):
        skip.wait_for(state="visible", timeout=5_000)
        skip.click()
    # The graph opens with its groups collapsed; "Expand all groups" is also on Alt+E.
    first = page.get_by_text(LINEAGE[0], exact=True).first
    with contextlib.suppress(PlaywrightTimeoutError):
        first.wait_for(state="visible", timeout=2_000)
    if not first.is_visible():
        page.keyboard.press("Alt+e")
    for name in LINEAGE:
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
    edges = first.evaluate("node => node.closest('svg').querySelectorAll('path').length")
    assert edges >= len(LINEAGE) - 1, f"the asset graph shows only {edges} edges"
    shot = ARTIFACTS / "asset_graph.png"
    page.screenshot(path=str(shot))
    page.close()
    return shot


def _tree_paths(tree_dir: Path) -> tuple[list[str], list[str]]:
    """The clustered nodes (one ``node.json`` each) and the leaves rows ended in."""
    nodes = sorted(
        json.loads(record.read_text()).get("path", record.parent.name)
        for record in (tree_dir / "nodes").glob("*/node.json")
    )
    leaves = pd.read_parquet(tree_dir / "assignments.parquet", columns=["leaf_path"])
    return nodes, sorted(leaves["leaf_path"].unique())


def _check_report(browser, server: DagsterDev) -> list[Path]:
    """The published report, opened from disk with the network cut off."""
    base = server.home / "recursive_clusters"
    tree_id = json.loads((base / "current.json").read_text())["generation"]
    tree_dir = base / "trees" / tree_id
    report = tree_dir / "report.html"
    assert report.is_file(), f"the published tree has no report: {report}"
    nodes, leaves = _tree_paths(tree_dir)
    assert "root" in nodes, nodes
    assert len(nodes) > 1, f"the demo tree was not zoomed into: {nodes}"

    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    requests: list[str] = []

    def console(message) -> None:
        if message.type == "error":
            errors.append(f"console error: {message.text}")

    def offline(route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            route.continue_()
        else:
            requests.append(url)
            route.abort()

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    page.route("**/*", offline)
    page.goto(report.as_uri(), wait_until="load")

    text = page.inner_text("body")
    missing = [path for path in [*nodes, *leaves] if path not in text]
    assert not missing, f"tree nodes missing from the report: {missing}"
    hidden = [
        path
        for path in [*nodes, *leaves]
        if not page.locator(f'tr[data-path="{path}"]').first.is_visible()
    ]
    assert not hidden, f"tree nodes not shown in the report's tree: {hidden}"
    shots = [ARTIFACTS / "report.png", ARTIFACTS / "report_tree.png"]
    page.screenshot(path=str(shots[0]))
    tree = page.locator("tr[data-path]").first.locator("xpath=ancestor::table[1]")
    tree.screenshot(path=str(shots[1]))

    # The interactive maps are drawn only near the viewport: scroll through the whole page
    # so that every map is drawn (and its errors, if any, logged).
    maps = page.locator("div.rc-map").count()
    drawn: set[str] = set()
    height = page.evaluate("document.body.scrollHeight")
    for offset in [*range(0, height, 600), height]:
        page.evaluate(f"window.scrollTo(0, {offset})")
        page.wait_for_timeout(100)
        drawn.update(
            page.evaluate(
                "[...document.querySelectorAll('div.rc-map[data-drawn]')]"
                ".filter(map => map.querySelector('.main-svg'))"
                ".map(map => map.dataset.spec)"
            )
        )
    page.wait_for_timeout(300)
    page.close()
    assert not requests, f"the report requested the network: {requests}"
    assert not errors, "the report logged errors:\n" + "\n".join(errors)
    assert len(drawn) == maps, f"only {len(drawn)} of {maps} interactive maps were drawn"
    return shots


def _current_tree(server: DagsterDev) -> str:
    return json.loads((server.home / "recursive_clusters" / "current.json").read_text())[
        "generation"
    ]


def _assert_ui_lists_the_current_trees_partitions(server: DagsterDev) -> None:
    """The growth sensor removes a replaced tree's partitions on its first tick after the new
    tree is published (every 5 s): poll for it a little, then require it."""
    deadline = time.monotonic() + SENSOR_TIMEOUT_S
    while True:
        keys = server.graphql(PARTITIONS_QUERY)["assetNodeOrError"]["partitionKeys"]
        current = _current_tree(server)
        trees = {key.split(":")[0] for key in keys}
        if trees == {current} or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert keys, "the UI lists no level-2 partitions"
    assert trees == {current}, (
        f"the UI lists partitions of other trees than the current {current}: {keys}"
    )


def _wait_for_scored_batch(server: DagsterDev, batch: str) -> None:
    """The batch sensor (every 15 s) adds the batch's partition and scores it."""
    deadline = time.monotonic() + SENSOR_TIMEOUT_S
    while time.monotonic() < deadline:
        server.ensure_alive()
        node = server.graphql(BATCHES_QUERY)["assetNodeOrError"]
        if batch in node.get("partitionKeys", []):
            runs = server.graphql(RUNS_QUERY)["runsOrError"]["results"]
            scoring = [r for r in runs if r["jobName"] == "score_batches"]
            if scoring and scoring[0]["status"] == "SUCCESS":
                return
            if scoring and scoring[0]["status"] in FINISHED_BAD:
                raise AssertionError(_failure_details(server, scoring[0]["runId"]))
        time.sleep(2)
    raise AssertionError(f"batch {batch} was not scored in {SENSOR_TIMEOUT_S} s")


def _check_asset_tab(browser, server: DagsterDev, asset: str, view: str, texts: list[str]):
    """One tab of an asset's page shows ``texts``: its checks, or its partitions."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(f"{server.url}/assets/{asset}?view={view}", wait_until="domcontentloaded")
    shot = ARTIFACTS / f"{asset}_{view}.png"
    try:
        for text in texts:  # long names are also in hidden copies (for truncation): skip those
            page.get_by_text(text, exact=True).locator("visible=true").first.wait_for()
    finally:
        page.screenshot(path=str(shot))
    page.close()
    return shot


def test_demo_in_the_ui_and_report_in_the_browser(dagster_dev: DagsterDev) -> None:
    started = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _wait_for_sensor_cursor(dagster_dev)
    _launch_grow_tree(dagster_dev)
    runs = _wait_for_published_tree(dagster_dev)
    grown = time.monotonic()
    jobs = sorted(run["jobName"] for run in runs)
    assert "level_2_nodes" in jobs, f"the sensor grew no level-2 nodes: {jobs}"
    _assert_ui_lists_the_current_trees_partitions(dagster_dev)
    first_tree = _current_tree(dagster_dev)
    with _browser() as browser:
        shots = [_check_asset_graph(browser, dagster_dev), *_check_report(browser, dagster_dev)]
    checked = time.monotonic()

    # A second launch from the UI (re-clustering the same data) grows and publishes a new
    # tree, which replaces the first one's partitions in the UI.
    _launch_grow_tree(dagster_dev)
    runs = _wait_for_published_tree(dagster_dev, publishes=2, replacing=first_tree)
    second_tree = _current_tree(dagster_dev)
    assert second_tree != first_tree, "the second launch did not publish a new tree"
    _assert_ui_lists_the_current_trees_partitions(dagster_dev)
    second_done = time.monotonic()

    # A batch dropped in the watched folder is scored by the batch sensor; the Checks tabs
    # of the tree and of the batch, and the batch's partition, are in the UI.
    batch = "2026-11-24.parquet"
    load_demo_digits().sample(200, random_state=0).to_parquet(dagster_dev.batches / batch)
    _wait_for_scored_batch(dagster_dev, batch)
    with _browser() as browser:
        shots += [
            _check_asset_tab(browser, dagster_dev, "cluster_tree", "checks", TREE_CHECK_NAMES),
            _check_asset_tab(browser, dagster_dev, "scored_batches", "checks", ["drift"]),
            _check_asset_tab(browser, dagster_dev, "scored_batches", "partitions", [batch]),
        ]
    # Each tree was published once: no tick asks again while a tree's publish run waits.
    runs = dagster_dev.graphql(RUNS_QUERY)["runsOrError"]["results"]
    publishes = sorted(
        tag["value"]
        for run in runs
        if run["jobName"] == "publish_tree"
        for tag in run["tags"]
        if tag["key"] == TREE_ID_TAG
    )
    assert publishes == sorted([first_tree, second_tree]), f"publish runs: {publishes}"
    print(
        f"\n{len(runs)} runs: first tree published in {grown - started:.0f} s, "
        f"browser checks {checked - grown:.0f} s, second tree {second_done - checked:.0f} s, "
        f"batch scored and its tabs checked {time.monotonic() - second_done:.0f} s"
    )
    for shot in shots:
        print(f"screenshot: {shot}")
