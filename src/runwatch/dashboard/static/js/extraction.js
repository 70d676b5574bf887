// Extraction runs: the filtered list, one run (output as a tree, metrics), compare two runs,
// and compare two groups (prompt or config versions) document by document.

import { ApiError, getJSON } from "./api.js";
import { h, replace } from "./dom.js";
import { DASH, fmtCost, fmtInt, fmtNumber, fmtTime, fromLocalInput, toLocalInput } from "./format.js";

const STATUSES = ["pending", "running", "completed", "failed"];
const STATUS_CLASS = { pending: "dry", running: "running", completed: "success", failed: "failed" };
const FIELD_LABELS = {
  same: "Same", different: "Different", only_in_a: "Only in A", only_in_b: "Only in B",
};
const PAGE_SIZE = 25;

function badge(status) {
  return h("span", { class: `badge status-${STATUS_CLASS[status] || "dry"}` }, status);
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

function fmtMetric(name, v) {
  if (v === null || v === undefined) return DASH;
  if (/latency|_ms$/.test(name)) return `${fmtNumber(Math.round(v))} ms`;
  return fmtNumber(Math.round(v * 10000) / 10000);
}

// For these a lower number is the better one.
const LOWER_IS_BETTER = /latency|_ms$|cost|error|tokens/;

function deltaCell(metric, diff, pct) {
  if (diff === null || diff === undefined) return h("td", { class: "num" }, DASH);
  const better = diff === 0 ? null : (diff > 0) !== LOWER_IS_BETTER.test(metric);
  const sign = diff > 0 ? "+" : diff < 0 ? "−" : "±";
  const abs = Math.abs(diff);
  const text = `${sign}${/latency|_ms$/.test(metric) ? `${fmtNumber(Math.round(abs))} ms` : fmtNumber(Math.round(abs * 10000) / 10000)}`
    + (pct === null || pct === undefined ? "" : ` (${sign}${Math.abs(pct).toFixed(1)} %)`);
  return h("td", { class: `num ${better === null ? "" : better ? "delta-up" : "delta-down"}` }, text,
    better === null ? null : h("span", { class: "visually-hidden" }, better ? " (better)" : " (worse)"));
}

function metricTable(rows, { caption, a = "Run A", b = "Run B" }) {
  return h("table", { class: "data-table metrics-table" },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"), h("th", { scope: "col", class: "num" }, a),
      h("th", { scope: "col", class: "num" }, b), h("th", { scope: "col", class: "num" }, "Difference (B − A)"))),
    h("tbody", {}, rows.map((m) => h("tr", { "data-metric": m.metric },
      h("th", { scope: "row" }, m.metric),
      h("td", { class: "num" }, fmtMetric(m.metric, m.run_a ?? m.mean_a)),
      h("td", { class: "num" }, fmtMetric(m.metric, m.run_b ?? m.mean_b)),
      deltaCell(m.metric, m.difference, m.percent_difference)))));
}

export class ExtractionListView {
  constructor(ctx) {
    this.ctx = ctx;
    this.cursors = [];
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
    this.el = h("section", { class: "view extraction", "aria-labelledby": "x-title" },
      h("div", { class: "view-head" }, h("h1", { id: "x-title" }, "Extraction runs"),
        h("div", { class: "period" }, this.compareBtn,
          this.ctx.features.extractionGroups ? h("a", { class: "button", href: "#/extraction/groups" }, "Compare groups") : null)),
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
    };
  }

  apply() {
    this.cursors = [];
    this.ctx.navigate(["extraction"], this.formParams());
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
    if (!params.get("cursor")) this.cursors = [];
    this.lastData = null;
    this.refresh().catch((err) => this.ctx.report(err));
  }

  async refresh() {
    const p = this.params;
    const query = Object.fromEntries(["prompt_id", "config_id", "document_name", "status", "since", "until", "cursor"]
      .map((k) => [k, p.get(k)]));
    let result;
    try {
      result = await getJSON("/extraction-runs", { ...query, limit: PAGE_SIZE });
    } catch (err) {
      if (err instanceof ApiError && p === this.params) {
        replace(this.summaryEl, h("span", { class: "error-text" }, `These filters cannot be used: ${problemText(err)}`));
        replace(this.tableEl);
        return;
      }
      throw err;
    }
    if (p !== this.params || result.data === this.lastData) return;
    this.lastData = result.data;
    this.render(result.data);
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
    const first = this.cursors.length * PAGE_SIZE;
    this.summaryEl.textContent = page.total === 0 ? "No extraction runs match these filters."
      : `Showing ${fmtInt(first + 1)}–${fmtInt(first + page.runs.length)} of ${fmtInt(page.total)} runs`;
    replace(this.tableEl, page.runs.length ? h("table", { class: "data-table" },
      h("caption", { class: "visually-hidden" }, "Extraction runs; tick two to compare"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Compare"), h("th", { scope: "col" }, "Created (UTC)"),
        h("th", { scope: "col" }, "Prompt"), h("th", { scope: "col" }, "Config"), h("th", { scope: "col" }, "Document"),
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "Cost"))),
      h("tbody", {}, page.runs.map((r) => h("tr", { "data-run-id": r.id },
        h("td", {}, h("input", { type: "checkbox", "data-select": r.id, "aria-label": `Select run ${r.id} to compare`,
          checked: this.selected.includes(r.id), onchange: (ev) => this.toggle(r.id, ev.target.checked) })),
        h("td", { class: "nowrap" }, h("a", { href: `#/extraction/${encodeURIComponent(r.id)}`,
          "aria-label": `Extraction run ${r.id}, created ${fmtTime(r.created_at)}` }, fmtTime(r.created_at))),
        h("td", {}, r.prompt_id), h("td", {}, r.config_id), h("td", {}, r.document_name),
        h("td", {}, badge(r.status)), h("td", { class: "num" }, fmtCost(r.cost_usd)))))) : null);
    const cursor = this.params.get("cursor");
    const base = Object.fromEntries([...this.params.entries()].filter(([k]) => k !== "cursor"));
    replace(this.pagerEl,
      this.cursors.length ? h("button", { type: "button", onclick: () => {
        const prev = this.cursors.pop();
        this.ctx.navigate(["extraction"], { ...base, cursor: prev || "" });
      } }, "‹ Newer") : null,
      page.next_cursor ? h("button", { type: "button", class: "primary", onclick: () => {
        this.cursors.push(cursor || "");
        this.ctx.navigate(["extraction"], { ...base, cursor: page.next_cursor });
      } }, "Older ›") : null);
  }
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

  async refresh() {
    let result;
    try {
      result = await getJSON(`/extraction-runs/${encodeURIComponent(this.runId)}`);
    } catch (err) {
      if (err instanceof ApiError) {
        replace(this.body, h("p", { class: "error-text" }, err.status === 404 ? "There is no extraction run with this id." : problemText(err)));
        return;
      }
      throw err;
    }
    if (result.data === this.lastData) return;
    this.lastData = result.data;
    this.render(result.data);
  }

  render(r) {
    replace(this.title, `${r.prompt_id} on ${r.document_name} `, badge(r.status));
    const metrics = Object.entries(r.metrics || {});
    const other = h("input", { id: "x-other", autocomplete: "off", spellcheck: "false", placeholder: "run id" });
    replace(this.body,
      h("div", { class: "detail-grid" },
        h("section", { class: "panel", "aria-labelledby": "xrun-facts" }, h("h2", { id: "xrun-facts" }, "Run"),
          h("dl", { class: "kv" },
            field("Run id", h("code", {}, r.id)), field("Prompt", r.prompt_id), field("Config", r.config_id),
            field("Document", r.document_name), field("Status", badge(r.status)),
            field("Created (UTC)", fmtTime(r.created_at)), field("Started (UTC)", fmtTime(r.started_at)),
            field("Completed (UTC)", fmtTime(r.completed_at)),
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
          h("h2", { id: "xrun-expected" }, "Expected (ground truth)"), jsonTree(r.expected)) : null));
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
    this.showSame = false;
  }

  update() { this.refresh().catch((err) => this.ctx.report(err)); }

  async refresh() {
    let result;
    try {
      result = await getJSON(`/extraction-runs/${encodeURIComponent(this.a)}/compare/${encodeURIComponent(this.b)}`);
    } catch (err) {
      if (err instanceof ApiError) {
        replace(this.body, h("p", { class: "error-text" }, err.status === 404 ? `One of the runs does not exist: ${err.message}` : problemText(err)));
        return;
      }
      throw err;
    }
    if (result.data === this.lastData) return;
    this.lastData = result.data;
    this.render(result.data);
  }

  render(c) {
    const s = c.summary || {};
    const diffs = c.field_differences || [];
    replace(this.body,
      h("div", { class: "detail-grid" }, sideFacts(c.run_a, "Run A"), sideFacts(c.run_b, "Run B")),
      h("section", { class: "panel", "aria-labelledby": "cmp-fields-sum" }, h("h2", { id: "cmp-fields-sum" }, "Output fields"),
        h("div", { class: "wtl" }, countCard("same", "Same", s.fields_same), countCard("different", "Different", s.fields_different),
          countCard("only_in_a", "Only in A", s.fields_only_in_a), countCard("only_in_b", "Only in B", s.fields_only_in_b))),
      h("section", { class: "panel", "aria-labelledby": "cmp-metrics" }, h("h2", { id: "cmp-metrics" }, "Metrics"),
        (c.metric_comparisons || []).length
          ? metricTable(c.metric_comparisons, { caption: "Metrics of run A and run B" })
          : h("p", { class: "muted" }, "Neither run has metrics.")),
      h("section", { class: "panel", "aria-labelledby": "cmp-diffs" }, h("h2", { id: "cmp-diffs" }, "Field differences"),
        diffs.length ? h("table", { class: "data-table field-diffs" },
          h("caption", { class: "visually-hidden" }, "Fields that differ between the outputs"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Status"),
            h("th", { scope: "col" }, "Run A"), h("th", { scope: "col" }, "Run B"))),
          h("tbody", {}, diffs.map((d) => h("tr", { class: `field-${d.status}`, "data-field": d.field, "data-status": d.status },
            h("th", { scope: "row" }, h("code", {}, d.field)),
            h("td", {}, h("span", { class: `badge field-${d.status}` }, FIELD_LABELS[d.status] || d.status)),
            h("td", {}, d.status === "only_in_b" ? h("span", { class: "muted" }, "absent") : leaf(d.run_a)),
            h("td", {}, d.status === "only_in_a" ? h("span", { class: "muted" }, "absent") : leaf(d.run_b))))))
          : h("p", { class: "muted" }, "The outputs have the same fields with the same values.")));
  }
}

const GROUP_KEYS = ["a_prompt_id", "a_config_id", "b_prompt_id", "b_config_id", "document_name"];

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

  update(params) {
    this.params = params;
    for (const k of GROUP_KEYS) this.inputs[k].value = params.get(k) || "";
    this.lastData = null;
    if (!GROUP_KEYS.some((k) => params.get(k))) {
      replace(this.body, h("p", { class: "muted" }, "Choose the two sides to compare."));
      return;
    }
    this.refresh().catch((err) => this.ctx.report(err));
  }

  async refresh() {
    const p = this.params;
    if (!p || !GROUP_KEYS.some((k) => p.get(k))) return;
    let result;
    try {
      result = await getJSON("/extraction-runs/compare", Object.fromEntries(GROUP_KEYS.map((k) => [k, p.get(k)])));
    } catch (err) {
      if (err instanceof ApiError) {
        replace(this.body, h("p", { class: "error-text" }, problemText(err)));
        return;
      }
      throw err;
    }
    if (p !== this.params || result.data === this.lastData) return;
    this.lastData = result.data;
    this.render(result.data);
  }

  render(g) {
    const f1 = g.f1 || {};
    const side = (s) => [s.prompt_id, s.config_id].filter(Boolean).join(" + ");
    const f1Of = (d) => (d.metric_comparisons || []).find((m) => m.metric === "f1");
    replace(this.body,
      h("section", { class: "panel", "aria-labelledby": "g-f1" },
        h("h2", { id: "g-f1" }, `F1 over ${fmtInt(g.documents_compared)} paired documents: A = ${side(g.a)}, B = ${side(g.b)}`),
        h("div", { class: "wtl" }, countCard("wins_a", "A wins", f1.wins_a), countCard("ties", "Ties", f1.ties),
          countCard("wins_b", "B wins", f1.wins_b), countCard("missing", "No F1", f1.missing))),
      h("section", { class: "panel", "aria-labelledby": "g-means" }, h("h2", { id: "g-means" }, "Means over paired documents"),
        (g.means || []).length ? metricTable(g.means, { caption: "Mean of each metric on each side", a: "Mean A", b: "Mean B" })
          : h("p", { class: "muted" }, "No paired documents with metrics.")),
      h("section", { class: "panel", "aria-labelledby": "g-docs" }, h("h2", { id: "g-docs" }, "Documents"),
        (g.documents || []).length ? h("table", { class: "data-table" },
          h("caption", { class: "visually-hidden" }, "F1 per paired document"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Document"), h("th", { scope: "col", class: "num" }, "F1 A"),
            h("th", { scope: "col", class: "num" }, "F1 B"), h("th", { scope: "col", class: "num" }, "Difference"), h("th", { scope: "col" }, "Result"), h("th", { scope: "col" }, "Runs"))),
          h("tbody", {}, g.documents.map((d) => {
            const m = f1Of(d) || {};
            const result = m.difference === null || m.difference === undefined ? "no F1"
              : m.difference > 0 ? "B wins" : m.difference < 0 ? "A wins" : "tie";
            return h("tr", { "data-document": d.document_name },
              h("th", { scope: "row" }, d.document_name),
              h("td", { class: "num" }, fmtMetric("f1", m.run_a)), h("td", { class: "num" }, fmtMetric("f1", m.run_b)),
              deltaCell("f1", m.difference, m.percent_difference), h("td", {}, result),
              h("td", {}, h("a", { href: `#/extraction/compare/${encodeURIComponent(d.run_a)}/${encodeURIComponent(d.run_b)}` }, "compare")));
          }))) : h("p", { class: "muted" }, "No document has a completed run on both sides."),
        (g.documents_only_in_a || []).length ? h("p", {}, h("strong", {}, "Only A covers: "), g.documents_only_in_a.join(", ")) : null,
        (g.documents_only_in_b || []).length ? h("p", {}, h("strong", {}, "Only B covers: "), g.documents_only_in_b.join(", ")) : null));
  }
}
