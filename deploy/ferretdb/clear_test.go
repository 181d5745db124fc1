package main

// The outbox relay's clears (issue 14): revision-checked statements that only $set, leaving the revision alone
// so that an ETag a client holds stays valid. The front batches them like the statements that raise the
// revision; since it cannot tell from the revisions which of them FerretDB applied before a failure, it sends
// such a batch again one statement at a time then.

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

func TestOnlyAPlainSetWithoutUpsertCountsAsSetsOnly(t *testing.T) {
	statement := func(update bson.D, extra ...bson.E) bson.Raw {
		return mustMarshal(t, append(bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "a"}}}, {Key: "u", Value: update}}, extra...))
	}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "outbox", Value: bson.A{}}}}}
	if !setsOnly(statement(set)) {
		t.Fatalf("{$set} must count as sets only")
	}
	for name, raw := range map[string]bson.Raw{
		"$set and $inc":  statement(append(set, bson.E{Key: "$inc", Value: bson.D{{Key: "revision", Value: 1}}})),
		"$unset":         statement(bson.D{{Key: "$unset", Value: bson.D{{Key: "x", Value: ""}}}}),
		"a replacement":  statement(bson.D{{Key: "outbox", Value: bson.A{}}}),
		"an upsert":      statement(set, bson.E{Key: "upsert", Value: true}),
		"no update part": mustMarshal(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "a"}}}}),
	} {
		if setsOnly(raw) {
			t.Errorf("%s: counted as sets only", name)
		}
	}
}

func TestRevisionCheckedSetsAreAppliedExactlyWhereTheRevisionMatchesAndLeaveItAlone(t *testing.T) {
	coll := startFront(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		revision := int64(1)
		if i == 4 {
			revision = 2 // written since the relay read it
		}
		doc := bson.D{{Key: "_id", Value: fmt.Sprint("d", i)}, {Key: "revision", Value: revision},
			{Key: "outbox", Value: bson.A{"e"}}, {Key: "has_outbox", Value: true}, {Key: "a", Value: "tekst"}}
		if _, err := coll.InsertOne(ctx, doc); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	clear := bson.D{{Key: "$set", Value: bson.D{{Key: "outbox", Value: bson.A{}}, {Key: "has_outbox", Value: false}}}}
	checked := func(id string) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "revision", Value: int64(1)}}
	}
	var models []mongo.WriteModel
	for i := 0; i < 5; i++ {
		models = append(models, mongo.NewUpdateOneModel().SetFilter(checked(fmt.Sprint("d", i))).SetUpdate(clear))
	}
	result, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	if err != nil || result.MatchedCount != 4 {
		t.Fatalf("result %+v (%v), want 4 matched (d4 moved on)", result, err)
	}
	for i := 0; i < 5; i++ {
		var doc struct {
			Revision  int64
			HasOutbox bool `bson:"has_outbox"`
		}
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprint("d", i)}}).Decode(&doc); err != nil {
			t.Fatalf("find: %v", err)
		}
		if wantRevision, wantOutbox := map[bool]int64{true: 2, false: 1}[i == 4], i == 4; doc.Revision != wantRevision || doc.HasOutbox != wantOutbox {
			t.Errorf("d%d: revision %d, has_outbox %v; want %d, %v", i, doc.Revision, doc.HasOutbox, wantRevision, wantOutbox)
		}
	}

	// A batch in which FerretDB fails one $set (a field inside a string): it stops there, and the front sends the
	// batch again one statement at a time, so the statements after the failing one are applied all the same.
	again := bson.D{{Key: "$set", Value: bson.D{{Key: "note", Value: "gezien"}}}}
	models = []mongo.WriteModel{
		mongo.NewUpdateOneModel().SetFilter(checked("d0")).SetUpdate(again),
		mongo.NewUpdateOneModel().SetFilter(checked("d1")).SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "a.b", Value: 1}}}}),
		mongo.NewUpdateOneModel().SetFilter(checked("d2")).SetUpdate(again),
	}
	result, err = coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	var bulk mongo.BulkWriteException
	if !errors.As(err, &bulk) || len(bulk.WriteErrors) != 1 || bulk.WriteErrors[0].Index != 1 {
		t.Fatalf("want one write error at index 1, got %v", err)
	}
	for id, want := range map[string]string{"d0": "gezien", "d1": "", "d2": "gezien"} {
		var doc struct {
			Note     string
			Revision int64
		}
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil || doc.Note != want || doc.Revision != 1 {
			t.Errorf("%s: note %q, revision %d (%v); want %q, 1", id, doc.Note, doc.Revision, err, want)
		}
	}
	_ = result
}
