package main

// Fuzz tests of the wire-message parser. Every client message passes through readMessage, commandName,
// parseOpMsg and asUpdateCommand before FerretDB sees it, so none of them may panic or read out of bounds on
// any input, and a message that parses must encode back to the same bytes (the proxy re-encodes the
// messages it splits). `go test` runs the seeds; `go test -fuzz FuzzParseOpMsg` explores (make test runs a
// bounded exploration, make fuzz a longer one).

import (
	"bufio"
	"bytes"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

func fuzzSeeds(f *testing.F) {
	f.Add(buildMsg(f, 1, bson.D{{Key: "find", Value: "c"}, {Key: "$db", Value: "d"}}))
	f.Add(buildMsg(f, 2, bson.D{{Key: "update", Value: "c"}, {Key: "$db", Value: "d"}},
		section{kind: 1, identifier: "updates", docs: []bson.Raw{revisionUpdate(f, "a", int32(1))}}))
	f.Add(buildMsg(f, 3, bson.D{{Key: "update", Value: "c"}, {Key: "ordered", Value: false},
		{Key: "updates", Value: bson.A{revisionUpdate(f, "a", int64(2)), revisionUpdate(f, "b", 2.5)}}}))
	f.Add([]byte{})
	f.Add(make([]byte, 21))
}

func FuzzParseOpMsg(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, message []byte) {
		if len(message) < 16 {
			return // readMessage never hands the proxy fewer than 16 bytes
		}
		_ = commandName(message)
		_ = isWrite(message)
		_ = databaseOf(message)
		if u := asUpdateCommand(message); u != nil {
			if statements := u.revisionStatements(); statements != nil {
				for _, s := range statements {
					if _, err := s.reduced(); err != nil {
						t.Fatalf("a checked statement could not be reduced: %v", err)
					}
				}
			}
		}
		m, err := parseOpMsg(message)
		if err != nil {
			return
		}
		again, err := parseOpMsg(m.encode(0))
		if err != nil {
			t.Fatalf("a parsed message does not parse after encoding: %v", err)
		}
		if len(again.sections) != len(m.sections) || again.requestID != m.requestID || again.flags != m.flags {
			t.Fatalf("round trip changed the message: %+v -> %+v", m, again)
		}
		for i := range m.sections {
			a, b := m.sections[i], again.sections[i]
			if a.kind != b.kind || a.identifier != b.identifier || len(a.docs) != len(b.docs) {
				t.Fatalf("section %d changed", i)
			}
			for j := range a.docs {
				if !bytes.Equal(a.docs[j], b.docs[j]) {
					t.Fatalf("section %d document %d changed", i, j)
				}
			}
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bufio.NewReader(bytes.NewReader(stream))
		read := 0
		for {
			message, err := readMessage(r)
			if err != nil {
				break
			}
			if len(message) < 16 || len(message) > maxMessageSize {
				t.Fatalf("a message of %d bytes came through", len(message))
			}
			read += len(message)
			if read > len(stream) {
				t.Fatalf("read %d bytes from a stream of %d", read, len(stream))
			}
		}
	})
}
