package main

// Unit tests of the front's wire handling: OP_MSG parsing and encoding, what counts as a write, which update
// statements the proxy checks itself, and how the answers to one-statement commands are merged into the
// answer to the client's command. Everything here is pure: no FerretDB, no sockets (see proxy_test.go).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func mustMarshal(t testing.TB, v any) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(v)
	if err != nil {
		t.Fatalf("bson.Marshal: %v", err)
	}
	return b
}

// opMsg builds an OP_MSG with a body and optional document sequences, as a driver would send it.
func buildMsg(t testing.TB, requestID int32, body bson.D, sequences ...section) []byte {
	t.Helper()
	m := &opMessage{requestID: requestID, sections: []section{{kind: 0, docs: []bson.Raw{mustMarshal(t, body)}}}}
	m.sections = append(m.sections, sequences...)
	return m.encode(0)
}

func revisionUpdate(t testing.TB, id string, revision any) bson.Raw {
	return mustMarshal(t, bson.D{
		{Key: "q", Value: bson.D{{Key: "_id", Value: id}, {Key: "revision", Value: revision}}},
		{Key: "u", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "$inc", Value: bson.D{{Key: "revision", Value: 1}}}}},
	})
}

func TestEncodeThenParseGivesTheSameMessage(t *testing.T) {
	seq := section{kind: 1, identifier: "updates", docs: []bson.Raw{revisionUpdate(t, "a", int32(1)), revisionUpdate(t, "b", int64(7))}}
	message := buildMsg(t, 42, bson.D{{Key: "update", Value: "zaken"}, {Key: "$db", Value: "ips"}}, seq)

	if got := int(binary.LittleEndian.Uint32(message[:4])); got != len(message) {
		t.Fatalf("length header %d, message is %d bytes", got, len(message))
	}
	m, err := parseOpMsg(message)
	if err != nil {
		t.Fatalf("parseOpMsg: %v", err)
	}
	if m.requestID != 42 || len(m.sections) != 2 {
		t.Fatalf("requestID %d, %d sections; want 42 and 2", m.requestID, len(m.sections))
	}
	if m.sections[1].identifier != "updates" || len(m.sections[1].docs) != 2 {
		t.Fatalf("sequence %q with %d documents", m.sections[1].identifier, len(m.sections[1].docs))
	}
	if again := m.encode(0); !bytes.Equal(again, message) {
		t.Fatalf("encode(parse(m)) differs from m")
	}
	if commandName(message) != "update" || !isWrite(message) || databaseOf(message) != "ips" {
		t.Fatalf("command %q, write %v, database %q", commandName(message), isWrite(message), databaseOf(message))
	}
}

func TestReadsAreNotWrites(t *testing.T) {
	for name, write := range map[string]bool{"find": false, "aggregate": false, "hello": false, "insert": true,
		"update": true, "delete": true, "findAndModify": true, "dropDatabase": true, "createIndexes": true} {
		message := buildMsg(t, 1, bson.D{{Key: name, Value: "c"}, {Key: "$db", Value: "d"}})
		if isWrite(message) != write {
			t.Errorf("%s: isWrite %v, want %v", name, !write, write)
		}
	}
}

func TestParseRefusesDamagedMessages(t *testing.T) {
	good := buildMsg(t, 1, bson.D{{Key: "find", Value: "c"}})
	checksummed := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(checksummed[16:20], 1)
	badKind := append([]byte(nil), good...)
	badKind[20] = 7
	shortDoc := append([]byte(nil), good[:24]...)
	binary.LittleEndian.PutUint32(shortDoc[:4], uint32(len(shortDoc)))
	noNul := buildMsg(t, 1, bson.D{{Key: "insert", Value: "c"}})
	noNul = append(noNul, 1, 9, 0, 0, 0, 'a', 'b', 'c', 'd', 'e') // a sequence whose identifier never ends
	binary.LittleEndian.PutUint32(noNul[:4], uint32(len(noNul)))
	for name, message := range map[string][]byte{
		"checksum flag": checksummed, "unknown section kind": badKind, "document cut short": shortDoc,
		"identifier without NUL": noNul, "too short": good[:18],
	} {
		if _, err := parseOpMsg(message); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}

func TestReadMessageBoundsTheSize(t *testing.T) {
	for _, size := range []uint32{0, 15, maxMessageSize + 1} {
		var header [20]byte
		binary.LittleEndian.PutUint32(header[:4], size)
		if _, err := readMessage(bufio.NewReader(bytes.NewReader(header[:]))); err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
	good := buildMsg(t, 3, bson.D{{Key: "ping", Value: 1}})
	stream := append(append([]byte(nil), good...), good...)
	r := bufio.NewReader(bytes.NewReader(stream))
	for i := 0; i < 2; i++ {
		got, err := readMessage(r)
		if err != nil || !bytes.Equal(got, good) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if _, err := readMessage(r); err == nil {
		t.Fatalf("read past the end of the stream")
	}
}

func TestUpdateStatementsInTheBodyOrInASequence(t *testing.T) {
	inBody := buildMsg(t, 1, bson.D{{Key: "update", Value: "c"}, {Key: "$db", Value: "d"}, {Key: "ordered", Value: false},
		{Key: "updates", Value: bson.A{revisionUpdate(t, "a", int32(1))}}})
	u := asUpdateCommand(inBody)
	if u == nil || !u.inBody || u.ordered || len(u.raws) != 1 || u.collection != "c" || u.database != "d" {
		t.Fatalf("body statements: %+v", u)
	}
	inSequence := buildMsg(t, 1, bson.D{{Key: "update", Value: "c"}, {Key: "$db", Value: "d"}},
		section{kind: 1, identifier: "updates", docs: []bson.Raw{revisionUpdate(t, "a", int32(1)), revisionUpdate(t, "b", int32(2))}})
	u = asUpdateCommand(inSequence)
	if u == nil || u.inBody || !u.ordered || len(u.raws) != 2 || u.sectionIdx != 1 {
		t.Fatalf("sequence statements: %+v", u)
	}
	if asUpdateCommand(buildMsg(t, 1, bson.D{{Key: "find", Value: "c"}})) != nil {
		t.Fatalf("a find taken for an update")
	}
	malformed := buildMsg(t, 1, bson.D{{Key: "update", Value: "c"},
		{Key: "updates", Value: bson.A{revisionUpdate(t, "a", int32(1)), bson.D{{Key: "q", Value: 1}, {Key: "u", Value: bson.D{}}}}}})
	if asUpdateCommand(malformed) != nil {
		t.Fatalf("a command with a malformed statement must go to FerretDB whole, which refuses it whole")
	}
}

func TestOnlyPlainRevisionFiltersAreCheckedByTheProxy(t *testing.T) {
	checked := func(raws ...bson.Raw) bool { return (&updateCommand{raws: raws}).revisionStatements() != nil }
	if !checked(revisionUpdate(t, "a", int32(1)), revisionUpdate(t, "b", int64(1))) {
		t.Fatalf("{_id, revision} with int32/int64 revisions must be checked by the proxy")
	}
	multi := mustMarshal(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "a"}, {Key: "revision", Value: int32(1)}}},
		{Key: "u", Value: bson.D{}}, {Key: "multi", Value: true}})
	upsert := mustMarshal(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "a"}, {Key: "revision", Value: int32(1)}}},
		{Key: "u", Value: bson.D{}}, {Key: "upsert", Value: true}})
	extra := mustMarshal(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "a"}, {Key: "status", Value: "wacht"}}},
		{Key: "u", Value: bson.D{}}})
	for name, raws := range map[string][]bson.Raw{
		"double revision (MongoDB's matching decides)": {revisionUpdate(t, "a", 2.0)},
		"string revision":          {revisionUpdate(t, "a", "2")},
		"multi":                    {multi},
		"upsert":                   {upsert},
		"another field":            {extra},
		"one document named twice": {revisionUpdate(t, "a", int32(1)), revisionUpdate(t, "a", int32(2))},
	} {
		if checked(raws...) {
			t.Errorf("%s: checked by the proxy", name)
		}
	}
	statement, ok := asRevisionStatement(revisionUpdate(t, "zaak-1", int64(9)))
	if !ok || statement.id != "zaak-1" || statement.revision != 9 {
		t.Fatalf("statement %+v, %v", statement, ok)
	}
	reduced, err := statement.reduced()
	if err != nil {
		t.Fatalf("reduced: %v", err)
	}
	q := reduced.Lookup("q").Document()
	if elements, _ := q.Elements(); len(elements) != 1 || q.Lookup("_id").StringValue() != "zaak-1" {
		t.Fatalf("reduced filter %v, want {_id: zaak-1}", q)
	}
	if _, err := reduced.LookupErr("u", "$inc", "revision"); err != nil {
		t.Fatalf("the update part must be kept: %v", err)
	}
}

func reply(t testing.TB, body bson.D) []byte {
	return (&opMessage{requestID: 5, sections: []section{{kind: 0, docs: []bson.Raw{mustMarshal(t, body)}}}}).encode(1)
}

func replyBody(t testing.TB, message []byte) bson.Raw {
	t.Helper()
	m, err := parseOpMsg(message)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return m.sections[0].docs[0]
}

func TestMergedReplyAddsUpAndPutsErrorsAtTheClientsIndex(t *testing.T) {
	var merged mergedReply
	okOne := reply(t, bson.D{{Key: "n", Value: int32(1)}, {Key: "nModified", Value: int32(1)}, {Key: "ok", Value: 1.0}})
	dup := reply(t, bson.D{{Key: "n", Value: int32(0)}, {Key: "nModified", Value: int32(0)},
		{Key: "writeErrors", Value: bson.A{bson.D{{Key: "index", Value: int32(0)}, {Key: "code", Value: int32(11000)}, {Key: "errmsg", Value: "dup"}}}},
		{Key: "ok", Value: 1.0}})
	backend := reply(t, bson.D{{Key: "ok", Value: 0.0}, {Key: "code", Value: int32(2)}, {Key: "errmsg", Value: "unknown operator"}})
	upsert := reply(t, bson.D{{Key: "n", Value: int32(1)}, {Key: "nModified", Value: int32(0)},
		{Key: "upserted", Value: bson.A{bson.D{{Key: "index", Value: int32(0)}, {Key: "_id", Value: "new"}}}}, {Key: "ok", Value: 1.0}})
	for index, r := range map[int][]byte{0: okOne, 3: dup, 5: backend, 7: upsert} {
		if _, err := merged.add(r, index); err != nil {
			t.Fatalf("add %d: %v", index, err)
		}
	}
	body := replyBody(t, merged.encode(99))
	if n := body.Lookup("n").Int32(); n != 2 {
		t.Errorf("n = %d, want 2", n)
	}
	if n := body.Lookup("nModified").Int32(); n != 1 {
		t.Errorf("nModified = %d, want 1", n)
	}
	if ok := body.Lookup("ok").Double(); ok != 1 {
		t.Errorf("ok = %v: statements went in, so the command did not fail as a whole", ok)
	}
	errs, _ := body.Lookup("writeErrors").Array().Values()
	indexes := map[int32]int32{}
	for _, e := range errs {
		indexes[e.Document().Lookup("index").Int32()] = e.Document().Lookup("code").Int32()
	}
	if len(indexes) != 2 || indexes[3] != 11000 || indexes[5] != 2 {
		t.Errorf("write errors by index %v, want {3: 11000, 5: 2}", indexes)
	}
	ups, _ := body.Lookup("upserted").Array().Values()
	if len(ups) != 1 || ups[0].Document().Lookup("index").Int32() != 7 {
		t.Errorf("upserted %v, want one at index 7", ups)
	}
}

func TestACommandThatFailedWholeIsPassedOnWhenNothingWentIn(t *testing.T) {
	var merged mergedReply
	backend := reply(t, bson.D{{Key: "ok", Value: 0.0}, {Key: "code", Value: int32(2)}, {Key: "errmsg", Value: "bad"}})
	if failed, err := merged.add(backend, 0); err != nil || !failed {
		t.Fatalf("add: failed %v, err %v", failed, err)
	}
	body := replyBody(t, merged.encode(4))
	if ok := body.Lookup("ok").Double(); ok != 0 || body.Lookup("errmsg").StringValue() != "bad" {
		t.Fatalf("reply %v: the client must hear the command failed", body)
	}
	entry, asCommand := replyFailure(backend)
	if !asCommand || entry == nil {
		t.Fatalf("replyFailure: %v %v", entry, asCommand)
	}
}
