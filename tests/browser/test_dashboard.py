"""The dashboard in a real Chromium against a real `runwatch serve --demo`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser.conftest import Server, runwatch_cli, start_server

WAIT_S = 20


def wait_until(read: Callable[[], Any], expected: Any, *, timeout: float = WAIT_S) -> Any:
    """Poll `read()` until it returns `expected`; on timeout, fail showing the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    assert value == expected
    return value


def row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("tr[data-run-id]", "rows => rows.map(r => r.dataset.runId)")


def dollars(usd: float, places: int) -> str:
    """`usd` as the API writes it (0.01815), rounded half away from zero: $0.0182.

    Python's own formatting rounds the binary double (0.018149999...) and would say $0.0181.
    """
    exact = Decimal(repr(usd)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"${exact:,.{places}f}"


def percent(ratio: float) -> str:
    """`ratio` as the dashboard shows it: Intl's one decimal, half away from zero.

    Intl rounds the exact double of `ratio * 100` (0.8125 → 81.25 → "81.3"), where
    Python's own formatting rounds half to even ("81.2").
    """
    exact = Decimal(ratio * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{exact} %"


def money(usd: float) -> str:
    return dollars(usd, 4 if usd != 0 and abs(usd) < 0.01 else 2)


def money_column(values: list[float | None]) -> Callable[[float], str]:
    """A table column's costs: four decimals for all when any is a fraction of a cent."""
    fine = any(v is not None and v != 0 and abs(v) < 0.01 for v in values)
    return lambda usd: dollars(usd, 4 if fine else 2)


def card(page: Any, key: str) -> tuple[str, str, str]:
    """The text, raw value and subtitle shown on one summary card."""
    root = page.locator(f'[data-card="{key}"]')
    value = root.locator(".card-value")
    return (
        value.inner_text(),
        value.get_attribute("data-value"),
        root.locator(".card-sub").inner_text(),
    )


def wait_for_cards(page: Any, server: Server, selector: str = ".cards[data-days]") -> None:
    """Wait for the summary cards; on timeout, fail with what the page and server said."""
    try:
        page.wait_for_selector(selector, timeout=WAIT_S * 1000)
    except Exception as exc:  # Playwright's TimeoutError; add the context it lacks
        state = [page.locator("#conn").inner_text(), page.locator("#banner").inner_text()]
        log = server.log_path.read_text()[-3000:]
        pytest.fail(f"the cards did not load ({exc}); page said {state}; server log:\n{log}")


def open_overview(page: Any, server: Server, days: int) -> None:
    page.goto(f"{server.base_url}/#/overview")
    wait_for_cards(page, server)
    label = {1: "24 h", 7: "7 d", 30: "30 d"}[days]
    page.get_by_role("radio", name=label).check()
    wait_for_cards(page, server, f'.cards[data-days="{days}"]')


def test_overview_cards_show_the_stats_summary(
    page: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    for days in (1, 7, 30):
        # Runs leave a sliding window as time passes; compare against an API answer
        # that did not change while the page was read.
        for _attempt in range(3):
            before = api.get("/runs/stats/summary", params={"days": days}).json()
            open_overview(page, server, days)
            shown = {
                key: card(page, key)
                for key in (
                    "total_runs",
                    "success_rate",
                    "failed_runs",
                    "dry_runs",
                    "total_insights",
                    "total_tokens",
                    "total_cost_usd",
                )
            }
            layer_rows = page.eval_on_selector_all(
                "tr[data-layer]",
                "rows => rows.map(r => [r.dataset.layer, ...[...r.cells].map(c => c.innerText)])",
            )
            after = api.get("/runs/stats/summary", params={"days": days}).json()
            # `since` is "now minus the period" and moves with every request.
            if {**before, "since": None} == {**after, "since": None}:
                break
        else:
            pytest.fail("the demo data kept changing under the test")
        s = before
        assert s["total_runs"] > 0
        assert shown["total_runs"][:2] == (f"{s['total_runs']:,}", str(s["total_runs"]))
        # The API's success rate: success of the finished runs (not dry, not running).
        finished = s["successful_runs"] + s["failed_runs"] + s["partial_runs"]
        assert s["success_rate"] == s["successful_runs"] / finished
        assert shown["success_rate"][0] == percent(s["success_rate"])
        assert f"{s['successful_runs']:,} of {finished:,} finished" in shown["success_rate"][2]
        assert shown["failed_runs"][:2] == (f"{s['failed_runs']:,}", str(s["failed_runs"]))
        assert shown["dry_runs"][:2] == (f"{s['dry_runs']:,}", str(s["dry_runs"]))
        assert shown["total_insights"][:2] == (f"{s['total_insights']:,}", str(s["total_insights"]))
        tokens_text, tokens_value, tokens_sub = shown["total_tokens"]
        assert int(tokens_value) == s["total_tokens"]
        if s["total_tokens"] >= 1_000_000:
            millions = s["total_tokens"] / 1e6
            decimals = 0 if millions >= 100 else 1 if millions >= 10 else 2
            assert tokens_text == f"{millions:.{decimals}f} M"
            assert f"{s['total_tokens']:,}" in tokens_sub
        else:
            assert tokens_text == f"{s['total_tokens']:,}"
        assert shown["total_cost_usd"][0] == money(s["total_cost_usd"])
        assert float(shown["total_cost_usd"][1]) == s["total_cost_usd"]

        by_layer = s["by_layer"]
        column_money = money_column([v["cost_usd"] for v in by_layer.values()])
        assert sorted(row[0] for row in layer_rows) == sorted(by_layer)
        for layer, _name, runs, success, failed, partial, insights, tokens, cost, *_ in layer_rows:
            stats = by_layer[layer]
            rate = stats["success_rate"]
            assert success == ("—" if rate is None else percent(rate))
            assert (runs, failed, partial, insights, tokens) == (
                f"{stats['runs']:,}",
                f"{stats['failed']:,}",
                f"{stats['partial']:,}",
                f"{stats['insights']:,}",
                f"{stats['tokens']:,}",
            )
            assert cost == column_money(stats["cost_usd"])
        # Default order: most runs first.
        assert [int(r[2].replace(",", "")) for r in layer_rows] == sorted(
            (v["runs"] for v in by_layer.values()), reverse=True
        )
        if days == 7:
            page.screenshot(path=str(screenshots / "overview.png"), full_page=True)
            # The first screenful, as docs/overview.png shows it.
            page.screenshot(path=str(screenshots / "overview-top.png"))


def legend_totals(page: Any) -> dict[str, int]:
    items = page.locator(".chart-wrap .legend li").all_text_contents()
    return {label.split()[0].lower(): int(label.split()[-1].replace(",", "")) for label in items}


def test_chart_shows_the_timeseries_and_polling_moves_nothing(
    page: Any, server: Server, api: httpx.Client
) -> None:
    # The project's own route: a 404 here is a regression, not a reason to skip.
    assert api.get("/runs/stats/timeseries", params={"days": 1}).status_code == 200
    for _attempt in range(3):
        series = api.get("/runs/stats/timeseries", params={"days": 1, "bucket": "hour"}).json()
        open_overview(page, server, 1)
        page.wait_for_selector("svg.chart")
        shown = legend_totals(page)
        if series == api.get("/runs/stats/timeseries", params={"days": 1, "bucket": "hour"}).json():
            break
    expected = {
        status: sum(b["by_status"][status] for b in series["buckets"])
        for status in ("success", "partial", "failed", "dry", "running")
    }
    assert shown == expected
    bars = page.locator("svg.chart .bar").count()
    assert bars == len(series["buckets"])

    # A run recorded now reaches the cards by polling, and no card changes size or place.
    boxes = [page.locator(".card").nth(i).bounding_box() for i in range(7)]
    before = int(page.locator('[data-card="total_runs"] .card-value').get_attribute("data-value"))
    now = datetime.now(UTC).replace(microsecond=0)
    recorded = api.post(
        "/runs",
        json={
            "layer_name": "browser-polling-check",
            "layer_hash": "h1",
            "status": "success",
            "started_at": now.isoformat(),
            "completed_at": now.isoformat(),
            "insights_created": 1,
        },
    )
    assert recorded.status_code == 201, recorded.text
    total = page.locator('[data-card="total_runs"] .card-value')
    wait_until(lambda: total.get_attribute("data-value"), str(before + 1))
    assert [page.locator(".card").nth(i).bounding_box() for i in range(7)] == boxes
    assert page.locator('tr[data-layer="browser-polling-check"]').count() == 1
    assert api.delete(f"/runs/{recorded.json()['id']}").status_code == 204


def test_layer_table_sorts_from_the_keyboard(page: Any, server: Server, api: httpx.Client) -> None:
    open_overview(page, server, 30)
    by_layer = api.get("/runs/stats/summary", params={"days": 30}).json()["by_layer"]
    page.locator('button.sort[data-sort-key="cost_usd"]').focus()
    page.keyboard.press("Enter")
    expected_desc = sorted(by_layer, key=lambda name: (-by_layer[name]["cost_usd"], name))
    wait_until(
        lambda: page.eval_on_selector_all("tr[data-layer]", "rs => rs.map(r => r.dataset.layer)"),
        expected_desc,
    )
    assert page.locator('th[aria-sort="descending"]').text_content().startswith("Cost")
    assert page.evaluate("document.activeElement.dataset.sortKey") == "cost_usd"
    # Focus stays on the heading, so a second key press reverses the order.
    page.keyboard.press("Enter")
    expected_asc = sorted(by_layer, key=lambda name: (by_layer[name]["cost_usd"], name))
    wait_until(
        lambda: page.eval_on_selector_all("tr[data-layer]", "rs => rs.map(r => r.dataset.layer)"),
        expected_asc,
    )
    assert page.locator('th[aria-sort="ascending"]').text_content().startswith("Cost")


def busiest_failing_layer(api: httpx.Client) -> str:
    by_layer = api.get("/runs/stats/summary", params={"days": 30}).json()["by_layer"]
    return max(by_layer, key=lambda name: (by_layer[name]["failed"], by_layer[name]["runs"]))


def test_runs_filters_match_the_api_and_live_in_the_url(
    page: Any, browser: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    layer = busiest_failing_layer(api)
    page.goto(f"{server.base_url}/#/runs")
    page.wait_for_selector("tr[data-run-id]")
    everything = api.get("/runs", params={"limit": 25}).json()
    wait_until(lambda: row_ids(page), [r["id"] for r in everything["runs"]])

    page.get_by_label("Layer").fill(layer)
    page.locator("#f-status-failed").check()
    page.locator("#f-status-partial").check()
    page.get_by_role("button", name="Apply").click()

    expected = api.get(
        "/runs", params={"layer_name": layer, "status": "failed,partial", "limit": 25}
    ).json()
    assert expected["total"] > 0
    ids = wait_until(lambda: row_ids(page), [r["id"] for r in expected["runs"]])
    assert ids != [r["id"] for r in everything["runs"]]
    statuses = page.eval_on_selector_all("tr[data-run-id] .badge", "bs => bs.map(b => b.innerText)")
    assert set(statuses) <= {"Failed", "Partial"}
    assert f"of {expected['total']:,} runs" in page.locator(".result-count").inner_text()
    page.screenshot(path=str(screenshots / "runs-filtered.png"), full_page=True)

    # Keyset paging follows next_cursor.
    if expected["next_cursor"]:
        second = api.get(
            "/runs",
            params={
                "layer_name": layer,
                "status": "failed,partial",
                "limit": 25,
                "cursor": expected["next_cursor"],
            },
        ).json()
        page.get_by_role("button", name="Older").click()
        wait_until(lambda: row_ids(page), [r["id"] for r in second["runs"]])
        page.get_by_role("button", name="Newer").click()
        wait_until(lambda: row_ids(page), [r["id"] for r in expected["runs"]])

    # The URL carries the filters: opened elsewhere, it shows the same runs.
    shared_url = page.url
    shared = parse_qs(urlsplit(shared_url).fragment.partition("?")[2])
    assert shared["layer_name"] == [layer]
    assert sorted(shared["status"][0].split(",")) == ["failed", "partial"]
    other = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        other.goto(shared_url)
        wait_until(lambda: row_ids(other), [r["id"] for r in expected["runs"]])
        assert other.get_by_label("Layer").input_value() == layer
        assert other.locator("#f-status-failed").is_checked()
        assert other.locator("#f-status-partial").is_checked()
        assert not other.locator("#f-status-success").is_checked()
    finally:
        other.close()


def test_runs_time_range_matches_the_api(page: Any, server: Server, api: httpx.Client) -> None:
    newest = api.get("/runs", params={"limit": 1}).json()["runs"][0]["started_at"]
    # A closed window in the past, on whole minutes as the inputs take them.
    until = newest[:11] + "00:00:00Z"
    since = api.get("/runs", params={"until": until, "limit": 100, "sort": "-started_at"}).json()
    since_ts = since["runs"][-1]["started_at"][:16] + ":00Z"
    page.goto(f"{server.base_url}/#/runs")
    page.wait_for_selector("tr[data-run-id]")
    page.get_by_label("Started", exact=True).select_option("custom")
    page.get_by_label("From (UTC)").fill(since_ts[:16])
    page.get_by_label("Until (UTC)").fill(until[:16])
    page.locator("#f-status-success").check()
    page.get_by_role("button", name="Apply").click()
    expected = api.get(
        "/runs", params={"since": since_ts, "until": until, "status": "success", "limit": 25}
    ).json()
    assert expected["total"] > 0
    wait_until(lambda: row_ids(page), [r["id"] for r in expected["runs"]])
    assert f"of {expected['total']:,} runs" in page.locator(".result-count").inner_text()


def test_failed_run_detail_shows_its_errors(
    page: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    failed = api.get("/runs", params={"status": "failed", "limit": 5}).json()["runs"]
    assert failed
    run = api.get(f"/runs/{failed[0]['id']}").json()
    assert run["errors"]
    page.goto(f"{server.base_url}/#/runs?status=failed")
    wait_until(lambda: row_ids(page)[:5], [r["id"] for r in failed])
    page.locator(f'tr[data-run-id="{run["id"]}"] td').nth(1).click()  # the row, not its link
    page.wait_for_selector(".error-item")
    assert page.url.endswith(f"#/runs/{run['id']}")
    items = page.locator(".error-item")
    assert items.count() == len(run["errors"])
    for i, error in enumerate(run["errors"]):
        item = items.nth(i)
        assert item.locator(".error-message").inner_text() == error["message"]
        assert item.locator("h3").inner_text() == error["type"]
        text = item.inner_text()
        for key, value in error.items():
            if key not in ("message", "type"):
                assert key in text
                assert str(value) in text
    facts = page.locator(".detail").inner_text()
    assert run["model_name"] in facts
    assert money(run["estimated_cost_usd"]) in facts
    assert f"Errors ({len(run['errors'])})" in facts
    assert run["duration_seconds"] is not None
    page.screenshot(path=str(screenshots / "run-detail-failed.png"), full_page=True)
    page.get_by_role("link", name="Back to runs").click()
    wait_until(lambda: row_ids(page)[:5], [r["id"] for r in failed])
    # From the keyboard: focus the next run's link and press Enter.
    page.locator(f'tr[data-run-id="{failed[1]["id"]}"] a').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/#/runs/{failed[1]['id']}")
    page.wait_for_selector(".error-item")


def test_an_api_key_is_asked_for_kept_in_the_session_and_sent(
    page: Any, tmp_path: Path, screenshots: Path
) -> None:
    """Against a server with a read key: the page asks for it, keeps it, sends it."""
    key = runwatch_cli(tmp_path, "keys", "create", "--name", "dashboard", "--scope", "read")
    key = key.strip().splitlines()[0]
    own = start_server(tmp_path, demo_runs=200)
    try:
        assert httpx.get(f"{own.base_url}/runs/stats/summary").status_code == 401
        page.goto(f"{own.base_url}/#/overview")
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        assert "read" in dialog.inner_text()
        assert page.locator("#conn").get_attribute("data-state") == "auth"
        page.screenshot(path=str(screenshots / "api-key-dialog.png"))

        page.get_by_label("Read key").fill("rw_not_a_real_key")
        page.get_by_role("button", name="Use key").click()
        page.wait_for_selector("#key-error:not([hidden])")
        assert "did not accept" in page.locator("#key-error").inner_text()

        page.get_by_label("Read key").fill(key)
        page.get_by_role("button", name="Use key").click()
        wait_for_cards(page, own)
        expected = httpx.get(
            f"{own.base_url}/runs/stats/summary",
            params={"days": 7},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        shown = page.locator('[data-card="total_runs"] .card-value').get_attribute("data-value")
        assert shown == str(expected["total_runs"])
        assert page.evaluate("sessionStorage.getItem('runwatch.apiKey')") == key
        assert page.evaluate("localStorage.length") == 0
        assert page.locator("#conn").get_attribute("data-state") == "live"
    finally:
        own.stop()


def test_unreachable_api_is_reported_not_shown_as_current(
    page: Any, tmp_path: Path, screenshots: Path
) -> None:
    own = start_server(tmp_path, demo_runs=300)
    try:
        page.goto(f"{own.base_url}/#/overview")
        wait_for_cards(page, own)
        assert page.locator("#conn").get_attribute("data-state") == "live"
        assert page.locator("#banner").is_hidden()
    finally:
        own.stop()
    page.wait_for_selector("#banner:not([hidden])", timeout=WAIT_S * 1000)
    banner = page.locator("#banner").inner_text()
    assert "unreachable" in banner
    assert "may be out of date" in banner
    assert page.locator("#conn").get_attribute("data-state") == "unreachable"
    assert "is-stale" in (page.locator("body").get_attribute("class") or "")
    assert "unreachable" in page.locator("#conn").inner_text()
    page.screenshot(path=str(screenshots / "overview-unreachable.png"), full_page=True)


def require_extraction_runs(api: httpx.Client) -> None:
    # The project's own route: a 404 here is a regression, not a reason to skip.
    assert api.get("/extraction-runs", params={"limit": 1}).status_code == 200


def record_extraction_run(
    api: httpx.Client, run_id: str, prompt_id: str, output: dict[str, Any], f1: float
) -> None:
    created = api.post(
        "/extraction-runs",
        json={"id": run_id, "prompt_id": prompt_id, "config_id": "cfg", "document_name": "a.pdf"},
    )
    assert created.status_code == 202, created.text
    assert api.patch(f"/extraction-runs/{run_id}", json={"status": "running"}).status_code == 200
    done = api.patch(
        f"/extraction-runs/{run_id}",
        json={"status": "completed", "output": output, "metrics": {"f1": f1}},
    )
    assert done.status_code == 200, done.text


def test_extraction_compare_highlights_the_differences_of_two_known_runs(
    page: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    require_extraction_runs(api)
    suffix = uuid.uuid4().hex[:8]
    prompt = f"browser-{suffix}"
    run_a, run_b = f"cmp-a-{suffix}", f"cmp-b-{suffix}"
    record_extraction_run(
        api, run_a, prompt, {"invoice": {"total": 120.0, "currency": "EUR"}, "vendor": "Acme"}, 0.8
    )
    record_extraction_run(
        api,
        run_b,
        prompt,
        {"invoice": {"total": 125.0, "currency": "EUR"}, "date": "2026-01-01"},
        0.9,
    )

    page.goto(f"{server.base_url}/#/extraction?prompt_id={prompt}")
    wait_until(lambda: sorted(row_ids(page)), sorted([run_a, run_b]))
    page.get_by_label(f"Select run {run_a} to compare").check()
    page.get_by_label(f"Select run {run_b} to compare").check()
    page.get_by_role("button", name="Compare 2 selected").click()
    page.wait_for_selector("tr[data-field]")
    assert page.url.endswith(f"#/extraction/compare/{run_a}/{run_b}")

    fields = dict(
        page.eval_on_selector_all(
            "tr[data-field]", "rows => rows.map(r => [r.dataset.field, r.dataset.status])"
        )
    )
    assert fields == {"invoice.total": "different", "vendor": "only_in_a", "date": "only_in_b"}
    total_row = page.locator('tr[data-field="invoice.total"]').inner_text()
    assert "120" in total_row
    assert "125" in total_row
    counts = {
        key: page.locator(f'[data-count="{key}"] .card-value').inner_text()
        for key in ("same", "different", "only_in_a", "only_in_b")
    }
    assert counts == {"same": "1", "different": "1", "only_in_a": "1", "only_in_b": "1"}
    f1_cells = page.locator('tr[data-metric="f1"] td').all_inner_texts()
    assert f1_cells[:2] == ["0.800", "0.900"]
    assert f1_cells[2].startswith("+0.100 (+12.5 %)")
    page.screenshot(path=str(screenshots / "extraction-compare.png"), full_page=True)

    # Run A's detail shows its output as a tree and its metrics.
    page.get_by_role("link", name=run_a).click()
    page.wait_for_selector(".tree")
    tree = page.locator(".tree").first.inner_text()
    for text in ("invoice", "total", "120", "currency", '"EUR"', "vendor", '"Acme"'):
        assert text in tree
    assert "0.800" in page.locator(".detail").inner_text()
    page.screenshot(path=str(screenshots / "extraction-detail.png"), full_page=True)


def test_extraction_group_comparison_shows_win_tie_loss(
    page: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    require_extraction_runs(api)
    stats = api.get("/extraction-runs/stats/summary", params={"days": 30}).json()
    prompts = sorted(p for p in stats["by_prompt"] if stats["by_prompt"][p]["completed"] >= 3)
    assert len(prompts) >= 2, "the demo data has two prompts with completed runs to compare"
    a, b = prompts[0], prompts[-1]
    expected = api.get(
        "/extraction-runs/compare", params={"a_prompt_id": a, "b_prompt_id": b}
    ).json()
    page.goto(f"{server.base_url}/#/extraction")
    page.get_by_role("link", name="Compare groups").click()
    page.get_by_label("A prompt").fill(a)
    page.get_by_label("B prompt").fill(b)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_selector('[data-count="wins_a"]')
    shown = {
        key: page.locator(f'[data-count="{key}"] .card-value').inner_text()
        for key in ("wins_a", "ties", "wins_b", "missing")
    }
    assert shown == {key: f"{expected['f1'][key]:,}" for key in shown}
    documents = page.eval_on_selector_all(
        "tr[data-document]", "rows => rows.map(r => r.dataset.document)"
    )
    assert documents == [d["document_name"] for d in expected["documents"]]
    results = page.locator("tr[data-document] td:nth-of-type(4)").all_inner_texts()
    assert results.count("A wins") == expected["f1"]["wins_a"]
    assert results.count("B wins") == expected["f1"]["wins_b"]
    page.screenshot(path=str(screenshots / "extraction-groups.png"), full_page=True)
