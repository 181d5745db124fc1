// The case page's diagram: bpmn-js NavigatedViewer (bundled by esbuild, served by the console itself, no CDN).
// Marks completed, active and incident elements. The bpmn.io watermark (its licence requires it) stays as
// bpmn-js draws it: nothing here hides or covers it.
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";

function start() {
  var vak = document.getElementById("diagram");
  if (!vak) { return; }
  var fout = document.getElementById("diagram-fout");
  var markeringen = JSON.parse(document.getElementById("markeringen").textContent || "{}");
  var viewer = new NavigatedViewer({ container: vak });
  function toon(tekst) { fout.textContent = tekst; fout.hidden = false; }
  fetch(vak.getAttribute("data-bpmn-url"), { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) { throw new Error("diagram niet geladen (" + r.status + ")"); } return r.text(); })
    .then(function (xml) { return viewer.importXML(xml); })
    .then(function () {
      var canvas = viewer.get("canvas");
      var register = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport");
      [["klaar", "ipsflow-klaar"], ["actief", "ipsflow-actief"], ["incident", "ipsflow-incident"]].forEach(function (p) {
        (markeringen[p[0]] || []).forEach(function (id) { if (register.get(id)) { canvas.addMarker(id, p[1]); } });
      });
      // A large diagram fitted whole is unreadable: show the first active (or incident) element at a readable scale.
      var focus = (markeringen.incident || []).concat(markeringen.actief || []).map(function (id) {
        return register.get(id);
      }).filter(Boolean)[0];
      if (focus && canvas.zoom() < 0.8) {
        canvas.zoom(0.8);
        canvas.scrollToElement(focus, { top: 150, bottom: 150, left: 300, right: 300 });
      }
      // The definition view: per element the cases there now, with an open incident, and done, as badges.
      var tellingen = document.getElementById("tellingen");
      if (tellingen) {
        var overlays = viewer.get("overlays");
        var perElement = JSON.parse(tellingen.textContent || "{}");
        Object.keys(perElement).forEach(function (id) {
          if (!register.get(id)) { return; }
          var t = perElement[id];
          var badge = document.createElement("div");
          badge.className = "ipsflow-badges";
          badge.setAttribute("aria-hidden", "true"); // the table under the diagram says the same in words
          [["actief", t.actief], ["incident", t.incident], ["afgerond", t.afgerond]].forEach(function (p) {
            if (!p[1]) { return; }
            var span = document.createElement("span");
            span.className = "ipsflow-badge ipsflow-badge-" + p[0];
            span.textContent = String(p[1]);
            span.title = p[1] + " " + p[0];
            badge.appendChild(span);
          });
          if (badge.childNodes.length) {
            overlays.add(id, "ipsflow-telling", { position: { top: -14, left: 0 }, html: badge });
          }
        });
      }
      vak.setAttribute("data-geladen", "ja");
    })
    .catch(function (e) { toon("Het diagram kon niet worden getoond: " + e.message); vak.setAttribute("data-geladen", "fout"); });
}

if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
