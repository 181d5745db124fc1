package main

// Revision-checked updates in O(1).
//
// FerretDB v1.24 turns a filter into SQL only when it is exactly {_id: value}; an update filtered on
// {_id: X, revision: R} scans the collection up to the document (127 ms at 4,000 documents, against 2 ms for
// {_id: X}). ipsflow writes every aggregate that way. While the proxy holds the write lock no other write
// can interleave, so it checks each statement's revision with a find on {_id: X} and forwards only the
// statements that match, filtered on {_id: X} alone, or answers "matched 0" itself when none does. The
// result is the same as FerretDB's, without the scan. A command may carry several such statements (the
// outbox relay clears a batch of documents in one): each is checked, and the reply's counts and error
// indexes are those of the command the client sent.

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

// maxCheckedStatements bounds the statements of one update command that the proxy checks itself. FerretDB
// v1.24 keeps each statement's query cursor (and with it a pooled SQLite connection, 100 in all) open until
// the whole command ends, so a command with about 100 statements waits forever for a connection. Longer
// commands are forwarded unchanged; the lock keeps them correct, only slower.
const maxCheckedStatements = 64

// revisionStatement is one update statement filtered on exactly {_id: string, revision: int}.
type revisionStatement struct {
	statement bson.D
	id        string
	revision  int64
}

// revisionUpdate is an update command whose statements are all revision-checked, non-multi and non-upsert,
// with the place the statements sit in the message, so the command can be rewritten.
type revisionUpdate struct {
	msg        *opMessage
	sectionIdx int
	inBody     bool // statements are the body's "updates" array, not a document sequence (kind 1)
	statements []revisionStatement
	collection string
	database   string
}

func asRevisionUpdate(message []byte) *revisionUpdate {
	m, err := parseOpMsg(message)
	if err != nil || len(m.sections) == 0 || m.sections[0].kind != 0 {
		return nil
	}
	body := m.sections[0].docs[0]
	collection, ok := body.Lookup("update").StringValueOK()
	if !ok {
		return nil
	}
	database, _ := body.Lookup("$db").StringValueOK()
	r := &revisionUpdate{msg: m, collection: collection, database: database}
	var raws []bson.Raw
	if arr, ok := body.Lookup("updates").ArrayOK(); ok {
		values, _ := arr.Values()
		for _, v := range values {
			raw, ok := v.DocumentOK()
			if !ok {
				return nil
			}
			raws = append(raws, raw)
		}
		r.sectionIdx, r.inBody = 0, true
	} else {
		for i, s := range m.sections {
			if s.kind == 1 && s.identifier == "updates" {
				raws, r.sectionIdx = s.docs, i
			}
		}
	}
	if len(raws) == 0 || len(raws) > maxCheckedStatements {
		return nil
	}
	seen := make(map[string]bool, len(raws))
	for _, raw := range raws {
		statement, ok := asRevisionStatement(raw)
		// A document named twice: the second statement's check depends on what the first one wrote, so the
		// command goes to FerretDB as it is (correct under the lock, only slower).
		if !ok || seen[statement.id] {
			return nil
		}
		seen[statement.id] = true
		r.statements = append(r.statements, statement)
	}
	return r
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
			v, ok := e.Value().AsInt64OK()
			if !ok {
				return r, false
			}
			r.revision = v
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

// rewritten is the original request with only the statements at “keep“, each filter reduced to {_id}.
func (r *revisionUpdate) rewritten(keep []int) ([]byte, error) {
	docs := make([]bson.Raw, 0, len(keep))
	for _, i := range keep {
		s := r.statements[i]
		statement := make(bson.D, 0, len(s.statement))
		for _, e := range s.statement {
			if e.Key == "q" {
				e.Value = bson.D{{Key: "_id", Value: s.id}}
			}
			statement = append(statement, e)
		}
		doc, err := bson.Marshal(statement)
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
	s := &r.msg.sections[r.sectionIdx]
	if !r.inBody {
		s.docs = docs
	} else {
		var body bson.D
		if err := bson.Unmarshal(s.docs[0], &body); err != nil {
			return nil, err
		}
		values := make(bson.A, len(docs))
		for i, d := range docs {
			values[i] = d
		}
		for i := range body {
			if body[i].Key == "updates" {
				body[i].Value = values
			}
		}
		b, err := bson.Marshal(body)
		if err != nil {
			return nil, err
		}
		s.docs[0] = b
	}
	return r.msg.encode(0), nil
}

// remapReply rewrites the statement indexes in a reply's writeErrors from the forwarded command's numbering
// back to the client's (“keep[i]“ is the client's index of forwarded statement i). Without errors the
// reply is returned as it is: n and nModified already count what the client's command matched.
func remapReply(reply []byte, keep []int) ([]byte, error) {
	parsed, err := parseOpMsg(reply)
	if err != nil || len(parsed.sections) == 0 || parsed.sections[0].kind != 0 {
		return reply, nil
	}
	if _, ok := parsed.sections[0].docs[0].Lookup("writeErrors").ArrayOK(); !ok {
		return reply, nil
	}
	var body bson.D
	if err := bson.Unmarshal(parsed.sections[0].docs[0], &body); err != nil {
		return nil, err
	}
	for i := range body {
		if body[i].Key != "writeErrors" {
			continue
		}
		errs, ok := body[i].Value.(bson.A)
		if !ok {
			return reply, nil
		}
		for _, e := range errs {
			writeError, ok := e.(bson.D)
			if !ok {
				continue
			}
			for j := range writeError {
				if writeError[j].Key != "index" {
					continue
				}
				var index int
				switch v := writeError[j].Value.(type) {
				case int32:
					index = int(v)
				case int64:
					index = int(v)
				default:
					continue
				}
				if index >= 0 && index < len(keep) {
					writeError[j].Value = int32(keep[index])
				}
			}
		}
	}
	b, err := bson.Marshal(body)
	if err != nil {
		return nil, err
	}
	parsed.sections[0].docs[0] = b
	responseTo := int32(binary.LittleEndian.Uint32(reply[8:12]))
	return parsed.encode(responseTo), nil
}

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
	revision, ok := doc.Lookup("revision").AsInt64OK()
	return revision, ok, nil
}

// missReply is what FerretDB would answer for an update whose filter matched nothing.
func missReply(requestID int32) []byte {
	body, _ := bson.Marshal(bson.D{{Key: "n", Value: int32(0)}, {Key: "nModified", Value: int32(0)},
		{Key: "ok", Value: float64(1)}})
	return (&opMessage{requestID: 0x1ff5eee, sections: []section{{kind: 0, docs: []bson.Raw{body}}}}).encode(requestID)
}
