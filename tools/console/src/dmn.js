// The studio's DMN editor: dmn-js (decision table) with a test bench. Every evaluation is the engine's
// (SpiffWorkflow's DMN engine in the script sandbox, the way a business rule task evaluates the table); this page
// only edits the table and the cases. The bpmn.io watermark stays where dmn-js draws it.
import DmnModeler from "dmn-js/lib/Modeler";

import dmnVertaling from "./studio/dmn-vertaling";

import "dmn-js/dist/assets/diagram-js.css";
import "dmn-js/dist/assets/dmn-js-shared.css";
import "dmn-js/dist/assets/dmn-js-drd.css";
import "dmn-js/dist/assets/dmn-js-decision-table.css";
import "dmn-js/dist/assets/dmn-js-decision-table-controls.css";
import "dmn-js/dist/assets/dmn-js-literal-expression.css";
import "dmn-js/dist/assets/dmn-font/css/dmn.css";
import "./dmn.css";

const DMN_NS = "https://www.omg.org/spec/DMN/20191111/MODEL/";
const GETALLEN = new Set(["integer", "long", "double", "number"]);
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...kinderen) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "tekst") node.textContent = v;
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const k of kinderen) node.append(k);
  return node;
}

function post(url, velden) {
  const body = new URLSearchParams(velden);
  body.set("csrf", $("dmn-csrf").value);
  return fetch(url, { method: "POST", credentials: "same-origin", body,
    headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json" } })
    .then((r) => r.json().catch(() => ({})).then((j) => ({ status: r.status, json: j })));
}

// A cell's text as the typed value the engine compares with: numbers for numeric columns, true/false for
// booleans, text otherwise (surrounding quotes dropped); an empty cell is "no value".
function waarde(tekst, typeRef) {
  const t = tekst.trim();
  if (t === "") return null;
  if (GETALLEN.has(typeRef)) return Number.isNaN(Number(t)) ? t : Number(t);
  if (typeRef === "boolean") return t === "true" ? true : t === "false" ? false : t;
  return t.replace(/^"(.*)"$/, "$1");
}

function toon(v) {
  return v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
}

function kolommen(xml) {
  const doc = new DOMParser().parseFromString(xml, "application/xml");
  return [...doc.getElementsByTagNameNS(DMN_NS, "decision")].map((d) => ({
    id: d.getAttribute("id"), naam: d.getAttribute("name") || d.getAttribute("id"),
    invoer: [...d.getElementsByTagNameNS(DMN_NS, "input")].map((i) => ({
      id: i.getAttribute("id"), label: i.getAttribute("label") || i.getAttribute("id"),
      typeRef: (i.getElementsByTagNameNS(DMN_NS, "inputExpression")[0] || i).getAttribute("typeRef") || "string" })),
    uitvoer: [...d.getElementsByTagNameNS(DMN_NS, "output")].map((o) => ({
      naam: o.getAttribute("name") || o.getAttribute("id"), label: o.getAttribute("label") || o.getAttribute("name"),
      typeRef: o.getAttribute("typeRef") || "string" })),
  }));
}

async function start() {
  const g = JSON.parse($("dmn-gegevens").textContent);
  const status = $("dmn-status");
  // Dutch labels in every view (table, context menus, DRD): the UI is Dutch. Per view: dmn-js 17 drops the
  // additionalModules of its `common` option.
  const nl = { additionalModules: [dmnVertaling] };
  const modeler = new DmnModeler({ container: "#dmn-editor", decisionTable: nl, drd: nl, literalExpression: nl });
  try {
    await modeler.importXML(g.dmn);
    const tabel = modeler.getViews().find((v) => v.type === "decisionTable");
    if (tabel) await modeler.open(tabel);
  } catch (e) {
    status.textContent = `De tabel kon niet worden geladen: ${e.message}`;
    $("dmn-editor").dataset.geladen = "nee";
    return;
  }
  $("dmn-editor").dataset.geladen = "ja";
  status.textContent = "Tabel geladen.";

  let gevallen = g.testgevallen.map((c) => ({ ...c }));
  let uitkomsten = {};
  let beslissingen = kolommen(g.dmn);
  const xml = async () => (await modeler.saveXML({ format: true })).xml;
  const beslissing = (id) => beslissingen.find((b) => b.id === id) || beslissingen[0];

  function render() {
    const kop = $("testgevallen-kop");
    const romp = $("testgevallen-romp");
    kop.replaceChildren();
    romp.replaceChildren();
    const b = beslissingen[0];
    if (!b) return;
    kop.append(el("tr", {}, el("th", { scope: "col", tekst: "Testgeval" }),
      ...b.invoer.map((i) => el("th", { scope: "col", tekst: i.label })),
      ...b.uitvoer.map((o) => el("th", { scope: "col", tekst: `verwacht: ${o.label}` })),
      el("th", { scope: "col", tekst: "Uitkomst" }), el("th", { scope: "col", tekst: "Actie" })));
    gevallen.forEach((geval, n) => {
      const bg = beslissing(geval.beslissing);
      const rij = el("tr", { "data-testgeval": geval.naam });
      rij.append(el("th", { scope: "row", tekst: geval.naam }));
      for (const i of bg.invoer) {
        const veld = el("input", { type: "text", value: toon(geval.invoer[i.id]), size: "20",
          "aria-label": `${i.label} van testgeval ${geval.naam}` });
        veld.addEventListener("change", () => { geval.invoer[i.id] = waarde(veld.value, i.typeRef); });
        rij.append(el("td", {}, veld));
      }
      for (const o of bg.uitvoer) {
        const veld = el("input", { type: "text", value: toon(geval.verwacht[o.naam]), size: "10",
          "aria-label": `Verwacht ${o.label} van testgeval ${geval.naam}`, "data-uitvoer": o.naam });
        veld.addEventListener("change", () => {
          const v = waarde(veld.value, o.typeRef);
          if (v === null) delete geval.verwacht[o.naam]; else geval.verwacht[o.naam] = v;
        });
        rij.append(el("td", {}, veld));
      }
      const u = uitkomsten[geval.naam];
      const cel = el("td", { class: u ? (u.geslaagd ? "geslaagd" : "gefaald") : "" });
      if (u) {
        cel.textContent = u.geslaagd ? "geslaagd" : `gefaald: ${u.fout || `kreeg ${Object.keys(u.uitvoer).length
          ? JSON.stringify(u.uitvoer) : "geen regel"}`}`;
      } else cel.textContent = "nog niet gedraaid";
      rij.append(cel);
      const weg = el("button", { type: "button", tekst: "Verwijderen", "aria-label": `Testgeval ${geval.naam} verwijderen` });
      weg.addEventListener("click", () => { gevallen.splice(n, 1); render(); });
      rij.append(el("td", {}, weg));
      romp.append(rij);
    });
    const proef = $("proef-invoer");
    proef.replaceChildren();
    for (const i of b.invoer) {
      const id = `proef-${i.id}`;
      proef.append(el("p", {}, el("label", { for: id, tekst: i.label }), " ",
        el("input", { type: "text", id, "data-kolom": i.id, "data-type": i.typeRef, size: "20" })));
    }
  }

  async function vernieuwKolommen() {
    beslissingen = kolommen(await xml());
    render();
  }
  modeler.on("views.changed", vernieuwKolommen);
  render();

  $("testbank-draaien").addEventListener("click", async () => {
    const s = $("testbank-status");
    s.textContent = "De testbank draait…";
    const { status: code, json } = await post(g.urls.testbank, { dmn: await xml(), testgevallen: JSON.stringify(gevallen) });
    if (code !== 200) {
      s.textContent = `Niet gedraaid: ${json.melding || code} ${(json.problemen || []).map((p) => `${p.name}: ${p.reason}`).join("; ")}`;
      return;
    }
    uitkomsten = Object.fromEntries(json.uitkomsten.map((u) => [u.naam, u]));
    const mis = json.uitkomsten.filter((u) => !u.geslaagd).length;
    s.textContent = mis ? `${mis} van ${json.uitkomsten.length} testgevallen gefaald.`
      : `Alle ${json.uitkomsten.length} testgevallen geslaagd.`;
    s.dataset.geslaagd = mis ? "nee" : "ja";
    if (!mis) { $("uitrol-uitkomst").textContent = ""; $("uitrol-problemen").replaceChildren(); }
    render();
  });

  let laatste = null;
  $("proef-formulier").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const invoer = {};
    for (const veld of $("proef-invoer").querySelectorAll("input")) {
      invoer[veld.dataset.kolom] = waarde(veld.value, veld.dataset.type);
    }
    const b = beslissingen[0];
    const { status: code, json } = await post(g.urls.evaluatie, { dmn: await xml(), beslissing: b.id,
      invoer: JSON.stringify(invoer) });
    const uit = $("proef-uitkomst");
    if (code !== 200) {
      uit.textContent = `Niet geëvalueerd: ${json.melding || code}`;
      laatste = null;
      return;
    }
    laatste = { beslissing: b.id, invoer, uitvoer: json.uitvoer };
    uit.textContent = json.regelPast ? b.uitvoer.map((o) => `${o.label}: ${toon(json.uitvoer[o.naam])}`).join("; ")
      : "Geen regel past bij deze invoer.";
    $("proef-toevoegen").disabled = false;
  });

  $("proef-toevoegen").addEventListener("click", () => {
    if (!laatste) return;
    const naam = $("proef-naam").value.trim() || `testgeval ${gevallen.length + 1}`;
    gevallen = gevallen.filter((c) => c.naam !== naam);
    gevallen.push({ naam, beslissing: laatste.beslissing, invoer: laatste.invoer, verwacht: laatste.uitvoer });
    render();
  });

  $("uitrol-formulier").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const s = $("uitrol-uitkomst");
    s.textContent = "Uitrollen: de engine draait eerst de testbank…";
    const { status: code, json } = await post(g.urls.uitrollen, { dmn: await xml(),
      testgevallen: JSON.stringify(gevallen), toelichting: $("toelichting").value });
    const lijst = $("uitrol-problemen");
    lijst.replaceChildren();
    if (code === 200 || code === 201) {
      s.textContent = code === 201 ? `Versie ${json.versie} uitgerold; nieuwe zaken gebruiken deze tabel.`
        : `Deze inhoud was al uitgerold (versie ${json.versie}).`;
      s.dataset.uitgerold = "ja";
      return;
    }
    s.textContent = json.melding || `Niet uitgerold (${code}).`;
    s.dataset.uitgerold = "nee";
    for (const p of json.problemen || []) lijst.append(el("li", { tekst: `${p.testgeval}: ${p.melding}` }));
  });
}

start();
