// What the operator needs first on the overview: regressions found, stuck runs and recent failures.
// Also the running-run cells of the runs list: elapsed time and a stuck badge.

import { getJSON } from "./api.js";
import { h, replace } from "./dom.js";
import { fmtDuration, fmtInt, fmtTime } from "./format.js";

const RECENT_FAILURES = 8;
// A failed run never changes, so its first error is fetched once per page load.
const firstErrors = new Map();

async function firstError(runId) {
  if (!firstErrors.has(runId)) {
    const { data } = await getJSON(`/runs/${encodeURIComponent(runId)}`);
    const errors = Array.isArray(data.errors) ? data.errors : [];
    const e = errors[0] && typeof errors[0] === "object" ? errors[0] : {};
    firstErrors.set(runId, { type: e.type || e.code || "", message: e.message || e.error || e.detail || "", count: errors.length });
  }
  return firstErrors.get(runId);
}

export class OperatorPanels {
  constructor() {
    this.alertsEl = h("div", { class: "operator-alerts" });
    this.failuresEl = h("div", { class: "table-box" });
    this.el = h("div", { class: "operator" },
      this.alertsEl,
      h("section", { class: "panel", "aria-labelledby": "failures-title" },
        h("div", { class: "panel-head" }, h("h2", { id: "failures-title" }, "Recent failures"),
          h("p", { class: "hint" }, h("a", { href: "#/errors" }, "All errors, grouped"))),
        this.failuresEl));
  }

  async refresh(days, summary) {
    const [regressions, failures] = await Promise.all([
      getJSON("/runs/stats/regressions", { days }),
      getJSON("/runs", { status: "failed,partial", limit: RECENT_FAILURES }),
    ]);
    const details = await Promise.all(failures.data.runs.map((r) => firstError(r.id)));
    const key = JSON.stringify([regressions.data.regressions, failures.data.runs, details, summary.stuck_runs]);
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.renderAlerts(regressions.data.regressions, summary.stuck_runs || 0, days);
    this.renderFailures(failures.data.runs, details);
  }

  renderAlerts(regressions, stuck, days) {
    replace(this.alertsEl,
      stuck ? h("p", { class: "notice stuck-notice", "data-stuck": stuck },
        h("span", { class: "badge stuck-badge" }, "Stuck"), " ",
        h("a", { href: "#/runs?stuck=true" }, `${fmtInt(stuck)} running ${stuck === 1 ? "run is" : "runs are"} stuck`),
        " (running far longer than their layer usually takes).") : null,
      regressions.map((r) => h("p", { class: "notice regression", "data-regression": r.layer_name },
        h("strong", {}, "Regression: "),
        h("a", { href: `#/versions?layer_name=${encodeURIComponent(r.layer_name)}&a=${encodeURIComponent(r.a.layer_hash)}&b=${encodeURIComponent(r.b.layer_hash)}&days=${days < 7 ? 7 : days}` },
          `${r.layer_name} version ${r.b.layer_hash}`),
        ` is significantly worse than ${r.a.layer_hash} (${r.worse.map((m) => m.replace(/_/g, " ").replace(" seconds", "").replace(" usd", "")).join(", ")}).`)));
  }

  renderFailures(runs, details) {
    replace(this.failuresEl, runs.length
      ? h("ul", { class: "failure-list" }, runs.map((r, i) => h("li", { "data-run-id": r.id },
        h("a", { href: `#/runs/${encodeURIComponent(r.id)}` }, fmtTime(r.started_at)), " ",
        h("span", { class: `badge status-${r.status}` }, r.status === "failed" ? "Failed" : "Partial"), " ",
        h("span", { class: "layer-cell" }, r.layer_name), " ",
        h("span", { class: "error-type" }, details[i].type || "error"), ": ",
        h("span", { class: "error-message-short" }, details[i].message || "(no message)"),
        details[i].count > 1 ? h("span", { class: "muted" }, ` and ${details[i].count - 1} more`) : null)))
      : h("p", { class: "empty" }, "No failed or partial runs."));
  }
}

/** Ids of the stuck runs among a page of runs (one request, only if some are running). */
export async function stuckIds(runs) {
  const running = runs.filter((r) => r.status === "running");
  if (!running.length) return new Set();
  const { data } = await getJSON("/runs", { stuck: "true", limit: 100 });
  return new Set(data.runs.map((r) => r.id));
}

/** The duration cell of a run: elapsed time while running, with a badge once stuck. */
export function durationCell(run, stuck) {
  if (run.status !== "running") return fmtDuration(run.duration_seconds);
  const elapsed = (Date.now() - new Date(run.started_at).getTime()) / 1000;
  return h("span", { class: "elapsed", title: "Running for this long so far" },
    stuck && stuck.has(run.id) ? [h("span", { class: "badge stuck-badge" }, "Stuck"), " "] : null,
    `${fmtDuration(Math.max(0, elapsed))} so far`);
}

/** The layer table's p50 and p95 columns (the API's numbers, never computed here). */
export function percentileColumns() {
  return [
    { key: "p50", label: "p50", value: (r) => r.duration_p50_seconds ?? null,
      cell: (r) => fmtDuration(r.duration_p50_seconds ?? null) },
    { key: "p95", label: "p95", value: (r) => r.duration_p95_seconds ?? null,
      cell: (r) => fmtDuration(r.duration_p95_seconds ?? null) },
  ];
}

/** A layer cell followed by a stuck badge (linking to the stuck runs) when it has any. */
export function withStuckBadge(cell) {
  return (r) => [cell(r), r.stuck ? [" ", h("a", {
    class: "badge stuck-badge", href: `#/runs?stuck=true&layer_name=${encodeURIComponent(r.layer)}`,
    title: `${r.stuck} running runs are stuck`,
  }, `${fmtInt(r.stuck)} stuck`)] : null];
}
