// Hand-drawn SVG charts: runs (by status), tokens or cost per time bucket, and a period's
// status mix. Charts are drawn at the pixel width of their box, so text keeps its size on
// a phone; each bar links to the runs of its bucket and has a tooltip for mouse and keyboard.

import { h } from "./dom.js";
import { fmtCompact, fmtCost, fmtInt } from "./format.js";

export const STATUSES = ["success", "partial", "failed", "dry", "running"];
export const STATUS_LABELS = {
  success: "Success", partial: "Partial", failed: "Failed", dry: "Dry", running: "Running",
  pending: "Pending", completed: "Completed",
};

/** What the chart can show per bucket. */
export const CHART_METRICS = {
  runs: { label: "Runs", unit: "Runs", sort: "" },
  tokens: { label: "Tokens", unit: "Tokens", sort: "-tokens_total" },
  cost: { label: "Cost", unit: "Estimated cost", sort: "-estimated_cost_usd" },
};

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function pickCount(src, status) {
  const candidates = [src[status], src[`${status}_runs`]];
  if (status === "success") candidates.push(src.successful_runs, src.successful);
  return num(candidates.find((v) => typeof v === "number"));
}

/**
 * Buckets of `GET /runs/stats/timeseries` as
 * [{start: Date, end: Date, counts: {status: n}, total, tokens, cost}], oldest first.
 */
export function normalizeSeries(data, hourly = true) {
  const list = Array.isArray(data)
    ? data
    : (data && (data.buckets || data.series || data.points || data.items)) || [];
  const step = hourly ? 3600e3 : 86400e3;
  const buckets = list.map((b) => {
    const start = new Date(b.bucket_start ?? b.start ?? b.bucket ?? b.time ?? b.t);
    const src = b.counts || b.by_status || b.statuses || b.status_counts || b;
    const counts = Object.fromEntries(STATUSES.map((s) => [s, pickCount(src, s)]));
    const total = typeof b.total_runs === "number" ? b.total_runs
      : typeof b.runs === "number" ? b.runs
        : STATUSES.reduce((sum, s) => sum + counts[s], 0);
    return {
      start, counts, total, tokens: num(b.tokens ?? b.tokens_total), cost: num(b.cost_usd ?? b.estimated_cost_usd),
    };
  }).filter((b) => !Number.isNaN(b.start.getTime()));
  buckets.forEach((b, i) => {
    b.end = i + 1 < buckets.length ? buckets[i + 1].start : new Date(b.start.getTime() + step);
  });
  return buckets;
}

const pad = (n) => String(n).padStart(2, "0");

function bucketLabel(date, hourly) {
  const day = `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
  return hourly ? `${day} ${pad(date.getUTCHours())}:00` : day;
}

/**
 * The axis maximum: four round steps (1, 2, 2.5 or 5 times a power of ten) reaching `value`;
 * whole steps for counts, so that every gridline is labelled exactly.
 */
function niceMax(value, integers) {
  const raw = value / 4;
  if (raw <= 0) return integers ? 4 : 1;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) {
    const step = m * magnitude;
    if (integers && Math.abs(step - Math.round(step)) > 1e-9) continue;
    if (step >= raw) return 4 * (integers ? Math.round(step) : step);
  }
  return 4 * 10 * magnitude;
}

function axisText(metric, value) {
  if (metric === "cost") {
    if (value === 0) return "$0";
    return Number.isInteger(value) ? `$${fmtInt(value)}` : `$${value.toFixed(value < 0.1 ? 3 : 2)}`;
  }
  if (metric === "tokens") return value >= 1e6 ? fmtCompact(value) : value >= 1e3 ? `${fmtInt(value / 1e3)} k` : fmtInt(value);
  return fmtInt(value);
}

function valueOf(b, metric) {
  return metric === "tokens" ? b.tokens : metric === "cost" ? b.cost : b.total;
}

export function bucketText(b, { hourly, last }) {
  const when = `${bucketLabel(b.start, hourly)} UTC${last ? " (in progress)" : ""}`;
  const mix = STATUSES.filter((s) => b.counts[s]).map((s) => `${fmtInt(b.counts[s])} ${s}`).join(", ");
  const runs = `${fmtInt(b.total)} run${b.total === 1 ? "" : "s"}`;
  return `${when}: ${runs}${mix ? ` (${mix})` : ""}, ${fmtInt(b.tokens)} tokens, ${fmtCost(b.cost)}`;
}

function legend(totals) {
  return h("ul", { class: "legend" }, STATUSES.map((s) => h("li", {},
    h("span", { class: `swatch status-${s}`, "aria-hidden": "true" }),
    `${STATUS_LABELS[s]} `,
    totals ? h("span", { class: "num" }, fmtInt(totals[s])) : null)));
}

function isoMinute(date) {
  return date.toISOString().replace(/:\d\d\.\d{3}Z$/, ":00Z");
}

/** The runs view for one bucket: its time window, ordered by what the chart shows. */
export function bucketHref(b, metric) {
  const params = new URLSearchParams({ range: "custom", since: isoMinute(b.start), until: isoMinute(b.end) });
  if (CHART_METRICS[metric].sort) params.set("sort", CHART_METRICS[metric].sort);
  return `#/runs?${params}`;
}

/** X labels at round times, as many as fit in `plotW` pixels. */
function labelPlan(buckets, hourly, plotW) {
  const fit = Math.max(2, Math.floor(plotW / 62));
  if (hourly && buckets.length <= 48) {
    const every = [1, 2, 3, 4, 6, 12, 24].find((k) => buckets.length / k <= fit) || 24;
    return { at: (b) => b.start.getUTCHours() % every === 0, text: (b) => `${pad(b.start.getUTCHours())}:00` };
  }
  if (hourly) {
    const days = Math.ceil(buckets.length / 24);
    const every = Math.max(1, Math.ceil(days / fit));
    return {
      at: (b) => b.start.getUTCHours() === 0 && Math.floor(b.start.getTime() / 86400e3) % every === 0,
      text: (b) => bucketLabel(b.start, false).slice(5),
    };
  }
  const every = Math.max(1, Math.ceil(buckets.length / fit));
  return { at: (b, i) => (buckets.length - 1 - i) % every === 0, text: (b) => bucketLabel(b.start, false).slice(5) };
}

/**
 * A bar chart of `metric` per bucket (runs stacked by status), drawn `width` pixels wide,
 * with a legend, a tooltip and a table of the same numbers.
 */
export function barChart(buckets, { hourly, title, metric = "runs", width = 1200 }) {
  const W = Math.max(260, Math.round(width));
  const narrow = W < 560;
  const H = narrow ? 200 : 260;
  const top = 10;
  const bottom = 26;
  const max = niceMax(Math.max(0, ...buckets.map((b) => valueOf(b, metric))), metric !== "cost");
  const ticks = [0, 1, 2, 3, 4].map((i) => (max / 4) * i);
  const left = 10 + 7 * Math.max(...ticks.map((v) => axisText(metric, v).length));
  const plotW = W - left - 6;
  const plotH = H - top - bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, slot * (slot > 4 ? 0.78 : 1));
  const totalValue = buckets.reduce((s, b) => s + valueOf(b, metric), 0);
  const totalText = metric === "cost" ? fmtCost(totalValue) : `${fmtInt(totalValue)} ${metric}`;

  const svg = h("svg:svg", {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart", role: "group",
    "aria-label": `${title}: ${totalText} in ${buckets.length} buckets. Use the arrow keys to move between bars and Enter to see a bar's runs.`,
  });
  for (const value of ticks) {
    const y = top + plotH - (value / max) * plotH;
    svg.append(h("svg:line", { x1: left, x2: W - 6, y1: y, y2: y, class: "gridline" }));
    svg.append(h("svg:text", { x: left - 6, y: y + 4, class: "axis-label", "text-anchor": "end" },
      axisText(metric, value)));
  }
  const plan = labelPlan(buckets, hourly, plotW);
  const bars = [];
  buckets.forEach((b, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    const last = i === buckets.length - 1;
    const text = bucketText(b, { hourly, last });
    const bar = h("svg:a", {
      href: bucketHref(b, metric), class: `bar${last ? " in-progress" : ""}`, tabindex: -1,
      "aria-label": `${text}. Open its runs.`, "data-index": i, "data-start": b.start.toISOString(),
    });
    let y = top + plotH;
    const parts = metric === "runs" ? STATUSES.map((s) => [s, b.counts[s]]) : [[metric, valueOf(b, metric)]];
    for (const [cls, value] of parts) {
      const hgt = (value / max) * plotH;
      if (hgt <= 0) continue;
      y -= hgt;
      bar.append(h("svg:rect", { x, y, width: barW, height: hgt, class: metric === "runs" ? `status-${cls}` : "metric-fill" }));
    }
    // A transparent full-height target so thin bars are easy to point at and click.
    bar.append(h("svg:rect", { x: left + i * slot, y: top, width: slot, height: plotH, class: "hit" }));
    bar.dataset.tip = text;
    bars.push(bar);
    svg.append(bar);
    if (plan.at(b, i)) {
      svg.append(h("svg:text", { x: x + barW / 2, y: H - 8, class: "axis-label", "text-anchor": "middle" }, plan.text(b)));
    }
  });

  // One tab stop for the whole chart; the arrow keys move between bars (the newest first).
  const tip = h("div", { class: "chart-tip", role: "tooltip", id: "chart-tip", hidden: true });
  let active = bars.length - 1;
  if (bars[active]) bars[active].setAttribute("tabindex", "0");
  const show = (bar) => {
    tip.textContent = bar.dataset.tip;
    tip.hidden = false;
    const box = bar.querySelector(".hit").getBoundingClientRect();
    const wrap = svg.parentElement.getBoundingClientRect();
    const centre = box.left + box.width / 2 - wrap.left;
    tip.style.left = `${Math.max(0, Math.min(wrap.width - tip.offsetWidth, centre - tip.offsetWidth / 2))}px`;
    tip.style.top = `${box.top - wrap.top - tip.offsetHeight - 6}px`;
    bar.setAttribute("aria-describedby", "chart-tip");
  };
  const hide = () => { tip.hidden = true; };
  bars.forEach((bar, i) => {
    bar.addEventListener("mouseenter", () => show(bar));
    bar.addEventListener("mouseleave", hide);
    bar.addEventListener("focus", () => {
      bars[active]?.setAttribute("tabindex", "-1");
      active = i;
      bar.setAttribute("tabindex", "0");
      show(bar);
    });
    bar.addEventListener("blur", hide);
  });
  svg.addEventListener("keydown", (ev) => {
    const moves = { ArrowLeft: active - 1, ArrowRight: active + 1, Home: 0, End: bars.length - 1 };
    if (ev.key in moves) {
      ev.preventDefault();
      bars[Math.max(0, Math.min(bars.length - 1, moves[ev.key]))]?.focus();
    } else if (ev.key === "Escape") {
      hide();
    } else if (ev.key === "Enter" && bars[active]) {
      ev.preventDefault();
      window.location.hash = bars[active].getAttribute("href");
    }
  });

  const totals = Object.fromEntries(STATUSES.map((s) => [s, buckets.reduce((sum, b) => sum + b.counts[s], 0)]));
  const cost = (v) => fmtCost(v);
  const table = h("table", { class: "data-table compact" },
    h("caption", { class: "visually-hidden" }, title),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Bucket (UTC)"),
      STATUSES.map((s) => h("th", { scope: "col", class: "num" }, STATUS_LABELS[s])),
      h("th", { scope: "col", class: "num" }, "Tokens"), h("th", { scope: "col", class: "num" }, "Cost"))),
    h("tbody", {}, buckets.filter((b) => b.total > 0).map((b) => h("tr", {},
      h("th", { scope: "row" }, bucketLabel(b.start, hourly)),
      STATUSES.map((s) => h("td", { class: "num" }, fmtInt(b.counts[s]))),
      h("td", { class: "num" }, fmtInt(b.tokens)), h("td", { class: "num" }, cost(b.cost))))));
  const key = metric === "runs" ? legend(totals)
    : h("ul", { class: "legend" }, h("li", {}, h("span", { class: "swatch metric-swatch", "aria-hidden": "true" }),
      `${CHART_METRICS[metric].unit} `, h("span", { class: "num" }, metric === "cost" ? fmtCost(totalValue) : fmtInt(totalValue))));
  return h("div", { class: "chart-wrap" }, key,
    h("div", { class: "chart-plot" }, svg, tip),
    h("p", { class: "hint chart-note" }, h("span", { class: "swatch in-progress-swatch", "aria-hidden": "true" }),
      ` The last bar is the current ${hourly ? "hour" : "day"}, still in progress. Select a bar to see its runs.`),
    h("details", { class: "chart-table" }, h("summary", {}, "Show the chart as a table"),
      h("div", { class: "table-box" }, table)));
}

/** The runs-by-status chart (kept for callers of the earlier name). */
export function stackedBars(buckets, options) {
  return barChart(buckets, { ...options, metric: "runs" });
}

/** One horizontal bar of the period's runs by status (used when no time series is offered). */
export function statusMix(summary) {
  const counts = {
    success: num(summary.successful_runs),
    partial: num(summary.partial_runs),
    failed: num(summary.failed_runs),
    dry: num(summary.dry_runs),
    running: num(summary.running_runs),
  };
  const total = num(summary.total_runs);
  const bar = h("div", { class: "mix-bar", role: "img",
    "aria-label": STATUSES.map((s) => `${fmtInt(counts[s])} ${s}`).join(", ") });
  for (const s of STATUSES) {
    if (!counts[s] || !total) continue;
    const seg = h("span", { class: `mix-seg status-${s}`, title: `${STATUS_LABELS[s]}: ${fmtInt(counts[s])}` });
    seg.style.flexGrow = String(counts[s]);
    bar.append(seg);
  }
  return h("div", { class: "chart-wrap" }, legend(counts), bar);
}
