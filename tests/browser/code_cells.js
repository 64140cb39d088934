// Opens every collapsed part of a page (hidden cells, dropdowns: a reader can open them, so
// their code must fit too), then measures the box of every code cell.
() => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  document.querySelectorAll(".toggle-hidden").forEach((el) => el.classList.remove("toggle-hidden"));
  return [...document.querySelectorAll("div.cell_input pre")].map((pre) => ({
    text: pre.textContent,
    scrollWidth: pre.scrollWidth,
    clientWidth: pre.clientWidth,
    padding: parseFloat(getComputedStyle(pre).paddingLeft) + parseFloat(getComputedStyle(pre).paddingRight),
    charWidth: (() => {
      const probe = document.createElement("span");
      probe.textContent = "x".repeat(100);
      pre.appendChild(probe);
      const w = probe.getBoundingClientRect().width / 100;
      probe.remove();
      return w;
    })(),
  }));
}
