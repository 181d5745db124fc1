package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"
)

func TestWhichStatementsTheProxyChecksByID(t *testing.T) {
	statement := func(q, u bson.D, more ...bson.E) bson.Raw {
		return mustMarshal(t, append(bson.D{{Key: "q", Value: q}, {Key: "u", Value: u}}, more...))
	}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "verzonden"}}}}
	idAnd := bson.D{{Key: "_id", Value: "b-1"}, {Key: "status", Value: "bezig"}}
	cases := []struct {
		name string
		raw  bson.Raw
		want bool
	}{
		{"_id and a condition", statement(idAnd, set), true},
		{"ObjectId and an operator", statement(bson.D{{Key: "_id", Value: primitive.NewObjectID()},
			{Key: "applied", Value: bson.D{{Key: "$ne", Value: "m"}}}}, set), true},
		{"a replacement", statement(idAnd, bson.D{{Key: "status", Value: "x"}}), true},
		{"multi false, upsert false", statement(idAnd, set, bson.E{Key: "multi", Value: false}, bson.E{Key: "upsert", Value: false}), true},
		{"_id alone (FerretDB pushes it down)", statement(bson.D{{Key: "_id", Value: "b-1"}}, set), false},
		{"no _id", statement(bson.D{{Key: "status", Value: "a"}, {Key: "claim", Value: "t"}}, set), false},
		{"_id an operator", statement(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"a"}}}}, {Key: "s", Value: 1}}, set), false},
		{"_id a number", statement(bson.D{{Key: "_id", Value: 7}, {Key: "s", Value: 1}}, set), false},
		{"upsert", statement(idAnd, set, bson.E{Key: "upsert", Value: true}), false},
		{"multi", statement(idAnd, set, bson.E{Key: "multi", Value: true}), false},
		{"arrayFilters", statement(idAnd, set, bson.E{Key: "arrayFilters", Value: bson.A{}}), false},
		{"positional $", statement(idAnd, bson.D{{Key: "$set", Value: bson.D{{Key: "pogingen.$.fout", Value: "x"}}}}), false},
		{"positional $[]", statement(idAnd, bson.D{{Key: "$inc", Value: bson.D{{Key: "a.$[].n", Value: 1}}}}), false},
		{"a pipeline", mustMarshal(t, bson.D{{Key: "q", Value: idAnd}, {Key: "u", Value: bson.A{bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: 1}}}}}}}), false},
	}
	for _, c := range cases {
		if _, got := asIDFilterStatement(c.raw); got != c.want {
			t.Errorf("%s: checked by the proxy %v, want %v", c.name, got, c.want)
		}
	}
	f, _ := asIDFilterStatement(statement(idAnd, set, bson.E{Key: "upsert", Value: false}))
	reduced, err := f.reduced(statement(idAnd, set, bson.E{Key: "upsert", Value: false}))
	if err != nil {
		t.Fatal(err)
	}
	want := statement(bson.D{{Key: "_id", Value: "b-1"}}, set, bson.E{Key: "upsert", Value: false})
	if !reflect.DeepEqual([]byte(reduced), []byte(want)) {
		t.Fatalf("reduced to %v, want %v", reduced, want)
	}
}

// frontAndAlone: a collection through the front and one of FerretDB's own, reached without the front.
func frontAndAlone(t *testing.T) (viaFront, alone *mongo.Collection, front *proxy) {
	t.Helper()
	viaFront, socket, front := startFrontWithSocket(t)
	direct, err := mongo.Connect(context.Background(), options.Client().ApplyURI("mongodb://"+url.PathEscape(socket)+"/"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Disconnect(context.Background()) })
	return viaFront, direct.Database("frontdb").Collection("alone"), front
}

// The same updates through the front and to FerretDB alone give the same results, errors and documents.
func TestUpdatesFilteredOnIDAndMoreAnswerAsFerretDBDoes(t *testing.T) {
	viaFront, alone, front := frontAndAlone(t)
	ctx := context.Background()
	seed := func(c *mongo.Collection) {
		for _, doc := range []bson.D{
			{{Key: "_id", Value: "b-1"}, {Key: "status", Value: "bezig"}, {Key: "claim", Value: "t1"}, {Key: "n", Value: int32(1)},
				{Key: "pogingen", Value: bson.A{bson.D{{Key: "fout", Value: nil}}}}},
			{{Key: "_id", Value: "b-2"}, {Key: "status", Value: "te_versturen"}, {Key: "applied", Value: bson.A{"m1"}}},
			{{Key: "_id", Value: "b-3"}, {Key: "financieel", Value: bson.D{{Key: "r1", Value: int32(5)}}}},
		} {
			if _, err := c.InsertOne(ctx, doc); err != nil {
				t.Fatal(err)
			}
		}
	}
	seed(viaFront)
	seed(alone)
	time.Sleep(300 * time.Millisecond) // the id index (idindex.go)

	type step struct {
		filter, update any
		replace        bool
	}
	steps := []step{
		{bson.D{{Key: "_id", Value: "b-1"}, {Key: "status", Value: "bezig"}, {Key: "claim", Value: "t1"}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "verzonden"}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}, false},
		{bson.D{{Key: "_id", Value: "b-1"}, {Key: "status", Value: "bezig"}, {Key: "claim", Value: "t1"}}, // no longer matches
			bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: "mislukt"}}}}, false},
		{bson.D{{Key: "_id", Value: "b-2"}, {Key: "applied", Value: bson.D{{Key: "$ne", Value: "m2"}}}},
			bson.D{{Key: "$push", Value: bson.D{{Key: "applied", Value: "m2"}}}}, false},
		{bson.D{{Key: "_id", Value: "b-2"}, {Key: "applied", Value: bson.D{{Key: "$ne", Value: "m2"}}}}, // applied already
			bson.D{{Key: "$push", Value: bson.D{{Key: "applied", Value: "m2"}}}}, false},
		{bson.D{{Key: "_id", Value: "b-3"}, {Key: "financieel.r1", Value: bson.D{{Key: "$exists", Value: true}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}, false},
		{bson.D{{Key: "_id", Value: "b-3"}, {Key: "financieel.r9", Value: bson.D{{Key: "$exists", Value: true}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 2}}}}, false},
		{bson.D{{Key: "_id", Value: "b-3"}, {Key: "x", Value: 1}}, bson.D{{Key: "nieuw", Value: true}}, true}, // replacement
		{bson.D{{Key: "_id", Value: "geen"}, {Key: "x", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 3}}}}, false},
		{bson.D{{Key: "_id", Value: "b-1"}, {Key: "n", Value: bson.D{{Key: "$bogus", Value: 1}}}}, // an unknown operator
			bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}, false},
		{bson.D{{Key: "_id", Value: "b-1"}, {Key: "status", Value: "verzonden"}}, // the _id cannot change
			bson.D{{Key: "$set", Value: bson.D{{Key: "_id", Value: "ander"}}}}, false},
	}
	run := func(c *mongo.Collection, s step) (any, string) {
		var result *mongo.UpdateResult
		var err error
		if s.replace {
			result, err = c.ReplaceOne(ctx, s.filter, s.update)
		} else {
			result, err = c.UpdateOne(ctx, s.filter, s.update)
		}
		if err != nil {
			return nil, err.Error()
		}
		return [2]int64{result.MatchedCount, result.ModifiedCount}, ""
	}
	for i, s := range steps {
		gotResult, gotErr := run(viaFront, s)
		wantResult, wantErr := run(alone, s)
		if !reflect.DeepEqual(gotResult, wantResult) || gotErr != wantErr {
			t.Errorf("step %d: through the front %v %q, FerretDB alone %v %q", i, gotResult, gotErr, wantResult, wantErr)
		}
	}
	documents := func(c *mongo.Collection) []bson.D {
		cursor, err := c.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var out []bson.D
		if err := cursor.All(ctx, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// every step but the unknown operator (FerretDB's own error) was checked by the proxy, not by a scan
	if checked := front.idChecked.Load(); checked != int64(len(steps)-1) {
		t.Errorf("the proxy checked %d of the %d statements itself, want %d", checked, len(steps), len(steps)-1)
	}
	if got, want := documents(viaFront), documents(alone); !reflect.DeepEqual(got, want) {
		t.Fatalf("documents through the front:\n%v\nFerretDB alone:\n%v", got, want)
	}
}

// Deletes filtered on {_id, ...more} (the engine's move of a closed case: {_id, revision, views_behind: {$ne}})
// through the front and to FerretDB alone.
func TestDeletesFilteredOnIDAndMoreAnswerAsFerretDBDoes(t *testing.T) {
	viaFront, alone, front := frontAndAlone(t)
	ctx := context.Background()
	for _, c := range []*mongo.Collection{viaFront, alone} {
		for i, behind := range []bool{false, true, false} {
			doc := bson.D{{Key: "_id", Value: "c-" + string(rune('1'+i))}, {Key: "revision", Value: int32(3)}, {Key: "views_behind", Value: behind}}
			if _, err := c.InsertOne(ctx, doc); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(300 * time.Millisecond)
	notBehind := bson.D{{Key: "$ne", Value: true}}
	filters := []bson.D{
		{{Key: "_id", Value: "c-1"}, {Key: "revision", Value: int32(2)}, {Key: "views_behind", Value: notBehind}}, // stale revision
		{{Key: "_id", Value: "c-2"}, {Key: "revision", Value: int32(3)}, {Key: "views_behind", Value: notBehind}}, // behind
		{{Key: "_id", Value: "c-1"}, {Key: "revision", Value: int32(3)}, {Key: "views_behind", Value: notBehind}}, // deleted
		{{Key: "_id", Value: "c-1"}, {Key: "revision", Value: int32(3)}},                                          // gone already
		{{Key: "_id", Value: "c-3"}, {Key: "revision", Value: bson.D{{Key: "$bogus", Value: 1}}}},                 // FerretDB's error
	}
	for i, filter := range filters {
		got, gotErr := viaFront.DeleteOne(ctx, filter)
		want, wantErr := alone.DeleteOne(ctx, filter)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || (got == nil) != (want == nil) || (got != nil && got.DeletedCount != want.DeletedCount) {
			t.Errorf("delete %d: through the front %v %v, FerretDB alone %v %v", i, got, gotErr, want, wantErr)
		}
	}
	if checked := front.idChecked.Load(); checked != int64(len(filters)-1) {
		t.Errorf("the proxy checked %d of the %d deletes itself, want %d", checked, len(filters), len(filters)-1)
	}
	for _, c := range []*mongo.Collection{viaFront, alone} {
		if n, err := c.CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
			t.Errorf("%s: %d documents left (%v), want 2", c.Name(), n, err)
		}
	}
	// an unacknowledged delete (w: 0) goes through the same path without a reply
	unacknowledged := viaFront.Database().Collection(viaFront.Name(), options.Collection().SetWriteConcern(writeconcern.Unacknowledged()))
	if _, err := unacknowledged.DeleteOne(ctx, bson.D{{Key: "_id", Value: "c-3"}, {Key: "views_behind", Value: false}}); err != nil && !errors.Is(err, mongo.ErrUnacknowledgedWrite) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := viaFront.CountDocuments(ctx, bson.D{}); n != 1; n, _ = viaFront.CountDocuments(ctx, bson.D{}) {
		if time.Now().After(deadline) {
			t.Fatalf("the unacknowledged delete left %d documents, want 1", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The front remembers each collection's table: a collection dropped, renamed or created again is still checked
// against the right documents.
func TestRevisionChecksAfterADropAndARename(t *testing.T) {
	viaFront, _, _ := startFrontWithSocket(t)
	ctx := context.Background()
	db := viaFront.Database()
	put := func(c *mongo.Collection, id string, revision int32) {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "revision", Value: revision}}); err != nil {
			t.Fatal(err)
		}
	}
	bump := func(c *mongo.Collection, id string, revision int32) int64 {
		r, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "revision", Value: revision}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "revision", Value: 1}}}})
		if err != nil {
			t.Fatal(err)
		}
		return r.ModifiedCount
	}
	a := db.Collection("a")
	put(a, "x", 1)
	if bump(a, "x", 1) != 1 {
		t.Fatal("first revision check missed")
	}
	if err := a.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	put(a, "x", 7) // the same name again
	if bump(a, "x", 2) != 0 || bump(a, "x", 7) != 1 {
		t.Fatal("after the drop the front checked against the old collection")
	}
	if err := db.Client().Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "frontdb.a"},
		{Key: "to", Value: "frontdb.b"}}).Err(); err != nil {
		t.Fatal(err)
	}
	put(a, "x", 1)
	b := db.Collection("b")
	if bump(b, "x", 8) != 1 || bump(a, "x", 8) != 0 || bump(a, "x", 1) != 1 {
		t.Fatal("after the rename the front checked against the wrong collection")
	}
}
