// Entry point: hash routing, feature detection, polling, the connection banner and the key dialog.

import { AuthRequired, Unreachable, connection, getKey, onConnection, probe, setKey } from "./api.js";
import { fmtClock } from "./format.js";
import { OverviewView } from "./overview.js";
import { RunDetailView, RunsView } from "./runs.js";
import { ErrorsView } from "./errors.js";
import { VersionsView } from "./versions.js";
import { h, replace } from "./dom.js";

export const POLL_MS = 5000;

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const connEl = document.getElementById("conn");
const connText = document.getElementById("conn-text");
const keyDialog = document.getElementById("key-dialog");
const forgetKey = document.getElementById("forget-key");

const features = { timeseries: false, extraction: false, extractionGroups: false };
let extractionModule = null;
let current = null; // {name, view}
let pollTimer = null;
let detected = false;

/** `#/runs/ID?layer_name=x` → {parts: ["runs", "ID"], params: URLSearchParams}. */
export function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

export function hashFor(parts, params) {
  const path = parts.map(encodeURIComponent).join("/");
  const query = params ? new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""),
  ).toString() : "";
  return `#/${path}${query ? `?${query}` : ""}`;
}

const ctx = {
  features,
  navigate(parts, params, { replace: replaceEntry = false } = {}) {
    const target = hashFor(parts, params);
    if (target === window.location.hash) return;
    if (replaceEntry) history.replaceState(null, "", target);
    else window.location.hash = target;
    if (replaceEntry) route();
  },
  report(err) {
    handleError(err);
  },
};

async function resolveView(parts) {
  const [head, second, third, fourth] = parts;
  if (!head || head === "overview") return { name: "overview", make: () => new OverviewView(ctx) };
  if (head === "runs" && second) return { name: `run:${second}`, make: () => new RunDetailView(ctx, second) };
  if (head === "runs") return { name: "runs", make: () => new RunsView(ctx) };
  if (head === "errors") return { name: "errors", make: () => new ErrorsView(ctx) };
  if (head === "versions") return { name: "versions", make: () => new VersionsView(ctx) };
  if (head === "extraction" && features.extraction) {
    extractionModule = extractionModule || (await import("./extraction.js"));
    const m = extractionModule;
    if (second === "compare" && third && fourth) {
      return { name: `xcompare:${third}:${fourth}`, make: () => new m.ExtractionCompareView(ctx, third, fourth) };
    }
    if (second === "groups") return { name: "xgroups", make: () => new m.ExtractionGroupsView(ctx) };
    if (second) return { name: `xrun:${second}`, make: () => new m.ExtractionDetailView(ctx, second) };
    return { name: "extraction", make: () => new m.ExtractionListView(ctx) };
  }
  return null;
}

const TITLES = { overview: "Overview", runs: "Runs", errors: "Errors", versions: "Versions", extraction: "Extraction runs" };

function markNav(parts) {
  const section = parts[0] || "overview";
  document.title = `${TITLES[section] || "Not found"} · runwatch`;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  if (!detected) return;
  const { parts, params } = parseHash();
  markNav(parts);
  const found = await resolveView(parts);
  if (!found) {
    if (current) current.view.unmount?.();
    current = null;
    replace(main, h("section", { class: "view" },
      h("h1", {}, "Not found"),
      h("p", {}, "There is no such view. ", h("a", { href: "#/overview" }, "Go to the overview"), ".")));
    return;
  }
  if (current && current.name === found.name && current.view.update) {
    current.view.update(params);
  } else {
    const previous = current;
    if (previous) previous.view.unmount?.();
    const view = found.make();
    current = { name: found.name, view };
    replace(main, view.el);
    view.update(params);
    // A new view is announced like a new page: focus goes to its content.
    if (previous) {
      main.focus({ preventScroll: true });
      window.scrollTo(0, 0);
    }
  }
  schedulePoll();
}

function schedulePoll() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  if (current && current.view.refresh && !document.hidden && connection.state !== "auth") {
    try {
      await current.view.refresh();
    } catch (err) {
      handleError(err);
    }
  }
  schedulePoll();
}

function handleError(err) {
  if (err instanceof AuthRequired) {
    askForKey(err.status === 403
      ? "This key is not allowed to read. Use a key with the read scope."
      : getKey() ? "The server did not accept this key." : "");
    return;
  }
  if (err && err.name === "AbortError") return;
  // Unreachable errors are shown by the connection banner; anything else is a bug
  // in a view, which must not stop polling.
  if (!(err instanceof Unreachable)) console.error(err);
}

function askForKey(message) {
  const errorEl = document.getElementById("key-error");
  errorEl.hidden = !message;
  errorEl.textContent = message;
  if (!keyDialog.open) keyDialog.showModal();
  document.getElementById("key-input").focus();
}

keyDialog.addEventListener("close", () => {
  const value = document.getElementById("key-input").value.trim();
  if (!value) return;
  setKey(value);
  document.getElementById("key-input").value = "";
  forgetKey.hidden = false;
  start();
});

forgetKey.addEventListener("click", () => {
  setKey("");
  forgetKey.hidden = true;
  window.location.reload();
});

function renderConnection(state) {
  connEl.dataset.state = state.state;
  const last = state.lastOk ? fmtClock(state.lastOk) : null;
  if (state.state === "live") {
    connText.textContent = `Live · refreshed ${last}`;
    banner.hidden = true;
    document.body.classList.remove("is-stale");
  } else if (state.state === "unreachable") {
    connText.textContent = `API unreachable since ${fmtClock(state.failedSince)}`;
    banner.hidden = false;
    replace(banner,
      h("strong", {}, "The runwatch API is unreachable"),
      ` (${state.message}). `,
      last
        ? `The figures below are from ${last} and may be out of date. `
        : "No data could be loaded yet. ",
      `Retrying every ${POLL_MS / 1000} s.`);
    document.body.classList.add("is-stale");
  } else if (state.state === "auth") {
    connText.textContent = "API key needed";
    banner.hidden = false;
    replace(banner, h("strong", {}, "An API key is needed"),
      state.message ? ` (${state.message}). ` : ". ",
      h("button", { type: "button", class: "linklike", onclick: () => askForKey("") }, "Enter a key"));
    document.body.classList.add("is-stale");
  }
}

onConnection(renderConnection);

async function detectFeatures() {
  // Each section appears only when the server offers its endpoint (404 = not offered).
  const [timeseries, extraction] = await Promise.all([
    probe("/runs/stats/timeseries", { days: 1, bucket: "hour" }),
    probe("/extraction-runs", { limit: 1 }),
  ]);
  features.timeseries = timeseries;
  features.extraction = extraction;
  features.extractionGroups = extraction && (await probe("/extraction-runs/compare"));
  for (const el of document.querySelectorAll("[data-feature]")) {
    el.hidden = !features[el.dataset.feature];
  }
  document.body.dataset.features = Object.keys(features).filter((k) => features[k]).join(" ");
}

async function start() {
  forgetKey.hidden = !getKey();
  try {
    await detectFeatures();
    detected = true;
    if (current) current.view.unmount?.();
    current = null;
    await route();
  } catch (err) {
    handleError(err);
    // Keep trying until the server answers; the banner says what is wrong.
    if (!(err instanceof AuthRequired)) setTimeout(start, POLL_MS);
  }
}

window.addEventListener("hashchange", () => {
  route().catch(handleError);
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});

start();
