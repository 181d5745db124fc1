package main

// An index that FerretDB v1.24's SQLite backend lacks.
//
// FerretDB indexes `_id` as `_ferretdb_sjson->"_id"`, but its UPDATE and DELETE statements match documents
// with `_ferretdb_sjson->'$._id' = ?`, an expression SQLite cannot answer from that index. So every update of
// one document scans the whole table, and an update costs time in proportion to the collection's size
// (measured: 2-3 ms at 200 documents, 18-20 ms at 4,000). This loop gives every collection table an index
// on exactly the expression those statements use, shortly after the table appears.

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses; registers "sqlite"
)

type idIndexer struct {
	dir string
	// writes is the proxy's write lock. A file is open here only while it is held, so a dropDatabase (a
	// write) never removes a file this loop has open: an open connection would keep the old write-ahead log
	// alive for the next database of that name.
	writes sync.Locker
}

func (x *idIndexer) run(ctx context.Context, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		x.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (x *idIndexer) pass(ctx context.Context) {
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	if err != nil {
		return
	}
	for _, file := range files {
		x.writes.Lock()
		err := x.ensure(ctx, file)
		x.writes.Unlock()
		if err != nil && ctx.Err() == nil {
			log.Printf("id index for %s: %v", filepath.Base(file), err)
		}
	}
}

func (x *idIndexer) ensure(ctx context.Context, file string) error {
	if _, err := os.Stat(file); err != nil {
		return nil // dropped since the glob
	}
	// mode=rw: never create a file (a missing one would otherwise come back empty, without FerretDB's tables)
	// A short busy timeout: this runs under the write lock, and a busy file is simply indexed on a later pass.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(250)")
	if err != nil {
		return err
	}
	defer db.Close()
	// Asked every time rather than remembered: a dropped and re-created collection gets the same table name.
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM _ferretdb_collections c WHERE NOT EXISTS
		(SELECT 1 FROM sqlite_master m WHERE m.type = 'index' AND m.name = c.table_name || '_ipsflow_id')`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil // a database FerretDB is still creating
		}
		return err
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()
	for _, table := range tables {
		statement := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`,
			table+"_ipsflow_id", table)
		if _, err := db.ExecContext(ctx, statement); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				continue // dropped meanwhile
			}
			return err
		}
	}
	return nil
}
