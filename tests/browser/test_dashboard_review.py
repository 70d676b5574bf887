"""The dashboard on phones and desktops: layout, navigation, polling, extraction, the chart."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser.conftest import Server, runwatch_cli, start_server
from tests.browser.test_dashboard import WAIT_S, row_ids, wait_for_cards, wait_until

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
WIDTHS = [360, 390, 430, 1280]


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Pages at a given width; each fails the test on an uncaught error or a console error."""
    contexts: list[Any] = []
    problems: list[str] = []

    def make(
        width: int = 1280, height: int = 800, context: Any = None, *, console: bool = True
    ) -> Any:
        if context is None:
            context = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme="light"
            )
            contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" and console
                else None
            ),
        )
        return page

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
    assert not problems, problems


def extraction_run(
    api: httpx.Client,
    prompt: str,
    output: dict[str, Any],
    *,
    expected: dict[str, Any] | None = None,
    document: str = "a.pdf",
    config: str = "cfg",
    cost: float | None = None,
) -> str:
    """A completed extraction run (scored when `expected` is given); returns its id."""
    body: dict[str, Any] = {"prompt_id": prompt, "config_id": config, "document_name": document}
    if expected is not None:
        body["expected"] = expected
    created = api.post("/extraction-runs", json=body)
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    assert api.patch(f"/extraction-runs/{run_id}", json={"status": "running"}).status_code == 200
    done: dict[str, Any] = {"status": "completed", "output": output}
    if cost is not None:
        done["cost_usd"] = cost
    finished = api.patch(f"/extraction-runs/{run_id}", json=done)
    assert finished.status_code == 200, finished.text
    return run_id


def showing(first: int, last: int, total: int) -> str:
    return f"Showing {first}\N{EN DASH}{last} of {total:,} runs"


def phone_screenshot(page: Any, path: Path, max_height: int = 1800) -> None:
    """The top of the page, up to `max_height` pixels (docs/ shows these)."""
    height = min(max_height, page.evaluate("document.documentElement.scrollHeight"))
    width = page.viewport_size["width"]
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
    )


def no_page_scroll(page: Any) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide in a {width[1]} px window"


def within_viewport(page: Any, locator: Any) -> None:
    """The element is shown and lies inside the window's width.

    Read in one step, and again if the element was just replaced by a redraw (a detached
    element measures 0 by 0).
    """
    measure = "el => { const r = el.getBoundingClientRect(); return [r.left, r.right, r.height]; }"
    deadline = time.monotonic() + WAIT_S
    left, right, height = locator.evaluate(measure)
    while height == 0 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
        left, right, height = locator.evaluate(measure)
    width = page.viewport_size["width"]
    assert height > 0
    assert left >= 0
    assert right <= width + 0.5, (left, right, width)


def smallest_chart_text_px(page: Any) -> float:
    """The smallest axis label as drawn on screen, in CSS pixels."""
    return page.evaluate(
        """() => {
          const svg = document.querySelector('svg.chart');
          const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
          const sizes = [...svg.querySelectorAll('.axis-label')]
            .map(t => parseFloat(getComputedStyle(t).fontSize) * scale);
          return Math.min(...sizes);
        }"""
    )


@pytest.fixture(scope="module")
def compare_pair(server: Server) -> tuple[str, str, str]:
    """Two scored runs of one document: A's total is right, B's is wrong, B has an extra field."""
    with server.api() as api:
        prompt = f"review-{uuid.uuid4().hex[:8]}"
        expected = {"invoice": {"total": 244.3, "currency": "EUR"}, "vendor": "Acme Corporation"}
        run_a = extraction_run(api, prompt, expected, expected=expected, cost=0.0088)
        run_b = extraction_run(
            api,
            prompt,
            {
                "invoice": {"total": 24.43, "currency": "EUR"},
                "vendor": "Acme Corporation",
                "note": "an extra field with a rather long value that must wrap on a phone",
            },
            expected=expected,
            cost=0.08,
        )
    return prompt, run_a, run_b


@pytest.mark.parametrize("width", WIDTHS)
def test_every_view_fits_the_screen(
    open_page: Callable[..., Any],
    server: Server,
    api: httpx.Client,
    compare_pair: tuple[str, str, str],
    screenshots: Path,
    width: int,
) -> None:
    page = open_page(width, 844 if width < 700 else 800)
    base = server.base_url
    phone = width < 700

    page.goto(f"{base}/#/overview?days=7")
    wait_for_cards(page, server)
    page.wait_for_selector("svg.chart")
    no_page_scroll(page)
    first_layer = page.locator("tr[data-layer]").first
    within_viewport(page, first_layer.locator("th"))
    within_viewport(page, first_layer.locator('td[data-label="Failed"]'))
    assert smallest_chart_text_px(page) >= 11
    if width == PHONE["width"]:
        phone_screenshot(page, screenshots / "phone-overview.png")

    page.goto(f"{base}/#/errors")
    page.wait_for_selector("tr[data-fingerprint]")
    no_page_scroll(page)
    group = page.locator("tr[data-fingerprint]").first
    within_viewport(page, group.locator(".error-template"))
    within_viewport(page, group.locator(".sparkline"))
    for label in ("Errors", "Runs", "Layers", "Last seen"):
        within_viewport(page, group.locator(f'td[data-label="{label}"]'))
    if width == PHONE["width"]:
        phone_screenshot(page, screenshots / "phone-errors.png")

    page.goto(f"{base}/#/versions")
    page.wait_for_selector("tr[data-hash]")
    page.wait_for_selector('tr[data-metric="cost_per_run_usd"]')
    no_page_scroll(page)
    version = page.locator("tr[data-hash]").first
    for label in ("First seen", "Last seen", "p95", "Cost / run"):
        within_viewport(page, version.locator(f'td[data-label="{label}"]'))
    success_row = page.locator('tr[data-metric="success_rate"]')
    for label in ("A", "B", "p-value", "Significant?"):
        within_viewport(page, success_row.locator(f'td[data-label="{label}"]'))
    within_viewport(page, success_row.locator("td.num").nth(2))  # B minus A
    if phone:
        # One block per version, its two times each on a line of their own.
        first_seen = version.locator('td[data-label="First seen"]')
        assert first_seen.evaluate("el => el.offsetHeight < 30")
    if width == PHONE["width"]:
        phone_screenshot(page, screenshots / "phone-versions.png", max_height=2400)

    page.goto(f"{base}/#/runs")
    page.wait_for_selector("tr[data-run-id]")
    no_page_scroll(page)
    rows = page.locator("tr[data-run-id]")
    for i in range(3):
        row = rows.nth(i)
        within_viewport(page, row.locator("td a").first)  # started
        within_viewport(page, row.locator(".layer-cell"))
        within_viewport(page, row.locator(".badge"))
        within_viewport(page, row.locator('td[data-label="Cost"]'))
    if phone:
        # Labelled values, one run per block, and the model name is not broken up.
        assert rows.first.locator('td[data-label="Model"]').evaluate("el => el.offsetHeight < 30")
    else:
        assert page.locator("table.runs-table thead th:visible").count() == 9
    if width == PHONE["width"]:
        phone_screenshot(page, screenshots / "phone-runs.png")

    failed = api.get("/runs", params={"status": "failed", "limit": 1}).json()["runs"][0]
    page.goto(f"{base}/#/runs/{failed['id']}")
    page.wait_for_selector(".error-item")
    no_page_scroll(page)

    _prompt, run_a, run_b = compare_pair
    page.goto(f"{base}/#/extraction")
    page.wait_for_selector("tr[data-run-id]")
    page.wait_for_selector(".x-cards")
    no_page_scroll(page)
    within_viewport(page, page.locator("tr[data-run-id] .badge").first)
    # The per-prompt and per-config tables start folded on a phone, open on a desktop.
    assert page.locator("details.x-group-stats[open]").count() == (0 if phone else 2)

    page.goto(f"{base}/#/extraction/{run_b}")
    page.wait_for_selector(".tree")
    no_page_scroll(page)

    page.goto(f"{base}/#/extraction/compare/{run_a}/{run_b}")
    page.wait_for_selector("tr[data-field]")
    page.wait_for_selector('tr[data-metric="f1"]')
    no_page_scroll(page)
    within_viewport(page, page.locator('tr[data-metric="f1"] td').nth(2))
    within_viewport(page, page.locator('tr[data-field="invoice.total"] td[data-side="b"]'))
    if width == PHONE["width"]:
        phone_screenshot(page, screenshots / "phone-compare.png", max_height=2400)

    stats = api.get("/extraction-runs/stats/summary", params={"days": 30}).json()
    prompts = sorted(p for p in stats["by_prompt"] if stats["by_prompt"][p]["completed"] >= 3)
    if len(prompts) >= 2:
        page.goto(f"{base}/#/extraction/groups?a_prompt_id={prompts[0]}&b_prompt_id={prompts[-1]}")
        page.wait_for_selector('[data-count="wins_a"]')
        no_page_scroll(page)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_skip_link_keeps_the_view(
    open_page: Callable[..., Any], server: Server, viewport: dict[str, int]
) -> None:
    page = open_page(viewport["width"], viewport["height"])
    page.goto(f"{server.base_url}/#/runs?status=failed")
    page.wait_for_selector("tr[data-run-id]")
    url = page.url
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert page.locator(".skip-link").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.url == url
    assert page.locator("h1").first.inner_text() == "Runs"
    assert page.locator("tr[data-run-id]").count() > 0


def test_the_page_position_survives_reload_and_back(
    open_page: Callable[..., Any], server: Server, api: httpx.Client
) -> None:
    query = {"status": "success", "limit": 25}
    pages = [api.get("/runs", params=query).json()]
    for _ in range(2):
        pages.append(api.get("/runs", params={**query, "cursor": pages[-1]["next_cursor"]}).json())
    total = pages[0]["total"]
    ids = [[r["id"] for r in p["runs"]] for p in pages]

    page = open_page(*PHONE.values())
    page.goto(f"{server.base_url}/#/runs?status=success")
    wait_until(lambda: row_ids(page), ids[0])
    page.get_by_role("button", name="Older").click()
    wait_until(lambda: row_ids(page), ids[1])
    page.get_by_role("button", name="Older").click()
    wait_until(lambda: row_ids(page), ids[2])
    count = page.locator(".result-count")
    wait_until(lambda: count.inner_text(), showing(51, 75, total))

    page.reload()
    wait_until(lambda: row_ids(page), ids[2])
    wait_until(lambda: count.inner_text(), showing(51, 75, total))
    page.get_by_role("button", name="Newer").click()
    wait_until(lambda: row_ids(page), ids[1])
    wait_until(lambda: count.inner_text(), showing(26, 50, total))
    page.go_back()
    wait_until(lambda: row_ids(page), ids[2])
    wait_until(lambda: count.inner_text(), showing(51, 75, total))
    page.go_back()
    wait_until(lambda: row_ids(page), ids[1])
    assert page.get_by_role("button", name="Newer").is_visible()

    # The address alone (another tab, no memory of the pages before) still knows its place
    # and goes back by offset.
    page.get_by_role("button", name="Older").click()
    wait_until(lambda: row_ids(page), ids[2])
    other = open_page(*DESKTOP.values())
    other.goto(page.url)
    wait_until(lambda: row_ids(other), ids[2])
    wait_until(lambda: other.locator(".result-count").inner_text(), showing(51, 75, total))
    other.get_by_role("button", name="Newer").click()
    wait_until(lambda: row_ids(other), ids[1])
    wait_until(lambda: other.locator(".result-count").inner_text(), showing(26, 50, total))


class Requests:
    """Counts a page's API requests by path and waits until none is in flight."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[Any] = []
        self.pending = 0
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, request: Any) -> None:
        if "/ui/" not in request.url:
            self.seen.append(request)
            self.pending += 1

    def _end(self, request: Any) -> None:
        if "/ui/" not in request.url:
            self.pending -= 1

    def settle(self) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.pending and time.monotonic() < deadline:
            # Playwright delivers events while one of its calls runs, not during time.sleep.
            self.page.wait_for_timeout(20)
        assert self.pending == 0

    def to(self, path: str) -> list[Any]:
        return [r for r in self.seen if urlsplit(r.url).path == path]


def advance(page: Any, requests: Requests, seconds: int) -> None:
    """Move the page's clock on one second at a time, letting each poll finish."""
    for _ in range(seconds):
        page.clock.run_for(1000)
        requests.settle()


def test_each_view_polls_only_what_can_change(
    open_page: Callable[..., Any],
    server: Server,
    api: httpx.Client,
    compare_pair: tuple[str, str, str],
) -> None:
    page = open_page(*DESKTOP.values())
    requests = Requests(page)
    page.clock.install()
    base = server.base_url

    # Overview: the summary once per ETag step (10 s), the series far less often.
    page.goto(f"{base}/#/overview?days=7")
    wait_for_cards(page, server)
    page.wait_for_selector("svg.chart")
    page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
    requests.settle()
    before_summary = len(requests.to("/runs/stats/summary"))
    before_series = len(requests.to("/runs/stats/timeseries"))
    advance(page, requests, 120)
    summary_polls = len(requests.to("/runs/stats/summary")) - before_summary
    series_polls = len(requests.to("/runs/stats/timeseries")) - before_series
    assert 10 <= summary_polls <= 13
    assert series_polls <= 4
    polled = requests.to("/runs/stats/summary")[-1]
    assert polled.headers.get("if-none-match")

    # The first page of runs polls with the ETag it got, and a 304 comes back.
    page.goto(f"{base}/#/runs")
    page.wait_for_selector("tr[data-run-id]")
    requests.settle()
    first = len(requests.to("/runs"))
    advance(page, requests, 6)
    again = requests.to("/runs")[first:]
    assert again
    assert again[-1].headers.get("if-none-match")
    assert again[-1].response().status == 304

    # A completed run never changes: its detail is not polled.
    done = api.get("/runs", params={"status": "success", "limit": 1}).json()["runs"][0]
    page.goto(f"{base}/#/runs/{done['id']}")
    page.wait_for_selector("#run-facts")
    requests.settle()
    path = f"/runs/{done['id']}"
    loaded = len(requests.to(path))
    advance(page, requests, 30)
    assert len(requests.to(path)) == loaded

    # Two finished runs: their comparison cannot change, so it is not polled.
    _prompt, run_a, run_b = compare_pair
    page.goto(f"{base}/#/extraction/compare/{run_a}/{run_b}")
    page.wait_for_selector("tr[data-field]")
    requests.settle()
    path = f"/extraction-runs/{run_a}/compare/{run_b}"
    loaded = len(requests.to(path))
    advance(page, requests, 60)
    assert len(requests.to(path)) == loaded

    # A group comparison: rarely (a minute with an ETag, five without), with If-None-Match.
    stats = api.get("/extraction-runs/stats/summary", params={"days": 30}).json()
    prompts = sorted(p for p in stats["by_prompt"] if stats["by_prompt"][p]["completed"] >= 3)
    if len(prompts) >= 2:
        page.goto(f"{base}/#/extraction/groups?a_prompt_id={prompts[0]}&b_prompt_id={prompts[-1]}")
        page.wait_for_selector('[data-count="wins_a"]')
        requests.settle()
        loaded = requests.to("/extraction-runs/compare")
        etag = loaded[-1].response().headers.get("etag")
        advance(page, requests, 65)
        polls = requests.to("/extraction-runs/compare")[len(loaded) :]
        if etag:
            assert len(polls) == 1
            assert polls[0].headers.get("if-none-match") == etag
        else:
            assert polls == []


def test_extraction_list_summary_and_detail(
    open_page: Callable[..., Any], server: Server, api: httpx.Client
) -> None:
    prompt = f"list-{uuid.uuid4().hex[:8]}"
    expected = {"a": 1, "b": 2}
    ids = [
        extraction_run(api, prompt, {"a": 1, "b": 2}, expected=expected, cost=0.08),
        extraction_run(api, prompt, {"a": 1, "b": 3}, expected=expected, cost=0.0088),
    ]
    details = {i: api.get(f"/extraction-runs/{i}").json() for i in ids}
    page = open_page(*DESKTOP.values())
    page.goto(f"{server.base_url}/#/extraction?prompt_id={prompt}")
    wait_until(lambda: sorted(row_ids(page)), sorted(ids))
    for run_id, run in details.items():
        row = page.locator(f'tr[data-run-id="{run_id}"]')
        f1 = row.locator('td[data-col="f1"]')
        wait_until(lambda f1=f1: f1.inner_text(), f"{run['metrics']['f1']:.3f}")
        latency = round(run["metrics"]["latency_ms"])
        assert row.locator('td[data-col="latency"]').inner_text() == f"{latency:,} ms"
        assert row.locator(".badge").inner_text() == "Completed"
    # One cost column, one format: $0.0800 beside $0.0088.
    costs = page.locator('tr[data-run-id] td[data-label="Cost"]').all_inner_texts()
    assert sorted(costs) == ["$0.0088", "$0.0800"]

    # The API's summary, per prompt: runs, mean F1, latency percentiles, cost.
    summary = api.get("/extraction-runs/stats/summary", params={"days": 7}).json()
    mine = summary["by_prompt"][prompt]
    row = page.locator(f'tr[data-group="{prompt}"]')
    wait_until(lambda: row.count(), 1)
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == f"{mine['runs']:,}"
    assert cells[3] == f"{mine['mean_f1']:.3f}"
    assert cells[4] == f"{round(mine['p50_latency_ms']):,} ms"
    assert cells[5] == f"{round(mine['p95_latency_ms']):,} ms"
    # The window slides; the cards show the answer from just before or just after.
    card = page.locator('[data-stat="total_runs"] .card-value').inner_text()
    f1_card = page.locator('[data-stat="mean_f1"] .card-value').inner_text()
    later = api.get("/extraction-runs/stats/summary", params={"days": 7}).json()
    assert card in {f"{s['total_runs']:,}" for s in (summary, later)}
    assert f1_card in {f"{s['mean_f1']:.3f}" for s in (summary, later)}

    # A run whose worker stopped reporting: worker, attempts, and the lease marked expired.
    created = api.post(
        "/extraction-runs",
        json={"prompt_id": prompt, "config_id": "cfg", "document_name": "late.pdf"},
    ).json()["run_id"]
    started = api.patch(
        f"/extraction-runs/{created}",
        json={"status": "running", "worker_id": "worker-late", "lease_seconds": 1},
    )
    assert started.status_code == 200, started.text
    run = api.get(f"/extraction-runs/{created}").json()
    lease_end = datetime.fromisoformat(run["lease_expires_at"].replace("Z", "+00:00"))
    while datetime.now(UTC) <= lease_end:
        time.sleep(0.1)
    page.goto(f"{server.base_url}/#/extraction/{created}")
    page.wait_for_selector("[data-worker]")
    assert page.locator("[data-worker]").inner_text() == "worker-late"
    assert page.locator("[data-attempts]").get_attribute("data-attempts") == str(run["attempts"])
    assert page.locator("[data-lease]").get_attribute("data-lease") == "expired"
    assert "Lease expired" in page.locator("[data-lease]").inner_text()

    # A finished run's lease is history, not a warning.
    page.goto(f"{server.base_url}/#/extraction/{ids[0]}")
    page.wait_for_selector("[data-worker], .kv")
    assert page.locator('[data-lease="expired"]').count() == 0


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_run_compare_says_which_side_matches_the_ground_truth(
    open_page: Callable[..., Any],
    server: Server,
    api: httpx.Client,
    compare_pair: tuple[str, str, str],
    viewport: dict[str, int],
) -> None:
    _prompt, run_a, run_b = compare_pair
    comparison = api.get(f"/extraction-runs/{run_a}/compare/{run_b}").json()
    metrics = {m["metric"]: m for m in comparison["metric_comparisons"]}
    page = open_page(viewport["width"], viewport["height"])
    page.goto(f"{server.base_url}/#/extraction/compare/{run_a}/{run_b}")
    page.wait_for_selector("tr[data-field]")
    total = page.locator('tr[data-field="invoice.total"]')
    assert total.get_attribute("data-match") == "a"
    assert total.locator('td[data-side="a"] .match').count() == 1
    assert total.locator('td[data-side="b"] .mismatch').count() == 1
    assert "24.43" in total.locator('td[data-side="b"]').inner_text()
    assert "244.3" in total.inner_text()
    # A field the ground truth does not have: the side without it is the right one.
    note = page.locator('tr[data-field="note"]')
    assert note.get_attribute("data-match") == "a"
    assert note.locator('td[data-side="b"] .mismatch').count() == 1

    # More predicted fields is not better by itself; a lower F1 is worse.
    assert metrics["fields_predicted"]["difference"] > 0
    predicted = page.locator('tr[data-metric="fields_predicted"] td').nth(2)
    assert predicted.get_attribute("data-better") == "neutral"
    assert "delta-up" not in (predicted.get_attribute("class") or "")
    assert metrics["f1"]["difference"] < 0
    f1 = page.locator('tr[data-metric="f1"] td').nth(2)
    assert f1.get_attribute("data-better") == "a"
    assert "delta-down" in (f1.get_attribute("class") or "")
    assert page.locator('tr[data-metric="f1"] td').nth(0).inner_text().endswith("1.000")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_group_compare_shows_cost_and_sorts_by_regression(
    open_page: Callable[..., Any], server: Server, api: httpx.Client, viewport: dict[str, int]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    a, b = f"ga-{suffix}", f"gb-{suffix}"
    expected = {"x": 1, "y": 2, "z": 3, "w": 4}
    outputs_b = [{"x": 1, "y": 2, "z": 3, "w": 4}, {"x": 1}, {"x": 1, "y": 2, "z": 0}]
    for i, out in enumerate(outputs_b):
        extraction_run(api, a, expected, expected=expected, document=f"d{i}", cost=0.01)
        extraction_run(api, b, out, expected=expected, document=f"d{i}", cost=0.004)
    comparison = api.get(
        "/extraction-runs/compare", params={"a_prompt_id": a, "b_prompt_id": b}
    ).json()
    page = open_page(viewport["width"], viewport["height"])
    page.goto(f"{server.base_url}/#/extraction/groups?a_prompt_id={a}&b_prompt_id={b}")
    page.wait_for_selector("tr[data-document]")
    for side, prompt in (("a", a), ("b", b)):
        stats = api.get(
            "/extraction-runs/stats/summary", params={"days": 30, "prompt_id": prompt}
        ).json()
        card = page.locator(f'[data-cost="{side}"]')
        assert card.locator(".card-value").inner_text() == (
            f"${stats['total_cost_usd'] / stats['total_runs']:,.4f}"
        )
        assert f"({stats['total_runs']:,} runs" in card.inner_text()

    def f1_difference(doc: dict[str, Any]) -> float:
        return next(m for m in doc["metric_comparisons"] if m["metric"] == "f1")["difference"]

    worst_first = [d["document_name"] for d in sorted(comparison["documents"], key=f1_difference)]
    sort_button = page.locator('button.sort[data-sort-key="difference"]')
    sort_button.click()
    sort_button = page.locator('button.sort[data-sort-key="difference"]')
    if page.locator('th[aria-sort="ascending"]').count() == 0:
        sort_button.click()
    docs = lambda: page.eval_on_selector_all(  # noqa: E731
        "tr[data-document]", "rows => rows.map(r => r.dataset.document)"
    )
    wait_until(docs, worst_first)
    assert parse_qs(urlsplit(page.url).fragment.partition("?")[2])["sort"] == ["difference"]
    page.reload()
    wait_until(docs, worst_first)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_chart_shows_cost_and_tokens_and_leads_to_runs(
    open_page: Callable[..., Any], server: Server, api: httpx.Client, viewport: dict[str, int]
) -> None:
    series = api.get("/runs/stats/timeseries", params={"days": 1, "bucket": "hour"}).json()
    page = open_page(viewport["width"], viewport["height"])
    page.goto(f"{server.base_url}/#/overview?days=1&chart=cost")
    wait_for_cards(page, server)
    page.wait_for_selector("svg.chart")
    assert page.locator("#chart-cost").is_checked()
    legend = page.locator(".chart-wrap .legend").inner_text()
    expected_cost = sum(b["cost_usd"] for b in series["buckets"])
    assert legend.split()[-1] == f"${expected_cost:,.2f}"
    page.locator('label[for="chart-tokens"]').click()
    wait_until(lambda: "chart=tokens" in page.url, True)
    expected_tokens = sum(b["tokens"] for b in series["buckets"])
    legend = page.locator(".chart-wrap .legend")
    wait_until(lambda: legend.inner_text().split()[-1], f"{expected_tokens:,}")

    # The current bucket is marked as unfinished.
    bars = page.locator("svg.chart .bar")
    assert bars.last.get_attribute("class") == "bar in-progress"
    assert "in progress" in bars.last.get_attribute("aria-label")

    # From the keyboard: one tab stop, arrows between bars, a tooltip, Enter opens the runs.
    busiest = max(range(len(series["buckets"]) - 1), key=lambda i: series["buckets"][i]["runs"])
    bars.last.focus()
    for _ in range(len(series["buckets"]) - 1 - busiest):
        page.keyboard.press("ArrowLeft")
    focused = page.evaluate("document.activeElement.dataset.index")
    assert focused == str(busiest)
    tip = page.locator(".chart-tip")
    assert tip.is_visible()
    bucket = series["buckets"][busiest]
    assert f"{bucket['runs']:,} run" in tip.inner_text()
    page.keyboard.press("Enter")
    page.wait_for_url("**/#/runs?**")
    start = datetime.fromisoformat(bucket["start"].replace("Z", "+00:00"))
    expected = api.get(
        "/runs",
        params={
            "since": start.isoformat(),
            "until": (start + timedelta(hours=1)).isoformat(),
            "sort": "-tokens_total",
            "limit": 25,
        },
    ).json()
    wait_until(lambda: row_ids(page), [r["id"] for r in expected["runs"]])

    # And with the mouse: hovering shows the same tooltip, a click opens the bucket's runs.
    page.go_back()
    page.wait_for_selector("svg.chart")
    bar = page.locator(f'svg.chart .bar[data-index="{busiest}"]')
    bar.hover()
    assert page.locator(".chart-tip").is_visible()
    bar.click()
    page.wait_for_url("**/#/runs?**")
    wait_until(lambda: row_ids(page), [r["id"] for r in expected["runs"]])


def test_no_console_error_and_the_layer_sort_is_in_the_url(
    open_page: Callable[..., Any], server: Server, api: httpx.Client
) -> None:
    # `open_page` fails the test on any console error (the feature probes included).
    page = open_page(*DESKTOP.values())
    page.goto(f"{server.base_url}/#/overview?days=30")
    wait_for_cards(page, server)
    page.locator('button.sort[data-sort-key="cost_usd"]').click()
    wait_until(lambda: "sort=-cost_usd" in page.url, True)
    page.reload()
    wait_for_cards(page, server)
    by_layer = api.get("/runs/stats/summary", params={"days": 30}).json()["by_layer"]
    expected = sorted(by_layer, key=lambda name: (-by_layer[name]["cost_usd"], name))
    wait_until(
        lambda: page.eval_on_selector_all("tr[data-layer]", "rs => rs.map(r => r.dataset.layer)"),
        expected,
    )
    assert page.locator('th[aria-sort="descending"]').text_content().startswith("Cost")

    # Every cost in a column has the same number of decimals.
    costs = page.locator('tr[data-layer] td[data-label="Cost"]').all_inner_texts()
    assert len({len(c.rsplit(".", 1)[1]) for c in costs}) == 1
    page.goto(f"{server.base_url}/#/runs")
    page.wait_for_selector("tr[data-run-id]")
    costs = [c for c in page.locator('td[data-label="Cost"]').all_inner_texts() if c != "—"]
    assert len({len(c.rsplit(".", 1)[1]) for c in costs}) == 1

    # Status badges read the same in every view: capitalised labels.
    page.goto(f"{server.base_url}/#/extraction")
    page.wait_for_selector("tr[data-run-id]")
    badges = set(page.locator(".badge").all_inner_texts())
    assert badges
    assert all(re.fullmatch(r"[A-Z][a-z]+", b) for b in badges), badges


def test_a_key_can_be_remembered_and_a_wrong_one_is_dropped(
    open_page: Callable[..., Any], tmp_path: Path
) -> None:
    key = runwatch_cli(tmp_path, "keys", "create", "--name", "dash", "--scope", "read")
    key = key.strip().splitlines()[0]
    own = start_server(tmp_path, demo_runs=100)
    try:
        # The 401s that ask for the key are logged by the browser; they are expected here.
        page = open_page(*PHONE.values(), console=False)
        page.goto(f"{own.base_url}/#/overview")
        page.get_by_role("dialog").wait_for()
        page.get_by_label("Read key").fill(key)
        page.get_by_label("Remember on this device").check()
        page.get_by_role("button", name="Use key").click()
        wait_for_cards(page, own)
        assert page.evaluate("localStorage.getItem('runwatch.apiKey')") == key
        assert page.evaluate("sessionStorage.getItem('runwatch.apiKey')") is None
        # Another tab on this device starts without asking.
        other = open_page(context=page.context, console=False)
        other.goto(f"{own.base_url}/#/overview")
        wait_for_cards(other, own)
        assert other.get_by_role("dialog").is_hidden()

        # A key the server refuses is not kept (a revoked key must not stick).
        page.evaluate("localStorage.setItem('runwatch.apiKey', 'rw_wrong_key')")
        page.reload()
        page.wait_for_selector("#key-error:not([hidden])")
        assert "did not accept" in page.locator("#key-error").inner_text()
        assert page.evaluate("localStorage.getItem('runwatch.apiKey')") is None
        assert page.evaluate("sessionStorage.getItem('runwatch.apiKey')") is None
    finally:
        own.stop()


def test_a_view_opened_while_the_api_is_away_claims_no_figures(
    browser: Any, tmp_path: Path
) -> None:
    own = start_server(tmp_path, demo_runs=100)
    context = browser.new_context(viewport=PHONE, color_scheme="light")
    page = context.new_page()
    try:
        page.goto(f"{own.base_url}/#/overview")
        wait_for_cards(page, own)
        own.stop()
        page.wait_for_selector("#banner:not([hidden])", timeout=WAIT_S * 1000)
        assert "figures below are from" in page.locator("#banner").inner_text()
        page.locator('[data-nav="runs"]').click()
        banner = page.locator("#banner")
        wait_until(lambda: "Nothing could be loaded for this view yet" in banner.inner_text(), True)
        assert "figures below are from" not in banner.inner_text()
        assert page.locator("tr[data-run-id]").count() == 0
    finally:
        own.stop()
        context.close()
