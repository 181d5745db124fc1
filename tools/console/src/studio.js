// The studio: bpmn-js Modeler with the properties panel and our extension (studio/eigenschappen.jsx), bpmnlint
// while drawing (studio/regels.js) plus the server's check (parser, sandbox, catalogue) in one problems list that
// jumps to the element, the comparison with the deployed version (two diagrams, marked) with the running cases it
// concerns, and the deploy with a comment. The bpmn.io watermark stays as bpmn-js draws it, on every diagram.
import Modeler from "bpmn-js/lib/Modeler";
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";
import { BpmnPropertiesPanelModule, BpmnPropertiesProviderModule } from "bpmn-js-properties-panel";

import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "bpmn-js/dist/assets/bpmn-font/css/bpmn.css";
import "@bpmn-io/properties-panel/dist/assets/properties-panel.css";
import "./studio.css";

import IpsEigenschappen from "./studio/eigenschappen.jsx";
import spiffworkflow from "./studio/spiffworkflow.json";
import { zetCatalogus } from "./studio/catalogus";
import { lint } from "./studio/regels";
import vertaling from "./studio/vertaling";

const $ = (id) => document.getElementById(id);

function post(url, velden) {
  const body = new URLSearchParams(velden);
  body.set("csrf", $("studio-csrf").value);
  return fetch(url, { method: "POST", credentials: "same-origin", body,
    headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" } })
    .then((r) => r.json().catch(() => ({})).then((j) => ({ status: r.status, json: j })));
}

// The whole diagram in view, right of the palette (bpmn-js's "fit-viewport" uses the whole canvas, and the palette,
// which floats over its left edge, then covers the first elements of the process).
function passVrijVanPalet(modeler, container) {
  const canvas = modeler.get("canvas");
  const palet = container.querySelector(".djs-palette");
  const links = palet ? palet.getBoundingClientRect().right - container.getBoundingClientRect().left : 0;
  const { inner, outer } = canvas.viewbox();
  const rand = 12;
  const schaal = Math.min((outer.width - links - 2 * rand) / inner.width, (outer.height - 2 * rand) / inner.height, 1);
  if (!(schaal > 0)) { canvas.zoom("fit-viewport"); return; }  // an empty or hidden canvas (at most 1: finite)
  canvas.viewbox({ x: inner.x - (links + rand) / schaal, y: inner.y - rand / schaal,
    width: outer.width / schaal, height: outer.height / schaal });
}

function tekst(el, s) { el.textContent = s; return el; }
function maak(tag, cls, s) { const el = document.createElement(tag); if (cls) { el.className = cls; } if (s !== undefined) { el.textContent = s; } return el; }

function start() {
  const vak = $("modeler");
  if (!vak) { return; }
  const gegevens = JSON.parse($("studio-gegevens").textContent);
  zetCatalogus(gegevens.catalogus);
  const modeler = new Modeler({
    container: vak,
    // "Algemeen" (name, id) and our groups open: what a process owner edits most, without hunting for it.
    propertiesPanel: { parent: "#eigenschappen", layout: { groups: Object.fromEntries(["general",
      "ips-opdracht-groep", "ips-script-groep", "ips-dmn-groep", "ips-formulier-groep", "ips-bericht-groep",
      "ips-lane-groep"].map((g) => [g, { open: true }])) } },
    additionalModules: [vertaling, BpmnPropertiesPanelModule, BpmnPropertiesProviderModule,
      { __init__: ["ipsEigenschappen"], ipsEigenschappen: ["type", IpsEigenschappen] }],
    moddleExtensions: { spiffworkflow },
  });
  window.ipsStudio = modeler; // for the browser test and the curious: the page's own modeler
  const status = $("studio-status");
  let lintProblemen = [];
  let importProblemen = [];
  let serverProblemen = [];
  let serverTimer = null;
  let lintTimer = null;
  let gemarkeerd = [];
  let versie = 0; // counts changes: an answer for an older diagram is thrown away

  function naamVan(id) {
    const el = modeler.get("elementRegistry").get(id);
    const naam = el && el.businessObject && el.businessObject.name;
    return naam ? `${naam} (${id})` : id || "het diagram";
  }

  function springNaar(id) {
    const el = modeler.get("elementRegistry").get(id);
    if (!el) { return; }
    modeler.get("selection").select(el);
    const canvas = modeler.get("canvas");
    if (canvas.zoom() < 0.8) { canvas.zoom(1); }
    if (el.waypoints || el.x !== undefined) { canvas.scrollToElement(el, { top: 120, bottom: 120, left: 200, right: 200 }); }
    vak.focus();
  }

  function toonProblemen() {
    const lijst = $("problemen");
    lijst.replaceChildren();
    const canvas = modeler.get("canvas");
    const register = modeler.get("elementRegistry");
    gemarkeerd.forEach(([id, cls]) => { if (register.get(id)) { canvas.removeMarker(id, cls); } });
    gemarkeerd = [];
    const alle = importProblemen.concat(serverProblemen, lintProblemen);
    alle.forEach((p) => {
      const li = maak("li", `probleem ${p.categorie}`);
      const knop = maak("button", "probleem-knop");
      knop.type = "button";
      knop.dataset.element = p.element || "";
      knop.append(maak("span", "soort", p.categorie === "error" ? "fout" : "waarschuwing"), " ",
        maak("strong", "", naamVan(p.element)), `: ${p.melding} `, maak("span", "regel", `(${p.regel})`));
      knop.addEventListener("click", () => springNaar(p.element));
      li.append(knop);
      lijst.append(li);
      const cls = p.categorie === "error" ? "ips-probleem-fout" : "ips-probleem-waarschuwing";
      if (p.element && register.get(p.element)) { canvas.addMarker(p.element, cls); gemarkeerd.push([p.element, cls]); }
    });
    const fouten = alle.filter((p) => p.categorie === "error").length;
    tekst($("problemen-samenvatting"), alle.length ? `${fouten} fout(en), ${alle.length - fouten} waarschuwing(en)`
      : "Geen problemen gevonden.");
    $("uitrollen").disabled = fouten > 0;
    vak.dataset.problemen = String(alle.length);
  }

  function xml() { return modeler.saveXML({ format: true }).then((r) => r.xml); }

  function lintNu() {
    return lint(modeler.getDefinitions()).then((gevonden) => { lintProblemen = gevonden; toonProblemen(); });
  }

  function serverControle() {
    const mijn = versie;
    vak.dataset.serverControle = "bezig";
    return xml().then((x) => post(gegevens.urls.controle, { bpmn: x })).then((a) => {
      if (mijn !== versie) { return; }
      if (a.status !== 200) { serverProblemen = [{ element: null, regel: "server", categorie: "error", melding: a.json.melding || "De controle op de server is mislukt." }]; }
      else {
        serverProblemen = a.json.problemen.map((p) => ({ element: p.element, regel: `server: ${p.regel}`,
          categorie: "error", melding: p.melding }));
      }
      toonProblemen();
      vak.dataset.serverControle = "klaar";
    });
  }

  modeler.on("commandStack.changed", () => {
    versie += 1;
    $("vergelijking").hidden = true;
    clearTimeout(lintTimer);
    lintTimer = setTimeout(lintNu, 250);
    clearTimeout(serverTimer);
    vak.dataset.serverControle = "wacht";
    serverTimer = setTimeout(serverControle, 1200);
  });

  function markeer(viewer, ids, cls) {
    const register = viewer.get("elementRegistry");
    ids.forEach((id) => {
      const el = register.get(id);
      if (!el) { return; }
      // A lane or pool is marked by its border only: filled, it would colour everything in it.
      const rand = el.type === "bpmn:Lane" || el.type === "bpmn:Participant";
      viewer.get("canvas").addMarker(id, rand ? `${cls}-rand` : cls);
    });
  }

  function toonEerste(viewer, ids) {
    // The whole diagram fitted is unreadable: show the first marked task, event or flow at a readable scale.
    const register = viewer.get("elementRegistry");
    const eerste = ids.map((id) => register.get(id)).find((el) => el && el.type !== "bpmn:Lane" && el.type !== "bpmn:Participant");
    const canvas = viewer.get("canvas");
    if (eerste && canvas.zoom() < 0.8) {
      canvas.zoom(0.8);
      canvas.scrollToElement(eerste, { top: 150, bottom: 150, left: 250, right: 250 });
    }
  }

  function viewerMet(container, bron, markeringen) {
    container.replaceChildren();
    const viewer = new NavigatedViewer({ container, moddleExtensions: { spiffworkflow } });
    return viewer.importXML(bron).then(() => {
      viewer.get("canvas").zoom("fit-viewport");
      markeringen.forEach(([ids, cls]) => markeer(viewer, ids, cls));
      toonEerste(viewer, [].concat(...markeringen.map(([ids]) => ids)));
      return viewer;
    });
  }

  function vergelijk() {
    tekst(status, "Vergelijken met de uitgerolde versie…");
    return xml().then((nieuw) => post(gegevens.urls.vergelijking, { bpmn: nieuw }).then((a) => {
      if (a.status !== 200) { tekst(status, a.json.melding || "Vergelijken is mislukt."); return; }
      const v = a.json;
      $("vergelijking").hidden = false;
      const gewijzigd = v.gewijzigd.map((g) => g.element);
      tekst($("basis-label"), v.basis ? `Uitgerold: versie ${v.basis.versie}` : "Nog niets uitgerold");
      const oud = v.basis ? fetch(gegevens.urls.diagram.replace("HASH", v.basis.hash), { credentials: "same-origin" }).then((r) => r.text()) : Promise.resolve(null);
      return oud.then((oudXml) => Promise.all([
        oudXml ? viewerMet($("diagram-oud"), oudXml, [[v.verwijderd, "ips-verwijderd"], [gewijzigd, "ips-gewijzigd"]]) : null,
        viewerMet($("diagram-nieuw"), nieuw, [[v.toegevoegd, "ips-toegevoegd"], [gewijzigd, "ips-gewijzigd"]]),
      ])).then(() => {
        const lijst = $("wijzigingen");
        lijst.replaceChildren();
        [["toegevoegd", v.toegevoegd.map((id) => [id, ""])], ["verwijderd", v.verwijderd.map((id) => [id, ""])],
         ["gewijzigd", v.gewijzigd.map((g) => [g.element, g.wat.join(", ")])]].forEach(([soort, items]) => {
          items.forEach(([id, wat]) => lijst.append(maak("li", `wijziging ${soort}`, `${soort}: ${naamVan(id)}${wat ? ` (${wat})` : ""}`)));
        });
        if (!lijst.children.length) { lijst.append(maak("li", "", "Geen verschil met de uitgerolde versie.")); }
        const tabel = $("betrokken-zaken");
        tabel.replaceChildren();
        v.zaken.forEach((z) => {
          const tr = maak("tr");
          const td = maak("td");
          const a2 = maak("a", "", z.zaak);
          a2.href = `/zaken/${encodeURIComponent(z.zaak)}`;
          td.append(a2);
          tr.append(td, maak("td", "", `v${z.versie}`),
            maak("td", "", z.elementen.map((e) => `${e.element}: ${e.reden}`).join("; ")));
          tabel.append(tr);
        });
        tekst($("aantal-zaken"), v.aantalZaken === 0 ? "Geen lopende zaak wacht in een verwijderd of gewijzigd element."
          : `${v.aantalZaken} lopende zaak/zaken wacht(en) in een verwijderd of gewijzigd element` +
            (v.aantalZaken > v.zaken.length ? ` (de eerste ${v.zaken.length} staan hieronder)` : "") +
            ". Zij blijven op hun eigen versie tot ze gemigreerd worden.");
        tekst(status, "Vergeleken.");
        $("vergelijking").dataset.geladen = "ja";
        $("vergelijking").scrollIntoView();
      });
    })).catch((e) => tekst(status, `Vergelijken is mislukt: ${e.message}`));
  }

  function uitrollen(ev) {
    ev.preventDefault();
    const toelichting = $("toelichting").value.trim();
    if (!toelichting) { tekst(status, "Geef een toelichting: waarom deze versie?"); $("toelichting").focus(); return; }
    tekst(status, "Controleren en uitrollen…");
    lintNu().then(() => {
      if (lintProblemen.some((p) => p.categorie === "error")) { tekst(status, "Niet uitgerold: los eerst de fouten op."); return null; }
      return xml().then((x) => post(gegevens.urls.uitrollen, { bpmn: x, toelichting })).then((a) => {
        if (a.status === 409 && a.json.problemen) {
          serverProblemen = a.json.problemen.map((p) => ({ element: p.element, regel: `server: ${p.regel}`, categorie: "error", melding: p.melding }));
          toonProblemen();
          tekst(status, "Niet uitgerold: de controle op de server vond fouten (zie Problemen).");
          $("problemen").querySelector("button") && $("problemen").querySelector("button").focus();
        } else if (a.status === 200 || a.status === 201) {
          tekst(status, a.json.nieuw ? `Versie ${a.json.versie} is uitgerold.` : `Deze inhoud was al uitgerold als versie ${a.json.versie}.`);
          window.setTimeout(() => window.location.reload(), 800);
        } else {
          tekst(status, `Niet uitgerold: ${a.json.melding || a.status}`);
        }
      });
    }).catch((e) => tekst(status, `Uitrollen is mislukt: ${e.message}`));
  }

  $("controleren").addEventListener("click", () => { tekst(status, "Controleren…"); lintNu().then(serverControle).then(() => tekst(status, "Gecontroleerd.")); });
  $("vergelijken").addEventListener("click", vergelijk);
  $("uitrol-formulier").addEventListener("submit", uitrollen);

  fetch(gegevens.urls.bron, { credentials: "same-origin" })
    .then((r) => { if (!r.ok) { throw new Error(`diagram niet geladen (${r.status})`); } return r.text(); })
    .then((bron) => modeler.importXML(bron))
    .then((uitslag) => {
      // What the modeler did not understand it leaves out when it saves: that version must not be deployed.
      importProblemen = (uitslag.warnings || []).map((w) => ({ element: w.element && w.element.id, regel: "import",
        categorie: "error", melding: `niet begrepen, zou bij uitrollen verloren gaan: ${w.message.split("\n")[0]}` }));
      passVrijVanPalet(modeler, vak);
      return lintNu();
    })
    .then(() => { vak.dataset.geladen = "ja"; tekst(status, "Geladen."); })
    .catch((e) => { tekst(status, `Het diagram kon niet worden geladen: ${e.message}`); vak.dataset.geladen = "fout"; });
}

if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
