package main

import (
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
)

func TestDescribeNamesCommandCollectionAndFilterShape(t *testing.T) {
	find := buildMsg(t, 1, bson.D{{Key: "find", Value: "berichten"},
		{Key: "filter", Value: bson.D{{Key: "status", Value: "x"}, {Key: "lease_tot", Value: bson.D{{Key: "$lte", Value: 1}}}}},
		{Key: "$db", Value: "n_notifications"}})
	key, statements := describe(find)
	if want := (commandKey{"find", "n_notifications", "berichten", "{status,lease_tot:$lte}"}); key != want || statements != 0 {
		t.Fatalf("find: %+v, %d statements", key, statements)
	}
	update := buildMsg(t, 2, bson.D{{Key: "update", Value: "instances"}, {Key: "$db", Value: "n_engine"}},
		section{kind: 1, identifier: "updates", docs: []bson.Raw{
			mustMarshal(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "a"}, {Key: "revision", Value: 3}}},
				{Key: "u", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}}}),
			mustMarshal(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "b"}}}, {Key: "u", Value: bson.D{{Key: "x", Value: 1}}}}),
		}})
	key, statements = describe(update)
	if want := (commandKey{"update", "n_engine", "instances", "{_id,revision} u{$set}"}); key != want || statements != 2 {
		t.Fatalf("update: %+v, %d statements", key, statements)
	}
	stats := newCommandStats()
	stats.record(find, 3*time.Millisecond, 0, 100)
	stats.record(find, time.Millisecond, 0, 50)
	stats.record(update, time.Millisecond, time.Millisecond, 10)
	table := stats.table()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "berichten") || !strings.Contains(lines[2], " 2 ") ||
		!strings.Contains(lines[2], "150") {
		t.Fatalf("table:\n%s", table)
	}
	stats.reset()
	if strings.Count(stats.table(), "\n") != 2 {
		t.Fatalf("after reset:\n%s", stats.table())
	}
}
