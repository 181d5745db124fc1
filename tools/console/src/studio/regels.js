// bpmnlint in the browser: the recommended rules plus ours (the server checks the same before a deploy, and
// compiles every script in the sandbox). Resolved statically: esbuild bundles every rule, nothing is fetched.
import { Linter } from "bpmnlint";
import StaticResolver from "bpmnlint/lib/resolver/static-resolver";
import recommended from "bpmnlint/config/recommended";
import { is } from "bpmnlint-utils";

import { catalogus } from "./catalogus";

import adHocSubProcess from "bpmnlint/rules/ad-hoc-sub-process";
import conditionalFlows from "bpmnlint/rules/conditional-flows";
import endEventRequired from "bpmnlint/rules/end-event-required";
import eventBasedGateway from "bpmnlint/rules/event-based-gateway";
import eventSubProcessTypedStartEvent from "bpmnlint/rules/event-sub-process-typed-start-event";
import fakeJoin from "bpmnlint/rules/fake-join";
import global from "bpmnlint/rules/global";
import labelRequired from "bpmnlint/rules/label-required";
import linkEvent from "bpmnlint/rules/link-event";
import noBpmndi from "bpmnlint/rules/no-bpmndi";
import noComplexGateway from "bpmnlint/rules/no-complex-gateway";
import noDisconnected from "bpmnlint/rules/no-disconnected";
import noDuplicateSequenceFlows from "bpmnlint/rules/no-duplicate-sequence-flows";
import noGatewayJoinFork from "bpmnlint/rules/no-gateway-join-fork";
import noImplicitSplit from "bpmnlint/rules/no-implicit-split";
import noImplicitEnd from "bpmnlint/rules/no-implicit-end";
import noImplicitStart from "bpmnlint/rules/no-implicit-start";
import noInclusiveGateway from "bpmnlint/rules/no-inclusive-gateway";
import noOverlappingElements from "bpmnlint/rules/no-overlapping-elements";
import singleBlankStartEvent from "bpmnlint/rules/single-blank-start-event";
import singleEventDefinition from "bpmnlint/rules/single-event-definition";
import startEventRequired from "bpmnlint/rules/start-event-required";
import subProcessBlankStartEvent from "bpmnlint/rules/sub-process-blank-start-event";
import superfluousGateway from "bpmnlint/rules/superfluous-gateway";
import superfluousLabel from "bpmnlint/rules/superfluous-label";
import superfluousTermination from "bpmnlint/rules/superfluous-termination";

const AANBEVOLEN = {
  "ad-hoc-sub-process": adHocSubProcess, "conditional-flows": conditionalFlows,
  "end-event-required": endEventRequired, "event-based-gateway": eventBasedGateway,
  "event-sub-process-typed-start-event": eventSubProcessTypedStartEvent, "fake-join": fakeJoin, global,
  "label-required": labelRequired, "link-event": linkEvent, "no-bpmndi": noBpmndi,
  "no-complex-gateway": noComplexGateway, "no-disconnected": noDisconnected,
  "no-duplicate-sequence-flows": noDuplicateSequenceFlows, "no-gateway-join-fork": noGatewayJoinFork,
  "no-implicit-split": noImplicitSplit, "no-implicit-end": noImplicitEnd, "no-implicit-start": noImplicitStart,
  "no-inclusive-gateway": noInclusiveGateway, "no-overlapping-elements": noOverlappingElements,
  "single-blank-start-event": singleBlankStartEvent, "single-event-definition": singleEventDefinition,
  "start-event-required": startEventRequired, "sub-process-blank-start-event": subProcessBlankStartEvent,
  "superfluous-gateway": superfluousGateway, "superfluous-label": superfluousLabel,
  "superfluous-termination": superfluousTermination,
};

function extensie(node, type) {
  const ext = node.extensionElements;
  return ext ? (ext.values || []).find((v) => v.$type === "spiffworkflow:" + type) : undefined;
}

// A service task names a command from the catalogue, and gives every parameter an expression.
function serviceOpdracht() {
  return { check(node, reporter) {
    if (!is(node, "bpmn:ServiceTask")) { return; }
    const op = extensie(node, "ServiceTaskOperator");
    const naam = op && op.id;
    if (!naam) {
      reporter.report(node.id, "Servicetaak zonder opdracht: kies een opdracht uit de berichtencatalogus");
    } else if (!catalogus().commandos.some((c) => c.type === naam)) {
      reporter.report(node.id, `Opdracht '${naam}' staat niet in de berichtencatalogus`);
    }
    ((op && op.parameters && op.parameters.parameter) || []).forEach((p) => {
      if (!(p.value || "").trim()) {
        reporter.report(node.id, `Parameter '${p.id}' heeft geen waarde (een expressie)`);
      }
    });
  } };
}

// Every message a diagram sends or waits for is in the catalogue (its name is the CloudEvents type).
function berichtCatalogus() {
  return { check(node, reporter) {
    if (!is(node, "bpmn:Message")) { return; }
    const bekend = catalogus().gebeurtenissen.concat(catalogus().commandos).some((m) => m.type === node.name);
    if (!bekend) { reporter.report(node.id, `Bericht '${node.name || ""}' staat niet in de berichtencatalogus`); }
  } };
}

// A user task lies in a lane whose name is a role (the engine gives the task to that role only).
function laneRol() {
  return { check(node, reporter) {
    if (!is(node, "bpmn:Process")) { return; }
    const rollen = catalogus().rollen || {};
    const laneVan = new Map();
    (node.laneSets || []).forEach(function lanes(set) {
      (set.lanes || []).forEach((lane) => {
        (lane.flowNodeRef || []).forEach((ref) => laneVan.set(ref.id, lane));
        if (lane.childLaneSet) { lanes(lane.childLaneSet); }
      });
    });
    (node.flowElements || []).filter((e) => is(e, "bpmn:UserTask")).forEach((taak) => {
      const lane = laneVan.get(taak.id);
      if (!lane) {
        reporter.report(taak.id, "Gebruikerstaak buiten een lane: de lane noemt de rol die de taak doet");
      } else if (rollen[(lane.name || "").trim().toLowerCase()] === undefined) {
        reporter.report(taak.id, `Lane '${lane.name || ""}' noemt geen rol (${Object.keys(rollen).join(", ")})`);
      }
    });
  } };
}

// A user task's form is a JSON Schema object.
function formulierJson() {
  return { check(node, reporter) {
    if (!is(node, "bpmn:UserTask")) { return; }
    const lijst = extensie(node, "Properties");
    const p = lijst && (lijst.property || []).find((x) => x.name === "formSchema");
    if (!p) { return; }
    try {
      const schema = JSON.parse(p.value || "");
      if (!schema || typeof schema !== "object" || Array.isArray(schema)) { throw new Error("geen object"); }
    } catch (e) {
      reporter.report(node.id, "Het formulier is geen JSON Schema (JSON-object)");
    }
  } };
}

const cache = { "config:bpmnlint/recommended": recommended };
Object.keys(AANBEVOLEN).forEach((n) => { cache[`rule:bpmnlint/${n}`] = AANBEVOLEN[n]; });
const EIGEN = { "service-opdracht": serviceOpdracht, "bericht-catalogus": berichtCatalogus, "lane-rol": laneRol,
  "formulier-json": formulierJson };
Object.keys(EIGEN).forEach((n) => { cache[`rule:bpmnlint-plugin-ipsflow/${n}`] = EIGEN[n]; });

const CONFIG = { extends: "bpmnlint:recommended", rules: {} };
Object.keys(EIGEN).forEach((n) => { CONFIG.rules[`ipsflow/${n}`] = "error"; });


// The recommended rules report in English; the process owners read Dutch (the rule's name stays in the list).
const NEDERLANDS = {
  "label-required": "naam ontbreekt",
  "no-disconnected": "niet verbonden met de rest van het proces",
  "no-implicit-split": "splitst zonder gateway (meer uitgaande stromen zonder voorwaarde)",
  "no-implicit-start": "begint impliciet: verbind het met een begingebeurtenis",
  "no-implicit-end": "eindigt impliciet: verbind het met een eindgebeurtenis",
  "no-overlapping-elements": "overlapt een ander element",
  "conditional-flows": "uitgaande stroom zonder voorwaarde (of maak er de standaardstroom van)",
  "superfluous-gateway": "overbodige gateway (één ingaande en één uitgaande stroom)",
  "fake-join": "voegt samen zonder gateway",
  "start-event-required": "begingebeurtenis ontbreekt",
  "end-event-required": "eindgebeurtenis ontbreekt",
  "no-duplicate-sequence-flows": "dubbele stroom",
  "no-gateway-join-fork": "gateway voegt samen én splitst",
  "no-bpmndi": "staat niet in het diagram (geen BPMNDI)",
  "single-blank-start-event": "meer dan één lege begingebeurtenis",
  "superfluous-label": "overbodig label",
};

/** Every problem in the diagram: [{element, regel, categorie ("error"/"warn"), melding}]. */
export async function lint(definitions) {
  // A fresh linter each time: rules keep what they saw in their closure (no-duplicate-sequence-flows would report
  // every flow of the previous run as a duplicate).
  const uitslag = await new Linter({ config: CONFIG, resolver: new StaticResolver(cache) }).lint(definitions);
  const uit = [];
  Object.keys(uitslag).forEach((regel) => {
    const kort = regel.replace(/^bpmnlint\//, "");
    uitslag[regel].forEach((r) => uit.push({ element: r.id, regel: kort, categorie: r.category,
      melding: NEDERLANDS[kort] || r.message }));
  });
  return uit;
}

