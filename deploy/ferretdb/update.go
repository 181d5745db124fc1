package main

// Update commands of several statements.
//
// FerretDB v1.24 gets an update command of several statements wrong in two ways (measured on the local
// stack, with the statements' filters as the client sent them):
//   - it keeps each statement's cursor, and with it one of its 100 pooled SQLite connections, until the whole
//     command ends: a command of 99 statements answered in 0.06 s, one of 100 never answered, and every write
//     behind it waited on the proxy's lock;
//   - it stops at the first statement that fails, even in an unordered command, and answers with that error
//     at index 0 whichever statement it was, and without n or nModified (PyMongo's bulk_write then raised
//     KeyError: 'nModified'). Some failures (an unknown query operator, a backend error) come back as a failed
//     command (ok: 0), also after the statements before it were applied.
// The proxy answers such a command as MongoDB does: n, nModified and upserted added up, each write error at
// the client's index of its statement, an unordered command carried on past a failure, an ordered one
// stopped at it. Two ways:
//   - revision-checked statements that each raise the revision ($inc), at most maxBatchedStatements of them
//     (the outbox relay's batches), go to FerretDB as one command, which costs a fraction of one command per
//     statement (bench_servicekit: ratio 0.78 against 0.60). When FerretDB reports a failure, the proxy
//     reads the revisions again, still under the lock: the statements whose document moved on were applied,
//     the first one whose document did not is the one that failed, and the rest are sent again;
//   - every other command of several statements goes on as commands of one statement each.
// Either way a failed command (ok: 0) for one statement becomes a write error at its index; the client gets
// a failed command only when nothing was applied and every reply failed so. A command with a malformed
// statement (cas.go: wellFormed) goes to FerretDB unchanged, which refuses it whole before applying any.

import (
	"bufio"
	"fmt"
	"net"

	"go.mongodb.org/mongo-driver/bson"
)

// forwardStatement is one statement to send on, with its index in the client's command.
type forwardStatement struct {
	index    int
	raw      bson.Raw
	id       string // revision-checked statements: the document and the revision it was checked against
	revision int64
}

// maxBatchedStatements bounds the statements sent to FerretDB in one command (see above: 100 never answer).
const maxBatchedStatements = 64

// updateStatements decides what to send on for an update command: nil means the request as it is (one
// statement the proxy does not check); otherwise the statements, possibly none, and whether they may go to
// FerretDB as one command.
func (p *proxy) updateStatements(u *updateCommand, upstream net.Conn, fromServer *bufio.Reader) ([]forwardStatement, bool, error) {
	if checked := u.revisionStatements(); checked != nil {
		ids := make([]string, len(checked))
		for i, st := range checked {
			ids[i] = st.id
		}
		current, err := p.currentRevisions(u, ids, upstream, fromServer)
		if err == nil {
			out := make([]forwardStatement, 0, len(checked))
			batched := len(checked) <= maxBatchedStatements
			for i, st := range checked {
				if revision, found := current[st.id]; found && revision == st.revision {
					raw, err := st.reduced()
					if err != nil {
						return nil, false, err
					}
					out = append(out, forwardStatement{index: i, raw: raw, id: st.id, revision: st.revision})
					batched = batched && raisesRevision(raw)
				}
			}
			return out, batched, nil
		}
		if err != errNotInteger {
			return nil, false, err
		}
		// A stored revision that is not an integer: FerretDB matches the filters as they were sent.
	}
	if len(u.raws) == 1 {
		statements, err := p.idFilterStatements(u, upstream, fromServer) // {_id, ...more}: idfilter.go
		return statements, false, err
	}
	out := make([]forwardStatement, len(u.raws))
	for i, raw := range u.raws {
		out[i] = forwardStatement{index: i, raw: raw}
	}
	return out, false, nil
}

// raisesRevision: the statement's update is {..., $inc: {revision: n}} with n a non-zero integer, so whether
// FerretDB applied it shows in the document's revision.
func raisesRevision(statement bson.Raw) bool {
	update, ok := statement.Lookup("u").DocumentOK()
	if !ok {
		return false
	}
	inc, ok := update.Lookup("$inc").DocumentOK()
	if !ok {
		return false
	}
	by, err := inc.LookupErr("revision")
	if err != nil || (by.Type != bson.TypeInt32 && by.Type != bson.TypeInt64) {
		return false
	}
	return by.AsInt64() != 0
}

// forwardBatched sends revision-checked statements that raise the revision as one command and, when
// FerretDB reports a failure, works out from the revisions which statement it was (see above).
func (p *proxy) forwardBatched(u *updateCommand, statements []forwardStatement, upstream net.Conn,
	fromServer *bufio.Reader, client net.Conn) error {
	var merged mergedReply
	for len(statements) > 0 {
		command, err := u.command(statements)
		if err != nil {
			return err
		}
		if _, err := upstream.Write(command); err != nil {
			return err
		}
		if u.msg.flags&moreToCome != 0 {
			return nil // unacknowledged: no reply comes, none is expected
		}
		reply, err := readMessage(fromServer)
		if err != nil {
			return err
		}
		failure, asCommand := replyFailure(reply)
		if failure == nil { // all applied
			if _, err := merged.add(reply, statements[0].index); err != nil {
				return err
			}
			break
		}
		// A write error, or ok: 0 (FerretDB answers an error of its backend that way, after the statements
		// before it were applied): the revisions tell which statements went in.
		ids := make([]string, len(statements))
		for i, st := range statements {
			ids[i] = st.id
		}
		current, err := p.currentRevisions(u, ids, upstream, fromServer)
		if err != nil {
			return err
		}
		failed := 0
		for failed < len(statements) && current[statements[failed].id] != statements[failed].revision {
			failed++ // applied: its revision moved on
		}
		if failed == len(statements) {
			return fmt.Errorf("update of %s.%s: FerretDB reported a write error, yet every statement was applied",
				u.database, u.collection)
		}
		merged.replies++
		merged.n += int64(failed)
		merged.nModified += int64(failed)
		merged.writeErrors = append(merged.writeErrors, withIndex(failure, statements[failed].index))
		if asCommand {
			merged.failedAsCommand(reply)
		}
		if u.ordered {
			break
		}
		statements = statements[failed+1:]
	}
	_, err := client.Write(merged.encode(u.msg.requestID))
	return err
}

// replyFailure returns the first failure a reply reports, or nil: its first writeErrors entry, or for a
// command that failed as a whole (ok: 0) an entry made of its code and errmsg, with asCommand set.
func replyFailure(reply []byte) (entry bson.D, asCommand bool) {
	parsed, err := parseOpMsg(reply)
	if err != nil || len(parsed.sections) == 0 || parsed.sections[0].kind != 0 {
		return nil, false
	}
	body := parsed.sections[0].docs[0]
	if ok, _ := body.Lookup("ok").AsInt64OK(); ok != 1 {
		return commandError(body, 0), true
	}
	return firstWriteError(body), false
}

// commandError turns the body of an ok: 0 reply into a writeErrors entry at index.
func commandError(body bson.Raw, index int) bson.D {
	code, _ := body.Lookup("code").AsInt64OK()
	errmsg, _ := body.Lookup("errmsg").StringValueOK()
	return bson.D{{Key: "index", Value: int32(index)}, {Key: "code", Value: int32(code)}, {Key: "errmsg", Value: errmsg}}
}

// firstWriteError returns the first entry of a reply body's writeErrors, or nil.
func firstWriteError(body bson.Raw) bson.D {
	arr, ok := body.Lookup("writeErrors").ArrayOK()
	if !ok {
		return nil
	}
	values, _ := arr.Values()
	if len(values) == 0 {
		return nil
	}
	doc, ok := values[0].DocumentOK()
	if !ok {
		return nil
	}
	var entry bson.D
	if bson.Unmarshal(doc, &entry) != nil {
		return nil
	}
	return entry
}

// withIndex sets a writeErrors or upserted entry's index to the client's statement index.
func withIndex(entry bson.D, index int) bson.D {
	for i := range entry {
		if entry[i].Key == "index" {
			entry[i].Value = int32(index)
		}
	}
	return entry
}

// forwardUpdate sends each statement as a command of its own and answers the client with one merged reply.
func (p *proxy) forwardUpdate(u *updateCommand, statements []forwardStatement, upstream net.Conn,
	fromServer *bufio.Reader, client net.Conn) error {
	if len(statements) == 0 {
		if u.msg.flags&moreToCome != 0 {
			return nil
		}
		var none mergedReply
		_, err := client.Write(none.encode(u.msg.requestID))
		return err
	}
	commands, err := u.singles(statements)
	if err != nil {
		return err
	}
	if u.msg.flags&moreToCome != 0 { // unacknowledged: no replies come, none is expected
		for _, command := range commands {
			if _, err := upstream.Write(command); err != nil {
				return err
			}
		}
		return nil
	}
	var merged mergedReply
	if u.ordered {
		// One after the other: the first failing statement ends the command.
		for i, command := range commands {
			if _, err := upstream.Write(command); err != nil {
				return err
			}
			reply, err := readMessage(fromServer)
			if err != nil {
				return err
			}
			failed, err := merged.add(reply, statements[i].index)
			if err != nil {
				return err
			}
			if failed {
				break
			}
		}
	} else {
		// All sent at once (FerretDB answers a connection's commands in order), the replies read meanwhile.
		sent := make(chan error, 1)
		go func() {
			for _, command := range commands {
				if _, err := upstream.Write(command); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		for i := range commands {
			reply, err := readMessage(fromServer)
			if err != nil {
				return err
			}
			if _, err := merged.add(reply, statements[i].index); err != nil {
				return err
			}
		}
		if err := <-sent; err != nil {
			return err
		}
	}
	_, err = client.Write(merged.encode(u.msg.requestID))
	return err
}

// singles encodes one command per statement.
func (u *updateCommand) singles(statements []forwardStatement) ([][]byte, error) {
	out := make([][]byte, 0, len(statements))
	for i := range statements {
		command, err := u.command(statements[i : i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, command)
	}
	return out, nil
}

// command encodes the client's command with only the given statements.
func (u *updateCommand) command(statements []forwardStatement) ([]byte, error) {
	m := *u.msg
	m.sections = append([]section(nil), u.msg.sections...)
	if u.inBody {
		if u.body == nil {
			if err := bson.Unmarshal(u.msg.sections[0].docs[0], &u.body); err != nil {
				return nil, err
			}
		}
		values := make(bson.A, len(statements))
		for i, st := range statements {
			values[i] = st.raw
		}
		body := make(bson.D, len(u.body))
		copy(body, u.body)
		for i := range body {
			if body[i].Key == u.statements {
				body[i].Value = values
			}
		}
		b, err := bson.Marshal(body)
		if err != nil {
			return nil, err
		}
		m.sections[0] = section{kind: 0, docs: []bson.Raw{b}}
	} else {
		s := m.sections[u.sectionIdx]
		s.docs = make([]bson.Raw, len(statements))
		for i, st := range statements {
			s.docs[i] = st.raw
		}
		m.sections[u.sectionIdx] = s
	}
	return m.encode(0), nil
}

// mergedReply adds up the replies to the one-statement commands.
type mergedReply struct {
	replies           int
	n, nModified      int64
	upserted          bson.A
	writeErrors       bson.A
	writeConcernError any
	asCommand         int    // replies that failed as a command (ok: 0), each also a write error
	whole             []byte // the first of them: the answer when every reply failed so and nothing went in
}

func (r *mergedReply) failedAsCommand(reply []byte) {
	r.asCommand++
	if r.whole == nil {
		r.whole = reply
	}
}

// add takes one reply; it reports whether the statement failed.
func (r *mergedReply) add(reply []byte, index int) (bool, error) {
	r.replies++
	parsed, err := parseOpMsg(reply)
	if err != nil || len(parsed.sections) == 0 || parsed.sections[0].kind != 0 {
		return false, err
	}
	body := parsed.sections[0].docs[0]
	if ok, _ := body.Lookup("ok").AsInt64OK(); ok != 1 {
		// Only this statement failed: the others (sent as their own commands) may have gone in, so the
		// client hears of it as a write error at its index, unless nothing at all went in (see encode).
		r.writeErrors = append(r.writeErrors, commandError(body, index))
		r.failedAsCommand(reply)
		return true, nil
	}
	if n, ok := body.Lookup("n").AsInt64OK(); ok {
		r.n += n
	}
	if n, ok := body.Lookup("nModified").AsInt64OK(); ok {
		r.nModified += n
	}
	failed := false
	for _, key := range []string{"upserted", "writeErrors"} {
		arr, ok := body.Lookup(key).ArrayOK()
		if !ok {
			continue
		}
		values, _ := arr.Values()
		for _, v := range values {
			doc, ok := v.DocumentOK()
			if !ok {
				continue
			}
			var entry bson.D
			if err := bson.Unmarshal(doc, &entry); err != nil {
				return false, err
			}
			entry = withIndex(entry, index)
			if key == "upserted" {
				r.upserted = append(r.upserted, entry)
			} else {
				r.writeErrors = append(r.writeErrors, entry)
				failed = true
			}
		}
	}
	if wce, err := body.LookupErr("writeConcernError"); err == nil && r.writeConcernError == nil {
		r.writeConcernError = wce
	}
	return failed, nil
}

func (r *mergedReply) encode(requestID int32) []byte {
	if r.whole != nil && r.asCommand == r.replies && r.n == 0 && len(r.upserted) == 0 {
		m, err := parseOpMsg(r.whole)
		if err == nil {
			return m.encode(requestID)
		}
	}
	body := bson.D{{Key: "n", Value: int32(r.n)}, {Key: "nModified", Value: int32(r.nModified)}}
	if len(r.upserted) > 0 {
		body = append(body, bson.E{Key: "upserted", Value: r.upserted})
	}
	if len(r.writeErrors) > 0 {
		body = append(body, bson.E{Key: "writeErrors", Value: r.writeErrors})
	}
	if r.writeConcernError != nil {
		body = append(body, bson.E{Key: "writeConcernError", Value: r.writeConcernError})
	}
	body = append(body, bson.E{Key: "ok", Value: float64(1)})
	b, _ := bson.Marshal(body)
	return (&opMessage{requestID: 0x1ff5eee, sections: []section{{kind: 0, docs: []bson.Raw{b}}}}).encode(requestID)
}
