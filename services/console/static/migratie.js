// A migration running in the engine's background: every two seconds its counts, and the page again (with the
// outcome per case) once it is no longer "bezig" (no inline script: CSP).
(function () {
  "use strict";
  var vak = document.getElementById("voortgang");
  if (!vak) { return; }
  var url = vak.getAttribute("data-voortgang-url");
  function zet(id, waarde) { var el = document.getElementById(id); if (el) { el.textContent = String(waarde); } }
  function kijk() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("geen voortgang"); } return r.json(); })
      .then(function (v) {
        if (v.status !== "bezig") { window.location.reload(); return; }
        document.getElementById("voortgang-balk").value = v.verwerkt;
        zet("aantal-verwerkt", v.verwerkt);
        zet("aantal-verplaatst-tot-nu", v.verplaatst);
        zet("aantal-geblokkeerd-tot-nu", v.geblokkeerd);
        zet("aantal-mislukt-tot-nu", v.mislukt);
        window.setTimeout(kijk, 2000);
      })
      .catch(function () { window.setTimeout(kijk, 5000); });
  }
  window.setTimeout(kijk, 2000);
}());
