// The overview: period picker, summary cards, runs over time, and the per-layer table.

import { getJSON } from "./api.js";
import { CHART_METRICS, barChart, normalizeSeries, statusMix } from "./chart.js";
import { h, keepingFocus, replace } from "./dom.js";
import {
  COMPACT_FROM, DASH, costFormatter, fmtCompact, fmtCost, fmtDuration, fmtInt, fmtPct,
} from "./format.js";
import { OperatorPanels, percentileColumns, withStuckBadge } from "./operator.js";
import { sortableTable } from "./table.js";

// The summary's ETag moves with each step of its rolling window (RUNWATCH_STATS_ETAG_SECONDS,
// 10 s by default): polling faster only repeats a 304, so the overview polls once per step.
export const SUMMARY_POLL_MS = 10000;
// The series is fetched again only when the summary changed, a new bucket began, or, as a
// safety net for changes the summary cannot see, after this long.
const SERIES_MAX_AGE_MS = 60000;
const DEFAULT_LAYER_SORT = { key: "runs", dir: "desc" };

const PERIODS = [
  { days: 1, label: "24 h" },
  { days: 7, label: "7 d" },
  { days: 30, label: "30 d" },
];

// A layer's typical duration, by preference; the column shows when the API sends one.
const DURATION_KEYS = [
  ["median_duration_seconds", "Median duration"],
  ["p50_duration_seconds", "Median duration"],
  ["mean_duration_seconds", "Mean duration"],
];

const CARDS = [
  { key: "total_runs", label: "Runs", value: (s) => s.total_runs, fmt: fmtInt,
    sub: (s) => (s.running_runs ? `${fmtInt(s.running_runs)} running now` : "in the period") },
  { key: "success_rate", label: "Success rate",
    value: (s) => s.success_rate ?? null, fmt: fmtPct,
    sub: (s) => `${fmtInt(s.successful_runs)} of ${fmtInt(s.successful_runs + s.failed_runs + (s.partial_runs || 0))} finished` },
  { key: "failed_runs", label: "Failed", value: (s) => s.failed_runs, fmt: fmtInt, alert: true,
    sub: (s) => (typeof s.partial_runs === "number" ? `${fmtInt(s.partial_runs)} partial` : "") },
  { key: "dry_runs", label: "Dry", value: (s) => s.dry_runs, fmt: fmtInt, sub: () => "no model calls" },
  { key: "total_insights", label: "Insights", value: (s) => s.total_insights, fmt: fmtInt, sub: () => "created" },
  { key: "total_tokens", label: "Tokens", value: (s) => s.total_tokens, fmt: fmtCompact,
    sub: (s) => (s.total_tokens >= COMPACT_FROM ? fmtInt(s.total_tokens) : "input + output") },
  { key: "total_cost_usd", label: "Cost", value: (s) => s.total_cost_usd, fmt: fmtCost, sub: () => "estimated, USD" },
];

export class OverviewView {
  constructor(ctx) {
    this.ctx = ctx;
    this.days = 7;
    this.summaryEl = h("div", { class: "cards", "aria-live": "off" });
    this.cards = {};
    for (const card of CARDS) {
      const value = h("div", { class: "card-value num", "data-value": "" }, DASH);
      const sub = h("div", { class: "card-sub" }, "\u00a0");
      const el = h("div", { class: `card${card.alert ? " card-alert" : ""}`, "data-card": card.key },
        h("div", { class: "card-label" }, card.label), value, sub);
      this.cards[card.key] = { el, value, sub };
      this.summaryEl.append(el);
    }
    this.periodInputs = PERIODS.map((p) => h("input", {
      type: "radio", name: "period", value: p.days, id: `period-${p.days}`,
      onchange: () => ctx.navigate(["overview"], this.urlParams({ days: p.days })),
    }));
    const picker = h("fieldset", { class: "segmented" },
      h("legend", { class: "visually-hidden" }, "Period"),
      PERIODS.map((p, i) => h("label", { for: `period-${p.days}` }, this.periodInputs[i],
        h("span", {}, p.label))));
    this.chartTitle = h("h2", {}, "Runs");
    this.chartMetric = "runs";
    this.metricInputs = Object.entries(CHART_METRICS).map(([key]) => h("input", {
      type: "radio", name: "chart-metric", value: key, id: `chart-${key}`,
      onchange: () => this.ctx.navigate(["overview"], this.urlParams({ chart: key }), { replace: true }),
    }));
    const metricPicker = h("fieldset", { class: "segmented small" },
      h("legend", { class: "visually-hidden" }, "Chart shows"),
      Object.entries(CHART_METRICS).map(([key, m], i) => h("label", { for: `chart-${key}` }, this.metricInputs[i],
        h("span", {}, m.label))));
    this.chartEl = h("div", { class: "chart-box" });
    this.layersEl = h("div", { class: "table-box" });
    this.layerSort = { ...DEFAULT_LAYER_SORT };
    // Redraw the chart at its box's new width (text keeps its size on any screen).
    this.resizer = new ResizeObserver(() => {
      const width = Math.round(this.chartEl.clientWidth);
      if (this.seriesData && width && width !== this.drawnWidth) this.drawSeries();
    });
    this.resizer.observe(this.chartEl);
    this.operator = new OperatorPanels();
    this.el = h("section", { class: "view overview", "aria-labelledby": "overview-title" },
      h("div", { class: "view-head" },
        h("h1", { id: "overview-title" }, "Overview"),
        h("div", { class: "period" }, h("span", { class: "period-label", "aria-hidden": "true" }, "Period"), picker)),
      h("section", { "aria-label": "Summary" }, this.summaryEl),
      this.operator.el,
      h("section", { class: "panel", "aria-labelledby": "chart-title" },
        h("div", { class: "panel-head", id: "chart-title" }, this.chartTitle, metricPicker), this.chartEl),
      h("section", { class: "panel", "aria-labelledby": "layers-title" },
        h("div", { class: "panel-head" }, h("h2", { id: "layers-title" }, "Layers"),
          h("p", { class: "hint" }, "Select a column heading to sort; select a layer to see its runs.")),
        this.layersEl));
  }

  /** The view's URL parameters, with `changes` applied (defaults left out). */
  urlParams(changes = {}) {
    const sort = this.layerSort.key === DEFAULT_LAYER_SORT.key && this.layerSort.dir === DEFAULT_LAYER_SORT.dir
      ? "" : `${this.layerSort.dir === "desc" ? "-" : ""}${this.layerSort.key}`;
    return { days: this.days, chart: this.chartMetric === "runs" ? "" : this.chartMetric, sort, ...changes };
  }

  pollMs() {
    return SUMMARY_POLL_MS;
  }

  unmount() {
    this.resizer.disconnect();
  }

  update(params) {
    const days = Number(params.get("days"));
    const newDays = PERIODS.some((p) => p.days === days) ? days : 7;
    const sort = params.get("sort") || "";
    this.layerSort = sort ? { key: sort.replace(/^-/, ""), dir: sort.startsWith("-") ? "desc" : "asc" }
      : { ...DEFAULT_LAYER_SORT };
    const metric = CHART_METRICS[params.get("chart")] ? params.get("chart") : "runs";
    for (const input of this.metricInputs) input.checked = input.value === metric;
    if (newDays === this.days && this.summaryData) {
      // Only the presentation changed: redraw from what is already here.
      this.renderLayers(this.summaryData);
      if (metric !== this.chartMetric) {
        this.chartMetric = metric;
        if (this.seriesData) this.drawSeries();
      }
      return;
    }
    this.chartMetric = metric;
    this.days = newDays;
    for (const input of this.periodInputs) input.checked = Number(input.value) === this.days;
    if (this.summaryEl.dataset.days !== String(this.days)) delete this.summaryEl.dataset.days;
    this.lastSummary = null;
    this.summaryData = null;
    this.seriesData = null;
    this.seriesFetched = null;
    // The previous period's chart must not stand in for this one's.
    replace(this.chartEl);
    this.refresh().catch((err) => this.ctx.report(err));
  }

  /** Whether the chart's data may have changed since it was fetched. */
  seriesDue(summaryChanged, hourly) {
    if (!this.seriesFetched || summaryChanged) return true;
    const now = Date.now();
    const step = hourly ? 3600e3 : 86400e3;
    if (Math.floor(now / step) !== Math.floor(this.seriesFetched / step)) return true;
    return now - this.seriesFetched >= SERIES_MAX_AGE_MS;
  }

  async refresh() {
    const days = this.days;
    const hourly = days <= 7;
    const summary = await getJSON("/runs/stats/summary", { days });
    if (days !== this.days) return;
    // `since` moves with every answer; only a change in the numbers is worth a redraw.
    const summaryKey = JSON.stringify({ ...summary.data, since: null });
    const changed = summaryKey !== this.lastSummary;
    if (changed) {
      this.lastSummary = summaryKey;
      this.summaryData = summary.data;
      this.renderCards(summary.data);
      // Tells a reader (and the browser tests) which period the cards now show.
      this.summaryEl.dataset.days = String(days);
      this.renderLayers(summary.data);
      if (!this.ctx.features.timeseries) this.renderMix(summary.data);
    }
    // The cards are figures from the API now, whatever happens to the requests below.
    this.ctx.shown(this);
    await Promise.all([
      this.refreshSeries(days, hourly, changed),
      this.refreshOperator(days, summary.data, changed),
    ]);
  }

  /** Regressions and recent failures: when the summary changed, else at most every 60 s. */
  async refreshOperator(days, summary, summaryChanged) {
    const now = Date.now();
    if (!summaryChanged && this.operatorFetched && now - this.operatorFetched < SERIES_MAX_AGE_MS) return;
    await this.operator.refresh(days, summary);
    if (days === this.days) this.operatorFetched = now;
  }

  async refreshSeries(days, hourly, summaryChanged) {
    if (!this.ctx.features.timeseries || !this.seriesDue(summaryChanged, hourly)) return;
    const fetchedAt = Date.now();
    const series = await getJSON("/runs/stats/timeseries", { days, bucket: hourly ? "hour" : "day" });
    if (days !== this.days) return;
    this.seriesFetched = fetchedAt;
    if (series.data !== this.seriesData) {
      this.seriesData = series.data;
      this.drawSeries();
    }
  }

  drawSeries() {
    const hourly = this.days <= 7;
    const buckets = normalizeSeries(this.seriesData, hourly);
    const unit = hourly ? "hour" : "day";
    const metric = CHART_METRICS[this.chartMetric];
    const title = this.chartMetric === "runs" ? `Runs per ${unit}, by status` : `${metric.unit} per ${unit}`;
    this.chartTitle.textContent = title;
    this.drawnWidth = Math.round(this.chartEl.clientWidth);
    const focused = this.chartEl.contains(document.activeElement) ? document.activeElement.dataset?.start : null;
    replace(this.chartEl, buckets.length
      ? barChart(buckets, { hourly, title, metric: this.chartMetric, width: this.drawnWidth || 1200 })
      : h("p", { class: "empty" }, "No runs in this period."));
    if (focused) this.chartEl.querySelector(`[data-start="${CSS.escape(focused)}"]`)?.focus();
  }

  renderCards(s) {
    for (const card of CARDS) {
      const { value, sub } = this.cards[card.key];
      const v = card.value(s);
      value.textContent = card.fmt(v);
      value.dataset.value = v === null || v === undefined ? "" : String(v);
      value.title = v === null || v === undefined ? "" : String(v);
      sub.textContent = card.sub(s) || "\u00a0";
      this.cards[card.key].el.classList.toggle("is-nonzero", Boolean(v));
    }
  }

  renderMix(s) {
    this.chartTitle.textContent = "Runs by status";
    replace(this.chartEl, s.total_runs
      ? statusMix(s)
      : h("p", { class: "empty" }, "No runs in this period."),
    h("p", { class: "hint" }, "A chart over time appears when the server offers ",
      h("code", {}, "GET /runs/stats/timeseries"), "."));
  }

  renderLayers(s) {
    const entries = Object.entries(s.by_layer || {});
    const [durationKey, durationLabel] = DURATION_KEYS.find(
      ([k]) => entries.some(([, v]) => typeof v[k] === "number"),
    ) || [];
    const days = this.days;
    const cost = costFormatter(entries.map(([, v]) => v.cost_usd));
    const columns = [
      { key: "layer", label: "Layer", text: true, value: (r) => r.layer,
        cell: (r) => h("a", { href: `#/runs?layer_name=${encodeURIComponent(r.layer)}&range=${days === 1 ? "24h" : `${days}d`}` }, r.layer) },
      { key: "runs", label: "Runs", value: (r) => r.runs, cell: (r) => fmtInt(r.runs) },
      { key: "success_rate", label: "Success", value: (r) => r.success_rate ?? null,
        cell: (r) => fmtPct(r.success_rate ?? null) },
      { key: "failed", label: "Failed", value: (r) => r.failed ?? null,
        cell: (r) => (r.failed ? h("a", { class: "failures", href: `#/runs?layer_name=${encodeURIComponent(r.layer)}&status=failed&range=${days === 1 ? "24h" : `${days}d`}` }, fmtInt(r.failed)) : fmtInt(r.failed ?? null)) },
      { key: "partial", label: "Partial", value: (r) => r.partial ?? null,
        cell: (r) => (r.partial ? h("a", { class: "partials", href: `#/runs?layer_name=${encodeURIComponent(r.layer)}&status=partial&range=${days === 1 ? "24h" : `${days}d`}` }, fmtInt(r.partial)) : fmtInt(r.partial ?? null)) },
      { key: "insights", label: "Insights", value: (r) => r.insights, cell: (r) => fmtInt(r.insights) },
      { key: "tokens", label: "Tokens", value: (r) => r.tokens ?? null, cell: (r) => fmtInt(r.tokens ?? null) },
      { key: "cost_usd", label: "Cost", value: (r) => r.cost_usd ?? null, cell: (r) => cost(r.cost_usd ?? null) },
    ];
    if (entries.some(([, v]) => "duration_p50_seconds" in v)) {
      columns.push(...percentileColumns());
    } else if (durationKey) {
      columns.push({ key: "duration", label: durationLabel, value: (r) => r[durationKey] ?? null,
        cell: (r) => fmtDuration(r[durationKey] ?? null) });
    }
    columns[0].cell = withStuckBadge(columns[0].cell);
    const rows = entries.map(([layer, v]) => ({ layer, ...v }));
    keepingFocus(this.layersEl, () => replace(this.layersEl, rows.length
      ? sortableTable({
        columns, rows, sort: this.layerSort, caption: "Runs per layer in the period",
        rowAttrs: (r) => ({ "data-layer": r.layer }), reflow: true,
        onSort: (sort) => {
          this.layerSort = sort;
          this.renderLayers(s);
          // The order is part of the view's address (reload and a shared link keep it).
          this.ctx.navigate(["overview"], this.urlParams(), { replace: true });
        },
      })
      : h("p", { class: "empty" }, "No runs in this period.")));
  }
}
