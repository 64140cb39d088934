// Runs in a loaded, typeset page of the book (after page_report.js): opens every collapsed part
// (a reader can open them), then measures, at the window's current width, every block that can
// be wider than the content column: display math, cell outputs, code blocks of the markdown,
// tables, and the images. A block overflows when its content is wider than its box (it is cut off
// or needs a scroll bar) or when its box reaches past the right edge of the content column.
() => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  document.querySelectorAll(".toggle-hidden").forEach((el) => el.classList.remove("toggle-hidden"));
  const column = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;
  const columnRect = column.getBoundingClientRect();
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).display !== "none";
  const round = (x) => Math.round(x);
  // the widest content inside el (its own and that of the boxes in it that scroll or clip)
  const measure = (el) => {
    let need = el.scrollWidth, have = el.clientWidth;
    for (const inner of el.querySelectorAll("pre, table, div, mjx-container")) {
      if (!visible(inner) || inner.clientWidth === 0) continue;
      const overflow = getComputedStyle(inner).overflowX;
      if (overflow !== "visible" && inner.scrollWidth - inner.clientWidth > need - have) {
        need = inner.scrollWidth; have = inner.clientWidth;
      }
    }
    const rect = el.getBoundingClientRect();
    return { need: round(need), have: round(have), right: round(rect.right), columnRight: round(columnRect.right) };
  };
  const blocks = [];
  const add = (kind, el, extra) => {
    if (!visible(el)) return;
    const m = measure(el);
    const cell = el.closest("div.cell");
    const input = cell && cell.querySelector("div.cell_input pre");
    blocks.push({ kind, ...m, ...extra, cellInput: input ? input.textContent : null,
                  text: (extra && extra.text) || el.textContent.trim().slice(0, 3000) });
  };
  // display math: the typeset formula (with its number) against the width of its block
  const items = (window.MathJax && MathJax.startup && MathJax.startup.document) ? [...MathJax.startup.document.math] : [];
  const texOf = new Map(items.filter((i) => i.display && i.start && i.start.node)
    .map((i) => [i.typesetRoot, String(i.math)]));
  for (const div of document.querySelectorAll("div.math")) {
    if (!visible(div)) continue;
    // MathJax's box sits beside the equation number and scrolls when the formula is wider
    const container = div.querySelector("mjx-container");
    const eqno = div.querySelector(".eqno");
    const tex = container && texOf.has(container) ? texOf.get(container) : div.textContent;
    blocks.push({
      kind: "display math", ...measure(div),
      label: div.id ? div.id.replace(/^equation-/, "") : null,
      number: eqno ? (eqno.textContent.match(/\([^)]*\)/) || [eqno.textContent.trim()])[0] : null,
      tex: tex.trim(), text: tex.trim().slice(0, 300), cellInput: null,
    });
  }
  for (const out of document.querySelectorAll("div.cell_output > div.output, div.cell_output > .output")) {
    if (out.closest(".jupyter-widgets")) continue;
    const img = out.querySelector("img");
    if (img && !out.querySelector("pre, table")) continue; // images: below
    add("cell output", out);
  }
  for (const pre of document.querySelectorAll("div.highlight pre")) {
    if (pre.closest("div.cell_input, div.cell_output")) continue;
    add("code block", pre.closest("div.highlight") || pre, { text: pre.textContent.slice(0, 2000) });
  }
  for (const table of document.querySelectorAll("article table")) {
    if (table.closest("div.cell_output, div.math, .jupyter-widgets")) continue;
    const box = table.closest(".pst-scrollable-table-container") || table;
    const head = [...table.querySelectorAll("th")].map((th) => th.textContent.trim()).join(" | ");
    add("table", box, { text: head || table.textContent.trim().slice(0, 200) });
  }
  const images = [];
  for (const img of document.querySelectorAll("article img")) {
    if (!visible(img) || img.closest(".jupyter-widgets") || img.naturalWidth === 0) continue;
    if (new URL(img.currentSrc || img.src, location.href).origin !== location.origin) continue;
    const cell = img.closest("div.cell");
    const input = cell && cell.querySelector("div.cell_input pre");
    const rect = img.getBoundingClientRect();
    // the width the figure was made for, in CSS pixels: a retina PNG's output says so (myst-nb
    // writes it as the image's style width), another PNG is as wide as its pixels
    const px = (value) => (value && /^[\d.]+(px)?$/.test(value.trim()) ? parseFloat(value) : NaN);
    const made = [px(img.style.width), px(img.getAttribute("width"))].find(Number.isFinite);
    images.push({
      src: img.getAttribute("src"), alt: img.getAttribute("alt") || "",
      naturalWidth: img.naturalWidth, shown: round(rect.width), right: round(rect.right),
      columnRight: round(columnRect.right),
      intended: made || img.naturalWidth,
      inCell: Boolean(cell), cellInput: input ? input.textContent : null,
      figure: img.closest("figure") ? (img.closest("figure").id || "figure") : null,
    });
  }
  return { width: window.innerWidth, column: round(columnRect.width), blocks, images };
}
