// Dutch for what a process owner sees most (palette, context pad, the properties panel's own groups); anything
// not listed stays as bpmn-js writes it.
const NL = {
  "General": "Algemeen", "Name": "Naam", "ID": "ID", "Documentation": "Documentatie",
  "Element documentation": "Documentatie van het element", "Process documentation": "Documentatie van het proces",
  "Message": "Bericht", "Timer": "Timer", "Condition": "Voorwaarde", "Conditions": "Voorwaarden",
  "Type": "Soort", "Value": "Waarde", "Expression": "Expressie", "Script": "Script", "Process ID": "Proces-ID",
  "Executable": "Uitvoerbaar", "Signal": "Signaal", "Error": "Fout", "Escalation": "Escalatie",
  "Multi-instance": "Meervoudig", "Create new ...": "Nieuw ...", "<none>": "<geen>", "<empty>": "<leeg>",
  "Activate hand tool": "Handje: het diagram verschuiven", "Activate lasso tool": "Lasso: elementen kiezen",
  "Activate create/remove space tool": "Ruimte maken of weghalen", "Activate global connect tool": "Verbinden",
  "Create start event": "Begingebeurtenis maken", "Create intermediate/boundary event": "Tussen- of randgebeurtenis maken",
  "Create end event": "Eindgebeurtenis maken", "Create gateway": "Gateway maken", "Create task": "Taak maken",
  "Create data object reference": "Gegevensobject maken", "Create data store reference": "Gegevensopslag maken",
  "Create expanded sub-process": "Subproces maken", "Create pool/participant": "Pool maken", "Create group": "Groep maken",
  "Append task": "Taak toevoegen", "Append end event": "Eindgebeurtenis toevoegen", "Append gateway": "Gateway toevoegen",
  "Append intermediate/boundary event": "Tussengebeurtenis toevoegen", "Change element": "Element wijzigen",
  "Delete": "Verwijderen", "Connect to other element": "Verbinden met een ander element",
  "Add text annotation": "Notitie toevoegen", "Add lane above": "Lane erboven", "Add lane below": "Lane eronder",
  "Divide into two lanes": "In twee lanes delen", "Divide into three lanes": "In drie lanes delen",
  "Search in diagram": "Zoeken in het diagram",
};

function vertaal(template, replacements) {
  const tekst = NL[template] || template;
  return tekst.replace(/{([^}]+)}/g, (_, key) => (replacements && key in replacements ? replacements[key] : `{${key}}`));
}

export default { translate: ["value", vertaal] };
