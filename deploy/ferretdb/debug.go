package main

// An opt-in debug listener: Go's pprof handlers and a table of the commands the front forwarded.
//
// IPSFLOW_FERRETDB_PPROF=127.0.0.1:6061 (off by default) serves /debug/pprof/ (a CPU profile of the whole
// process, FerretDB included: `go tool pprof http://127.0.0.1:6061/debug/pprof/profile?seconds=30`) and
// /debug/ipsflow/commands: per command, database, collection and filter shape, how many came, the time
// from request to the last reply (FerretDB's work plus waiting for a core or the write lock), for writes the
// time they held the write lock (no waiting for other writes in it), and the bytes in and out. FerretDB does its work on goroutines of its own, so a CPU profile says what it does and this table
// says for which commands. Nothing is counted while the listener is off.

import (
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux, served only on this listener
	"sort"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

func serveDebug(addr string, stats *commandStats) {
	http.HandleFunc("/debug/ipsflow/commands", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.URL.Query().Get("reset") != "" {
			stats.reset()
		}
		fmt.Fprint(w, stats.table())
	})
	log.Printf("debug listener (pprof, command table) on %s", addr)
	if err := http.ListenAndServe(addr, nil); err != nil {
		log.Printf("debug listener on %s: %v", addr, err)
	}
}

type commandKey struct {
	command, database, collection, shape string
}

type commandCount struct {
	n             int
	elapsed, held time.Duration
	in, out, docs int
}

type commandStats struct {
	mu     sync.Mutex
	counts map[commandKey]*commandCount
	since  time.Time
}

func newCommandStats() *commandStats {
	return &commandStats{counts: map[commandKey]*commandCount{}, since: time.Now()}
}

func (s *commandStats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts, s.since = map[commandKey]*commandCount{}, time.Now()
}

func (s *commandStats) record(request []byte, elapsed, held time.Duration, out int) {
	key, docs := describe(request)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[key]
	if c == nil {
		c = &commandCount{}
		s.counts[key] = c
	}
	c.n++
	c.elapsed += elapsed
	c.held += held
	c.in += len(request)
	c.out += out
	c.docs += docs
}

// table: one line per key, the most time first.
func (s *commandStats) table() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]commandKey, 0, len(s.counts))
	var total time.Duration
	for k, c := range s.counts {
		keys = append(keys, k)
		total += c.elapsed
	}
	sort.Slice(keys, func(i, j int) bool { return s.counts[keys[i]].elapsed > s.counts[keys[j]].elapsed })
	var b strings.Builder
	fmt.Fprintf(&b, "# since %s (%.1f s), total %.1f ms\n", s.since.Format(time.RFC3339),
		time.Since(s.since).Seconds(), float64(total)/1e6)
	fmt.Fprintf(&b, "%-12s %-28s %-28s %-40s %7s %10s %8s %10s %8s %10s %10s %7s\n", "command", "database",
		"collection", "shape", "n", "ms", "ms/n", "held_ms", "held/n", "in", "out", "stmts")
	for _, k := range keys {
		c := s.counts[k]
		fmt.Fprintf(&b, "%-12s %-28s %-28s %-40s %7d %10.1f %8.2f %10.1f %8.2f %10d %10d %7d\n", k.command,
			k.database, k.collection, k.shape, c.n, float64(c.elapsed)/1e6, float64(c.elapsed)/1e6/float64(c.n),
			float64(c.held)/1e6, float64(c.held)/1e6/float64(c.n), c.in, c.out, c.docs)
	}
	return b.String()
}

// describe names a request by command, database, collection and the shape of its filter (its keys, with
// the operator of a value that is one, e.g. {status:$in,_id}); docs counts a write's statements.
func describe(request []byte) (commandKey, int) {
	m, err := parseOpMsg(request)
	if err != nil || len(m.sections) == 0 || m.sections[0].kind != 0 {
		return commandKey{command: fmt.Sprintf("op%d", opCode(request))}, 0
	}
	body := m.sections[0].docs[0]
	elements, err := body.Elements()
	if err != nil || len(elements) == 0 {
		return commandKey{command: "?"}, 0
	}
	k := commandKey{command: elements[0].Key()}
	k.collection, _ = elements[0].Value().StringValueOK()
	k.database, _ = body.Lookup("$db").StringValueOK()
	var filter bson.Raw
	docs := 0
	switch k.command {
	case "find", "count", "delete", "distinct":
		for _, name := range []string{"filter", "query"} {
			if f, ok := body.Lookup(name).DocumentOK(); ok {
				filter = f
			}
		}
	case "findAndModify", "findandmodify":
		filter, _ = body.Lookup("query").DocumentOK()
		if u, ok := body.Lookup("update").DocumentOK(); ok {
			k.shape = " u" + shape(u)
		}
	case "aggregate":
		if stages, ok := body.Lookup("pipeline").ArrayOK(); ok {
			values, _ := stages.Values()
			names := make([]string, 0, len(values))
			for _, v := range values {
				stage, _ := v.DocumentOK()
				if e, err := stage.IndexErr(0); err == nil {
					names = append(names, e.Key())
					if e.Key() == "$match" && filter == nil {
						filter, _ = e.Value().DocumentOK()
					}
				}
			}
			k.shape = " [" + strings.Join(names, ",") + "]"
		}
	case "getMore":
		k.collection, _ = body.Lookup("collection").StringValueOK()
	}
	var statements []bson.Raw
	for _, name := range []string{"updates", "deletes", "documents"} {
		if arr, ok := body.Lookup(name).ArrayOK(); ok {
			values, _ := arr.Values()
			for _, v := range values {
				if d, ok := v.DocumentOK(); ok {
					statements = append(statements, d)
				}
			}
		}
	}
	for _, s := range m.sections[1:] {
		statements = append(statements, s.docs...)
	}
	docs = len(statements)
	if len(statements) > 0 && (k.command == "update" || k.command == "delete") {
		filter, _ = statements[0].Lookup("q").DocumentOK()
		if u, ok := statements[0].Lookup("u").DocumentOK(); ok {
			if e, err := u.IndexErr(0); err == nil && strings.HasPrefix(e.Key(), "$") {
				k.shape = " u" + shape(u)
			} else {
				k.shape = " replace"
			}
		}
	}
	if filter != nil {
		k.shape = shape(filter) + k.shape
	}
	return k, docs
}

func shape(d bson.Raw) string {
	elements, err := d.Elements()
	if err != nil {
		return "{?}"
	}
	parts := make([]string, 0, len(elements))
	for _, e := range elements {
		part := e.Key()
		if sub, ok := e.Value().DocumentOK(); ok {
			if first, err := sub.IndexErr(0); err == nil && strings.HasPrefix(first.Key(), "$") {
				part += ":" + first.Key()
			}
		}
		parts = append(parts, part)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// countingConn counts the bytes written to the client.
type countingConn struct {
	net.Conn
	written int
	held    time.Duration // a write's time holding the write lock (proxy.roundTrip)
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written += n
	return n, err
}
