// Runs in a loaded page of the book: waits for MathJax, the images and the widgets, then
// reports what a reader would see. Called by test_book_in_browser.py with a timeout in ms.
async (timeoutMs) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (cond, ms) => {
    const t0 = performance.now();
    while (!cond() && performance.now() - t0 < ms) await sleep(50);
    return Boolean(cond());
  };
  const mathEls = [...document.querySelectorAll("span.math, div.math")];
  const mathjax = await until(() => window.MathJax && MathJax.startup && MathJax.startup.promise,
                              mathEls.length ? timeoutMs : 2000);
  let typesetError = null;
  if (mathjax) { try { await MathJax.startup.promise; } catch (e) { typesetError = String(e); } }
  // TeX errors: MathJax's noerrors/noundefined packages draw them (in red) instead of failing.
  const texErrors = [];
  if (mathjax && MathJax.startup.document && MathJax.startup.toMML) {
    for (const item of MathJax.startup.document.math) {
      const mml = MathJax.startup.toMML(item.root);
      if (/<merror|mathcolor="red"/.test(mml)) texErrors.push(String(item.math).trim().slice(0, 120));
    }
  }
  const imgs = [...document.images];
  imgs.forEach((img) => { if (img.loading === "lazy") img.loading = "eager"; });
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, timeoutMs);
  })));
  // widgets are drawn by require.js + the HTML manager after the load event
  const widgetViews = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]');
  if (widgetViews.length) await until(() => document.querySelectorAll(".widget-container, .jupyter-widgets").length, timeoutMs);
  const isLocal = (img) => new URL(img.currentSrc || img.src, location.href).origin === location.origin;
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const el = node.parentElement;
      if (!el || el.closest("pre, code, script, style, noscript, textarea, mjx-container") || !visible(el))
        return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    }});
  const rawTex = [];
  // a widget that failed to render shows its Python repr or an error text instead
  const widgetText = /(^|\n)\s*(interactive|VBox|HBox|Box|IntSlider|FloatSlider|Image|Output|Label)\(|Error (displaying|rendering) widget|Loading widget/;
  const rawWidgets = [];
  for (let node; (node = walker.nextNode());) {
    if (/\$\$|\\\(|\\\[/.test(node.nodeValue)) rawTex.push(node.nodeValue.trim().slice(0, 120));
    if (widgetText.test(node.nodeValue)) rawWidgets.push(node.nodeValue.trim().slice(0, 120));
  }
  for (const el of document.querySelectorAll(".cell_output pre, .output pre")) {
    if (visible(el) && widgetText.test(el.textContent)) rawWidgets.push(el.textContent.trim().slice(0, 120));
  }
  return {
    mathjaxVersion: mathjax ? (MathJax.version || "?") : null,
    typesetError,
    mathCount: mathEls.length,
    containers: document.querySelectorAll("mjx-container").length,
    untypeset: mathEls.filter((el) => !el.querySelector("mjx-container")).map((el) => el.textContent.trim().slice(0, 80)),
    texErrors,
    rawTex,
    rawWidgets,
    widgetViews: widgetViews.length,
    widgetsDrawn: document.querySelectorAll(".jupyter-widgets").length,
    images: imgs.length,
    brokenImages: imgs.filter((img) => isLocal(img) && img.naturalWidth === 0).map((img) => img.getAttribute("src")),
    externalImages: imgs.filter((img) => !isLocal(img)).map((img) => img.getAttribute("src")),
    height: Math.ceil(document.documentElement.scrollHeight),
  };
}
