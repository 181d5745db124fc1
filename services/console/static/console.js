// The overview refreshes itself: every few seconds the server renders the figures again (no inline script: CSP).
(function () {
  "use strict";
  var vak = document.getElementById("overzicht");
  if (!vak) { return; }
  var url = vak.getAttribute("data-ververs-url");
  var seconden = parseInt(vak.getAttribute("data-ververs-seconden"), 10) || 10;
  function ververs() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || !r.ok) { throw new Error("niet ververst"); }
        return r.text();
      })
      .then(function (html) { vak.innerHTML = html; })
      .catch(function () { /* keep the last figures; the next round tries again */ })
      .then(function () { window.setTimeout(ververs, seconden * 1000); });
  }
  window.setTimeout(ververs, seconden * 1000);
}());
