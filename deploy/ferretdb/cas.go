package main

// Revision-checked updates in O(1).
//
// FerretDB v1.24 turns a filter into SQL only when it is exactly {_id: value}; an update filtered on
// {_id: X, revision: R} scans the collection up to the document (127 ms at 4,000 documents, against 2 ms for
// {_id: X}). ipsflow writes every aggregate that way. While the proxy holds the write lock no other write
// can interleave, so it reads each statement's current revision itself (revcheck.go, else a find on
// {_id: X}) and forwards only the statements that match, filtered on {_id: X} alone, or answers "matched 0"
// itself when none does. The result is the same as FerretDB's, without the scan. How a command of several
// statements is sent on and answered is in update.go.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"go.mongodb.org/mongo-driver/bson"
)

type section struct {
	kind       byte
	identifier string     // kind 1
	docs       []bson.Raw // kind 0: one document
}

type opMessage struct {
	requestID int32
	flags     uint32
	sections  []section
}

func parseOpMsg(message []byte) (*opMessage, error) {
	if opCode(message) != opMsg || len(message) < 21 {
		return nil, errors.New("not an OP_MSG")
	}
	m := &opMessage{requestID: int32(binary.LittleEndian.Uint32(message[4:8])), flags: flags(message)}
	if m.flags&1 != 0 {
		return nil, errors.New("checksummed message")
	}
	rest := message[20:]
	for len(rest) > 0 {
		kind := rest[0]
		rest = rest[1:]
		switch kind {
		case 0:
			doc, err := readDoc(rest)
			if err != nil {
				return nil, err
			}
			m.sections = append(m.sections, section{kind: 0, docs: []bson.Raw{doc}})
			rest = rest[len(doc):]
		case 1:
			if len(rest) < 4 {
				return nil, errors.New("short section")
			}
			size := int(binary.LittleEndian.Uint32(rest[:4]))
			if size > len(rest) || size < 5 {
				return nil, errors.New("bad section size")
			}
			body := rest[4:size]
			end := 0
			for end < len(body) && body[end] != 0 {
				end++
			}
			if end == len(body) {
				return nil, errors.New("section identifier without its terminating NUL")
			}
			s := section{kind: 1, identifier: string(body[:end])}
			docs := body[end+1:]
			for len(docs) > 0 {
				doc, err := readDoc(docs)
				if err != nil {
					return nil, err
				}
				s.docs = append(s.docs, doc)
				docs = docs[len(doc):]
			}
			m.sections = append(m.sections, s)
			rest = rest[size:]
		default:
			return nil, fmt.Errorf("unknown section kind %d", kind)
		}
	}
	return m, nil
}

func readDoc(b []byte) (bson.Raw, error) {
	if len(b) < 5 {
		return nil, errors.New("short document")
	}
	size := int(binary.LittleEndian.Uint32(b[:4]))
	if size < 5 || size > len(b) {
		return nil, errors.New("bad document size")
	}
	return bson.Raw(b[:size]), nil
}

func (m *opMessage) encode(responseTo int32) []byte {
	out := make([]byte, 20)
	binary.LittleEndian.PutUint32(out[4:8], uint32(m.requestID))
	binary.LittleEndian.PutUint32(out[8:12], uint32(responseTo))
	binary.LittleEndian.PutUint32(out[12:16], opMsg)
	binary.LittleEndian.PutUint32(out[16:20], m.flags)
	for _, s := range m.sections {
		out = append(out, s.kind)
		if s.kind == 0 {
			out = append(out, s.docs[0]...)
			continue
		}
		size := 4 + len(s.identifier) + 1
		for _, d := range s.docs {
			size += len(d)
		}
		var sz [4]byte
		binary.LittleEndian.PutUint32(sz[:], uint32(size))
		out = append(out, sz[:]...)
		out = append(out, s.identifier...)
		out = append(out, 0)
		for _, d := range s.docs {
			out = append(out, d...)
		}
	}
	binary.LittleEndian.PutUint32(out[0:4], uint32(len(out)))
	return out
}

// maxCheckedStatements bounds the statements of one update command whose revisions the proxy reads itself
// (one SQL query with an IN list). Longer commands go to FerretDB one statement at a time with their filters
// as sent: correct under the lock, only slower.
const maxCheckedStatements = 1000

// revisionStatement is one update statement filtered on exactly {_id: string, revision: int32 or int64}.
type revisionStatement struct {
	statement bson.D
	id        string
	revision  int64
}

// updateCommand is an update command taken apart: its statements and where they sit in the message, so it
// can be sent on as commands of one statement each (update.go).
type updateCommand struct {
	msg        *opMessage
	sectionIdx int
	inBody     bool   // statements are the body's "updates" array, not a document sequence (kind 1)
	statements string // "updates"; "deletes" for a delete command (idfilter.go)
	raws       []bson.Raw
	ordered    bool
	collection string
	database   string
	body       bson.D // the body, decoded when statements in it are to be replaced
}

func asUpdateCommand(message []byte) *updateCommand {
	u := asWriteCommand(message, "update", "updates")
	if u == nil {
		return nil
	}
	for _, raw := range u.raws {
		if !wellFormed(raw) {
			return nil // FerretDB refuses the whole command before it applies any statement, as MongoDB does
		}
	}
	return u
}

// asWriteCommand takes apart a command named name whose statements are in the field or sequence statements.
func asWriteCommand(message []byte, name, statements string) *updateCommand {
	m, err := parseOpMsg(message)
	if err != nil || len(m.sections) == 0 || m.sections[0].kind != 0 {
		return nil
	}
	body := m.sections[0].docs[0]
	collection, ok := body.Lookup(name).StringValueOK()
	if !ok {
		return nil
	}
	database, _ := body.Lookup("$db").StringValueOK()
	u := &updateCommand{msg: m, collection: collection, database: database, ordered: true, statements: statements}
	if ordered, ok := body.Lookup("ordered").BooleanOK(); ok {
		u.ordered = ordered
	}
	if arr, ok := body.Lookup(statements).ArrayOK(); ok {
		values, _ := arr.Values()
		for _, v := range values {
			raw, ok := v.DocumentOK()
			if !ok {
				return nil
			}
			u.raws = append(u.raws, raw)
		}
		u.sectionIdx, u.inBody = 0, true
	} else {
		for i, s := range m.sections {
			if s.kind == 1 && s.identifier == statements {
				u.raws, u.sectionIdx = s.docs, i
			}
		}
	}
	if len(u.raws) == 0 {
		return nil
	}
	return u
}

// wellFormed: the statement's fields have the types an update command needs. A command with a malformed
// statement fails as a whole (ok: 0) and nothing is applied; sent on one statement at a time, the others would
// be applied.
func wellFormed(statement bson.Raw) bool {
	if _, ok := statement.Lookup("q").DocumentOK(); !ok {
		return false
	}
	if u := statement.Lookup("u"); u.Type != bson.TypeEmbeddedDocument && u.Type != bson.TypeArray {
		return false
	}
	for _, key := range []string{"multi", "upsert"} {
		if v, err := statement.LookupErr(key); err == nil && v.Type != bson.TypeBoolean {
			return false
		}
	}
	return true
}

// revisionStatements returns the statements as revision statements, or nil when the proxy cannot check
// them itself: one is not revision-checked (or is multi or upsert), there are too many, or a document is
// named twice (the second statement's check depends on what the first one wrote).
func (u *updateCommand) revisionStatements() []revisionStatement {
	if len(u.raws) > maxCheckedStatements {
		return nil
	}
	statements := make([]revisionStatement, 0, len(u.raws))
	seen := make(map[string]bool, len(u.raws))
	for _, raw := range u.raws {
		statement, ok := asRevisionStatement(raw)
		if !ok || seen[statement.id] {
			return nil
		}
		seen[statement.id] = true
		statements = append(statements, statement)
	}
	return statements
}

func asRevisionStatement(raw bson.Raw) (revisionStatement, bool) {
	var r revisionStatement
	if multi, ok := raw.Lookup("multi").BooleanOK(); ok && multi {
		return r, false
	}
	if upsert, ok := raw.Lookup("upsert").BooleanOK(); ok && upsert {
		return r, false
	}
	q, ok := raw.Lookup("q").DocumentOK()
	if !ok {
		return r, false
	}
	elements, err := q.Elements()
	if err != nil || len(elements) != 2 {
		return r, false
	}
	for _, e := range elements {
		switch e.Key() {
		case "_id":
			if r.id, ok = e.Value().StringValueOK(); !ok {
				return r, false
			}
		case "revision":
			// Integers only: a filter of 2.5 matches no integer, and 2.0 is left to FerretDB's own matching.
			v := e.Value()
			if v.Type != bson.TypeInt32 && v.Type != bson.TypeInt64 {
				return r, false
			}
			r.revision = v.AsInt64()
		default:
			return r, false
		}
	}
	if r.id == "" {
		return r, false
	}
	if err := bson.Unmarshal(raw, &r.statement); err != nil {
		return r, false
	}
	return r, true
}

// reduced is the statement with its filter reduced to {_id}, for a document whose revision was checked.
func (s revisionStatement) reduced() (bson.Raw, error) {
	statement := make(bson.D, 0, len(s.statement))
	for _, e := range s.statement {
		if e.Key == "q" {
			e.Value = bson.D{{Key: "_id", Value: s.id}}
		}
		statement = append(statement, e)
	}
	return bson.Marshal(statement)
}

// errNotInteger: a document's stored revision is not an integer (say a double 2.0, which MongoDB's matching
// would equal to 2); the proxy leaves such a command's filters to FerretDB.
var errNotInteger = errors.New("stored revision is not an integer")

// currentRevision asks FerretDB for the document's revision through the connection the proxy holds.
func currentRevision(upstream net.Conn, fromServer *bufio.Reader, database, collection, id string) (int64, bool, error) {
	body, err := bson.Marshal(bson.D{
		{Key: "find", Value: collection},
		{Key: "filter", Value: bson.D{{Key: "_id", Value: id}}},
		{Key: "projection", Value: bson.D{{Key: "revision", Value: 1}}},
		{Key: "limit", Value: int32(1)},
		{Key: "singleBatch", Value: true},
		{Key: "$db", Value: database},
	})
	if err != nil {
		return 0, false, err
	}
	query := (&opMessage{requestID: 0x1ff5eed, sections: []section{{kind: 0, docs: []bson.Raw{body}}}}).encode(0)
	if _, err := upstream.Write(query); err != nil {
		return 0, false, err
	}
	reply, err := readMessage(fromServer)
	if err != nil {
		return 0, false, err
	}
	parsed, err := parseOpMsg(reply)
	if err != nil || len(parsed.sections) == 0 {
		return 0, false, fmt.Errorf("find reply: %v", err)
	}
	batch, ok := parsed.sections[0].docs[0].Lookup("cursor", "firstBatch").ArrayOK()
	if !ok {
		return 0, false, errors.New("find reply without cursor")
	}
	values, _ := batch.Values()
	if len(values) == 0 {
		return 0, false, nil
	}
	doc, _ := values[0].DocumentOK()
	value, err := doc.LookupErr("revision")
	if err != nil {
		return 0, false, nil // no revision: a revision filter does not match it
	}
	if value.Type != bson.TypeInt32 && value.Type != bson.TypeInt64 {
		return 0, false, errNotInteger
	}
	return value.AsInt64(), true, nil
}
