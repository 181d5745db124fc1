// Our slim properties for what the engine uses (SpiffWorkflow's extension elements), next to bpmn-js-properties-
// panel's own (name, id, documentation, messages, timers, conditions): the command of a service task chosen from
// the message catalogue with its parameters and result variable, scripts (script task, pre- and postScript), the
// message variable and payload, the DMN decision a business rule task calls, a lane's role (and so its
// organisation type), a user task's form (JSON Schema). Labels are Dutch: the process owners' language.
import { getBusinessObject, is } from "bpmn-js/lib/util/ModelUtil";
import { useService } from "bpmn-js-properties-panel";
import {
  SelectEntry, TextAreaEntry, TextFieldEntry,
  isSelectEntryEdited, isTextAreaEntryEdited, isTextFieldEntryEdited,
} from "@bpmn-io/properties-panel";

import { catalogus } from "./catalogus";

const SPIFF = "spiffworkflow:";

export function extensie(bo, type) {
  const ext = bo && bo.get("extensionElements");
  return ext ? (ext.get("values") || []).find((v) => v.$type === SPIFF + type) : undefined;
}

/** The extension element of this type on the element's business object, created (undoably) when missing. */
function zorgVoor(element, type, attrs, bpmnFactory, modeling) {
  const bo = getBusinessObject(element);
  let ext = bo.get("extensionElements");
  if (!ext) {
    ext = bpmnFactory.create("bpmn:ExtensionElements", { values: [] });
    ext.$parent = bo;
    modeling.updateModdleProperties(element, bo, { extensionElements: ext });
  }
  let gevonden = (ext.get("values") || []).find((v) => v.$type === SPIFF + type);
  if (!gevonden) {
    gevonden = bpmnFactory.create(SPIFF + type, attrs || {});
    gevonden.$parent = ext;
    modeling.updateModdleProperties(element, ext, { values: [...(ext.get("values") || []), gevonden] });
  }
  return gevonden;
}

function verwijder(element, type, modeling) {
  const ext = getBusinessObject(element).get("extensionElements");
  if (ext) {
    modeling.updateModdleProperties(element, ext, {
      values: (ext.get("values") || []).filter((v) => v.$type !== SPIFF + type),
    });
  }
}

/** A text body extension (preScript, postScript, calledDecisionId, messageVariable, messagePayload). */
function TekstExtensie(props) {
  const { element, id, type, label, meerregelig, omschrijving } = props;
  const modeling = useService("modeling");
  const bpmnFactory = useService("bpmnFactory");
  const debounce = useService("debounceInput");
  const getValue = () => {
    const el = extensie(getBusinessObject(element), type);
    return el ? el.get("value") || "" : "";
  };
  const setValue = (waarde) => {
    if (!waarde) { verwijder(element, type, modeling); return; }
    const el = zorgVoor(element, type, {}, bpmnFactory, modeling);
    modeling.updateModdleProperties(element, el, { value: waarde });
  };
  const Entry = meerregelig ? TextAreaEntry : TextFieldEntry;
  return <Entry element={element} id={id} label={label} description={omschrijving} getValue={getValue}
    setValue={setValue} debounce={debounce} monospace={meerregelig} rows={meerregelig ? 6 : undefined} />;
}

// The panel hands an entry's own fields to its component: one stable component per kind of entry (a new function
// per render would remount the field and lose what is being typed).
function tekstEntry(element, id, type, label, meerregelig, omschrijving) {
  return { id, element, type, label, meerregelig, omschrijving, component: TekstExtensie,
    isEdited: meerregelig ? isTextAreaEntryEdited : isTextFieldEntryEdited };
}

function OpdrachtKeuze({ element, id }) {
  const modeling = useService("modeling");
  const bpmnFactory = useService("bpmnFactory");
  const operator = () => extensie(getBusinessObject(element), "ServiceTaskOperator");
  const getValue = () => (operator() && operator().get("id")) || "";
  const setValue = (type) => {
    if (!type) { verwijder(element, "ServiceTaskOperator", modeling); return; }
    const commando = catalogus().commandos.find((c) => c.type === type);
    const op = zorgVoor(element, "ServiceTaskOperator", {}, bpmnFactory, modeling);
    const eigen = { id: type };
    if (commando && commando.resultaat && !op.get("resultVariable")) { eigen.resultVariable = commando.resultaat; }
    modeling.updateModdleProperties(element, op, eigen);
    let lijst = op.get("parameters");
    if (!lijst) {
      lijst = bpmnFactory.create(SPIFF + "Parameters", { parameter: [] });
      lijst.$parent = op;
      modeling.updateModdleProperties(element, op, { parameters: lijst });
    }
    const bestaand = new Set((lijst.get("parameter") || []).map((p) => p.get("id")));
    const nieuw = ((commando && commando.parameters) || []).filter((n) => !bestaand.has(n)).map((n) => {
      const p = bpmnFactory.create(SPIFF + "Parameter", { id: n, type: "str", value: "" });
      p.$parent = lijst;
      return p;
    });
    if (nieuw.length) {
      modeling.updateModdleProperties(element, lijst, { parameter: [...(lijst.get("parameter") || []), ...nieuw] });
    }
  };
  const getOptions = () => [{ value: "", label: "(kies een opdracht)" }].concat(
    catalogus().commandos.map((c) => ({ value: c.type, label: `${c.type} (${c.door})` })),
    getValue() && !catalogus().commandos.some((c) => c.type === getValue())
      ? [{ value: getValue(), label: `${getValue()} (niet in de catalogus)` }] : []);
  const commando = catalogus().commandos.find((c) => c.type === getValue());
  const uitleg = commando ? `Afgehandeld door ${commando.door}. Resultaat: ${commando.resultaat || "geen"}` +
    (commando.velden ? ` (${commando.velden})` : "") : "Uit de berichtencatalogus (bpmn/README.md).";
  return <SelectEntry element={element} id={id} label="Opdracht" description={uitleg} getValue={getValue}
    setValue={setValue} getOptions={getOptions} />;
}

function Resultaat({ element, id }) {
  const modeling = useService("modeling");
  const debounce = useService("debounceInput");
  const op = () => extensie(getBusinessObject(element), "ServiceTaskOperator");
  return <TextFieldEntry element={element} id={id} label="Resultaatvariabele" debounce={debounce}
    getValue={() => (op() && op().get("resultVariable")) || ""}
    setValue={(v) => op() && modeling.updateModdleProperties(element, op(), { resultVariable: v || undefined })} />;
}

function ParameterWaarde({ element, id, parameter }) {
  const modeling = useService("modeling");
  const debounce = useService("debounceInput");
  return <TextFieldEntry element={element} id={id} label={`${parameter.get("id")} (${parameter.get("type") || "str"})`}
    description="Python-expressie over de zaakgegevens (sandbox)" debounce={debounce}
    getValue={() => parameter.get("value") || ""}
    setValue={(v) => modeling.updateModdleProperties(element, parameter, { value: v || "" })} />;
}

function opdrachtEntries(element) {
  const op = extensie(getBusinessObject(element), "ServiceTaskOperator");
  const lijst = op && op.get("parameters");
  const entries = [
    { id: "ips-opdracht", element, isEdited: isSelectEntryEdited, component: OpdrachtKeuze },
    { id: "ips-resultaat", element, isEdited: isTextFieldEntryEdited, component: Resultaat },
  ];
  ((lijst && lijst.get("parameter")) || []).forEach((p, i) => {
    const id = `ips-parameter-${i}`;
    entries.push({ id, element, parameter: p, isEdited: isTextFieldEntryEdited, component: ParameterWaarde });
  });
  return entries;
}

function ScriptTekst({ element, id }) {
  const modeling = useService("modeling");
  const debounce = useService("debounceInput");
  const bo = getBusinessObject(element);
  return <TextAreaEntry element={element} id={id} label="Script (Python, sandbox)" rows={10} monospace
    debounce={debounce} getValue={() => bo.get("script") || ""}
    setValue={(v) => modeling.updateProperties(element, { scriptFormat: "python", script: v || "" })} />;
}

function formulier(bo) {
  const lijst = extensie(bo, "Properties");
  return lijst ? (lijst.get("property") || []).find((p) => p.get("name") === "formSchema") : undefined;
}

function Formulier({ element, id }) {
  const modeling = useService("modeling");
  const bpmnFactory = useService("bpmnFactory");
  const debounce = useService("debounceInput");
  const getValue = () => { const p = formulier(getBusinessObject(element)); return p ? p.get("value") || "" : ""; };
  const setValue = (v) => {
    let p = formulier(getBusinessObject(element));
    if (!p) {
      const lijst = zorgVoor(element, "Properties", {}, bpmnFactory, modeling);
      p = bpmnFactory.create(SPIFF + "Property", { name: "formSchema", value: "" });
      p.$parent = lijst;
      modeling.updateModdleProperties(element, lijst, { property: [...(lijst.get("property") || []), p] });
    }
    modeling.updateModdleProperties(element, p, { value: v || "" });
  };
  return <TextAreaEntry element={element} id={id} label="Formulier (JSON Schema)" rows={8} monospace
    description="Het formulier van de taak; de engine controleert de invoer ertegen." debounce={debounce}
    getValue={getValue} setValue={setValue} />;
}

function LaneRol({ element, id }) {
  const modeling = useService("modeling");
  const rollen = catalogus().rollen || {};
  const naam = () => (getBusinessObject(element).get("name") || "").trim();
  const getValue = () => (rollen[naam().toLowerCase()] !== undefined ? naam().toLowerCase() : "");
  const setValue = (rol) => {
    if (rol && naam().toLowerCase() !== rol) {
      modeling.updateLabel(element, rol.charAt(0).toUpperCase() + rol.slice(1));
    }
  };
  const rol = getValue();
  return <SelectEntry element={element} id={id} label="Rol" getValue={getValue} setValue={setValue}
    description={rol ? `Organisatietype: ${rollen[rol]}. Alleen wie deze rol heeft, bij dit organisatietype, ` +
      "doet de gebruikerstaken in deze lane." : "Deze lane noemt geen rol: er horen geen gebruikerstaken in."}
    getOptions={() => [{ value: "", label: naam() ? `(${naam()}: geen rol)` : "(geen rol)" }].concat(
      Object.keys(rollen).sort().map((r) => ({ value: r, label: `${r} (${rollen[r]})` })))} />;
}

function groepen(element) {
  const uit = [];
  const bo = getBusinessObject(element);
  if (is(element, "bpmn:ServiceTask")) {
    uit.push({ id: "ips-opdracht-groep", label: "Opdracht (berichtencatalogus)", entries: opdrachtEntries(element) });
  }
  if (is(element, "bpmn:ScriptTask")) {
    uit.push({ id: "ips-script-groep", label: "Script", entries: [
      { id: "ips-script", element, isEdited: isTextAreaEntryEdited, component: ScriptTekst }] });
  }
  if (is(element, "bpmn:BusinessRuleTask")) {
    uit.push({ id: "ips-dmn-groep", label: "Beslistabel (DMN)", entries: [tekstEntry(element, "ips-beslissing",
      "CalledDecisionId", "Beslissing (id in het DMN-bestand)", false, "Bijvoorbeeld Decision_ips_tarief.")] });
  }
  if (is(element, "bpmn:UserTask")) {
    uit.push({ id: "ips-formulier-groep", label: "Formulier", entries: [
      { id: "ips-formulier", element, isEdited: isTextAreaEntryEdited, component: Formulier }] });
  }
  const bericht = (bo.get("eventDefinitions") || []).find((d) => is(d, "bpmn:MessageEventDefinition"));
  if (is(element, "bpmn:ReceiveTask") || is(element, "bpmn:SendTask") || bericht) {
    uit.push({ id: "ips-bericht-groep", label: "Bericht (SpiffWorkflow)", entries: [
      tekstEntry(element, "ips-berichtvariabele", "MessageVariable", "Variabele voor de berichtgegevens", false,
        "De zaakvariabele die de gegevens van het ontvangen bericht krijgt."),
      tekstEntry(element, "ips-payload", "MessagePayload", "Inhoud (payload, bij versturen)", true,
        "Python-expressie; de correlatie volgt het zaakkenmerk (subject)."),
    ] });
  }
  if (is(element, "bpmn:Lane")) {
    uit.push({ id: "ips-lane-groep", label: "Rol en organisatie", entries: [
      { id: "ips-lane-rol", element, isEdited: isSelectEntryEdited, component: LaneRol }] });
  }
  if (is(element, "bpmn:Activity") && !is(element, "bpmn:SubProcess")) {
    uit.push({ id: "ips-scripts-groep", label: "Voor- en nascript", entries: [
      tekstEntry(element, "ips-prescript", "PreScript", "Voorscript (vóór de taak)", true),
      tekstEntry(element, "ips-postscript", "PostScript", "Nascript (na de taak)", true),
    ] });
  }
  return uit;
}

export default function IpsEigenschappen(propertiesPanel) {
  this.getGroups = (element) => (bestaande) => {
    const eigen = groepen(element);
    // Ours right after "Algemeen" (name and id): what a process owner edits most.
    return bestaande.length ? [bestaande[0], ...eigen, ...bestaande.slice(1)] : eigen;
  };
  propertiesPanel.registerProvider(400, this);
}
IpsEigenschappen.$inject = ["propertiesPanel"];
