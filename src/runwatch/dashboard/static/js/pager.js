// Keyset paging whose position lives in the URL, so that reload and Back keep the page.
//
// A page is `cursor` (the API's keyset position) plus `at` (the index of its first row,
// for "Showing 26–50"). The position of the page before each cursor is kept for the tab
// (sessionStorage), which is what "Newer" follows; a URL opened elsewhere, without that
// memory, goes back by offset instead.

import { h } from "./dom.js";

const STORE = "runwatch.previousPages";
const MAX_REMEMBERED = 500;

function remembered() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "{}") || {};
  } catch {
    return {};
  }
}

function remember(cursor, previous) {
  const map = remembered();
  delete map[cursor];
  map[cursor] = previous;
  const keys = Object.keys(map);
  for (const key of keys.slice(0, Math.max(0, keys.length - MAX_REMEMBERED))) delete map[key];
  try {
    sessionStorage.setItem(STORE, JSON.stringify(map));
  } catch {
    // Without storage, "Newer" falls back to offsets.
  }
}

/** The page the URL names: {cursor, at, offset} (offset only for a page reached without a cursor). */
export function pagePosition(params) {
  const cursor = params.get("cursor") || "";
  const at = Math.max(0, Math.floor(Number(params.get("at")) || 0));
  return { cursor, at, offset: !cursor && at ? at : null };
}

/** True for the first page, the only one that changes as new runs arrive. */
export function isFirstPage(params) {
  const { cursor, at } = pagePosition(params);
  return !cursor && !at;
}

/**
 * Buttons for the first, newer and older pages. `go(params)` navigates; `base` holds the
 * filters without a position; `size` is the page size; `page` the API's answer.
 */
export function pagerButtons({ params, base, size, page, go }) {
  const { cursor, at } = pagePosition(params);
  const newer = () => {
    const previous = cursor ? remembered()[cursor] : undefined;
    if (previous && previous.at < at) {
      go(previous.at ? { ...base, cursor: previous.cursor, at: previous.at } : { ...base });
      return;
    }
    const target = Math.max(0, at - size);
    go(target ? { ...base, at: target } : { ...base });
  };
  const older = () => {
    remember(page.next_cursor, { cursor, at });
    go({ ...base, cursor: page.next_cursor, at: at + page.runs.length });
  };
  return [
    at > size ? h("button", { type: "button", onclick: () => go({ ...base }) }, "« First page") : null,
    at > 0 ? h("button", { type: "button", onclick: newer }, "‹ Newer") : null,
    page.next_cursor ? h("button", { type: "button", class: "primary", onclick: older }, "Older ›") : null,
  ];
}
