package main

// Reading revisions straight from SQLite.
//
// A revision-checked update needs the document's current revision before the proxy forwards it (cas.go).
// Asking FerretDB means a find that decodes the whole document (the outbox included) and encodes a reply;
// for the outbox relay's batches that was a third of the cost of clearing them. The proxy reads the
// revision from the database file instead, with one indexed query per batch, on a read-only connection:
// `_ferretdb_sjson->'$._id'` is the expression FerretDB itself matches `_id` with, and idindex.go indexes it.
//
// The reads happen while the proxy holds the write lock, so every write FerretDB acknowledged is committed
// and none is in progress. A database that is dropped loses its cached handle before FerretDB removes its
// file (see forget), so a handle never outlives its file. Anything unexpected (a file FerretDB has not
// finished creating, a layout this code does not know) returns an error, and the caller asks FerretDB.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type revisionReader struct {
	dir string
	dbs map[string]*sql.DB // by database name; used only under the proxy's write lock
	// tables: each database's collection -> table, as read from _ferretdb_collections (a query that cost as
	// much as the revision read itself); forgotten when a command may change it (forgetTables).
	tables map[string]map[string]string
}

func newRevisionReader(dir string) *revisionReader {
	return &revisionReader{dir: dir, dbs: map[string]*sql.DB{}, tables: map[string]map[string]string{}}
}

// errNoDatabase: the database or collection does not exist, so no document matches.
var errNoDatabase = errors.New("no such database or collection")

// revisions returns the revision of each of ids that exists and has one; errNotInteger when one of them is
// stored as something other than an int32 or int64.
func (r *revisionReader) revisions(database, collection string, ids []string) (map[string]int64, error) {
	db, table, err := r.table(database, collection)
	if err != nil {
		return nil, err
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		b, err := json.Marshal(id) // FerretDB's SJSON form of a string _id is its JSON string
		if err != nil {
			return nil, err
		}
		args[i] = string(b)
	}
	query := fmt.Sprintf(`SELECT _ferretdb_sjson->>'$._id', _ferretdb_sjson->>'$.revision', `+
		`json_type(_ferretdb_sjson, '$.revision'), _ferretdb_sjson->>'$."$s".p.revision.t', `+
		`_ferretdb_sjson->>'$."$s".p._id.t' FROM %q WHERE _ferretdb_sjson->'$._id' IN (?%s)`,
		table, strings.Repeat(", ?", len(ids)-1))
	rows, err := db.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string]int64, len(ids))
	notInteger := false
	for rows.Next() {
		var id string
		var revision any
		var jsonType, kind, idKind sql.NullString
		if err := rows.Scan(&id, &revision, &jsonType, &kind, &idKind); err != nil {
			return nil, err
		}
		if idKind.String != "string" {
			continue // an _id of another type with the same text (an ObjectId): not the document asked for
		}
		if !jsonType.Valid {
			continue // no revision: a revision filter does not match it
		}
		value, isInt := revision.(int64)
		if !isInt || (kind.String != "int" && kind.String != "long") {
			notInteger = true // a double, a string, ...: MongoDB's matching rules decide, so FerretDB does
			continue
		}
		found[id] = value
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if notInteger {
		return nil, errNotInteger
	}
	return found, nil
}

func (r *revisionReader) open(database string) (*sql.DB, error) {
	if db, ok := r.dbs[database]; ok {
		return db, nil
	}
	if strings.ContainsAny(database, `/\`) || database == "" {
		return nil, fmt.Errorf("database name %q", database)
	}
	file := filepath.Join(r.dir, database+".sqlite")
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return nil, errNoDatabase
	}
	// mode=rw never creates a file; query_only makes sure this connection never writes one either.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	r.dbs[database] = db
	return db, nil
}

// forgetTables drops what is known of the database's tables; forgetAllTables of every database's: before a
// command that may create, drop or rename a collection (renameCollection names its databases in its arguments).
func (r *revisionReader) forgetTables(database string) { delete(r.tables, database) }

func (r *revisionReader) forgetAllTables() { r.tables = map[string]map[string]string{} }

// forget closes the handle of a database that is about to be dropped.
func (r *revisionReader) forget(database string) {
	r.forgetTables(database)
	if db, ok := r.dbs[database]; ok {
		db.Close()
		delete(r.dbs, database)
	}
}

// severalDocuments: the collection's table holds at least two documents (idfilter.go); false with an error when
// the database or collection does not exist.
func (r *revisionReader) severalDocuments(database, collection string) (bool, error) {
	db, table, err := r.table(database, collection)
	if err != nil {
		return false, err
	}
	var n int
	if err := db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM %q LIMIT 2)`, table)).Scan(&n); err != nil {
		return false, err
	}
	return n >= 2, nil
}

// table: the database's handle and the collection's table; errNoDatabase when either does not exist.
func (r *revisionReader) table(database, collection string) (*sql.DB, string, error) {
	db, err := r.open(database)
	if err != nil {
		return nil, "", err
	}
	if table, ok := r.tables[database][collection]; ok {
		return db, table, nil
	}
	var table string
	err = db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, collection).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", errNoDatabase // not remembered: the collection may come
	}
	if err != nil {
		return nil, "", err
	}
	if r.tables[database] == nil {
		r.tables[database] = map[string]string{}
	}
	r.tables[database][collection] = table
	return db, table, nil
}
