package main

// Updates filtered on {_id: X, ...more} without a scan.
//
// FerretDB v1.24 turns a filter into SQL only when it is exactly {_id: X}; any other filter decodes every
// document of the collection. ipsflow writes many single documents with a condition besides the _id: the
// notifications sender's outcome ({_id, status, claim}), the dossier's applied-message check ({_id, applied:
// {$ne}}), a budget's reservation ({_id, "financieel.x": {$exists}}), ... On a collection of large documents
// (a message holds its PDF: about 1.5 ms each to decode) that cost grows with every document ever stored.
//
// Under the write lock the proxy asks FerretDB whether that one document matches: an aggregate whose first
// stage, {$match: {_id: X}}, FerretDB pushes down to SQL, and whose second stage is {$match: <the filter as
// sent>}, evaluated by the same filter code FerretDB's update uses. If it matches, the statement goes on
// filtered on {_id: X} alone; if not, the proxy answers "matched 0" as FerretDB does. No other write can come
// between the check and the update. Only for an update command of one statement that is not multi or upsert
// and has nothing but q and u (no arrayFilters, collation, hint), whose u names no positional path ($, $[]),
// whose _id is a string or an ObjectId, on a collection of at least two documents (with one, the scan reads
// that one document anyway). Anything unexpected in the aggregate's answer (an error, an open cursor) sends the
// statement on as it came, so FerretDB decides.

import (
	"bufio"
	"errors"
	"net"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
)

// idFilter is a statement's filter with an _id FerretDB can push down, and conditions besides it.
type idFilter struct {
	id     bson.RawValue
	filter bson.Raw
}

// asIDFilterStatement returns the statement's idFilter when the proxy may check it itself (see above).
func asIDFilterStatement(raw bson.Raw) (idFilter, bool) {
	plain := onlyFields(raw, func(key string, value bson.RawValue) bool {
		switch key {
		case "q", "u":
			return true
		case "multi", "upsert":
			on, ok := value.BooleanOK()
			return ok && !on
		}
		return false // arrayFilters, collation, hint, ...: left to FerretDB
	})
	if !plain {
		return idFilter{}, false
	}
	update, ok := raw.Lookup("u").DocumentOK()
	if !ok || namesPositionalPath(update) {
		return idFilter{}, false // a pipeline, or "$" paths, which need the filter to find the array element
	}
	return idFilterOf(raw)
}

// asIDFilterDelete: the same for a delete statement ({q, limit}; with an _id in q it deletes one at most).
func asIDFilterDelete(raw bson.Raw) (idFilter, bool) {
	plain := onlyFields(raw, func(key string, value bson.RawValue) bool {
		switch key {
		case "q":
			return true
		case "limit":
			limit, ok := value.AsInt64OK()
			return ok && (limit == 0 || limit == 1)
		}
		return false // collation, hint, ...
	})
	if !plain {
		return idFilter{}, false
	}
	return idFilterOf(raw)
}

// onlyFields: raw parses and allowed accepts each of its fields.
func onlyFields(raw bson.Raw, allowed func(key string, value bson.RawValue) bool) bool {
	elements, err := raw.Elements()
	if err != nil {
		return false
	}
	for _, e := range elements {
		if !allowed(e.Key(), e.Value()) {
			return false
		}
	}
	return true
}

// idFilterOf: the statement's q has an _id FerretDB pushes down (a string or ObjectId) and more besides.
func idFilterOf(statement bson.Raw) (idFilter, bool) {
	var f idFilter
	q, ok := statement.Lookup("q").DocumentOK()
	if !ok {
		return f, false
	}
	conditions, err := q.Elements()
	if err != nil || len(conditions) < 2 {
		return f, false // {_id} alone is pushed down already; {} is not about one document
	}
	ids := 0
	for _, c := range conditions {
		if c.Key() == "_id" {
			ids++
			f.id = c.Value()
		}
	}
	if ids != 1 || (f.id.Type != bson.TypeString && f.id.Type != bson.TypeObjectID) {
		return f, false
	}
	f.filter = q
	return f, true
}

// namesPositionalPath: an update operator's field path has a "$" segment ("a.$.b", "a.$[]", "a.$[x]").
func namesPositionalPath(update bson.Raw) bool {
	operators, err := update.Elements()
	if err != nil {
		return true
	}
	for _, operator := range operators {
		if !strings.HasPrefix(operator.Key(), "$") {
			return false // a replacement document: no paths
		}
		fields, ok := operator.Value().DocumentOK()
		if !ok {
			continue // FerretDB refuses it; the reduced filter does not change that
		}
		paths, err := fields.Elements()
		if err != nil {
			return true
		}
		for _, path := range paths {
			for _, segment := range strings.Split(path.Key(), ".") {
				if strings.HasPrefix(segment, "$") {
					return true
				}
			}
		}
	}
	return false
}

// reduced is the statement with its filter replaced by {_id: X}.
func (f idFilter) reduced(raw bson.Raw) (bson.Raw, error) {
	var statement bson.D
	if err := bson.Unmarshal(raw, &statement); err != nil {
		return nil, err
	}
	for i := range statement {
		if statement[i].Key == "q" {
			statement[i].Value = bson.D{{Key: "_id", Value: f.id}}
		}
	}
	return bson.Marshal(statement)
}

// errUnanswered: FerretDB's answer to the check was not a plain one; the statement goes on as it came.
var errUnanswered = errors.New("the match check was not answered plainly")

// matches asks FerretDB, through the connection the proxy holds, whether the document f.id matches f.filter.
func (f idFilter) matches(upstream net.Conn, fromServer *bufio.Reader, database, collection string) (bool, error) {
	body, err := bson.Marshal(bson.D{
		{Key: "aggregate", Value: collection},
		{Key: "pipeline", Value: bson.A{
			bson.D{{Key: "$match", Value: bson.D{{Key: "_id", Value: f.id}}}}, // pushed down: one document read
			bson.D{{Key: "$match", Value: f.filter}},
			bson.D{{Key: "$project", Value: bson.D{{Key: "_id", Value: 1}}}},
		}},
		{Key: "cursor", Value: bson.D{}},
		{Key: "$db", Value: database},
	})
	if err != nil {
		return false, err
	}
	query := (&opMessage{requestID: 0x1d5eed, sections: []section{{kind: 0, docs: []bson.Raw{body}}}}).encode(0)
	if _, err := upstream.Write(query); err != nil {
		return false, err
	}
	reply, err := readMessage(fromServer)
	if err != nil {
		return false, err
	}
	parsed, err := parseOpMsg(reply)
	if err != nil || len(parsed.sections) == 0 || parsed.sections[0].kind != 0 {
		return false, errUnanswered
	}
	answer := parsed.sections[0].docs[0]
	if ok, isDouble := answer.Lookup("ok").DoubleOK(); !isDouble || ok != 1 {
		return false, errUnanswered // e.g. an unknown operator: the update as sent gets FerretDB's own error
	}
	if id, isInt := answer.Lookup("cursor", "id").Int64OK(); !isInt || id != 0 {
		return false, errUnanswered
	}
	batch, ok := answer.Lookup("cursor", "firstBatch").ArrayOK()
	if !ok {
		return false, errUnanswered
	}
	values, err := batch.Values()
	if err != nil || len(values) > 1 {
		return false, errUnanswered
	}
	return len(values) == 1, nil
}

// checkByID: whether the document matches, when the proxy could tell (checked); not checked for a collection
// that does not exist (FerretDB decides whether to create it) or holds at most one document (the scan reads that
// one), nor when FerretDB's answer was not a plain one.
// Only for a command of one statement that parse accepts.
func (p *proxy) checkByID(c *updateCommand, parse func(bson.Raw) (idFilter, bool), upstream net.Conn,
	fromServer *bufio.Reader) (f idFilter, matched, checked bool, err error) {
	if p.revisions == nil || c == nil || len(c.raws) != 1 {
		return f, false, false, nil
	}
	f, ok := parse(c.raws[0])
	if !ok {
		return f, false, false, nil
	}
	if several, err := p.revisions.severalDocuments(c.database, c.collection); err != nil || !several {
		return f, false, false, nil
	}
	matched, err = f.matches(upstream, fromServer, c.database, c.collection)
	if errors.Is(err, errUnanswered) {
		return f, false, false, nil
	}
	if err != nil {
		return f, false, false, err
	}
	p.idChecked.Add(1)
	return f, matched, true, nil
}

// idFilterStatements: for a command of one statement the proxy may check (above), the statement to send on,
// reduced to {_id}, or none when the document does not match; nil when the command goes on as it came.
func (p *proxy) idFilterStatements(u *updateCommand, upstream net.Conn, fromServer *bufio.Reader) ([]forwardStatement, error) {
	f, matched, checked, err := p.checkByID(u, asIDFilterStatement, upstream, fromServer)
	if err != nil || !checked {
		return nil, err
	}
	if !matched {
		return []forwardStatement{}, nil
	}
	raw, err := f.reduced(u.raws[0])
	if err != nil {
		return nil, nil
	}
	return []forwardStatement{{index: 0, raw: raw}}, nil
}

// forwardDelete handles a delete command of one statement filtered on {_id, ...more} as idFilterStatements does
// an update: the document checked first, then the statement sent on filtered on {_id} alone, or "deleted 0"
// answered as FerretDB answers it ({n: 0, ok: 1}). False when the command is to go on as it came.
func (p *proxy) forwardDelete(request []byte, upstream net.Conn, fromServer *bufio.Reader, client net.Conn) (bool, error) {
	if p.revisions == nil || commandName(request) != "delete" {
		return false, nil
	}
	d := asWriteCommand(request, "delete", "deletes")
	f, matched, checked, err := p.checkByID(d, asIDFilterDelete, upstream, fromServer)
	if err != nil || !checked {
		return false, err
	}
	acknowledged := d.msg.flags&moreToCome == 0
	if !matched {
		if !acknowledged {
			return true, nil
		}
		body, err := bson.Marshal(bson.D{{Key: "n", Value: int32(0)}, {Key: "ok", Value: float64(1)}})
		if err != nil {
			return false, err
		}
		reply := (&opMessage{requestID: 0x1ff5eef, sections: []section{{kind: 0, docs: []bson.Raw{body}}}})
		_, err = client.Write(reply.encode(d.msg.requestID))
		return true, err
	}
	raw, err := f.reduced(d.raws[0])
	if err != nil {
		return false, nil
	}
	command, err := d.command([]forwardStatement{{index: 0, raw: raw}})
	if err != nil {
		return false, nil
	}
	if _, err := upstream.Write(command); err != nil {
		return true, err
	}
	if !acknowledged {
		return true, nil
	}
	reply, err := readMessage(fromServer)
	if err != nil {
		return true, err
	}
	_, err = client.Write(reply)
	return true, err
}
