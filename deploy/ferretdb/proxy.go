package main

// A wire-protocol front for the embedded FerretDB that serialises write commands.
//
// FerretDB v1.24 with the SQLite backend evaluates an update's filter and writes the result in separate
// steps, so two concurrent conditional updates of one document can both succeed (measured here: 40
// concurrent `{"available": {"$gte": 1}}` + `$inc: -1` updates all matched, the counter dropped by 1; 8 of
// 20 revision-checked replace_one calls won). MongoDB makes each single-document update atomic, and ipsflow's
// persistence rules (revision checks, guarded budget reservations) depend on that. Holding one lock from a
// write command's request until its reply restores per-document atomicity; reads are not held up.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	opMsg          = 2013
	maxMessageSize = 48 * 1024 * 1024
	moreToCome     = 1 << 1
)

var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true, "findandmodify": true,
	"create": true, "drop": true, "dropDatabase": true, "createIndexes": true, "dropIndexes": true,
	"renameCollection": true,
}

type proxy struct {
	upstream  string          // unix socket of the embedded FerretDB
	revisions *revisionReader // nil: revisions are asked of FerretDB
	writes    sync.Mutex
	stats     *commandStats // nil unless the debug listener is on (debug.go)
	idChecked atomic.Int64  // statements whose {_id, ...} filter the proxy checked itself (idfilter.go)
}

// collectionCommands may create, drop or rename a collection (and its table); the other write commands create
// one only where none was (an insert, an upsert), which the revision reader does not remember.
var collectionCommands = map[string]bool{"create": true, "drop": true, "renameCollection": true}

func (p *proxy) serve(listener net.Listener) error {
	for {
		conn, err := listener.Accept()
		if err != nil {
			return err
		}
		go p.handle(conn)
	}
}

func (p *proxy) handle(client net.Conn) {
	defer client.Close()
	defer func() { // a message the proxy failed on costs its own connection, not the proxy
		if r := recover(); r != nil {
			log.Printf("proxy: connection dropped after a panic: %v", r)
		}
	}()
	upstream, err := net.Dial("unix", p.upstream)
	if err != nil {
		log.Printf("proxy: cannot reach FerretDB at %s: %v", p.upstream, err)
		return
	}
	defer upstream.Close()
	fromClient := bufio.NewReader(client)
	fromServer := bufio.NewReader(upstream)
	for {
		request, err := readMessage(fromClient)
		if err != nil {
			return
		}
		if p.stats != nil {
			start, counted := time.Now(), &countingConn{Conn: client}
			err = p.roundTrip(request, upstream, fromServer, counted)
			p.stats.record(request, time.Since(start), counted.held, counted.written)
		} else {
			err = p.roundTrip(request, upstream, fromServer, client)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Printf("proxy: %v", err)
			}
			return
		}
	}
}

// roundTrip forwards one request and every reply that belongs to it, holding the write lock for writes.
func (p *proxy) roundTrip(request []byte, upstream net.Conn, fromServer *bufio.Reader, client net.Conn) error {
	if isWrite(request) {
		p.writes.Lock()
		defer p.writes.Unlock()
		if counted, ok := client.(*countingConn); ok { // the debug listener's table (debug.go)
			locked := time.Now()
			defer func() { counted.held = time.Since(locked) }()
		}
		switch name := commandName(request); {
		case p.revisions == nil:
		case name == "dropDatabase":
			p.revisions.forget(databaseOf(request)) // before FerretDB removes the file
		case collectionCommands[name]:
			p.revisions.forgetAllTables() // a table may come, go or be renamed
		}
		if update := asUpdateCommand(request); update != nil {
			statements, batched, err := p.updateStatements(update, upstream, fromServer)
			if err != nil {
				return err
			}
			if batched && len(statements) > 0 {
				return p.forwardBatched(update, statements, upstream, fromServer, client)
			}
			if statements != nil {
				return p.forwardUpdate(update, statements, upstream, fromServer, client)
			}
		}
		if handled, err := p.forwardDelete(request, upstream, fromServer, client); handled || err != nil {
			return err
		}
	}
	if _, err := upstream.Write(request); err != nil {
		return err
	}
	if opCode(request) == opMsg && flags(request)&moreToCome != 0 {
		return nil // unacknowledged write: no reply comes
	}
	for {
		reply, err := readMessage(fromServer)
		if err != nil {
			return err
		}
		if _, err := client.Write(reply); err != nil {
			return err
		}
		if opCode(reply) != opMsg || flags(reply)&moreToCome == 0 {
			return nil // exhaust replies (moreToCome) keep coming until one without the flag
		}
	}
}

// currentRevisions reads the revisions of the documents ids: from the database file when it can,
// else with a find per document through the connection the proxy holds. errNotInteger when a document's
// revision is stored as something other than an integer.
func (p *proxy) currentRevisions(u *updateCommand, ids []string, upstream net.Conn,
	fromServer *bufio.Reader) (map[string]int64, error) {
	if p.revisions != nil {
		current, err := p.revisions.revisions(u.database, u.collection, ids)
		switch {
		case err == nil, errors.Is(err, errNotInteger):
			return current, err
		case errors.Is(err, errNoDatabase):
			return map[string]int64{}, nil
		}
		log.Printf("proxy: reading revisions from %s.sqlite: %v; asking FerretDB", u.database, err)
		p.revisions.forget(u.database)
	}
	current := make(map[string]int64, len(ids))
	for _, id := range ids {
		revision, found, err := currentRevision(upstream, fromServer, u.database, u.collection, id)
		if err != nil {
			return nil, err
		}
		if found {
			current[id] = revision
		}
	}
	return current, nil
}

// databaseOf returns an OP_MSG's $db.
func databaseOf(message []byte) string {
	m, err := parseOpMsg(message)
	if err != nil || len(m.sections) == 0 || m.sections[0].kind != 0 {
		return ""
	}
	database, _ := m.sections[0].docs[0].Lookup("$db").StringValueOK()
	return database
}

func readMessage(r *bufio.Reader) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	size := int(binary.LittleEndian.Uint32(header[:]))
	if size < 16 || size > maxMessageSize {
		return nil, fmt.Errorf("message size %d out of range", size)
	}
	message := make([]byte, size)
	copy(message, header[:])
	if _, err := io.ReadFull(r, message[4:]); err != nil {
		return nil, err
	}
	return message, nil
}

func opCode(message []byte) int32 { return int32(binary.LittleEndian.Uint32(message[12:16])) }

func flags(message []byte) uint32 {
	if len(message) < 20 {
		return 0
	}
	return binary.LittleEndian.Uint32(message[16:20])
}

// commandName reads the first key of the body section (kind 0) of an OP_MSG.
func commandName(message []byte) string {
	if opCode(message) != opMsg || len(message) < 27 || message[20] != 0 {
		return ""
	}
	// 21..24: BSON document length; 25: first element's type; 26..: its name (a C string).
	end := 26
	for end < len(message) && message[end] != 0 {
		end++
	}
	return string(message[26:end])
}

func isWrite(message []byte) bool { return writeCommands[commandName(message)] }
