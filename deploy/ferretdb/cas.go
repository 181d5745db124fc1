package main

// Revision-checked updates in O(1).
//
// FerretDB v1.24 turns a filter into SQL only when it is exactly {_id: value}; an update filtered on
// {_id: X, revision: R} scans the collection up to the document (127 ms at 4,000 documents, against 2 ms for
// {_id: X}). ipsflow writes every aggregate that way. While the proxy holds the write lock no other write
// can interleave, so it checks the revision with a find on {_id: X} and forwards the update filtered on
// {_id: X} alone, or answers "matched 0" itself. The result is the same as FerretDB's, without the scan.

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

// revisionUpdate recognises a single, non-multi, non-upsert update filtered on exactly {_id: string,
// revision: int}. It returns the statement's location so it can be rewritten.
type revisionUpdate struct {
	msg        *opMessage
	sectionIdx int
	docIdx     int // index in the section's docs, or -1 when the statement is in the body's array
	statement  bson.D
	collection string
	database   string
	id         string
	revision   int64
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
	r := &revisionUpdate{msg: m, collection: collection, database: database, docIdx: -1}
	var raw bson.Raw
	if arr, ok := body.Lookup("updates").ArrayOK(); ok {
		values, _ := arr.Values()
		if len(values) != 1 {
			return nil
		}
		raw, _ = values[0].DocumentOK()
		r.sectionIdx = 0
	} else {
		for i, s := range m.sections {
			if s.kind == 1 && s.identifier == "updates" {
				if len(s.docs) != 1 {
					return nil
				}
				raw, r.sectionIdx, r.docIdx = s.docs[0], i, 0
			}
		}
	}
	if raw == nil {
		return nil
	}
	if multi, ok := raw.Lookup("multi").BooleanOK(); ok && multi {
		return nil
	}
	if upsert, ok := raw.Lookup("upsert").BooleanOK(); ok && upsert {
		return nil
	}
	q, ok := raw.Lookup("q").DocumentOK()
	if !ok {
		return nil
	}
	elements, err := q.Elements()
	if err != nil || len(elements) != 2 {
		return nil
	}
	for _, e := range elements {
		switch e.Key() {
		case "_id":
			if r.id, ok = e.Value().StringValueOK(); !ok {
				return nil
			}
		case "revision":
			v, ok := e.Value().AsInt64OK()
			if !ok {
				return nil
			}
			r.revision = v
		default:
			return nil
		}
	}
	if r.id == "" {
		return nil
	}
	if err := bson.Unmarshal(raw, &r.statement); err != nil {
		return nil
	}
	return r
}

// rewritten is the original request with the statement's filter reduced to {_id}.
func (r *revisionUpdate) rewritten() ([]byte, error) {
	statement := make(bson.D, 0, len(r.statement))
	for _, e := range r.statement {
		if e.Key == "q" {
			e.Value = bson.D{{Key: "_id", Value: r.id}}
		}
		statement = append(statement, e)
	}
	doc, err := bson.Marshal(statement)
	if err != nil {
		return nil, err
	}
	s := &r.msg.sections[r.sectionIdx]
	if r.docIdx >= 0 {
		s.docs[r.docIdx] = doc
	} else {
		var body bson.D
		if err := bson.Unmarshal(s.docs[0], &body); err != nil {
			return nil, err
		}
		for i := range body {
			if body[i].Key == "updates" {
				body[i].Value = bson.A{bson.Raw(doc)}
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
