// The runs view (filters in the URL, keyset paging) and one run's detail with its errors.

import { ApiError, getJSON } from "./api.js";
import { STATUSES, STATUS_LABELS } from "./chart.js";
import { h, keepingFocus, replace } from "./dom.js";
import { durationCell, stuckIds } from "./operator.js";
import {
  DASH, costFormatter, fmtCost, fmtDuration, fmtInt, fmtTime, fromLocalInput, toLocalInput,
} from "./format.js";
import { isFirstPage, pagePosition, pagerButtons } from "./pager.js";

const RANGES = [
  { value: "", label: "Any time" },
  { value: "1h", label: "Last hour", seconds: 3600 },
  { value: "24h", label: "Last 24 hours", seconds: 86400 },
  { value: "7d", label: "Last 7 days", seconds: 7 * 86400 },
  { value: "30d", label: "Last 30 days", seconds: 30 * 86400 },
  { value: "custom", label: "Between…" },
];
const PAGE_SIZES = [25, 50, 100];
const SORTS = {
  started_at: "Started", duration_seconds: "Duration", tokens_total: "Tokens",
  estimated_cost_usd: "Cost",
};
const FILTER_KEYS = ["layer_name", "status", "range", "since", "until", "model_name", "sort", "limit",
  "stuck", "error_fingerprint"];

// The list the detail view's "back" link returns to, filters and page included.
let lastListHash = "#/runs";

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, STATUS_LABELS[status] || status);
}

function rangeWindow(params) {
  const range = params.get("range") || "";
  if (range === "custom") {
    return { since: params.get("since") || null, until: params.get("until") || null };
  }
  const preset = RANGES.find((r) => r.value === range && r.seconds);
  if (!preset) return { since: null, until: null };
  // Rounded to the minute so that polls within a minute ask for the same URL (and ETag).
  const since = new Date(Math.floor((Date.now() - preset.seconds * 1000) / 60000) * 60000);
  return { since: since.toISOString(), until: null };
}

export class RunsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.layerList = h("datalist", { id: "layer-names" });
    this.form = this.buildForm();
    this.summaryEl = h("p", { class: "result-count", role: "status" }, "\u00a0");
    this.tableEl = h("div", { class: "table-box" });
    this.pagerEl = h("nav", { class: "pager", "aria-label": "Pages" });
    this.el = h("section", { class: "view runs", "aria-labelledby": "runs-title" },
      h("div", { class: "view-head" }, h("h1", { id: "runs-title" }, "Runs")),
      this.form, this.layerList, this.summaryEl, this.tableEl, this.pagerEl);
    this.loadLayerNames();
  }

  buildForm() {
    const f = {};
    f.layer = h("input", { id: "f-layer", name: "layer_name", list: "layer-names", autocomplete: "off",
      spellcheck: "false", placeholder: "any layer" });
    f.model = h("input", { id: "f-model", name: "model_name", autocomplete: "off", spellcheck: "false",
      placeholder: "any model" });
    f.statuses = STATUSES.map((s) => h("input", { type: "checkbox", name: "status", value: s, id: `f-status-${s}` }));
    f.range = h("select", { id: "f-range", name: "range" },
      RANGES.map((r) => h("option", { value: r.value }, r.label)));
    f.since = h("input", { type: "datetime-local", id: "f-since", name: "since" });
    f.until = h("input", { type: "datetime-local", id: "f-until", name: "until" });
    f.sort = h("select", { id: "f-sort", name: "sort" },
      Object.entries(SORTS).flatMap(([key, label]) => [
        h("option", { value: `-${key}` }, `${label}, high to low`),
        h("option", { value: key }, `${label}, low to high`),
      ]));
    f.sort.querySelector('option[value="-started_at"]').textContent = "Newest first";
    f.sort.querySelector('option[value="started_at"]').textContent = "Oldest first";
    f.limit = h("select", { id: "f-limit", name: "limit" },
      PAGE_SIZES.map((n) => h("option", { value: n }, `${n} per page`)));
    this.f = f;
    this.customRange = h("div", { class: "custom-range" },
      h("div", { class: "field" }, h("label", { for: "f-since" }, "From (UTC)"), f.since),
      h("div", { class: "field" }, h("label", { for: "f-until" }, "Until (UTC)"), f.until));
    f.range.addEventListener("change", () => {
      this.customRange.hidden = f.range.value !== "custom";
      if (f.range.value !== "custom") this.apply();
    });
    for (const el of [...f.statuses, f.sort, f.limit]) el.addEventListener("change", () => this.apply());
    const form = h("form", { class: "filters", role: "search", "aria-label": "Filter runs",
      onsubmit: (ev) => { ev.preventDefault(); this.apply(); } },
    h("div", { class: "field" }, h("label", { for: "f-layer" }, "Layer"), f.layer),
    h("fieldset", { class: "field statuses" }, h("legend", {}, "Status"),
      h("div", { class: "checks" }, STATUSES.map((s, i) => h("label", { for: `f-status-${s}`, class: "check" },
        f.statuses[i], statusBadge(s))))),
    h("div", { class: "field" }, h("label", { for: "f-range" }, "Started"), f.range),
    this.customRange,
    h("div", { class: "field" }, h("label", { for: "f-model" }, "Model"), f.model),
    h("div", { class: "field" }, h("label", { for: "f-sort" }, "Order"), f.sort),
    h("div", { class: "field" }, h("label", { for: "f-limit" }, "Page size"), f.limit),
    h("div", { class: "field actions" },
      h("button", { type: "submit", class: "primary" }, "Apply"),
      h("a", { href: "#/runs", class: "button" }, "Clear")));
    return form;
  }

  async loadLayerNames() {
    try {
      const { data } = await getJSON("/runs/stats/summary", { days: 30 });
      replace(this.layerList, Object.keys(data.by_layer || {}).sort().map((name) => h("option", { value: name })));
    } catch {
      // Suggestions are a convenience; the filter works without them.
    }
  }

  /** The filters as URL parameters, from the form. */
  formParams() {
    const f = this.f;
    const statuses = f.statuses.filter((c) => c.checked).map((c) => c.value);
    const range = f.range.value;
    return {
      layer_name: f.layer.value.trim(),
      status: statuses.join(","),
      range,
      since: range === "custom" ? fromLocalInput(f.since.value) : "",
      until: range === "custom" ? fromLocalInput(f.until.value) : "",
      model_name: f.model.value.trim(),
      sort: f.sort.value === "-started_at" ? "" : f.sort.value,
      limit: f.limit.value === String(PAGE_SIZES[0]) ? "" : f.limit.value,
    };
  }

  apply() {
    this.ctx.navigate(["runs"], this.formParams());
  }

  update(params) {
    this.params = params;
    const f = this.f;
    f.layer.value = params.get("layer_name") || "";
    f.model.value = params.get("model_name") || "";
    const statuses = (params.get("status") || "").split(",").filter(Boolean);
    for (const c of f.statuses) c.checked = statuses.includes(c.value);
    const range = params.get("range") || (params.get("since") || params.get("until") ? "custom" : "");
    f.range.value = RANGES.some((r) => r.value === range) ? range : "";
    this.customRange.hidden = f.range.value !== "custom";
    f.since.value = toLocalInput(params.get("since"));
    f.until.value = toLocalInput(params.get("until"));
    f.sort.value = params.get("sort") || "-started_at";
    if (!f.sort.value) f.sort.value = "-started_at";
    f.limit.value = params.get("limit") || String(PAGE_SIZES[0]);
    if (!f.limit.value) f.limit.value = String(PAGE_SIZES[0]);
    lastListHash = window.location.hash || "#/runs";
    this.lastData = null;
    this.tableEl.setAttribute("aria-busy", "true");
    this.refresh().catch((err) => this.ctx.report(err));
  }

  query() {
    const p = this.params;
    const window_ = p.get("range") === "custom" || !p.get("range")
      ? { since: p.get("since"), until: p.get("until") }
      : rangeWindow(p);
    return {
      layer_name: p.get("layer_name"),
      status: p.get("status"),
      model_name: p.get("model_name"),
      since: window_.since,
      until: window_.until,
      sort: p.get("sort"),
      limit: this.f.limit.value,
      cursor: pagePosition(p).cursor,
      offset: pagePosition(p).offset,
      stuck: p.get("stuck"),
      error_fingerprint: p.get("error_fingerprint"),
    };
  }

  /** The first page polls (new runs arrive there); deeper pages stay until you move. */
  pollMs() {
    return this.params && isFirstPage(this.params) ? 5000 : null;
  }

  async refresh() {
    const params = this.params;
    let result;
    try {
      result = await getJSON("/runs", this.query());
    } catch (err) {
      if (err instanceof ApiError && params === this.params) {
        this.tableEl.removeAttribute("aria-busy");
        replace(this.summaryEl, h("span", { class: "error-text" },
          `These filters cannot be used: ${err.message}`));
        replace(this.tableEl);
        replace(this.pagerEl);
        return;
      }
      throw err;
    }
    if (params !== this.params || result.data === this.lastData) return;
    this.lastData = result.data;
    this.stuck = await stuckIds(result.data.runs);
    this.tableEl.removeAttribute("aria-busy");
    this.render(result.data);
  }

  render(page) {
    const first = pagePosition(this.params).at;
    this.summaryEl.textContent = page.total === 0
      ? "No runs match these filters."
      : `Showing ${fmtInt(first + 1)}–${fmtInt(first + page.runs.length)} of ${fmtInt(page.total)} runs`;
    const sortKey = (this.params.get("sort") || "-started_at").replace(/^-/, "");
    const head = (key, label, cls = "") => h("th", { scope: "col", class: cls,
      "aria-sort": key === sortKey ? ((this.params.get("sort") || "-started_at").startsWith("-") ? "descending" : "ascending") : null },
    label);
    const cost = costFormatter(page.runs.map((r) => r.estimated_cost_usd));
    const table = h("table", { class: "data-table runs-table reflow" },
      h("caption", { class: "visually-hidden" }, "Runs matching the filters; select a run to see its detail"),
      h("thead", {}, h("tr", {},
        head("started_at", "Started (UTC)"), head("", "Layer"), head("", "Status"),
        head("duration_seconds", "Duration", "num"), head("", "Processed", "num"),
        head("", "Insights", "num"), head("tokens_total", "Tokens", "num"),
        head("estimated_cost_usd", "Cost", "num"), head("", "Model"))),
      h("tbody", {}, page.runs.map((r) => {
        const href = `#/runs/${encodeURIComponent(r.id)}`;
        return h("tr", { "data-run-id": r.id, class: "clickable",
          onclick: (ev) => { if (!ev.target.closest("a")) window.location.hash = href; } },
        h("td", { class: "nowrap lead-start" }, h("a", { href, "aria-label": `Run ${r.id} of ${r.layer_name}, started ${fmtTime(r.started_at)}` }, fmtTime(r.started_at))),
        h("td", { class: "layer-cell lead-wide" }, r.layer_name),
        h("td", { class: "lead-end" }, statusBadge(r.status)),
        h("td", { class: "num", "data-label": "Duration" }, durationCell(r, this.stuck)),
        h("td", { class: "num wide-only", "data-label": "Processed" }, fmtInt(r.targets_processed)),
        h("td", { class: "num wide-only", "data-label": "Insights" }, fmtInt(r.insights_created)),
        h("td", { class: "num", "data-label": "Tokens" }, fmtInt(r.tokens_total)),
        h("td", { class: "num", "data-label": "Cost" }, cost(r.estimated_cost_usd)),
        h("td", { class: "muted model-cell", "data-label": "Model" }, r.model_name || DASH));
      })));
    keepingFocus(this.tableEl, () => replace(this.tableEl, page.runs.length ? table : null));
    const base = Object.fromEntries(FILTER_KEYS.map((k) => [k, this.params.get(k)]));
    replace(this.pagerEl, pagerButtons({
      params: this.params, base, size: Number(this.f.limit.value), page,
      go: (params) => this.ctx.navigate(["runs"], params),
    }));
  }
}

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? DASH)];
}

function jsonValue(value) {
  if (value === null || value === undefined) return DASH;
  if (typeof value === "object") return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
  return String(value);
}

function errorItem(error, index) {
  const obj = error && typeof error === "object" ? error : { message: String(error) };
  const title = obj.type || obj.code || obj.kind || obj.error || `Error ${index + 1}`;
  const message = obj.message ?? obj.detail ?? obj.msg;
  const rest = Object.entries(obj).filter(([k]) => !["message", "detail", "msg"].includes(k)
    && !(k === "type" && obj.type) );
  return h("li", { class: "error-item" },
    h("h3", {}, title),
    message !== undefined ? h("p", { class: "error-message" }, String(message)) : null,
    rest.length ? h("dl", { class: "kv" }, rest.map(([k, v]) => field(k, jsonValue(v)))) : null);
}

export class RunDetailView {
  constructor(ctx, runId) {
    this.ctx = ctx;
    this.runId = runId;
    this.body = h("div", { class: "detail", "aria-busy": "true" }, h("p", {}, "Loading…"));
    this.title = h("h1", { id: "run-title" }, `Run ${runId}`);
    this.el = h("section", { class: "view run-detail", "aria-labelledby": "run-title" },
      h("p", { class: "back" }, h("a", { href: lastListHash }, "‹ Back to runs")),
      h("div", { class: "view-head" }, this.title), this.body);
  }

  update() {
    this.refresh().catch((err) => this.ctx.report(err));
  }

  /** A completed run never changes again; only a running one is worth polling. */
  pollMs() {
    if (this.missing) return null;
    return this.lastData && this.lastData.status !== "running" ? null : 5000;
  }

  async refresh() {
    let result;
    try {
      result = await getJSON(`/runs/${encodeURIComponent(this.runId)}`);
    } catch (err) {
      if (err instanceof ApiError) {
        this.missing = err.status === 404;
        this.body.removeAttribute("aria-busy");
        replace(this.body, h("p", { class: "error-text" },
          err.status === 404 ? "There is no run with this id (it may have been deleted)." : err.message));
        return;
      }
      throw err;
    }
    if (result.data === this.lastData) return;
    this.lastData = result.data;
    this.render(result.data);
  }

  render(r) {
    replace(this.title, r.layer_name, " ", statusBadge(r.status));
    const errors = Array.isArray(r.errors) ? r.errors : [];
    const model = [r.model_provider, r.model_name].filter(Boolean).join(" / ")
      + (r.model_profile ? ` (${r.model_profile})` : "");
    this.body.removeAttribute("aria-busy");
    replace(this.body,
      h("div", { class: "detail-grid" },
        h("section", { class: "panel", "aria-labelledby": "run-facts" },
          h("h2", { id: "run-facts" }, "Run"),
          h("dl", { class: "kv" },
            field("Run id", h("code", {}, r.id)),
            field("Layer", r.layer_name),
            field("Layer hash", h("code", {}, r.layer_hash)),
            field("Status", statusBadge(r.status)),
            field("Started (UTC)", fmtTime(r.started_at)),
            field("Completed (UTC)", r.completed_at ? fmtTime(r.completed_at) : "still running"),
            field("Duration", durationCell(r, new Set(r.stuck ? [r.id] : []))),
            r.stuck ? field("Stuck since (UTC)", fmtTime(r.stuck_since)) : null)),
        h("section", { class: "panel", "aria-labelledby": "run-work" },
          h("h2", { id: "run-work" }, "Work and cost"),
          h("dl", { class: "kv" },
            field("Model", model || DASH),
            field("Targets", `${fmtInt(r.targets_processed)} processed of ${fmtInt(r.targets_matched)} matched, ${fmtInt(r.targets_skipped)} skipped`),
            field("Insights created", fmtInt(r.insights_created)),
            field("Tokens", `${fmtInt(r.tokens_total)} (${fmtInt(r.tokens_input)} in, ${fmtInt(r.tokens_output)} out)`),
            field("Estimated cost", fmtCost(r.estimated_cost_usd))))),
      h("section", { class: "panel errors", "aria-labelledby": "run-errors" },
        h("h2", { id: "run-errors" }, `Errors (${errors.length})`),
        errors.length
          ? h("ol", { class: "error-list" }, errors.map(errorItem))
          : h("p", { class: "muted" }, "No errors recorded for this run.")));
  }
}
