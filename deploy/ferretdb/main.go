// Command ipsflow-ferretdb runs FerretDB v1 embedded, with its SQLite backend, as the local
// MongoDB wire-protocol server for development and CI on machines without a Docker engine.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", envOr("IPSFLOW_FERRETDB_LISTEN", "127.0.0.1:27017"), "TCP address to listen on")
	logLevel := flag.String("log-level", envOr("IPSFLOW_FERRETDB_LOG_LEVEL", "warn"), "debug, info, warn or error")
	dataDir := flag.String("data-dir", envOr("IPSFLOW_FERRETDB_DATA", ".local/ferretdb"), "directory for the SQLite files")
	// SQLite's default in WAL mode (FULL) syncs the log to disk at every commit. NORMAL syncs it at
	// checkpoints: a crash of the process loses nothing, a crash of the machine may lose the last commits.
	// That is what MongoDB gives by default too (w:1 acknowledges before the journal, which is flushed every
	// 100 ms), and it is what a development and CI stack needs; FULL is there for whoever wants it.
	syncMode := flag.String("sync", envOr("IPSFLOW_FERRETDB_SYNC", "normal"), "SQLite synchronous mode: normal or full")
	flag.Parse()

	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatalf("data directory %q: %v", *dataDir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		log.Fatalf("cannot create data directory %q: %v", abs, err)
	}

	if *syncMode != "normal" && *syncMode != "full" {
		log.Fatalf("sync mode %q: use normal or full", *syncMode)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("log level %q: %v", *logLevel, err)
	}
	// At debug level FerretDB dumps every wire message; warn keeps the log readable and the server fast.
	// lazylog.go: attributes formatted only for records that are written (FerretDB's debug records are not).
	logger := slog.New(newLazyHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))

	// FerretDB decodes and encodes whole documents for every read and write, so it allocates a lot and keeps
	// little: with Go's default (GOGC=100) the collector took about a tenth of its CPU while IPS cases ran.
	// Collecting at four times the live heap instead of twice, with a soft limit, trades some memory for that;
	// GOGC and GOMEMLIMIT in the environment still decide when set.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}

	// FerretDB itself listens on a private Unix socket; clients reach it through the proxy (proxy.go).
	socket := filepath.Join(abs, "ferretdb.sock")
	if len(socket) > 100 {
		socket = filepath.Join(os.TempDir(), fmt.Sprintf("ipsflow-ferretdb-%d.sock", os.Getpid()))
	}
	_ = os.Remove(socket)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: socket},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(" + *syncMode + ")",
	})
	if err != nil {
		log.Fatalf("cannot configure FerretDB: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// f.MongoDBURI() may deadlock before Run has opened the listener, so the address is printed as given.
	front, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("cannot listen on %s: %v", *listen, err)
	}
	go func() {
		<-ctx.Done()
		front.Close()
	}()
	wire := &proxy{upstream: socket, revisions: newRevisionReader(abs)}
	if addr := os.Getenv("IPSFLOW_FERRETDB_PPROF"); addr != "" { // off by default (debug.go)
		wire.stats = newCommandStats()
		go serveDebug(addr, wire.stats)
	}
	go func() {
		if err := wire.serve(front); err != nil && ctx.Err() == nil {
			log.Fatalf("proxy stopped: %v", err)
		}
	}()

	go (&idIndexer{dir: abs, writes: &wire.writes}).run(ctx, time.Second)

	fmt.Printf("ipsflow-ferretdb listening on %s (mongodb://%s/), data in %s, sync %s\n", *listen, *listen, abs, *syncMode)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatalf("FerretDB stopped: %v", err)
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
