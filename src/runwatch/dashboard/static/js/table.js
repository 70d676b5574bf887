// A table sorted in the browser by any column, with headings that are buttons (keyboard-friendly).

import { h } from "./dom.js";

function compare(a, b) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "string") return a.localeCompare(b);
  return a - b;
}

/**
 * columns: [{key, label, value(row), cell(row), text?}], sort: {key, dir}.
 * The first column heads each row; with `reflow`, narrow screens show rows as blocks.
 * Missing values sort last in either direction.
 */
export function sortableTable({ columns, rows, sort, caption, onSort, rowAttrs, reflow = false }) {
  const column = columns.find((c) => c.key === sort.key) || columns[0];
  const sign = sort.dir === "asc" ? 1 : -1;
  const sorted = [...rows].sort((ra, rb) => {
    const a = column.value(ra);
    const b = column.value(rb);
    if (a === null || a === undefined || b === null || b === undefined) return compare(a, b);
    return sign * compare(a, b) || compare(columns[0].value(ra), columns[0].value(rb));
  });
  const head = h("tr", {}, columns.map((c) => {
    const active = c.key === column.key;
    const nextDir = active ? (sort.dir === "asc" ? "desc" : "asc") : c.text ? "asc" : "desc";
    return h("th", {
      scope: "col", class: c.text ? "" : "num",
      "aria-sort": active ? (sort.dir === "asc" ? "ascending" : "descending") : null,
    }, h("button", {
      type: "button", class: "sort", "data-sort-key": c.key,
      onclick: () => onSort({ key: c.key, dir: nextDir }),
    }, c.label, h("span", { class: "sort-mark", "aria-hidden": "true" },
      active ? (sort.dir === "asc" ? " ▲" : " ▼") : "")));
  }));
  const body = h("tbody", {}, sorted.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {},
    columns.map((c, i) => (i === 0
      ? h("th", { scope: "row" }, c.cell(r))
      : h("td", { class: c.text ? "" : "num", "data-label": reflow ? c.label : null }, c.cell(r)))))));
  // `reflow`: on a narrow screen each row becomes a block of labelled values (see app.css).
  return h("table", { class: reflow ? "data-table reflow" : "data-table" },
    caption ? h("caption", { class: "visually-hidden" }, caption) : null,
    h("thead", {}, head), body);
}
