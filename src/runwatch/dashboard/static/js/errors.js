// The errors view: error groups by fingerprint, their daily trend, the layers hit, and their runs.

import { ApiError, getJSON } from "./api.js";
import { h, keepingFocus, replace } from "./dom.js";
import { DASH, fmtInt, fmtTime } from "./format.js";

const PERIODS = [
  { days: 1, label: "24 h" },
  { days: 7, label: "7 d" },
  { days: 30, label: "30 d" },
];
const SORTS = { errors: "Most errors", runs: "Most runs", last_seen: "Most recent" };

/** A small bar chart of per-day counts, drawn in SVG (no inline styles: the CSP forbids them). */
export function sparkline(days, { label }) {
  const width = 120;
  const height = 28;
  const max = Math.max(1, ...days.map((d) => d.errors));
  const step = width / Math.max(1, days.length);
  return h("svg:svg", { class: "sparkline", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": label },
  days.map((d, i) => {
    const barHeight = d.errors ? Math.max(1.5, (d.errors / max) * height) : 0;
    return h("svg:rect", { x: (i * step + 0.5).toFixed(2), y: (height - barHeight).toFixed(2),
      width: Math.max(1, step - 1).toFixed(2), height: barHeight.toFixed(2), class: "spark-bar" },
    h("svg:title", {}, `${d.date}: ${fmtInt(d.errors)} errors in ${fmtInt(d.runs)} runs`));
  }));
}

function layersCell(layers) {
  const entries = Object.entries(layers || {});
  const shown = entries.slice(0, 3);
  return h("ul", { class: "layer-hits" },
    shown.map(([name, runs]) => h("li", {},
      h("a", { href: `#/runs?layer_name=${encodeURIComponent(name)}&status=failed,partial` }, name),
      h("span", { class: "muted" }, ` ${fmtInt(runs)}`))),
    entries.length > shown.length ? h("li", { class: "muted" }, `and ${entries.length - shown.length} more`) : null);
}

export class ErrorsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.days = 7;
    this.periodInputs = PERIODS.map((p) => h("input", {
      type: "radio", name: "errors-period", value: p.days, id: `errors-period-${p.days}`,
      onchange: () => this.go({ days: p.days }),
    }));
    this.layerInput = h("input", { id: "errors-layer", name: "layer_name", autocomplete: "off",
      spellcheck: "false", placeholder: "any layer" });
    this.sortSelect = h("select", { id: "errors-sort", name: "sort",
      onchange: () => this.go({ sort: this.sortSelect.value }) },
    Object.entries(SORTS).map(([value, label]) => h("option", { value }, label)));
    const form = h("form", { class: "filters", role: "search", "aria-label": "Filter error groups",
      onsubmit: (ev) => { ev.preventDefault(); this.go({ layer_name: this.layerInput.value.trim() }); } },
    h("div", { class: "field" }, h("span", { class: "field-label", "aria-hidden": "true" }, "Period"),
      h("fieldset", { class: "segmented" }, h("legend", { class: "visually-hidden" }, "Period"),
        PERIODS.map((p, i) => h("label", { for: `errors-period-${p.days}` }, this.periodInputs[i], h("span", {}, p.label))))),
    h("div", { class: "field" }, h("label", { for: "errors-layer" }, "Layer"), this.layerInput),
    h("div", { class: "field" }, h("label", { for: "errors-sort" }, "Order"), this.sortSelect),
    h("div", { class: "field actions" }, h("button", { type: "submit", class: "primary" }, "Apply")));
    this.countEl = h("p", { class: "result-count", role: "status" }, "\u00a0");
    this.tableEl = h("div", { class: "table-box", "aria-busy": "true" });
    this.moreEl = h("nav", { class: "pager", "aria-label": "More groups" });
    this.el = h("section", { class: "view errors-view", "aria-labelledby": "errors-title" },
      h("div", { class: "view-head" }, h("h1", { id: "errors-title" }, "Errors")),
      h("p", { class: "hint" }, "Errors grouped by fingerprint: the same type and message with numbers, ids and quoted text set aside. Select a count to see the group's runs."),
      form, this.countEl, this.tableEl, this.moreEl);
    this.pages = 1;
  }

  go(change) {
    const params = { days: this.days, layer_name: this.layerInput.value.trim(), sort: this.sortSelect.value, ...change };
    if (params.sort === "errors") params.sort = "";
    if (params.days === 7) params.days = "";
    this.ctx.navigate(["errors"], params);
  }

  update(params) {
    const days = Number(params.get("days"));
    this.days = PERIODS.some((p) => p.days === days) ? days : 7;
    for (const input of this.periodInputs) input.checked = Number(input.value) === this.days;
    this.layerInput.value = params.get("layer_name") || "";
    this.sortSelect.value = SORTS[params.get("sort")] ? params.get("sort") : "errors";
    this.pages = 1;
    this.lastKey = null;
    this.tableEl.setAttribute("aria-busy", "true");
    this.refresh().catch((err) => this.ctx.report(err));
  }

  async refresh() {
    const query = { days: this.days, layer_name: this.layerInput.value.trim(), sort: this.sortSelect.value, limit: 25 };
    const groups = [];
    let page;
    let cursor = null;
    try {
      for (let i = 0; i < this.pages; i += 1) {
        ({ data: page } = await getJSON("/runs/errors", { ...query, cursor }));
        groups.push(...page.groups);
        cursor = page.next_cursor;
        if (!cursor) break;
      }
    } catch (err) {
      if (err instanceof ApiError) {
        this.tableEl.removeAttribute("aria-busy");
        replace(this.countEl, h("span", { class: "error-text" }, `These filters cannot be used: ${err.message}`));
        replace(this.tableEl);
        return;
      }
      throw err;
    }
    const key = JSON.stringify([groups, cursor]);
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.tableEl.removeAttribute("aria-busy");
    this.render(page, groups, cursor);
  }

  render(page, groups, cursor) {
    this.countEl.textContent = page.total_groups
      ? `${fmtInt(page.total_errors)} errors in ${fmtInt(page.total_groups)} groups`
      : "No errors in this period.";
    const table = h("table", { class: "data-table errors-table reflow" },
      h("caption", { class: "visually-hidden" }, "Error groups in the period"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Error"), h("th", { scope: "col", class: "num" }, "Errors"),
        h("th", { scope: "col", class: "num" }, "Runs"), h("th", { scope: "col" }, "Per day"),
        h("th", { scope: "col" }, "Layers"), h("th", { scope: "col" }, "Last seen (UTC)"))),
      h("tbody", {}, groups.map((g) => {
        const runsHref = `#/runs?error_fingerprint=${g.fingerprint}`;
        return h("tr", { "data-fingerprint": g.fingerprint },
          h("th", { scope: "row", class: "error-cell" },
            h("div", { class: "error-type" }, g.type || "(no type)"),
            h("div", { class: "error-template" }, g.message || DASH),
            h("div", { class: "muted error-sample", title: "One real message of the group" }, g.sample_message)),
          h("td", { class: "num", "data-label": "Errors" }, h("a", { href: runsHref, "aria-label": `${fmtInt(g.errors)} errors: see the runs` }, fmtInt(g.errors))),
          h("td", { class: "num", "data-label": "Runs" }, h("a", { href: runsHref }, fmtInt(g.runs))),
          h("td", { class: "spark-cell", "data-label": "Per day" }, sparkline(g.days, { label: `Errors per day, ${g.days[0]?.date} to ${g.days.at(-1)?.date}` })),
          h("td", { class: "lead-wide", "data-label": "Layers" }, layersCell(g.layers)),
          h("td", { class: "nowrap", "data-label": "Last seen" }, fmtTime(g.last_seen)));
      })));
    keepingFocus(this.tableEl, () => replace(this.tableEl, groups.length ? table : null));
    replace(this.moreEl, cursor ? h("button", { type: "button", class: "primary", onclick: () => {
      this.pages += 1;
      this.refresh().catch((err) => this.ctx.report(err));
    } }, "More groups") : null);
  }
}
