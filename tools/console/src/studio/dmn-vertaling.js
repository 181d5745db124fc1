// Dutch for dmn-js (the decision table, its context menus and the DRD): every label dmn-js 17 passes through its
// `translate` service. Type names (string, integer, ...) and FEEL stay as they are: they are what the table holds.
import { vertaalModule } from "./vertaling";

const NL = {
  // the table
  "When": "Als", "And": "En", "Then": "Dan", "Annotations": "Toelichting", "Annotation": "Toelichting",
  "Hit policy:": "Hitpolicy:", "Hit policy": "Hitpolicy", "Decision name": "Naam van de beslissing",
  "Decision name: ": "Naam van de beslissing: ", "View DRD": "Beslismodel (DRD) bekijken",
  "Input": "Invoer", "Output": "Uitvoer", "Add input": "Invoer toevoegen", "Add output": "Uitvoer toevoegen",
  "Add rule": "Regel toevoegen", "Resize": "Breedte aanpassen", "Move rule": "Regel verplaatsen",
  "Unique": "Uniek", "First": "Eerste", "Priority": "Prioriteit", "Any": "Willekeurig", "Collect": "Verzamelen",
  "Collect (Sum)": "Verzamelen (som)", "Collect (Min)": "Verzamelen (minimum)", "Collect (Max)": "Verzamelen (maximum)",
  "Collect (Count)": "Verzamelen (aantal)", "Rule order": "Regelvolgorde", "Output order": "Uitvoervolgorde",
  "No overlap is possible and all rules are disjoint. Only a single rule can be matched":
    "Regels overlappen niet; er past altijd hoogstens één regel.",
  "Rules may overlap. The first matching rule will be chosen": "Regels mogen overlappen; de eerste passende regel telt.",
  "Rules may overlap. The one with the highest priority will be chosen":
    "Regels mogen overlappen; de passende regel met de hoogste prioriteit telt.",
  "Rules may overlap. Their output have to match": "Regels mogen overlappen; hun uitkomsten moeten gelijk zijn.",
  "Collects the values of all matching rules": "Verzamelt de uitkomsten van alle passende regels.",
  "Collects the values of all matching rules and sums up to a single value":
    "Telt de uitkomsten van alle passende regels op.",
  "Collects the values of all matching rules and uses the lowest value":
    "Neemt de laagste uitkomst van alle passende regels.",
  "Collects the values of all matching rules and uses the highest value":
    "Neemt de hoogste uitkomst van alle passende regels.",
  "Collects the values of all matching rules and counts the number of them": "Telt de passende regels.",
  "Collects the values of all matching rules in rule order": "Verzamelt de uitkomsten in de volgorde van de regels.",
  "Collects the values of all matching rules in decreasing output priority order":
    "Verzamelt de uitkomsten, hoogste uitvoerprioriteit eerst.",
  // context menus of rules and columns
  "Add rule above": "Regel erboven toevoegen", "Add rule below": "Regel eronder toevoegen",
  "Remove rule": "Regel verwijderen", "Copy rule": "Regel kopiëren", "Cut rule": "Regel knippen",
  "Paste rule above": "Regel erboven plakken", "Paste rule below": "Regel eronder plakken",
  "Add input column left": "Invoerkolom links toevoegen", "Add input column right": "Invoerkolom rechts toevoegen",
  "Add output column left": "Uitvoerkolom links toevoegen", "Add output column right": "Uitvoerkolom rechts toevoegen",
  "Remove input column": "Invoerkolom verwijderen", "Remove output column": "Uitvoerkolom verwijderen",
  "Copy input column": "Invoerkolom kopiëren", "Copy output column": "Uitvoerkolom kopiëren",
  "Cut input column": "Invoerkolom knippen", "Cut output column": "Uitvoerkolom knippen",
  "Paste input column left": "Invoerkolom links plakken", "Paste input column right": "Invoerkolom rechts plakken",
  "Paste output column left": "Uitvoerkolom links plakken", "Paste output column right": "Uitvoerkolom rechts plakken",
  "Add cell description": "Toelichting bij de cel", "Remove cell description": "Toelichting bij de cel weghalen",
  "Change cell expression language": "Expressietaal van de cel wijzigen",
  // editing a column or a cell
  "Edit input": "Invoer bewerken", "Edit output": "Uitvoer bewerken", "Input label": "Label van de invoer",
  "Input label: ": "Label van de invoer: ", "Input expression": "Invoerexpressie", "Input expression: ": "Invoerexpressie: ",
  "Input type": "Soort invoer", "Input values": "Toegestane invoerwaarden", "Output label": "Label van de uitvoer",
  "Output label: ": "Label van de uitvoer: ", "Output name": "Naam van de uitvoer", "Output name: ": "Naam van de uitvoer: ",
  "Output type": "Soort uitvoer", "Output values": "Toegestane uitvoerwaarden", "Type": "Soort",
  "Expression": "Expressie", "Expression language": "Expressietaal", "Expression language:": "Expressietaal:",
  "Expression language: {expressionLanguageLabel}": "Expressietaal: {expressionLanguageLabel}",
  "Editing not supported for set expression language": "Deze expressietaal kan hier niet worden bewerkt",
  "Enter expression": "Expressie invoeren", "Predefined values": "Vaste waarden", "Custom values": "Eigen waarden",
  "Add predefined values": "Vaste waarden toevoegen", "Clear predefined values": "Vaste waarden weghalen",
  "No values": "Geen waarden", "Add values": "Waarden toevoegen", "Set value": "Waarde kiezen", "Values": "Waarden",
  "Value": "Waarde", "Match one": "Eén ervan", "Match none": "Geen ervan", "Strings must be in double quotes":
    "Tekst staat tussen dubbele aanhalingstekens", "e.g. { example } ": "bijv. { example } ",
  "e.g. { sample }": "bijv. { sample }", "Edit string": "Tekst bewerken", "String value": "Tekstwaarde",
  "Edit number": "Getal bewerken", "Edit boolean": "Ja/nee bewerken", "Boolean value": "Ja/nee-waarde",
  "Yes": "Ja", "No": "Nee", "Test type": "Soort vergelijking", "Comparison": "Vergelijking", "Range": "Bereik",
  "Comparison operator": "Vergelijkingsoperator", "Equals": "Gelijk aan", "Less": "Kleiner dan",
  "Less or equals": "Kleiner dan of gelijk aan", "Greater": "Groter dan", "Greater or equals": "Groter dan of gelijk aan",
  "Range start operator": "Operator van het begin", "Range start value": "Beginwaarde",
  "Range end operator": "Operator van het eind", "Range end value": "Eindwaarde", "Start value": "Beginwaarde",
  "End value": "Eindwaarde", "Include": "Inclusief", "Exclude": "Exclusief",
  "Edit date": "Datum bewerken", "Date value": "Datumwaarde", "Date": "Datum", "Set date": "Datum kiezen",
  "Edit start date": "Begindatum bewerken", "Edit end date": "Einddatum bewerken", "Start date": "Begindatum",
  "End date": "Einddatum", "Use today": "Vandaag", "Exactly": "Precies", "Before": "Voor", "After": "Na",
  "Between": "Tussen", "Edit time": "Tijd bewerken", "Time value": "Tijdwaarde", "Time": "Tijd", "Set time": "Tijd kiezen",
  "Edit start time": "Begintijd bewerken", "Edit end time": "Eindtijd bewerken", "Start time": "Begintijd",
  "End time": "Eindtijd", "Use now": "Nu", "Edit date and time": "Datum en tijd bewerken",
  "Date and time value": "Datum-en-tijdwaarde", "Date and time": "Datum en tijd", "Set date and time": "Datum en tijd kiezen",
  "Edit start date and time": "Begin (datum en tijd) bewerken", "Edit end date and time": "Eind (datum en tijd) bewerken",
  "Start date and time": "Begin (datum en tijd)", "End date and time": "Eind (datum en tijd)",
  "Edit duration": "Duur bewerken", "Duration value": "Duur", "Set duration": "Duur kiezen",
  "Must match PnYnM": "Schrijf als PnYnM", "Must match PnDTnH": "Schrijf als PnDTnH", "Edit": "Bewerken",
  // the DRD and a literal expression
  "Activate hand tool": "Handje: het model verschuiven", "Activate lasso tool": "Lasso: elementen kiezen",
  "Create decision": "Beslissing maken", "Create input data": "Invoergegevens maken",
  "Create knowledge model": "Kennismodel maken", "Create knowledge source": "Kennisbron maken",
  "Append decision": "Beslissing toevoegen", "Append input data": "Invoergegevens toevoegen",
  "Append business knowledge model": "Kennismodel toevoegen", "Append knowledge source": "Kennisbron toevoegen",
  "Add text annotation": "Notitie toevoegen", "Connect to other element": "Verbinden met een ander element",
  "Change type": "Soort wijzigen", "Delete": "Verwijderen", "Definition ID": "ID van de definitie",
  "Definition name": "Naam van de definitie", "Literal expression editor": "Expressie bewerken",
  "Variable name": "Naam van de variabele", "Variable name:": "Naam van de variabele:",
  "Variable type": "Soort variabele", "Variable type:": "Soort variabele:",
};

export default vertaalModule(NL);
