// Loaded on pages with widgets, after require.js and before the widgets' HTML manager
// (_ext/offline_assets.py copies it to _static/vendor/ and puts it there). It fixes two things
// the manager gets wrong on these pages:
(function () {
  var here = document.currentScript ? document.currentScript.src : "";
  var vendor = here.replace(/[^/]*$/, ""); // _static/vendor/, whatever the query string
  // 1. Its webpack bundle looks for its font files next to the address require.js gives its
  //    module, which is the page's own folder unless require.js knows where the manager lives.
  if (window.require && window.require.config) {
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": vendor + "html-manager" },
    });
  }
  // 2. It typesets widget labels through MathJax 2's MathJax.Hub.Queue(["Typeset", hub, el]);
  //    the book runs MathJax 3, which has no Hub. Give it one that calls MathJax 3.
  function typeset(element) {
    var mathjax = window.MathJax;
    if (!element || !mathjax || !mathjax.startup || !mathjax.typesetPromise) return;
    mathjax.startup.promise = mathjax.startup.promise
      .then(function () { return mathjax.typesetPromise([element]); })
      .catch(function (error) { console.warn("MathJax could not typeset a widget:", error); });
  }
  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset") typeset(job[2]);
        else if (typeof job === "function") job();
      }
    },
  };
  // MathJax 3 (a deferred script) replaces window.MathJax before DOMContentLoaded; the manager
  // draws the widgets at the load event, after it.
  document.addEventListener("DOMContentLoaded", function () {
    if (window.MathJax && !window.MathJax.Hub) window.MathJax.Hub = hub;
  });
})();
