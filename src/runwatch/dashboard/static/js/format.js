// Number, money, duration and time formatting shared by every view (fixed en-US, UTC).

const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const pctFmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const costFmt = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const smallCostFmt = new Intl.NumberFormat("en-US", {
  style: "currency", currency: "USD", minimumFractionDigits: 4, maximumFractionDigits: 4,
});
const numFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4 });

export const DASH = "—";

export function fmtInt(n) {
  return n === null || n === undefined ? DASH : intFmt.format(n);
}

// Card-sized numbers: exact below a million, then in millions or billions.
export const COMPACT_FROM = 1_000_000;

export function fmtCompact(n) {
  if (n === null || n === undefined) return DASH;
  if (Math.abs(n) < COMPACT_FROM) return intFmt.format(n);
  const [scaled, unit] = Math.abs(n) < 1e9 ? [n / 1e6, "M"] : [n / 1e9, "B"];
  // Three significant digits: 8.61 M, 32.4 M, 228 M.
  const decimals = Math.abs(scaled) >= 100 ? 0 : Math.abs(scaled) >= 10 ? 1 : 2;
  return `${scaled.toFixed(decimals)} ${unit}`;
}

export function fmtNumber(n) {
  if (n === null || n === undefined) return DASH;
  return typeof n === "number" ? numFmt.format(n) : String(n);
}

export function fmtCost(usd) {
  if (usd === null || usd === undefined) return DASH;
  // Single runs often cost fractions of a cent; two decimals would show $0.00.
  return usd !== 0 && Math.abs(usd) < 0.01 ? smallCostFmt.format(usd) : costFmt.format(usd);
}

/**
 * One formatter for a column of costs, so that the column does not mix `$0.08` and
 * `$0.0088`: four decimals for all when any value is a fraction of a cent, else two.
 */
export function costFormatter(values) {
  const fine = values.some((v) => typeof v === "number" && v !== 0 && Math.abs(v) < 0.01);
  return (usd) => {
    if (usd === null || usd === undefined) return DASH;
    return (fine ? smallCostFmt : costFmt).format(usd);
  };
}

const scoreFmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: 3, maximumFractionDigits: 3 });

/** Scores between 0 and 1 (precision, recall, F1) always with three decimals: 1.000, 0.476. */
export function fmtScore(v) {
  return v === null || v === undefined ? DASH : scoreFmt.format(v);
}

/** Milliseconds as a whole number of ms. */
export function fmtMs(v) {
  return v === null || v === undefined ? DASH : `${intFmt.format(Math.round(v))} ms`;
}

export function fmtPct(ratio) {
  return ratio === null || ratio === undefined || Number.isNaN(ratio)
    ? DASH
    : `${pctFmt.format(ratio * 100)} %`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return DASH;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return h ? `${h} h ${String(m).padStart(2, "0")} m` : `${m} m ${String(rest).padStart(2, "0")} s`;
}

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} `
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

export function fmtClock(date) {
  return `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} UTC`;
}

/** `datetime-local` input value (taken as UTC) for an ISO instant, and back. */
export function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toISOString().slice(0, 16);
}

export function fromLocalInput(value) {
  return value ? `${value}:00Z` : "";
}
