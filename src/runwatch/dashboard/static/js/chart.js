// Hand-drawn SVG charts: runs per time bucket stacked by status, and a period's status mix.

import { h } from "./dom.js";
import { fmtInt } from "./format.js";

export const STATUSES = ["success", "partial", "failed", "dry", "running"];
export const STATUS_LABELS = {
  success: "Success", partial: "Partial", failed: "Failed", dry: "Dry", running: "Running",
};

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function pickCount(src, status) {
  const candidates = [src[status], src[`${status}_runs`]];
  if (status === "success") candidates.push(src.successful_runs, src.successful);
  return num(candidates.find((v) => typeof v === "number"));
}

/** Buckets of `GET /runs/stats/timeseries` as [{start: Date, counts: {status: n}, total}]. */
export function normalizeSeries(data) {
  const list = Array.isArray(data)
    ? data
    : (data && (data.buckets || data.series || data.points || data.items)) || [];
  return list.map((b) => {
    const start = new Date(b.bucket_start ?? b.start ?? b.bucket ?? b.time ?? b.t);
    const src = b.counts || b.by_status || b.statuses || b.status_counts || b;
    const counts = Object.fromEntries(STATUSES.map((s) => [s, pickCount(src, s)]));
    const total = typeof b.total_runs === "number" ? b.total_runs
      : typeof b.runs === "number" ? b.runs
        : STATUSES.reduce((sum, s) => sum + counts[s], 0);
    return { start, counts, total };
  }).filter((b) => !Number.isNaN(b.start.getTime()));
}

const pad = (n) => String(n).padStart(2, "0");

function bucketLabel(date, hourly) {
  const day = `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
  return hourly ? `${day} ${pad(date.getUTCHours())}:00` : day;
}

function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

function legend(totals) {
  return h("ul", { class: "legend" }, STATUSES.map((s) => h("li", {},
    h("span", { class: `swatch status-${s}`, "aria-hidden": "true" }),
    `${STATUS_LABELS[s]} `,
    totals ? h("span", { class: "num" }, fmtInt(totals[s])) : null)));
}

/** A stacked bar chart with a y axis, a few x labels, a legend and a table for screen readers. */
export function stackedBars(buckets, { hourly, title }) {
  const W = 1200;
  const H = 260;
  const left = 48;
  const bottom = 28;
  const top = 10;
  const plotW = W - left - 8;
  const plotH = H - top - bottom;
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.total)));
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, slot * 0.78);

  const svg = h("svg:svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${title}: ${fmtInt(buckets.reduce((s, b) => s + b.total, 0))} runs in ${buckets.length} buckets`,
  });
  for (let i = 0; i <= 4; i += 1) {
    const value = (max / 4) * i;
    const y = top + plotH - (value / max) * plotH;
    svg.append(h("svg:line", { x1: left, x2: W - 8, y1: y, y2: y, class: "gridline" }));
    svg.append(h("svg:text", { x: left - 8, y: y + 4, class: "axis-label", "text-anchor": "end" },
      fmtInt(value)));
  }
  // Labels at round times: midnights for a week of hours, every third hour for a day.
  const dailyEvery = Math.max(1, Math.ceil(buckets.length / 10));
  const labelled = (b, i) => (hourly
    ? (buckets.length > 24 ? b.start.getUTCHours() === 0 : b.start.getUTCHours() % 3 === 0)
    : i % dailyEvery === 0);
  buckets.forEach((b, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let y = top + plotH;
    const g = h("svg:g", { class: "bar" });
    g.append(h("svg:title", {}, `${bucketLabel(b.start, hourly)} UTC — ${fmtInt(b.total)} runs: `
      + STATUSES.filter((s) => b.counts[s]).map((s) => `${fmtInt(b.counts[s])} ${s}`).join(", ")));
    for (const s of STATUSES) {
      const hgt = (b.counts[s] / max) * plotH;
      if (hgt <= 0) continue;
      y -= hgt;
      g.append(h("svg:rect", { x, y, width: barW, height: hgt, class: `status-${s}` }));
    }
    // A transparent full-height target so thin bars still show their tooltip.
    g.append(h("svg:rect", { x: left + i * slot, y: top, width: slot, height: plotH, class: "hit" }));
    svg.append(g);
    if (labelled(b, i)) {
      const label = hourly && buckets.length <= 24
        ? `${pad(b.start.getUTCHours())}:00`
        : bucketLabel(b.start, false).slice(5);
      svg.append(h("svg:text", { x: x + barW / 2, y: H - 8, class: "axis-label", "text-anchor": "middle" }, label));
    }
  });

  const totals = Object.fromEntries(STATUSES.map((s) => [s, buckets.reduce((sum, b) => sum + b.counts[s], 0)]));
  const table = h("table", { class: "data-table compact" },
    h("caption", { class: "visually-hidden" }, title),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Bucket (UTC)"),
      STATUSES.map((s) => h("th", { scope: "col", class: "num" }, STATUS_LABELS[s])))),
    h("tbody", {}, buckets.filter((b) => b.total > 0).map((b) => h("tr", {},
      h("th", { scope: "row" }, bucketLabel(b.start, hourly)),
      STATUSES.map((s) => h("td", { class: "num" }, fmtInt(b.counts[s])))))));
  return h("div", { class: "chart-wrap" }, legend(totals), svg,
    h("details", { class: "chart-table" }, h("summary", {}, "Show the chart as a table"), table));
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
