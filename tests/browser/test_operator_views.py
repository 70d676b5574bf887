"""The operator's views in a real Chromium against `runwatch serve --demo`: errors, versions,
stuck runs, regressions and recent failures, each checked against the API's answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.browser.conftest import Server
from tests.browser.test_dashboard import percent, row_ids, wait_for_cards, wait_until


def fmt_duration(seconds: float | None) -> str:
    """The dashboard's fmtDuration, for comparing what it shows."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = round(seconds)
    h, m, rest = s // 3600, (s % 3600) // 60, s % 60
    return f"{h} h {m:02d} m" if h else f"{m} m {rest:02d} s"


def fingerprints(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "tr[data-fingerprint]", "rs => rs.map(r => r.dataset.fingerprint)"
    )


def test_errors_view_lists_the_groups_and_opens_their_runs(
    page: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    expected = api.get("/runs/errors", params={"days": 7, "limit": 25}).json()
    assert expected["total_groups"] >= 3
    page.goto(f"{server.base_url}/#/errors")
    wait_until(lambda: fingerprints(page), [g["fingerprint"] for g in expected["groups"]])
    first = expected["groups"][0]
    row = page.locator(f'tr[data-fingerprint="{first["fingerprint"]}"]')
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == f"{first['errors']:,}"
    assert cells[1] == f"{first['runs']:,}"
    assert first["message"] in row.inner_text()
    assert row.locator(".sparkline rect").count() == len(first["days"])
    shown_layers = row.locator(".layer-hits a").all_inner_texts()
    assert shown_layers == list(first["layers"])[:3]
    assert f"{expected['total_errors']:,} errors in {expected['total_groups']:,} groups" in (
        page.locator(".result-count").inner_text()
    )
    page.screenshot(path=str(screenshots / "errors.png"), full_page=True)

    by_runs = api.get("/runs/errors", params={"days": 30, "sort": "runs", "limit": 25}).json()
    page.get_by_role("radio", name="30 d").check()
    page.get_by_label("Order").select_option("runs")
    wait_until(lambda: fingerprints(page), [g["fingerprint"] for g in by_runs["groups"]])

    # A group's count opens its runs.
    runs = api.get("/runs", params={"error_fingerprint": first["fingerprint"], "limit": 25}).json()
    page.goto(f"{server.base_url}/#/errors")
    page.locator(f'tr[data-fingerprint="{first["fingerprint"]}"] td a').first.click()
    wait_until(lambda: row_ids(page), [r["id"] for r in runs["runs"]])
    assert f"of {runs['total']:,} runs" in page.locator(".result-count").inner_text()


def test_versions_view_compares_and_marks_the_regression(
    page: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    regressions = api.get("/runs/stats/regressions", params={"days": 30}).json()["regressions"]
    assert regressions, "the demo data has one regression"
    layer = regressions[0]["layer_name"]
    versions = api.get("/runs/stats/versions", params={"layer_name": layer, "days": 30}).json()
    page.goto(f"{server.base_url}/#/versions")
    hashes = [v["layer_hash"] for v in versions["versions"]]
    wait_until(
        lambda: page.eval_on_selector_all("tr[data-hash]", "rs => rs.map(r => r.dataset.hash)"),
        hashes,
    )
    for v in versions["versions"]:
        cells = page.locator(f'tr[data-hash="{v["layer_hash"]}"] td').all_inner_texts()
        assert cells[2] == f"{v['runs']:,}"
        assert cells[3] == percent(v["success_rate"])
        assert cells[6] == fmt_duration(v["duration_p50_seconds"])
        assert cells[7] == fmt_duration(v["duration_p95_seconds"])
    compare = api.get(
        "/runs/stats/versions/compare",
        params={"layer_name": layer, "a": hashes[-2], "b": hashes[-1], "days": 30},
    ).json()
    success_row = page.locator('tr[data-metric="success_rate"]')
    wait_until(lambda: success_row.count(), 1)
    assert compare["tests"]["success_rate"]["significant"] is True
    assert "Yes, worse" in success_row.inner_text()
    assert "is-worse" in (success_row.get_attribute("class") or "")
    points = compare["differences"]["success_rate"] * 100
    assert f"{points:+.1f} pts" in success_row.inner_text()
    assert page.locator(f'.regression[data-regression="{layer}"]').count() == 1
    page.screenshot(path=str(screenshots / "versions.png"), full_page=True)

    # Any two versions: choosing A = B - 2 (or the same) redraws the compare.
    page.get_by_label("A", exact=True).select_option(hashes[0])
    wait_until(lambda: page.url.endswith(f"a={hashes[0]}") or f"a={hashes[0]}&" in page.url, True)


def test_overview_flags_regressions_stuck_runs_and_recent_failures(
    page: Any, server: Server, api: httpx.Client, screenshots: Path
) -> None:
    summary = api.get("/runs/stats/summary", params={"days": 7}).json()
    assert summary["stuck_runs"] >= 1
    failures = api.get("/runs", params={"status": "failed,partial", "limit": 8}).json()["runs"]
    page.goto(f"{server.base_url}/#/overview")
    wait_for_cards(page, server)
    wait_until(
        lambda: page.eval_on_selector_all(".failure-list li", "ls => ls.map(l => l.dataset.runId)"),
        [r["id"] for r in failures],
    )
    for run in failures[:3]:
        detail = api.get(f"/runs/{run['id']}").json()
        item = page.locator(f'.failure-list li[data-run-id="{run["id"]}"]').inner_text()
        assert detail["errors"][0]["type"] in item
        assert detail["errors"][0]["message"] in item
    stuck = page.locator(".stuck-notice")
    wait_until(lambda: stuck.get_attribute("data-stuck"), str(summary["stuck_runs"]))
    assert page.locator(".operator .regression").count() >= 1
    # p50 and p95 per layer are the API's numbers.
    rows = page.eval_on_selector_all(
        "tr[data-layer]",
        "rs => rs.map(r => [r.dataset.layer, ...[...r.cells].map(c => c.innerText)])",
    )
    keys = page.evaluate(
        "[...document.querySelector('tr[data-layer]').closest('table')"
        ".querySelectorAll('thead th')]"
        ".map(h => h.querySelector('[data-sort-key]')?.dataset.sortKey)"
    )
    p50, p95 = keys.index("p50"), keys.index("p95")
    for layer, *cells in rows:
        stats = summary["by_layer"][layer]
        assert cells[p50] == fmt_duration(stats["duration_p50_seconds"])
        assert cells[p95] == fmt_duration(stats["duration_p95_seconds"])
    page.screenshot(path=str(screenshots / "overview-operator.png"))


def test_stuck_runs_show_a_badge_and_their_elapsed_time(
    page: Any, server: Server, api: httpx.Client
) -> None:
    stuck = api.get("/runs", params={"stuck": "true"}).json()
    assert stuck["total"] >= 1
    page.goto(f"{server.base_url}/#/runs?stuck=true")
    wait_until(lambda: row_ids(page), [r["id"] for r in stuck["runs"]])
    for run in stuck["runs"]:
        cell = page.locator(f'tr[data-run-id="{run["id"]}"] .elapsed')
        wait_until(lambda cell=cell: "Stuck" in cell.inner_text(), True)
        assert "so far" in cell.inner_text()
    page.locator(f'tr[data-run-id="{stuck["runs"][0]["id"]}"] a').first.click()
    page.wait_for_selector("text=Stuck since (UTC)")
