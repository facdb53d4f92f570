// lineage_nb browser front end (anywidget ESM). Draws the current page and the detail pane.
// Every text from the kernel goes in with textContent: no markup is ever built from data.
// The lineage picture (SVG made and escaped by lineage_nb.render.picture) is parsed as XML and
// stripped of scripts, event handlers and external links before it is added.
const SVGNS = "http://www.w3.org/2000/svg";

function h(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function button(text, title, onclick, cls) {
  const b = h("button", "lnb-btn" + (cls ? " " + cls : ""), text);
  b.type = "button";
  if (title) b.title = title;
  b.addEventListener("click", onclick);
  return b;
}

function safeSvg(markup) {
  if (!markup) return null;
  const doc = new DOMParser().parseFromString(markup, "image/svg+xml");
  const root = doc.documentElement;
  if (!root || root.namespaceURI !== SVGNS || root.nodeName !== "svg") return null;
  const banned = new Set(["script", "foreignobject", "iframe", "image", "object", "embed", "a"]);
  for (const node of Array.from(root.querySelectorAll("*"))) {
    if (banned.has(node.localName.toLowerCase())) { node.remove(); continue; }
    for (const attr of Array.from(node.attributes)) {
      const name = attr.name.toLowerCase();
      const isLink = name === "href" || name.endsWith(":href");
      if (name.startsWith("on") || (isLink && !attr.value.startsWith("#"))) {
        node.removeAttribute(attr.name);
      }
    }
  }
  for (const attr of Array.from(root.attributes)) {
    if (attr.name.toLowerCase().startsWith("on")) root.removeAttribute(attr.name);
  }
  return document.importNode(root, true);
}

function histogram(summary) {
  const box = h("div", "lnb-summary");
  const bins = summary.bins || [];
  const top = Math.max(1, ...bins.map((b) => b[2]));
  const svg = document.createElementNS(SVGNS, "svg");
  svg.setAttribute("class", "lnb-hist");
  svg.setAttribute("viewBox", `0 0 ${bins.length * 10} 30`);
  svg.setAttribute("preserveAspectRatio", "none");
  bins.forEach((b, i) => {
    const bar = document.createElementNS(SVGNS, "rect");
    const height = b[2] ? Math.max(1.5, (28 * b[2]) / top) : 0;
    bar.setAttribute("x", String(i * 10 + 1));
    bar.setAttribute("width", "8");
    bar.setAttribute("y", String(30 - height));
    bar.setAttribute("height", String(height));
    const tip = document.createElementNS(SVGNS, "title");
    tip.textContent = `${b[0]} – ${b[1]}: ${b[2]}`;
    bar.appendChild(tip);
    svg.appendChild(bar);
  });
  box.appendChild(svg);
  if (summary.min !== undefined) box.appendChild(h("div", "lnb-range", `${summary.min} … ${summary.max}`));
  if (summary.nulls) box.appendChild(h("div", "lnb-muted", `${summary.nulls} missing`));
  return box;
}

function topValues(summary) {
  const box = h("div", "lnb-summary");
  for (const [value, n] of summary.values || []) {
    const line = h("div", "lnb-top");
    line.appendChild(h("span", "lnb-top-value", value === null ? "—" : value));
    line.appendChild(h("span", "lnb-muted", ` ${n}`));
    box.appendChild(line);
  }
  box.appendChild(h("div", "lnb-muted", `${summary.distinct} distinct` + (summary.nulls ? `, ${summary.nulls} missing` : "")));
  return box;
}

function render({ model, el }) {
  const root = h("div", "lnb-browser");
  el.appendChild(root);
  let cursor = -1;
  let pendingCursor = null;
  const set = (changes) => {
    for (const [k, v] of Object.entries(changes)) model.set(k, v);
    model.save_changes();
  };

  // toolbar
  const bar = h("div", "lnb-bar");
  const title = h("span", "lnb-title");
  const search = h("input", "lnb-search");
  search.type = "search";
  search.placeholder = "search all columns…";
  search.setAttribute("aria-label", "search all columns");
  // keys typed in the widget's inputs are text, never the host's shortcuts (JupyterLab's "a", "b", "d d" ...)
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") set({ search: search.value }); e.stopPropagation(); });
  search.addEventListener("change", () => set({ search: search.value }));
  const first = button("« first", "first page", () => set({ page: 0 }));
  const prev = button("◀ prev", "previous page", () => set({ page: model.get("page") - 1 }));
  const next = button("next ▶", "next page", () => set({ page: model.get("page") + 1 }));
  const status = h("span", "lnb-status");
  const sums = button("Σ summaries", "show a summary of each column", () => set({ show_summaries: !model.get("show_summaries") }));
  const csv = button("↓ CSV", "download the filtered rows as CSV", () => model.send({ action: "download", format: "csv" }));
  const parquet = button("↓ Parquet", "download the filtered rows as Parquet", () => model.send({ action: "download", format: "parquet" }));
  const saved = h("span", "lnb-saved");
  bar.append(title, search, first, prev, next, status, sums, csv, parquet, saved);
  const error = h("div", "lnb-error");
  error.setAttribute("role", "alert");

  // table
  const wrap = h("div", "lnb-tablewrap");
  const table = h("table", "lnb-table");
  table.tabIndex = 0;
  table.setAttribute("aria-label", "records; arrow keys move, Enter opens");
  const head = h("thead");
  const headRow = h("tr", "lnb-head");
  const filterRow = h("tr", "lnb-filters");
  const summaryRow = h("tr", "lnb-summaries");
  const body = h("tbody");
  head.append(headRow, filterRow, summaryRow);
  table.append(head, body);
  wrap.appendChild(table);
  const detail = h("div", "lnb-detail");
  root.append(bar, error, wrap, detail);

  const filterInputs = {};
  const headButtons = {};
  function buildHead() {
    headRow.replaceChildren();
    filterRow.replaceChildren();
    for (const col of model.get("columns")) {
      const th = h("th", "lnb-kind-" + col.kind);
      const sort = button(col.name, `sort by ${col.name}`, () => {
        if (model.get("sort_column") === col.name) set({ sort_descending: !model.get("sort_descending") });
        else set({ sort_column: col.name, sort_descending: false });
      }, "lnb-sort");
      headButtons[col.name] = sort;
      th.appendChild(sort);
      headRow.appendChild(th);
      const cell = h("th", "lnb-filter");
      const input = h("input", "lnb-filter-input");
      input.type = "text";
      input.placeholder = col.kind === "number" || col.kind === "integer" ? "= > < a..b" : col.kind === "date" ? "2026-01, >2026-01-15" : "contains…";
      input.title = `filter ${col.name}: text contains; numbers 5, >5, <=7, 2..8; dates 2026-01, >=2026-01-15, a..b; null / not null`;
      input.setAttribute("aria-label", `filter ${col.name}`);
      const apply = () => {
        const filters = { ...model.get("filters") };
        if (input.value.trim()) filters[col.name] = input.value; else delete filters[col.name];
        set({ filters });
      };
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); e.stopPropagation(); });
      input.addEventListener("change", apply);
      filterInputs[col.name] = input;
      cell.appendChild(input);
      filterRow.appendChild(cell);
    }
  }

  function drawHead() {
    const sortColumn = model.get("sort_column");
    const arrow = model.get("sort_descending") ? " ▼" : " ▲";
    const filters = model.get("filters") || {};
    for (const col of model.get("columns")) {
      headButtons[col.name].textContent = col.name + (col.name === sortColumn ? arrow : "");
      headButtons[col.name].setAttribute("aria-sort", col.name === sortColumn ? (model.get("sort_descending") ? "descending" : "ascending") : "none");
      const input = filterInputs[col.name];
      if (document.activeElement !== input) input.value = filters[col.name] || "";
      input.classList.toggle("lnb-active", Boolean(filters[col.name]));
    }
    if (document.activeElement !== search) search.value = model.get("search");
  }

  function drawSummaries() {
    summaryRow.replaceChildren();
    const show = model.get("show_summaries");
    sums.classList.toggle("lnb-on", show);
    summaryRow.hidden = !show;
    if (!show) return;
    const summaries = model.get("summaries") || {};
    for (const col of model.get("columns")) {
      const cell = h("td", "lnb-summary-cell");
      const s = summaries[col.name];
      if (s && s.type === "histogram") cell.appendChild(histogram(s));
      else if (s && s.type === "top") cell.appendChild(topValues(s));
      summaryRow.appendChild(cell);
    }
  }

  function drawRows() {
    const rows = model.get("rows");
    const keys = model.get("row_keys");
    const columns = model.get("columns");
    const selected = model.get("selected");
    body.replaceChildren();
    if (pendingCursor !== null) { cursor = pendingCursor === "last" ? rows.length - 1 : pendingCursor; pendingCursor = null; }
    if (cursor >= rows.length) cursor = rows.length - 1;
    rows.forEach((row, i) => {
      const tr = h("tr", "lnb-row");
      tr.dataset.index = String(i);
      if (keys[i] === selected) tr.classList.add("lnb-selected");
      if (i === cursor) tr.classList.add("lnb-cursor");
      row.forEach((value, j) => {
        const td = h("td", "lnb-kind-" + columns[j].kind, value === null ? "—" : value);
        if (value === null) td.classList.add("lnb-null");
        else td.title = value;
        tr.appendChild(td);
      });
      tr.addEventListener("click", () => { cursor = i; set({ selected: keys[i] }); drawRows(); table.focus({ preventScroll: true }); });
      body.appendChild(tr);
    });
    if (!rows.length) {
      const tr = h("tr");
      const td = h("td", "lnb-empty", "no rows match");
      td.colSpan = Math.max(1, columns.length);
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function drawStatus() {
    const about = model.get("estimated") ? "about " : "";
    const page = model.get("page");
    const count = model.get("page_count");
    status.textContent = `page ${page + 1} of ${about}${count} · ${about}${model.get("total").toLocaleString("en-US")} rows`;
    first.disabled = prev.disabled = page <= 0;
    next.disabled = page >= count - 1;
    title.textContent = model.get("title");
  }

  function drawError() {
    const text = model.get("error");
    error.textContent = text ? "⚠ " + text : "";
    error.hidden = !text;
  }

  function drawSaved() {
    const d = model.get("download") || {};
    if (d.path && !saved.querySelector("a")) saved.textContent = `saved ${d.path}`;
  }

  table.addEventListener("keydown", (e) => {
    const rows = model.get("rows");
    const page = model.get("page");
    if (e.key === "ArrowDown") {
      if (cursor < rows.length - 1) cursor += 1;
      else if (page < model.get("page_count") - 1) { pendingCursor = 0; set({ page: page + 1 }); }
    } else if (e.key === "ArrowUp") {
      if (cursor > 0) cursor -= 1;
      else if (cursor < 0 && rows.length) cursor = 0;
      else if (page > 0) { pendingCursor = "last"; set({ page: page - 1 }); }
    } else if (e.key === "PageDown") { if (page < model.get("page_count") - 1) { pendingCursor = 0; set({ page: page + 1 }); } }
    else if (e.key === "PageUp") { if (page > 0) { pendingCursor = 0; set({ page: page - 1 }); } }
    else if (e.key === "Home") cursor = 0;
    else if (e.key === "End") cursor = rows.length - 1;
    else if (e.key === "Enter") { if (cursor >= 0 && cursor < rows.length) set({ selected: model.get("row_keys")[cursor] }); }
    else return;
    // the keys the table handles are its own: not JupyterLab's (arrows move between cells,
    // Enter edits a cell), which listens on the document in the bubbling phase
    e.preventDefault();
    e.stopPropagation();
    drawRows();
    const row = body.querySelector(".lnb-cursor");
    if (row && row.scrollIntoView) row.scrollIntoView({ block: "nearest" });
  });

  // detail pane
  function section(parent, name) {
    const box = h("section", "lnb-section");
    box.appendChild(h("h4", null, name));
    parent.appendChild(box);
    return box;
  }

  function links(parent, items, empty) {
    if (!items.length) { parent.appendChild(h("div", "lnb-muted", empty)); return; }
    const list = h("div", "lnb-links");
    for (const item of items) {
      if (item.target === null || item.target === undefined) { list.appendChild(h("span", "lnb-muted", item.label)); continue; }
      const text = (item.group ? item.group + ": " : "") + item.label + (item.changed ? " (changed since read)" : "");
      list.appendChild(button(text, "open " + item.label, () => model.send({ action: "open", target: item.target }), "lnb-link" + (item.changed ? " lnb-changed" : "")));
    }
    parent.appendChild(list);
  }

  function drawDetail() {
    const d = model.get("detail") || {};
    detail.replaceChildren();
    if (!d.title) { detail.appendChild(h("div", "lnb-muted", "Select a row (click, or arrow keys and Enter) to see the record.")); return; }
    const top = h("div", "lnb-detail-head");
    const back = button("◀ back", (d.trail || []).length ? "back to " + d.trail[d.trail.length - 1] : "nothing to go back to", () => model.send({ action: "back" }), "lnb-back");
    back.disabled = !(d.trail || []).length;
    top.append(back, h("h3", "lnb-detail-title", d.title));
    detail.appendChild(top);
    if (d.line) detail.appendChild(h("div", "lnb-line", d.line));
    if (d.stale) {
      const box = h("div", d.stale.stale ? "lnb-stale" : "lnb-fresh", (d.stale.stale ? "⚠ " : "✓ ") + d.stale.text);
      for (const [t, pk, change] of d.stale.inputs || []) box.appendChild(h("div", null, `${t} ${pk}: ${change}`));
      detail.appendChild(box);
    }
    const grid = h("div", "lnb-detail-grid");
    detail.appendChild(grid);
    const fields = section(grid, "Fields");
    const table = h("table", "lnb-fields");
    for (const [name, value] of d.fields || []) {
      const tr = h("tr");
      tr.append(h("th", null, name), h("td", null, value));
      table.appendChild(tr);
    }
    fields.appendChild(table);
    const related = section(grid, "Related records");
    links(related, d.related || [], "none loaded");
    for (const [name, n] of d.more || []) related.appendChild(h("div", "lnb-muted", `… and ${n} more ${name}`));
    links(section(grid, "Inputs (read by the run that wrote it)"), d.inputs || [], "none recorded");
    links(section(grid, "Outputs (written by runs that read it)"), d.outputs || [], "none recorded");
    const history = section(detail, "History");
    if (!(d.history || []).length) history.appendChild(h("div", "lnb-muted", "no events recorded"));
    else {
      const t = h("table", "lnb-history");
      const hr = h("tr");
      for (const name of ["at", "action", "changes", "cell", "run", "user"]) hr.appendChild(h("th", null, name));
      t.appendChild(hr);
      for (const e of d.history) {
        const tr = h("tr");
        for (const name of ["at", "action", "changes", "cell", "run", "user"]) tr.appendChild(h("td", null, e[name] === null ? "—" : e[name]));
        t.appendChild(tr);
        if (e.source) {
          const sr = h("tr", "lnb-source-row");
          const td = h("td");
          td.colSpan = 6;
          const more = h("details");
          more.appendChild(h("summary", null, "cell source"));
          more.appendChild(h("pre", "lnb-source", e.source));
          td.appendChild(more);
          sr.appendChild(td);
          t.appendChild(sr);
        }
      }
      history.appendChild(t);
    }
    const lineage = section(detail, "Lineage");
    const svg = safeSvg(d.svg);
    if (!svg) { lineage.appendChild(h("div", "lnb-muted", "—")); return; }
    // nodes are matched by their data-node attribute: records, runs, ... open; groups expand
    const nodes = d.nodes || {};
    const groups = new Set(d.groups || []);
    for (const g of svg.querySelectorAll("g[data-node]")) {
      const id = g.getAttribute("data-node");
      const t = g.querySelector("title");
      const label = t ? t.textContent : id;
      let message = null;
      if (Object.prototype.hasOwnProperty.call(nodes, id)) {
        message = { action: "open", target: nodes[id] };
        g.setAttribute("aria-label", "open " + label);
      } else if (g.hasAttribute("data-count") && groups.has(id)) {
        message = { action: "expand", node: id };
        g.classList.add("lnb-expandable");
        g.setAttribute("aria-label", "show each of the " + label);
        if (t) t.textContent = label + " (click to show each)";
      }
      if (message === null) continue;
      g.classList.add("lnb-clickable");
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      const act = () => model.send(message);
      g.addEventListener("click", act);
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); e.stopPropagation(); act(); } });
    }
    const frame = h("div", "lnb-picture");
    frame.appendChild(svg);
    lineage.appendChild(frame);
  }

  const onFile = (msg, buffers) => {
    if (!msg || msg.kind !== "file" || !buffers || !buffers.length) return;
    const data = buffers[0];
    const blob = new Blob([data.buffer ? data.buffer : data], { type: msg.format === "csv" ? "text/csv" : "application/octet-stream" });
    const link = h("a", "lnb-file", "↓ " + msg.name);
    link.href = URL.createObjectURL(blob);
    link.download = msg.name;
    saved.replaceChildren(link);
  };

  buildHead();
  drawHead(); drawSummaries(); drawRows(); drawStatus(); drawError(); drawDetail(); drawSaved();
  const handlers = [
    ["change:rows change:row_keys change:selected", drawRows],
    ["change:page change:page_count change:total change:estimated change:title", drawStatus],
    ["change:sort_column change:sort_descending change:filters change:search", drawHead],
    ["change:summaries change:show_summaries", drawSummaries],
    ["change:error", drawError],
    ["change:detail", drawDetail],
    ["change:download", drawSaved],
    ["change:columns", () => { buildHead(); drawHead(); drawSummaries(); drawRows(); }],
    ["msg:custom", onFile],
  ];
  for (const [names, fn] of handlers) for (const name of names.split(" ")) model.on(name, fn);
  return () => { for (const [names, fn] of handlers) for (const name of names.split(" ")) model.off(name, fn); };
}

export default { render };
