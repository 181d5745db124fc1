// The message catalogue and the lanes' roles as the engine reads them (GET /studio/catalogus, embedded in the
// page): the properties panel and the lint rules share this one copy.
let gegevens = { commandos: [], gebeurtenissen: [], rollen: {} };

export function zetCatalogus(nieuw) { gegevens = nieuw; }
export function catalogus() { return gegevens; }
