"""The case page's commands and replies (console.zaakdetail.opdrachten) from an engine case view."""

from __future__ import annotations

from console.zaakdetail import opdrachten, parkeerplaats_link


def test_each_command_with_its_reply_and_its_parked_messages() -> None:
    zaak = {
        "journaal": [
            {"at": "2026-03-02T09:00:01", "what": "gestart", "message": "ips.test.gestart.v1"},
            {"at": "2026-03-02T09:00:01", "what": "opdracht verstuurd", "command": "c1", "type": "ips.a.v1",
             "element": "Task_a", "attempt": 1},
            {"at": "2026-03-02T09:00:02", "what": "incident", "command": "c1", "element": "Task_a", "code": "X"},
            {"at": "2026-03-02T09:05:00", "what": "opdracht verstuurd", "command": "c2", "type": "ips.a.v1",
             "element": "Task_a", "attempt": 2},
            {"at": "2026-03-02T09:05:01", "what": "opdracht voltooid", "command": "c2"},
            {"at": "2026-03-02T09:05:01", "what": "opdracht verstuurd", "command": "c3", "type": "ips.b.v1",
             "element": "Task_b", "attempt": 1},
        ],
        "incidenten": [{"commandId": "c1", "commandType": "ips.a.v1", "elementId": "Task_a", "errorCode": "X",
                        "message": "kapot", "resolved": True},
                       # a case from before sent commands were journalled: its incident still shows
                       {"commandId": "c0", "commandType": "ips.z.v1", "elementId": "Task_z", "errorCode": "Y",
                        "message": "oud", "at": "2026-03-02T08:00:00", "resolved": False}],
    }
    parked = [{"wachtrij": "ns.grants.dlq", "id": "c3", "type": "ips.b.v1", "causatie": None},
              {"wachtrij": "ns.process_engine.dlq", "id": "r9", "type": "ips.opdracht.voltooid.v1",
               "causatie": "c2"},
              {"wachtrij": "ns.process_engine.dlq", "id": "other", "type": "ips.x.v1", "causatie": "elders"}]
    rows = opdrachten(zaak, parked, "ns.")
    assert [r["id"] for r in rows] == ["c0", "c1", "c2", "c3"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["c0"]["soort"] == "fout" and "oud" in by_id["c0"]["antwoord"]
    assert by_id["c1"]["antwoord"] == "mislukt: X kapot (incident)" and by_id["c1"]["poging"] == 1
    assert by_id["c2"]["antwoord"] == "voltooid" and by_id["c2"]["poging"] == 2
    assert by_id["c3"]["antwoord"] == "nog geen antwoord" and by_id["c3"]["type"] == "ips.b.v1"
    # the parked command (its id) and the parked reply (its causation id), each linked to its parking lot
    assert [d["link"] for d in by_id["c3"]["geparkeerd"]] == ["/wachtrijen/grants/geparkeerd#bericht-c3"]
    assert [d["link"] for d in by_id["c2"]["geparkeerd"]] == ["/wachtrijen/process_engine/geparkeerd#bericht-r9"]
    assert by_id["c1"]["geparkeerd"] == [] and by_id["c0"]["geparkeerd"] == []


def test_a_parking_lot_link_quotes_the_message_id() -> None:
    assert parkeerplaats_link({"wachtrij": "ns.intake.dlq", "id": "a b/c"}, "ns.") == (
        "/wachtrijen/intake/geparkeerd#bericht-a%20b%2Fc")
