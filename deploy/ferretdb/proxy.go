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
	upstream string // unix socket of the embedded FerretDB
	writes   sync.Mutex
}

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
		if err := p.roundTrip(request, upstream, fromServer, client); err != nil {
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
		if update := asRevisionUpdate(request); update != nil {
			current, found, err := currentRevision(upstream, fromServer, update.database, update.collection, update.id)
			if err != nil {
				return err
			}
			if !found || current != update.revision {
				_, err := client.Write(missReply(update.msg.requestID))
				return err
			}
			rewritten, err := update.rewritten()
			if err != nil {
				return err
			}
			request = rewritten
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

// isWrite reads the command name: the first key of the body section (kind 0) of an OP_MSG.
func isWrite(message []byte) bool {
	if opCode(message) != opMsg || len(message) < 27 || message[20] != 0 {
		return false
	}
	// 21..24: BSON document length; 25: first element's type; 26..: its name (a C string).
	end := 26
	for end < len(message) && message[end] != 0 {
		end++
	}
	return writeCommands[string(message[26:end])]
}
