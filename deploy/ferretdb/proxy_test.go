package main

// The front against a real embedded FerretDB (SQLite in a temporary directory), through the Go driver:
// the guarantees ipsflow's persistence relies on. Guarded updates of one document are atomic (FerretDB alone
// let 40 concurrent `$gte: 1` + `$inc: -1` updates all match), a revision-checked update wins once per
// revision, and an unordered bulk update is answered as MongoDB answers it.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// startFront runs FerretDB and the front as main does and returns a collection reached through the front.
func startFront(t *testing.T) *mongo.Collection {
	t.Helper()
	collection, _, _ := startFrontWithSocket(t)
	return collection
}

// startFrontWithSocket is startFront that also returns FerretDB's own socket, to compare with FerretDB alone,
// and the front.
func startFrontWithSocket(t *testing.T) (*mongo.Collection, string, *proxy) {
	t.Helper()
	dir := t.TempDir()
	socket := filepath.Join(os.TempDir(), fmt.Sprintf("ipsflow-ferretdb-test-%d-%d.sock", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { _ = os.Remove(socket) })
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: socket},
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		t.Fatalf("ferretdb.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	wire := &proxy{upstream: socket, revisions: newRevisionReader(dir)}
	go func() { _ = wire.serve(front) }()
	indexCtx, stopIndexer := context.WithCancel(context.Background())
	go (&idIndexer{dir: dir, writes: &wire.writes}).run(indexCtx, 100*time.Millisecond)

	client, err := mongo.Connect(context.Background(), options.Client().
		ApplyURI("mongodb://"+front.Addr().String()+"/").SetMaxPoolSize(8).SetServerSelectionTimeout(30*time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		_ = client.Disconnect(context.Background())
		stopIndexer()
		front.Close()
		cancel()
		<-done
	})
	deadline := time.Now().Add(60 * time.Second)
	for client.Ping(context.Background(), nil) != nil { // FerretDB opens its socket after Run has started
		if time.Now().After(deadline) {
			t.Fatalf("FerretDB did not answer through the front within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return client.Database("frontdb").Collection("ledgers"), socket, wire
}

func TestGuardedDecrementsNeverGoBelowZero(t *testing.T) {
	coll := startFront(t)
	ctx := context.Background()
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "plafond"}, {Key: "beschikbaar", Value: int32(5)}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "plafond"}, {Key: "beschikbaar", Value: bson.D{{Key: "$gte", Value: 1}}}},
				bson.D{{Key: "$inc", Value: bson.D{{Key: "beschikbaar", Value: -1}}}})
			if err != nil {
				t.Errorf("update: %v", err)
				return
			}
			won.Add(int32(r.MatchedCount))
		}()
	}
	wg.Wait()
	var doc struct{ Beschikbaar int32 }
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "plafond"}}).Decode(&doc); err != nil {
		t.Fatalf("find: %v", err)
	}
	if won.Load() != 5 || doc.Beschikbaar != 0 {
		t.Fatalf("%d of 40 guarded updates matched, %d left; want 5 and 0", won.Load(), doc.Beschikbaar)
	}
}

func TestARevisionIsWonOnce(t *testing.T) {
	coll := startFront(t)
	ctx := context.Background()
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "zaak"}, {Key: "revision", Value: int64(1)}, {Key: "door", Value: ""}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	for round := int64(1); round <= 5; round++ {
		var won atomic.Int32
		var wg sync.WaitGroup
		for writer := 0; writer < 20; writer++ {
			wg.Add(1)
			go func(writer int) {
				defer wg.Done()
				r, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "zaak"}, {Key: "revision", Value: round}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "door", Value: fmt.Sprint(writer)}}},
						{Key: "$inc", Value: bson.D{{Key: "revision", Value: 1}}}})
				if err != nil {
					t.Errorf("update: %v", err)
					return
				}
				won.Add(int32(r.ModifiedCount))
			}(writer)
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d of 20 writers won revision %d; want exactly 1", round, won.Load(), round)
		}
	}
	var doc struct{ Revision int64 }
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "zaak"}}).Decode(&doc); err != nil || doc.Revision != 6 {
		t.Fatalf("revision %d (%v), want 6", doc.Revision, err)
	}
}

func TestAnUnorderedBulkUpdateIsAnsweredAsMongoDBDoes(t *testing.T) {
	coll := startFront(t)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprint("d", i)}, {Key: "revision", Value: int64(1)}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	bump := bson.D{{Key: "$inc", Value: bson.D{{Key: "revision", Value: 1}}}}
	models := []mongo.WriteModel{
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: "d0"}, {Key: "revision", Value: int64(1)}}).SetUpdate(bump),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: "d1"}, {Key: "revision", Value: int64(7)}}).SetUpdate(bump), // stale
		// a statement FerretDB fails (an update operator it does not know): a write error at index 2, the rest go on
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: "d2"}}).SetUpdate(bson.D{{Key: "$frobnicate", Value: bson.D{{Key: "x", Value: 1}}}}),
		mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: "d3"}, {Key: "revision", Value: int64(1)}}).SetUpdate(bump),
	}
	result, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	var bulk mongo.BulkWriteException
	if !errors.As(err, &bulk) {
		t.Fatalf("want a bulk write exception for the failing statement, got %v", err)
	}
	if len(bulk.WriteErrors) != 1 || bulk.WriteErrors[0].Index != 2 {
		t.Fatalf("write errors %+v, want one at index 2", bulk.WriteErrors)
	}
	if result == nil || result.MatchedCount != 2 || result.ModifiedCount != 2 {
		t.Fatalf("result %+v, want 2 matched and 2 modified (d0 and d3)", result)
	}
	for id, want := range map[string]int64{"d0": 2, "d1": 1, "d2": 1, "d3": 2} {
		var doc struct{ Revision int64 }
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil || doc.Revision != want {
			t.Errorf("%s: revision %d (%v), want %d", id, doc.Revision, err, want)
		}
	}
}
