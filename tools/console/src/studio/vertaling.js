// Dutch for what a process owner sees most (palette, context pad, the properties panel's own groups); anything
// not listed stays as bpmn-js writes it.
const NL = {
  "General": "Algemeen", "Name": "Naam", "ID": "ID", "Documentation": "Documentatie",
  "Element documentation": "Documentatie van het element", "Process documentation": "Documentatie van het proces",
  "Timer": "Timer", "Condition": "Voorwaarde", "Conditions": "Voorwaarden",
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
  // the element types in the properties panel's header and the replace menu
  "Task": "Taak", "Service Task": "Servicetaak", "User Task": "Gebruikerstaak", "Script Task": "Scripttaak",
  "Business Rule Task": "Beslisregeltaak", "Receive Task": "Ontvangsttaak", "Send Task": "Verzendtaak",
  "Manual Task": "Handmatige taak", "Call Activity": "Aanroepactiviteit", "Sub Process": "Subproces",
  "Start Event": "Begingebeurtenis", "End Event": "Eindgebeurtenis", "Message Start Event": "Begingebeurtenis (bericht)",
  "Timer Start Event": "Begingebeurtenis (timer)", "Message End Event": "Eindgebeurtenis (bericht)",
  "Error End Event": "Eindgebeurtenis (fout)", "Terminate End Event": "Eindgebeurtenis (beëindigen)",
  "Intermediate Throw Event": "Tussengebeurtenis (werpen)", "Intermediate Catch Event": "Tussengebeurtenis (vangen)",
  "Message Intermediate Catch Event": "Tussengebeurtenis (bericht)", "Timer Intermediate Catch Event":
    "Tussengebeurtenis (timer)", "Boundary Event": "Randgebeurtenis", "Timer Boundary Event": "Randgebeurtenis (timer)",
  "Message Boundary Event": "Randgebeurtenis (bericht)", "Error Boundary Event": "Randgebeurtenis (fout)",
  "(Non Interrupting) Timer Boundary Event": "Randgebeurtenis (timer, niet onderbrekend)",
  "(Non Interrupting) Message Boundary Event": "Randgebeurtenis (bericht, niet onderbrekend)",
  "Exclusive Gateway": "Exclusieve gateway", "Parallel Gateway": "Parallelle gateway",
  "Inclusive Gateway": "Inclusieve gateway", "Event Based Gateway": "Gebeurtenisgestuurde gateway",
  "Sequence Flow": "Volgordestroom", "Conditional Flow": "Voorwaardelijke stroom", "Default Flow": "Standaardstroom",
  "Message Flow": "Berichtstroom", "Lane": "Lane", "Participant": "Pool", "Process": "Proces",
  "Text Annotation": "Notitie", "Data Object Reference": "Gegevensobject", "Data Store Reference": "Gegevensopslag",
  "Group": "Groep", "Association": "Associatie", "Message": "Bericht",
};

// A diagram-js/dmn-js `translate` module from a table: a template not in it stays as the library writes it.
export function vertaalModule(tabel) {
  const vertaal = (template, replacements) => (tabel[template] || template)
    .replace(/{\s*([^}\s]+)\s*}/g, (heel, key) => (replacements && key in replacements ? replacements[key] : heel));
  return { translate: ["value", vertaal] };
}

export default vertaalModule(NL);
