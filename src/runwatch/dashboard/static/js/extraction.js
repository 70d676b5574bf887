// Extraction runs: the summary and the filtered list, one run (output as a tree, metrics,
// worker and lease), compare two runs (with which side matches the ground truth), and compare
// two groups (prompt or config versions) document by document.

import { ApiError, getJSON } from "./api.js";
import { STATUS_LABELS } from "./chart.js";
import { h, keepingFocus, replace } from "./dom.js";
import {
  DASH, costFormatter, fmtCost, fmtInt, fmtMs, fmtNumber, fmtScore, fmtTime, fromLocalInput, toLocalInput,
} from "./format.js";
import { isFirstPage, pagePosition, pagerButtons } from "./pager.js";
import { sortableTable } from "./table.js";

const STATUSES = ["pending", "running", "completed", "failed"];
const FINAL = new Set(["completed", "failed"]);
const STATUS_CLASS = { pending: "dry", running: "running", completed: "success", failed: "failed" };
const FIELD_LABELS = {
  same: "Same", different: "Different", only_in_a: "Only in A", only_in_b: "Only in B",
};
const PAGE_SIZE = 25;
const PERIODS = [1, 7, 30];
const LIST_KEYS = ["prompt_id", "config_id", "document_name", "status", "since", "until"];

// How often each view asks again, and why (docs/dashboard.md lists these).
const LIST_POLL_MS = 5000; // the first page: runs are created and finish all the time
const SUMMARY_POLL_MS = 30000; // means and percentiles over days move slowly
const ACTIVE_RUN_POLL_MS = 5000; // a pending or running run: status, attempts, lease
const GROUPS_POLL_MS = 60000; // with an ETag: a cheap 304 while nothing completed
const GROUPS_POLL_NO_ETAG_MS = 300000; // without one, every poll is the whole comparison

export function badge(status) {
  return h("span", { class: `badge status-${STATUS_CLASS[status] || "dry"}` }, STATUS_LABELS[status] || status);
}

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? DASH)];
}

function problemText(err) {
  const errors = err.problem && Array.isArray(err.problem.errors) ? err.problem.errors : [];
  return errors.length ? errors.map((e) => e.msg).join("; ") : err.message;
}

/** A JSON value as nested lists; objects and arrays fold, leaves are typed and quoted. */
export function jsonTree(value, depth = 0) {
  if (value === null) return h("span", { class: "muted" }, "null");
  if (Array.isArray(value) || typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    if (!entries.length) return h("span", { class: "muted" }, Array.isArray(value) ? "[ ]" : "{ }");
    return h("ul", { class: depth ? "" : "tree" }, entries.map(([k, v]) => {
      const nested = v !== null && typeof v === "object" && Object.keys(v).length;
      if (nested) {
        const size = Array.isArray(v) ? `[${v.length}]` : `{${Object.keys(v).length}}`;
        return h("li", {}, h("details", { open: depth < 2 },
          h("summary", {}, h("span", { class: "key" }, k), " ", h("span", { class: "muted" }, size)),
          jsonTree(v, depth + 1)));
      }
      return h("li", {}, h("span", { class: "key" }, k), ": ", leaf(v));
    }));
  }
  return leaf(value);
}

function leaf(v) {
  if (typeof v === "string") return h("span", { class: "str" }, JSON.stringify(v));
  if (typeof v === "number") return h("span", { class: "numv" }, String(v));
  if (v === undefined) return h("span", { class: "muted" }, "absent");
  if (v !== null && typeof v === "object") return h("code", {}, JSON.stringify(v));
  return h("span", { class: "muted" }, String(v));
}

const SCORES = /^(precision|recall|f1|accuracy)$/;
const MILLIS = /latency|_ms$/;
const COUNTS = /^fields_|_count$|^count_/;

export function fmtMetric(name, v) {
  if (v === null || v === undefined) return DASH;
  if (MILLIS.test(name)) return fmtMs(v);
  if (SCORES.test(name)) return fmtScore(v);
  if (COUNTS.test(name)) return fmtInt(v);
  return fmtNumber(Math.round(v * 10000) / 10000);
}

/**
 * +1 when a higher value is better, -1 when lower is, 0 when neither (the number of fields
 * predicted, or expected, is not good or bad by itself).
 */
export function direction(metric) {
  if (SCORES.test(metric) || metric === "fields_correct") return 1;
  if (MILLIS.test(metric) || /cost|error|tokens/.test(metric)) return -1;
  return 0;
}

function deltaCell(metric, diff, pct, attrs = {}) {
  if (diff === null || diff === undefined) return h("td", { class: "num", ...attrs }, DASH);
  const way = direction(metric);
  const better = diff === 0 || way === 0 ? null : (diff > 0) === (way > 0);
  const sign = diff > 0 ? "+" : diff < 0 ? "−" : "±";
  const text = `${sign}${fmtMetric(metric, Math.abs(diff))}`
    + (pct === null || pct === undefined ? "" : ` (${sign}${Math.abs(pct).toFixed(1)} %)`);
  return h("td", { class: `num ${better === null ? "" : better ? "delta-up" : "delta-down"}`, ...attrs,
    "data-better": better === null ? "neutral" : better ? "b" : "a" }, text,
  better === null ? null : h("span", { class: "visually-hidden" }, better ? " (better)" : " (worse)"));
}

function metricTable(rows, { caption, a = "Run A", b = "Run B" }) {
  return h("table", { class: "data-table metrics-table reflow" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"), h("th", { scope: "col", class: "num" }, a),
      h("th", { scope: "col", class: "num" }, b), h("th", { scope: "col", class: "num" }, "Difference (B − A)"))),
    h("tbody", {}, rows.map((m) => h("tr", { "data-metric": m.metric },
      h("th", { scope: "row" }, m.metric),
      h("td", { class: "num", "data-label": a }, fmtMetric(m.metric, m.run_a ?? m.mean_a)),
      h("td", { class: "num", "data-label": b }, fmtMetric(m.metric, m.run_b ?? m.mean_b)),
      deltaCell(m.metric, m.difference, m.percent_difference, { "data-label": "B − A" })))));
}

// Completed and failed runs never change: their detail is fetched once per page load.
const finalDetails = new Map();

async function runDetail(id) {
  if (finalDetails.has(id)) return finalDetails.get(id);
  const { data } = await getJSON(`/extraction-runs/${encodeURIComponent(id)}`);
  if (FINAL.has(data.status)) finalDetails.set(id, data);
  return data;
}

/** Up to `limit` promises at a time. */
async function inBatches(items, limit, fn) {
  const results = [];
  for (let i = 0; i < items.length; i += limit) {
    results.push(...await Promise.all(items.slice(i, i + limit).map(fn)));
  }
  return results;
}

function statsTable(groups, { name, caption, sort, onSort }) {
  const rows = Object.entries(groups || {}).map(([key, g]) => ({ key, ...g }));
  const cost = costFormatter(rows.map((r) => r.cost_usd));
  const perRun = costFormatter(rows.map((r) => (r.runs ? r.cost_usd / r.runs : null)));
  return sortableTable({
    columns: [
      { key: "key", label: name, text: true, value: (r) => r.key, cell: (r) => r.key },
      { key: "runs", label: "Runs", value: (r) => r.runs, cell: (r) => fmtInt(r.runs) },
      { key: "completed", label: "Completed", value: (r) => r.completed, cell: (r) => fmtInt(r.completed) },
      { key: "failed", label: "Failed", value: (r) => r.failed, cell: (r) => fmtInt(r.failed) },
      { key: "mean_f1", label: "Mean F1", value: (r) => r.mean_f1, cell: (r) => fmtScore(r.mean_f1) },
      { key: "p50_latency_ms", label: "p50 latency", value: (r) => r.p50_latency_ms, cell: (r) => fmtMs(r.p50_latency_ms) },
      { key: "p95_latency_ms", label: "p95 latency", value: (r) => r.p95_latency_ms, cell: (r) => fmtMs(r.p95_latency_ms) },
      { key: "cost_usd", label: "Cost", value: (r) => r.cost_usd, cell: (r) => cost(r.cost_usd) },
      { key: "cost_per_run", label: "Cost per run", value: (r) => (r.runs ? r.cost_usd / r.runs : null),
        cell: (r) => perRun(r.runs ? r.cost_usd / r.runs : null) },
    ],
    rows, sort, caption, onSort, reflow: true, rowAttrs: (r) => ({ "data-group": r.key }),
  });
}

function statCard(key, label, value, sub = "\u00a0") {
  return h("div", { class: "card", "data-stat": key }, h("div", { class: "card-label" }, label),
    h("div", { class: "card-value num" }, value), h("div", { class: "card-sub" }, sub));
}

export class ExtractionListView {
  constructor(ctx) {
    this.ctx = ctx;
    this.selected = [];
    const f = {};
    f.prompt = h("input", { id: "x-prompt", autocomplete: "off", spellcheck: "false", placeholder: "any prompt" });
    f.config = h("input", { id: "x-config", autocomplete: "off", spellcheck: "false", placeholder: "any config" });
    f.document = h("input", { id: "x-document", autocomplete: "off", spellcheck: "false", placeholder: "any document" });
    f.statuses = STATUSES.map((s) => h("input", { type: "checkbox", value: s, id: `x-status-${s}`,
      onchange: () => this.apply() }));
    f.since = h("input", { type: "datetime-local", id: "x-since" });
    f.until = h("input", { type: "datetime-local", id: "x-until" });
    this.f = f;
    this.compareBtn = h("button", { type: "button", class: "primary", disabled: true,
      onclick: () => this.ctx.navigate(["extraction", "compare", ...this.selected]) }, "Compare 0 of 2 selected");
    this.summaryEl = h("p", { class: "result-count", role: "status" }, "\u00a0");
    this.tableEl = h("div", { class: "table-box" });
    this.pagerEl = h("nav", { class: "pager", "aria-label": "Pages" });
    this.statsSort = { prompt: { key: "runs", dir: "desc" }, config: { key: "runs", dir: "desc" } };
    const wide = !window.matchMedia("(max-width: 700px)").matches;
    this.statsOpen = { prompt: wide, config: wide };
    this.periodInputs = PERIODS.map((d) => h("input", {
      type: "radio", name: "x-period", value: d, id: `x-period-${d}`,
      onchange: () => this.ctx.navigate(["extraction"], { ...this.listParams(), days: d === 7 ? "" : d }),
    }));
    this.statsEl = h("div", { class: "x-stats" });
    this.el = h("section", { class: "view extraction", "aria-labelledby": "x-title" },
      h("div", { class: "view-head" }, h("h1", { id: "x-title" }, "Extraction runs"),
        h("div", { class: "period" }, this.compareBtn,
          this.ctx.features.extractionGroups ? h("a", { class: "button", href: "#/extraction/groups" }, "Compare groups") : null)),
      h("section", { class: "panel", "aria-labelledby": "x-stats-title" },
        h("div", { class: "panel-head" }, h("h2", { id: "x-stats-title" }, "Summary"),
          h("fieldset", { class: "segmented small" }, h("legend", { class: "visually-hidden" }, "Created in the last"),
            PERIODS.map((d, i) => h("label", { for: `x-period-${d}` }, this.periodInputs[i],
              h("span", {}, d === 1 ? "24 h" : `${d} d`))))),
        this.statsEl),
      h("form", { class: "filters", role: "search", "aria-label": "Filter extraction runs",
        onsubmit: (ev) => { ev.preventDefault(); this.apply(); } },
      h("div", { class: "field" }, h("label", { for: "x-prompt" }, "Prompt"), f.prompt),
      h("div", { class: "field" }, h("label", { for: "x-config" }, "Config"), f.config),
      h("div", { class: "field" }, h("label", { for: "x-document" }, "Document"), f.document),
      h("fieldset", { class: "field statuses" }, h("legend", {}, "Status"),
        h("div", { class: "checks" }, STATUSES.map((s, i) => h("label", { for: `x-status-${s}`, class: "check" }, f.statuses[i], badge(s))))),
      h("div", { class: "field" }, h("label", { for: "x-since" }, "Created from (UTC)"), f.since),
      h("div", { class: "field" }, h("label", { for: "x-until" }, "Created until (UTC)"), f.until),
      h("div", { class: "field actions" }, h("button", { type: "submit", class: "primary" }, "Apply"),
        h("a", { href: "#/extraction", class: "button" }, "Clear"))),
      h("p", { class: "hint" }, "Tick two runs to compare them."),
      this.summaryEl, this.tableEl, this.pagerEl);
  }

  formParams() {
    const f = this.f;
    return {
      prompt_id: f.prompt.value.trim(),
      config_id: f.config.value.trim(),
      document_name: f.document.value.trim(),
      status: f.statuses.filter((c) => c.checked).map((c) => c.value).join(","),
      since: fromLocalInput(f.since.value),
      until: fromLocalInput(f.until.value),
      days: this.params ? this.params.get("days") : "",
    };
  }

  /** The URL's filters and period, without the page position. */
  listParams() {
    return Object.fromEntries([...LIST_KEYS, "days"].map((k) => [k, this.params ? this.params.get(k) : ""]));
  }

  apply() {
    this.ctx.navigate(["extraction"], this.formParams());
  }

  pollMs() {
    if (this.params && isFirstPage(this.params)) return LIST_POLL_MS;
    return SUMMARY_POLL_MS;
  }

  update(params) {
    this.params = params;
    const f = this.f;
    f.prompt.value = params.get("prompt_id") || "";
    f.config.value = params.get("config_id") || "";
    f.document.value = params.get("document_name") || "";
    const statuses = (params.get("status") || "").split(",");
    for (const c of f.statuses) c.checked = statuses.includes(c.value);
    f.since.value = toLocalInput(params.get("since"));
    f.until.value = toLocalInput(params.get("until"));
    const days = Number(params.get("days"));
    this.days = PERIODS.includes(days) ? days : 7;
    for (const input of this.periodInputs) input.checked = Number(input.value) === this.days;
    this.lastData = null;
    this.listKey = null;
    this.refresh().catch((err) => this.ctx.report(err));
  }

  async refresh() {
    const p = this.params;
    const listKey = JSON.stringify(this.listParams()) + (p.get("cursor") || "") + (p.get("at") || "");
    const fetchList = listKey !== this.listKey || isFirstPage(p);
    const fetchStats = this.statsDays !== this.days || !this.statsAt || Date.now() - this.statsAt >= SUMMARY_POLL_MS;
    await Promise.all([fetchList ? this.refreshList(p, listKey) : null, fetchStats ? this.refreshStats() : null]);
  }

  async refreshStats() {
    const days = this.days;
    const { data } = await getJSON("/extraction-runs/stats/summary", { days });
    if (days !== this.days) return;
    this.statsAt = Date.now();
    this.statsDays = days;
    if (data === this.statsData) return;
    this.statsData = data;
    this.renderStats();
  }

  renderStats() {
    const s = this.statsData;
    const rate = s.total_runs ? s.completed_runs / s.total_runs : null;
    const tokens = s.total_tokens ?? (s.total_tokens_input + s.total_tokens_output);
    keepingFocus(this.statsEl, () => replace(this.statsEl,
      h("div", { class: "cards x-cards", dataset: { days: String(this.days) } },
        statCard("total_runs", "Runs", fmtInt(s.total_runs), `${fmtInt(s.pending_runs)} pending, ${fmtInt(s.running_runs)} running`),
        statCard("completed_runs", "Completed", fmtInt(s.completed_runs), rate === null ? "\u00a0" : `${(rate * 100).toFixed(1)} % of runs`),
        statCard("failed_runs", "Failed", fmtInt(s.failed_runs)),
        statCard("mean_f1", "Mean F1", fmtScore(s.mean_f1),
          `P ${fmtScore(s.mean_precision)} · R ${fmtScore(s.mean_recall)}`),
        statCard("latency", "Latency p50", fmtMs(s.p50_latency_ms), `p95 ${fmtMs(s.p95_latency_ms)}`),
        statCard("total_cost_usd", "Cost", fmtCost(s.total_cost_usd), `${fmtInt(tokens)} tokens`)),
      // On a phone the tables start folded, so that the list is not pushed far down.
      h("details", { class: "x-group-stats", open: this.statsOpen.prompt, ontoggle: (ev) => { this.statsOpen.prompt = ev.target.open; } },
        h("summary", { class: "subhead" }, `By prompt (${fmtInt(Object.keys(s.by_prompt || {}).length)})`),
        h("div", { class: "table-box" }, statsTable(s.by_prompt, { name: "Prompt", caption: "Extraction runs per prompt",
          sort: this.statsSort.prompt, onSort: (sort) => { this.statsSort.prompt = sort; this.renderStats(); } }))),
      h("details", { class: "x-group-stats", open: this.statsOpen.config, ontoggle: (ev) => { this.statsOpen.config = ev.target.open; } },
        h("summary", { class: "subhead" }, `By config (${fmtInt(Object.keys(s.by_config || {}).length)})`),
        h("div", { class: "table-box" }, statsTable(s.by_config, { name: "Config", caption: "Extraction runs per config",
          sort: this.statsSort.config, onSort: (sort) => { this.statsSort.config = sort; this.renderStats(); } })))));
  }

  async refreshList(p, listKey) {
    const { cursor, offset } = pagePosition(p);
    const query = Object.fromEntries(LIST_KEYS.map((k) => [k, p.get(k)]));
    let result;
    try {
      result = await getJSON("/extraction-runs", { ...query, cursor, offset, limit: PAGE_SIZE });
    } catch (err) {
      if (err instanceof ApiError && p === this.params) {
        replace(this.summaryEl, h("span", { class: "error-text" }, `These filters cannot be used: ${problemText(err)}`));
        replace(this.tableEl);
        return;
      }
      throw err;
    }
    if (p !== this.params) return;
    if (result.data !== this.lastData) {
      this.lastData = result.data;
      this.listKey = listKey;
      this.render(result.data);
    }
    // F1 and latency are in each run's metrics, which the list leaves out: read them from
    // the runs' details (once per finished run; a finished run does not change), then show them.
    const needed = (result.data.runs || []).filter((r) => !r.metrics && FINAL.has(r.status) && !finalDetails.has(r.id));
    if (!needed.length) return;
    await inBatches(needed, 6, (r) => runDetail(r.id).catch(() => null));
    if (p === this.params && result.data === this.lastData) this.render(result.data);
  }

  toggle(id, checked) {
    this.selected = this.selected.filter((x) => x !== id);
    if (checked) this.selected.push(id);
    if (this.selected.length > 2) {
      const dropped = this.selected.shift();
      const box = this.tableEl.querySelector(`input[data-select="${CSS.escape(dropped)}"]`);
      if (box) box.checked = false;
    }
    this.compareBtn.disabled = this.selected.length !== 2;
    this.compareBtn.textContent = `Compare ${this.selected.length === 2 ? "" : `${this.selected.length} of `}2 selected`;
  }

  render(page) {
    const first = pagePosition(this.params).at;
    this.summaryEl.textContent = page.total === 0 ? "No extraction runs match these filters."
      : `Showing ${fmtInt(first + 1)}–${fmtInt(first + page.runs.length)} of ${fmtInt(page.total)} runs`;
    const metricsOf = (r) => r.metrics || (finalDetails.get(r.id) || {}).metrics || {};
    const cost = costFormatter(page.runs.map((r) => r.cost_usd));
    keepingFocus(this.tableEl, () => replace(this.tableEl, page.runs.length ? h("table", { class: "data-table reflow x-runs" },
      h("caption", { class: "visually-hidden" }, "Extraction runs; tick two to compare"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Compare"), h("th", { scope: "col" }, "Created (UTC)"),
        h("th", { scope: "col" }, "Prompt"), h("th", { scope: "col" }, "Config"), h("th", { scope: "col" }, "Document"),
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "F1"),
        h("th", { scope: "col", class: "num" }, "Latency"), h("th", { scope: "col", class: "num" }, "Cost"))),
      h("tbody", {}, page.runs.map((r) => {
        const m = metricsOf(r);
        return h("tr", { "data-run-id": r.id },
          h("td", { class: "lead-check" }, h("input", { type: "checkbox", "data-select": r.id, "aria-label": `Select run ${r.id} to compare`,
            checked: this.selected.includes(r.id), onchange: (ev) => this.toggle(r.id, ev.target.checked) })),
          h("td", { class: "nowrap lead-start" }, h("a", { href: `#/extraction/${encodeURIComponent(r.id)}`,
            "aria-label": `Extraction run ${r.id}, created ${fmtTime(r.created_at)}` }, fmtTime(r.created_at))),
          h("td", { "data-label": "Prompt" }, r.prompt_id), h("td", { "data-label": "Config" }, r.config_id),
          h("td", { class: "lead-wide" }, r.document_name),
          h("td", { class: "lead-end" }, badge(r.status)),
          h("td", { class: "num", "data-label": "F1", "data-col": "f1" }, fmtScore(m.f1)),
          h("td", { class: "num", "data-label": "Latency", "data-col": "latency" }, fmtMs(m.latency_ms)),
          h("td", { class: "num", "data-label": "Cost" }, cost(r.cost_usd)));
      }))) : null));
    replace(this.pagerEl, pagerButtons({
      params: this.params, base: this.listParams(), size: PAGE_SIZE, page,
      go: (params) => this.ctx.navigate(["extraction"], params),
    }));
  }
}

function leaseState(r) {
  if (!r.lease_expires_at) return null;
  const expires = new Date(r.lease_expires_at);
  const expired = r.status === "running" && expires.getTime() <= Date.now();
  return { expires, expired };
}

export class ExtractionDetailView {
  constructor(ctx, runId) {
    this.ctx = ctx;
    this.runId = runId;
    this.title = h("h1", { id: "xrun-title" }, `Extraction run ${runId}`);
    this.body = h("div", { class: "detail" }, h("p", {}, "Loading…"));
    this.el = h("section", { class: "view", "aria-labelledby": "xrun-title" },
      h("p", { class: "back" }, h("a", { href: "#/extraction" }, "‹ Back to extraction runs")),
      h("div", { class: "view-head" }, this.title), this.body);
  }

  update() { this.refresh().catch((err) => this.ctx.report(err)); }

  /** A finished run does not change; a pending or running one does (status, attempts, lease). */
  pollMs() {
    if (this.missing) return null;
    return this.lastData && FINAL.has(this.lastData.status) ? null : ACTIVE_RUN_POLL_MS;
  }

  async refresh() {
    let result;
    try {
      result = await getJSON(`/extraction-runs/${encodeURIComponent(this.runId)}`);
    } catch (err) {
      if (err instanceof ApiError) {
        this.missing = err.status === 404;
        replace(this.body, h("p", { class: "error-text" }, err.status === 404 ? "There is no extraction run with this id." : problemText(err)));
        return;
      }
      throw err;
    }
    // A lease expires with time alone, so a running run is redrawn on every poll.
    if (result.data === this.lastData && result.data.status !== "running") return;
    this.lastData = result.data;
    this.render(result.data);
  }

  render(r) {
    replace(this.title, `${r.prompt_id} on ${r.document_name} `, badge(r.status));
    const metrics = Object.entries(r.metrics || {});
    const other = h("input", { id: "x-other", autocomplete: "off", spellcheck: "false", placeholder: "run id" });
    const lease = leaseState(r);
    const leaseCell = lease
      ? h("span", { class: lease.expired ? "lease lease-expired" : "lease", "data-lease": lease.expired ? "expired" : "held" },
        fmtTime(r.lease_expires_at),
        lease.expired ? h("span", { class: "badge badge-warn" }, "Lease expired") : null,
        lease.expired ? h("span", { class: "hint lease-note" },
          " The worker has not reported in time; the next claim takes the run back.") : null)
      : DASH;
    keepingFocus(this.body, () => replace(this.body,
      h("div", { class: "detail-grid" },
        h("section", { class: "panel", "aria-labelledby": "xrun-facts" }, h("h2", { id: "xrun-facts" }, "Run"),
          h("dl", { class: "kv" },
            field("Run id", h("code", {}, r.id)), field("Prompt", r.prompt_id), field("Config", r.config_id),
            field("Document", r.document_name), field("Status", badge(r.status)),
            field("Created (UTC)", fmtTime(r.created_at)), field("Started (UTC)", fmtTime(r.started_at)),
            field("Completed (UTC)", fmtTime(r.completed_at)),
            field("Worker", r.worker_id ? h("code", { "data-worker": r.worker_id }, r.worker_id) : DASH),
            field("Attempts", h("span", { "data-attempts": r.attempts ?? "" }, fmtInt(r.attempts ?? null))),
            field("Lease expires (UTC)", leaseCell),
            field("Tokens", r.tokens ? `${fmtInt(r.tokens.input)} in, ${fmtInt(r.tokens.output)} out` : DASH),
            field("Cost", fmtCost(r.cost_usd)))),
        h("section", { class: "panel", "aria-labelledby": "xrun-metrics" }, h("h2", { id: "xrun-metrics" }, "Metrics"),
          metrics.length ? h("dl", { class: "kv" }, metrics.map(([k, v]) => field(k, fmtMetric(k, v))))
            : h("p", { class: "muted" }, "No metrics."),
          h("form", { class: "inline-form", onsubmit: (ev) => {
            ev.preventDefault();
            if (other.value.trim()) this.ctx.navigate(["extraction", "compare", r.id, other.value.trim()]);
          } }, h("label", { for: "x-other" }, "Compare with run"), other,
          h("button", { type: "submit" }, "Compare")))),
      r.error ? h("section", { class: "panel errors", "aria-labelledby": "xrun-error" },
        h("h2", { id: "xrun-error" }, "Error"), h("p", { class: "error-message" }, r.error)) : null,
      h("div", { class: "detail-grid" },
        h("section", { class: "panel", "aria-labelledby": "xrun-output" }, h("h2", { id: "xrun-output" }, "Output"),
          r.output ? jsonTree(r.output) : h("p", { class: "muted" }, "No output.")),
        r.expected ? h("section", { class: "panel", "aria-labelledby": "xrun-expected" },
          h("h2", { id: "xrun-expected" }, "Expected (ground truth)"), jsonTree(r.expected)) : null)));
  }
}

function sideFacts(run, label) {
  return h("section", { class: "panel", "aria-label": label }, h("h2", {}, label, " ", badge(run.status)),
    h("dl", { class: "kv" }, field("Run id", h("a", { href: `#/extraction/${encodeURIComponent(run.id)}` }, run.id)),
      field("Prompt", run.prompt_id), field("Config", run.config_id), field("Document", run.document_name),
      field("Cost", fmtCost(run.cost_usd))));
}

function countCard(key, label, value) {
  return h("div", { class: "card", "data-count": key }, h("div", { class: "card-label" }, label),
    h("div", { class: "card-value num" }, fmtInt(value)), h("div", { class: "card-sub" }, "\u00a0"));
}

const ABSENT = Symbol("absent");

/** The value at a dotted leaf path (`invoice.total`, `lines.0.sku`) of a JSON document. */
export function atPath(doc, path) {
  let value = doc;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || !(part in value)) return ABSENT;
    value = value[part];
  }
  return value;
}

function sameJson(a, b) {
  if (a === ABSENT || b === ABSENT) return false;
  if (typeof a === "number" && typeof b === "number") return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Whether one side's value at `path` is what its ground truth says: the same value, or no
 * value where the ground truth has none. null when the run has no ground truth.
 */
function sideMatches(expectedDoc, path, present, value) {
  if (!expectedDoc) return null;
  const expected = atPath(expectedDoc, path);
  if (expected === ABSENT) return !present;
  return present && sameJson(value, expected);
}

function matchCell(value, present, ok) {
  const shown = present ? leaf(value) : h("span", { class: "muted" }, "absent");
  if (ok === null) return shown;
  return h("span", { class: ok ? "match" : "mismatch" },
    h("span", { class: "match-mark", "aria-hidden": "true" }, ok ? "✓ " : "✗ "), shown,
    h("span", { class: "visually-hidden" }, ok ? " (matches expected)" : " (does not match expected)"));
}

export class ExtractionCompareView {
  constructor(ctx, a, b) {
    this.ctx = ctx;
    this.a = a;
    this.b = b;
    this.body = h("div", { class: "detail" }, h("p", {}, "Loading…"));
    this.el = h("section", { class: "view compare", "aria-labelledby": "cmp-title" },
      h("p", { class: "back" }, h("a", { href: "#/extraction" }, "‹ Back to extraction runs")),
      h("div", { class: "view-head" }, h("h1", { id: "cmp-title" }, "Compare two runs"),
        h("div", { class: "period" }, h("a", { class: "button", href: `#/extraction/compare/${encodeURIComponent(b)}/${encodeURIComponent(a)}` }, "Swap A and B"))),
      this.body);
  }

  update() { this.refresh().catch((err) => this.ctx.report(err)); }

  /** When both runs are finished the comparison cannot change: no polling. */
  pollMs() {
    const c = this.lastData;
    return c && FINAL.has(c.run_a.status) && FINAL.has(c.run_b.status) ? null : ACTIVE_RUN_POLL_MS;
  }

  async refresh() {
    let result;
    let details;
    try {
      result = await getJSON(`/extraction-runs/${encodeURIComponent(this.a)}/compare/${encodeURIComponent(this.b)}`);
      // The ground truth is in each run's detail (fetched once each for finished runs).
      details = await Promise.all([runDetail(this.a), runDetail(this.b)]);
    } catch (err) {
      if (err instanceof ApiError) {
        replace(this.body, h("p", { class: "error-text" }, err.status === 404 ? `One of the runs does not exist: ${err.message}` : problemText(err)));
        return;
      }
      throw err;
    }
    const key = details.map((d) => JSON.stringify(d.expected ?? null)).join();
    if (result.data === this.lastData && key === this.expectedKey) return;
    this.lastData = result.data;
    this.expectedKey = key;
    this.render(result.data, details);
  }

  render(c, [detailA, detailB]) {
    const s = c.summary || {};
    const diffs = c.field_differences || [];
    const expA = detailA.expected || null;
    const expB = detailB.expected || null;
    const hasExpected = Boolean(expA || expB);
    const expectedCell = (d) => {
      const ea = expA ? atPath(expA, d.field) : ABSENT;
      const eb = expB ? atPath(expB, d.field) : ABSENT;
      if (ea === ABSENT && eb === ABSENT) return h("span", { class: "muted" }, "not expected");
      if (ea !== ABSENT && eb !== ABSENT && !sameJson(ea, eb)) {
        return h("span", {}, "A: ", leaf(ea), ", B: ", leaf(eb));
      }
      return leaf(ea !== ABSENT ? ea : eb);
    };
    const okA = (d) => sideMatches(expA, d.field, d.status !== "only_in_b", d.run_a);
    const okB = (d) => sideMatches(expB, d.field, d.status !== "only_in_a", d.run_b);
    const verdict = (d) => {
      const [a, b] = [okA(d), okB(d)];
      if (a === null && b === null) return null;
      return a && b ? "both" : a ? "a" : b ? "b" : "neither";
    };
    const VERDICT_TEXT = { a: "A is right", b: "B is right", both: "Both right", neither: "Neither right" };
    replace(this.body,
      h("div", { class: "detail-grid" }, sideFacts(c.run_a, "Run A"), sideFacts(c.run_b, "Run B")),
      h("section", { class: "panel", "aria-labelledby": "cmp-fields-sum" }, h("h2", { id: "cmp-fields-sum" }, "Output fields"),
        h("div", { class: "wtl" }, countCard("same", "Same", s.fields_same), countCard("different", "Different", s.fields_different),
          countCard("only_in_a", "Only in A", s.fields_only_in_a), countCard("only_in_b", "Only in B", s.fields_only_in_b))),
      h("section", { class: "panel", "aria-labelledby": "cmp-metrics" }, h("h2", { id: "cmp-metrics" }, "Metrics"),
        (c.metric_comparisons || []).length
          ? h("div", { class: "table-box" }, metricTable(c.metric_comparisons, { caption: "Metrics of run A and run B" }))
          : h("p", { class: "muted" }, "Neither run has metrics.")),
      h("section", { class: "panel", "aria-labelledby": "cmp-diffs" }, h("h2", { id: "cmp-diffs" }, "Field differences"),
        hasExpected ? h("p", { class: "hint" }, "✓ marks the side whose value matches the expected (ground truth) value, ✗ the side that does not.") : null,
        diffs.length ? h("div", { class: "table-box" }, h("table", { class: "data-table field-diffs reflow" },
          h("caption", { class: "visually-hidden" }, "Fields that differ between the outputs"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col" }, "Run A"), h("th", { scope: "col" }, "Run B"),
            hasExpected ? h("th", { scope: "col" }, "Expected") : null,
            hasExpected ? h("th", { scope: "col" }, "Verdict") : null)),
          h("tbody", {}, diffs.map((d) => {
            const v = hasExpected ? verdict(d) : null;
            return h("tr", { class: `field-${d.status}`, "data-field": d.field, "data-status": d.status, "data-match": v },
              h("th", { scope: "row" }, h("code", {}, d.field)),
              h("td", { class: "lead-wide" }, h("span", { class: `badge field-${d.status}` }, FIELD_LABELS[d.status] || d.status)),
              h("td", { "data-label": "A", "data-side": "a" }, matchCell(d.run_a, d.status !== "only_in_b", okA(d))),
              h("td", { "data-label": "B", "data-side": "b" }, matchCell(d.run_b, d.status !== "only_in_a", okB(d))),
              hasExpected ? h("td", { "data-label": "Expected" }, expectedCell(d)) : null,
              hasExpected ? h("td", { "data-label": "Verdict" }, v ? VERDICT_TEXT[v] : DASH) : null);
          }))))
          : h("p", { class: "muted" }, "The outputs have the same fields with the same values.")));
  }
}

const GROUP_KEYS = ["a_prompt_id", "a_config_id", "b_prompt_id", "b_config_id", "document_name"];
// The cost of a side is read from the stats summary over this many days (its longest window).
const COST_DAYS = 30;

export class ExtractionGroupsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.inputs = Object.fromEntries(GROUP_KEYS.map((k) => [k, h("input", { id: `g-${k}`, name: k,
      autocomplete: "off", spellcheck: "false", list: k.endsWith("prompt_id") ? "g-prompts" : k.endsWith("config_id") ? "g-configs" : null })]));
    this.prompts = h("datalist", { id: "g-prompts" });
    this.configs = h("datalist", { id: "g-configs" });
    const i = this.inputs;
    this.body = h("div", { class: "detail" });
    this.el = h("section", { class: "view groups", "aria-labelledby": "g-title" },
      h("p", { class: "back" }, h("a", { href: "#/extraction" }, "‹ Back to extraction runs")),
      h("div", { class: "view-head" }, h("h1", { id: "g-title" }, "Compare two groups")),
      h("p", { class: "hint" }, "Each side is a prompt, a config, or both. For every document, the latest completed run of each side is paired; F1 decides wins, ties and losses."),
      h("form", { class: "filters", "aria-label": "Groups to compare", onsubmit: (ev) => {
        ev.preventDefault();
        this.ctx.navigate(["extraction", "groups"], Object.fromEntries(GROUP_KEYS.map((k) => [k, i[k].value.trim()])));
      } },
      h("fieldset", { class: "field" }, h("legend", {}, "Side A"), h("div", { class: "custom-range" },
        h("div", { class: "field" }, h("label", { for: "g-a_prompt_id" }, "A prompt"), i.a_prompt_id),
        h("div", { class: "field" }, h("label", { for: "g-a_config_id" }, "A config"), i.a_config_id))),
      h("fieldset", { class: "field" }, h("legend", {}, "Side B"), h("div", { class: "custom-range" },
        h("div", { class: "field" }, h("label", { for: "g-b_prompt_id" }, "B prompt"), i.b_prompt_id),
        h("div", { class: "field" }, h("label", { for: "g-b_config_id" }, "B config"), i.b_config_id))),
      h("div", { class: "field" }, h("label", { for: "g-document_name" }, "Only document"), i.document_name),
      h("div", { class: "field actions" }, h("button", { type: "submit", class: "primary" }, "Compare"))),
      this.prompts, this.configs, this.body);
    this.loadNames();
  }

  async loadNames() {
    try {
      const { data } = await getJSON("/extraction-runs/stats/summary", { days: 30 });
      replace(this.prompts, Object.keys(data.by_prompt || {}).sort().map((v) => h("option", { value: v })));
      replace(this.configs, Object.keys(data.by_config || {}).sort().map((v) => h("option", { value: v })));
    } catch {
      // Suggestions only.
    }
  }

  /** Runs complete at any time, but a comparison can cover thousands of documents. */
  pollMs() {
    if (!this.params || !GROUP_KEYS.some((k) => this.params.get(k))) return null;
    return this.etag ? GROUPS_POLL_MS : GROUPS_POLL_NO_ETAG_MS;
  }

  groupParams() {
    return Object.fromEntries(GROUP_KEYS.map((k) => [k, this.params.get(k)]));
  }

  update(params) {
    const same = this.params && this.lastData
      && GROUP_KEYS.every((k) => (params.get(k) || "") === (this.params.get(k) || ""));
    this.params = params;
    const sort = params.get("sort") || "";
    this.sort = sort ? { key: sort.replace(/^-/, ""), dir: sort.startsWith("-") ? "desc" : "asc" } : { key: "document", dir: "asc" };
    for (const k of GROUP_KEYS) this.inputs[k].value = params.get(k) || "";
    if (same) {
      // Only the order changed.
      this.renderDocuments();
      return;
    }
    this.lastData = null;
    this.etag = null;
    if (!GROUP_KEYS.some((k) => params.get(k))) {
      replace(this.body, h("p", { class: "muted" }, "Choose the two sides to compare."));
      return;
    }
    this.refresh().catch((err) => this.ctx.report(err));
  }

  async sideCost(prompt, config) {
    if (!prompt && !config) return null;
    const { data } = await getJSON("/extraction-runs/stats/summary", { days: COST_DAYS, prompt_id: prompt, config_id: config });
    return { total: data.total_cost_usd, runs: data.total_runs, completed: data.completed_runs };
  }

  async refresh() {
    const p = this.params;
    if (!p || !GROUP_KEYS.some((k) => p.get(k))) return;
    let result;
    let costs;
    try {
      [result, ...costs] = await Promise.all([
        getJSON("/extraction-runs/compare", this.groupParams()),
        this.sideCost(p.get("a_prompt_id"), p.get("a_config_id")).catch(() => null),
        this.sideCost(p.get("b_prompt_id"), p.get("b_config_id")).catch(() => null),
      ]);
    } catch (err) {
      if (err instanceof ApiError) {
        replace(this.body, h("p", { class: "error-text" }, problemText(err)));
        return;
      }
      throw err;
    }
    if (p !== this.params) return;
    this.etag = result.etag || null;
    const costKey = JSON.stringify(costs);
    if (result.data === this.lastData && costKey === this.costKey) return;
    this.lastData = result.data;
    this.costs = costs;
    this.costKey = costKey;
    this.render(result.data);
  }

  render(g) {
    const f1 = g.f1 || {};
    const side = (s) => [s.prompt_id, s.config_id].filter(Boolean).join(" + ");
    const [costA, costB] = this.costs || [];
    const perRun = costFormatter([costA, costB].map((c) => (c && c.runs ? c.total / c.runs : null)));
    const costLine = (label, c) => (c
      ? h("div", { class: "card", "data-cost": label.toLowerCase() },
        h("div", { class: "card-label" }, `Cost ${label}`),
        h("div", { class: "card-value num" }, c.runs ? perRun(c.total / c.runs) : DASH),
        h("div", { class: "card-sub" }, `per run (${fmtInt(c.runs)} runs, ${fmtCost(c.total)})`))
      : null);
    this.documentsEl = h("div", { class: "table-box" });
    replace(this.body,
      h("section", { class: "panel", "aria-labelledby": "g-f1" },
        h("h2", { id: "g-f1" }, `F1 over ${fmtInt(g.documents_compared)} paired documents: A = ${side(g.a)}, B = ${side(g.b)}`),
        h("div", { class: "wtl" }, countCard("wins_a", "A wins", f1.wins_a), countCard("ties", "Ties", f1.ties),
          countCard("wins_b", "B wins", f1.wins_b), countCard("missing", "No F1", f1.missing))),
      h("section", { class: "panel", "aria-labelledby": "g-cost" }, h("h2", { id: "g-cost" }, "Cost"),
        h("p", { class: "hint" }, `All runs of each side created in the last ${COST_DAYS} days (from the extraction summary).`),
        h("div", { class: "wtl" }, costLine("A", costA), costLine("B", costB))),
      h("section", { class: "panel", "aria-labelledby": "g-means" }, h("h2", { id: "g-means" }, "Means over paired documents"),
        (g.means || []).length ? h("div", { class: "table-box" }, metricTable(g.means, { caption: "Mean of each metric on each side", a: "Mean A", b: "Mean B" }))
          : h("p", { class: "muted" }, "No paired documents with metrics.")),
      h("section", { class: "panel", "aria-labelledby": "g-docs" }, h("h2", { id: "g-docs" }, "Documents"),
        (g.documents || []).length ? h("p", { class: "hint" }, "Sort by F1 difference, low to high, for the largest regressions of B first.") : null,
        this.documentsEl,
        (g.documents_only_in_a || []).length ? h("p", {}, h("strong", {}, "Only A covers: "), g.documents_only_in_a.join(", ")) : null,
        (g.documents_only_in_b || []).length ? h("p", {}, h("strong", {}, "Only B covers: "), g.documents_only_in_b.join(", ")) : null));
    this.renderDocuments();
  }

  renderDocuments() {
    const g = this.lastData;
    if (!g || !this.documentsEl) return;
    if (!(g.documents || []).length) {
      replace(this.documentsEl, h("p", { class: "muted" }, "No document has a completed run on both sides."));
      return;
    }
    const rows = g.documents.map((d, index) => ({ ...d, index, f1: (d.metric_comparisons || []).find((m) => m.metric === "f1") || {} }));
    const resultOf = (r) => (r.f1.difference === null || r.f1.difference === undefined ? "no F1"
      : Math.abs(r.f1.difference) <= 1e-9 ? "tie" : r.f1.difference > 0 ? "B wins" : "A wins");
    const columns = [
      { key: "document", label: "Document", text: true, value: (r) => r.index, cell: (r) => r.document_name },
      { key: "f1_a", label: "F1 A", value: (r) => r.f1.run_a ?? null, cell: (r) => fmtScore(r.f1.run_a) },
      { key: "f1_b", label: "F1 B", value: (r) => r.f1.run_b ?? null, cell: (r) => fmtScore(r.f1.run_b) },
      { key: "difference", label: "Difference", value: (r) => r.f1.difference ?? null, cell: (r) => deltaText("f1", r.f1.difference, r.f1.percent_difference) },
      { key: "result", label: "Result", text: true, value: (r) => resultOf(r), cell: (r) => resultOf(r) },
      { key: "runs", label: "Runs", text: true, value: (r) => r.index,
        cell: (r) => h("a", { href: `#/extraction/compare/${encodeURIComponent(r.run_a)}/${encodeURIComponent(r.run_b)}` }, "compare") },
    ];
    keepingFocus(this.documentsEl, () => replace(this.documentsEl, sortableTable({
      columns, rows, sort: this.sort, caption: "F1 per paired document", reflow: true,
      rowAttrs: (r) => ({ "data-document": r.document_name, "data-f1-difference": r.f1.difference ?? "" }),
      onSort: (sort) => {
        this.sort = sort;
        this.renderDocuments();
        const value = sort.key === "document" && sort.dir === "asc" ? "" : `${sort.dir === "desc" ? "-" : ""}${sort.key}`;
        this.ctx.navigate(["extraction", "groups"], { ...this.groupParams(), sort: value }, { replace: true });
      },
    })));
  }
}

/** A signed difference as text, coloured by the metric's direction. */
function deltaText(metric, diff, pct) {
  const cell = deltaCell(metric, diff, pct);
  return h("span", { class: cell.className.replace("num", "").trim(), "data-better": cell.dataset.better }, ...cell.childNodes);
}
