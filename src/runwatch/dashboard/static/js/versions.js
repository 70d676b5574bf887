// The versions view: one layer's versions in order of first use, and a compare of any two.

import { ApiError, getJSON } from "./api.js";
import { h, keepingFocus, replace } from "./dom.js";
import { DASH, costFormatter, fmtCost, fmtDuration, fmtInt, fmtNumber, fmtPct, fmtTime } from "./format.js";

const PERIODS = [
  { days: 7, label: "7 d" },
  { days: 30, label: "30 d" },
  { days: 90, label: "90 d" },
];

// Compare rows: [key, label, format, whether a rise is bad].
const METRICS = [
  ["success_rate", "Success rate", fmtPct, false],
  ["mean_duration_seconds", "Mean duration", fmtDuration, true],
  ["cost_per_run_usd", "Cost per run", fmtCost, true],
  ["tokens_per_run", "Tokens per run", (v) => fmtInt(v === null ? null : Math.round(v)), true],
  ["insights_per_run", "Insights per run", (v) => fmtNumber(v === null ? null : Math.round(v * 100) / 100), false],
  ["runs", "Runs", fmtInt, null],
];

function pValue(p) {
  if (p === null || p === undefined) return DASH;
  return p < 0.001 ? "< 0.001" : p.toFixed(3);
}

function signedDiff(metric, value, fmt) {
  if (value === null || value === undefined) return DASH;
  if (metric === "success_rate") return `${value >= 0 ? "+" : ""}${(value * 100).toFixed(1)} pts`;
  const text = fmt(Math.abs(value));
  return `${value > 0 ? "+" : value < 0 ? "−" : ""}${text}`;
}

export class VersionsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.days = 30;
    this.layerSelect = h("select", { id: "versions-layer", name: "layer_name",
      onchange: () => this.go({ layer_name: this.layerSelect.value, a: "", b: "" }) });
    this.periodSelect = h("select", { id: "versions-days", name: "days",
      onchange: () => this.go({ days: this.periodSelect.value }) },
    PERIODS.map((p) => h("option", { value: p.days }, p.label)));
    this.aSelect = h("select", { id: "versions-a", name: "a", onchange: () => this.go({ a: this.aSelect.value }) });
    this.bSelect = h("select", { id: "versions-b", name: "b", onchange: () => this.go({ b: this.bSelect.value }) });
    this.tableEl = h("div", { class: "table-box", "aria-busy": "true" });
    this.compareEl = h("div", { class: "compare-box" });
    this.regressionsEl = h("div", { class: "regressions-box" });
    this.el = h("section", { class: "view versions-view", "aria-labelledby": "versions-title" },
      h("div", { class: "view-head" }, h("h1", { id: "versions-title" }, "Versions")),
      this.regressionsEl,
      h("form", { class: "filters", "aria-label": "Choose a layer", onsubmit: (ev) => ev.preventDefault() },
        h("div", { class: "field" }, h("label", { for: "versions-layer" }, "Layer"), this.layerSelect),
        h("div", { class: "field" }, h("label", { for: "versions-days" }, "Period"), this.periodSelect)),
      h("section", { class: "panel", "aria-labelledby": "versions-list-title" },
        h("div", { class: "panel-head" }, h("h2", { id: "versions-list-title" }, "Versions, in order of first use")),
        this.tableEl),
      h("section", { class: "panel", "aria-labelledby": "versions-compare-title" },
        h("div", { class: "panel-head" }, h("h2", { id: "versions-compare-title" }, "Compare two versions")),
        h("form", { class: "inline-form", "aria-label": "Versions to compare", onsubmit: (ev) => ev.preventDefault() },
          h("label", { for: "versions-a" }, "A"), this.aSelect,
          h("label", { for: "versions-b" }, "B"), this.bSelect),
        this.compareEl));
  }

  go(change) {
    const params = { layer_name: this.layer, days: this.days, a: this.a, b: this.b, ...change };
    this.ctx.navigate(["versions"], params);
  }

  update(params) {
    const days = Number(params.get("days"));
    this.days = PERIODS.some((p) => p.days === days) ? days : 30;
    this.periodSelect.value = String(this.days);
    this.layer = params.get("layer_name") || "";
    this.a = params.get("a") || "";
    this.b = params.get("b") || "";
    this.lastKey = null;
    this.refresh().catch((err) => this.ctx.report(err));
  }

  async refresh() {
    const { data: summary } = await getJSON("/runs/stats/summary", { days: 30 });
    const layers = Object.keys(summary.by_layer || {}).sort();
    const { data: found } = await getJSON("/runs/stats/regressions", { days: this.days });
    if (!this.layer && layers.length) {
      // Start where something is wrong, else with the busiest layer.
      const busiest = Object.entries(summary.by_layer).sort((x, y) => y[1].runs - x[1].runs)[0][0];
      this.layer = found.regressions[0]?.layer_name || busiest;
    }
    const versions = this.layer
      ? (await getJSON("/runs/stats/versions", { layer_name: this.layer, days: this.days })).data.versions
      : [];
    const hashes = versions.map((v) => v.layer_hash);
    const a = hashes.includes(this.a) ? this.a : hashes.at(-2) || hashes[0] || "";
    const b = hashes.includes(this.b) ? this.b : hashes.at(-1) || "";
    let compare = null;
    let compareError = null;
    if (a && b && a !== b) {
      try {
        compare = (await getJSON("/runs/stats/versions/compare",
          { layer_name: this.layer, a, b, days: this.days })).data;
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        compareError = err.message;
      }
    }
    const key = JSON.stringify([layers, found.regressions, versions, a, b, compare, compareError]);
    if (key === this.lastKey) return;
    this.lastKey = key;
    replace(this.layerSelect, layers.map((name) => h("option", { value: name }, name)));
    this.layerSelect.value = this.layer;
    for (const [select, value] of [[this.aSelect, a], [this.bSelect, b]]) {
      replace(select, versions.map((v, i) => h("option", { value: v.layer_hash }, `${i + 1}. ${v.layer_hash}`)));
      select.value = value;
    }
    this.renderRegressions(found.regressions);
    this.tableEl.removeAttribute("aria-busy");
    this.renderVersions(versions);
    this.renderCompare(compare, compareError, versions.length);
  }

  renderRegressions(regressions) {
    replace(this.regressionsEl, regressions.map((r) => h("p", { class: "notice regression", "data-regression": r.layer_name },
      h("strong", {}, "Regression: "),
      h("a", { href: `#/versions?layer_name=${encodeURIComponent(r.layer_name)}&a=${encodeURIComponent(r.a.layer_hash)}&b=${encodeURIComponent(r.b.layer_hash)}&days=${this.days}` }, r.layer_name),
      ` version ${r.b.layer_hash} is worse than ${r.a.layer_hash}: `,
      r.worse.map((m) => METRICS.find(([k]) => k === m)[1].toLowerCase()).join(", "), ".")));
  }

  renderVersions(versions) {
    const cost = costFormatter(versions.map((v) => v.cost_per_run_usd));
    const cell = (label, text, cls = "num") => h("td", { class: cls, "data-label": label }, text);
    const table = h("table", { class: "data-table versions-table reflow" },
      h("caption", { class: "visually-hidden" }, "Versions of the layer in order of first use"),
      h("thead", {}, h("tr", {},
        ["Version", "First seen (UTC)", "Last seen (UTC)"].map((l) => h("th", { scope: "col" }, l)),
        ["Runs", "Success", "Failed", "Partial", "p50", "p95", "Mean", "Cost / run"].map((l) => h("th", { scope: "col", class: "num" }, l)))),
      h("tbody", {}, versions.map((v) => h("tr", { "data-hash": v.layer_hash },
        h("th", { scope: "row" }, h("code", {}, v.layer_hash)),
        cell("First seen", fmtTime(v.first_seen), "nowrap lead-wide"),
        cell("Last seen", fmtTime(v.last_seen), "nowrap lead-wide"),
        cell("Runs", fmtInt(v.runs)),
        cell("Success", fmtPct(v.success_rate)),
        cell("Failed", fmtInt(v.by_status.failed)),
        cell("Partial", fmtInt(v.by_status.partial)),
        cell("p50", fmtDuration(v.duration_p50_seconds)),
        cell("p95", fmtDuration(v.duration_p95_seconds)),
        cell("Mean", fmtDuration(v.mean_duration_seconds)),
        cell("Cost / run", cost(v.cost_per_run_usd))))));
    keepingFocus(this.tableEl, () => replace(this.tableEl, versions.length
      ? table : h("p", { class: "empty" }, "No runs of this layer in the period.")));
  }

  renderCompare(c, error, count) {
    if (!c) {
      replace(this.compareEl, h("p", { class: error ? "error-text" : "empty" },
        error || (count < 2 ? "The layer has one version in the period: nothing to compare." : "Choose two different versions.")));
      return;
    }
    const tests = c.tests || {};
    // The cost row's A, B and difference share their decimals, like a cost column.
    const costs = costFormatter([c.a.cost_per_run_usd, c.b.cost_per_run_usd, c.differences.cost_per_run_usd]);
    replace(this.compareEl, h("table", { class: "data-table compare-table reflow" },
      h("caption", { class: "visually-hidden" }, "Version B against version A"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Metric"),
        ["A", "B", "B − A", "p-value"].map((l) => h("th", { scope: "col", class: "num" }, l)),
        h("th", { scope: "col" }, "Significant?"))),
      h("tbody", {}, METRICS.map(([key, label, metricFmt, riseIsBad]) => {
        const fmt = key === "cost_per_run_usd" ? costs : metricFmt;
        const diff = c.differences[key];
        const test = tests[key];
        const worse = riseIsBad === null || diff === null || diff === 0 ? null : (diff > 0) === riseIsBad;
        const marked = test && test.significant;
        return h("tr", { "data-metric": key, class: marked ? (worse ? "is-worse" : "is-better") : "" },
          h("th", { scope: "row" }, label),
          h("td", { class: "num", "data-label": "A" }, fmt(c.a[key])),
          h("td", { class: "num", "data-label": "B" }, fmt(c.b[key])),
          h("td", { class: `num ${worse === null ? "" : worse ? "delta-down" : "delta-up"}`, "data-label": "B − A" },
            signedDiff(key, diff, fmt)),
          h("td", { class: "num", "data-label": "p-value" }, test ? pValue(test.p_value) : DASH),
          h("td", { "data-label": "Significant?" }, test ? (marked ? h("strong", {}, worse ? "Yes, worse" : "Yes, better") : "No") : DASH,
            test ? h("span", { class: "muted" }, ` (${test.test})`) : null));
      }))));
  }
}
