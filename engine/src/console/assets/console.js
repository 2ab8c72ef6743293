// genki console: a little progressive JavaScript. Every page works
// without it; with it the Today page refreshes itself and print buttons print.
(function () {
  "use strict";
  function live(el) {
    var url = el.getAttribute("data-live");
    var every = (parseInt(el.getAttribute("data-every"), 10) || 5) * 1000;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          // Signed out meanwhile: the fetch followed the redirect to the
          // sign-in page; show that page, not inside this one.
          if (r.redirected || r.status === 401) { window.location.reload(); return null; }
          if (r.status === 200) { return r.text(); }
          return null;
        })
        .then(function (html) {
          if (html === null) { return; }
          // Keep the keyboard where it was: replace only when nothing inside has focus.
          if (!el.contains(document.activeElement)) { el.innerHTML = html; }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.querySelectorAll("[data-live]");
    for (var i = 0; i < el.length; i++) { live(el[i]); }
    var p = document.querySelectorAll("[data-print]");
    for (var j = 0; j < p.length; j++) {
      p[j].addEventListener("click", function () { window.print(); });
    }
  });
})();
