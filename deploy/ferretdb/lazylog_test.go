package main

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"testing"
)

// counted is a value whose formatting is counted: slog resolves a LogValuer when it formats the attribute.
type counted struct{ n *int }

func (c counted) LogValue() slog.Value { *c.n++; return slog.StringValue("document") }

func TestLazyHandlerWritesWhatTheTextHandlerWrites(t *testing.T) {
	var eager, lazy bytes.Buffer
	options := &slog.HandlerOptions{Level: slog.LevelDebug}
	loggers := []*slog.Logger{slog.New(slog.NewTextHandler(&eager, options)),
		slog.New(newLazyHandler(slog.NewTextHandler(&lazy, options)))}
	for _, l := range loggers {
		conn := l.With("conn", "127.0.0.1:1234").WithGroup("sql")
		first := conn.With("args", []any{1, "two"})
		second := conn.With("args", "other") // derived from the same logger: must not see first's attributes
		first.Info("one", "n", 1)
		second.Warn("two", slog.Group("g", "k", "v"))
		l.Error("three")
		conn.WithGroup("").With().Debug("four")
	}
	times := regexp.MustCompile(`time=\S+ `)
	got, want := times.ReplaceAllString(lazy.String(), ""), times.ReplaceAllString(eager.String(), "")
	if got != want || want == "" {
		t.Fatalf("lazy handler wrote\n%s\nthe text handler\n%s", got, want)
	}
}

func TestLazyHandlerFormatsNothingForRecordsNotWritten(t *testing.T) {
	var out bytes.Buffer
	formatted := 0
	l := slog.New(newLazyHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	// what FerretDB's fsql does for every statement
	l.With("args", counted{&formatted}).DebugContext(context.Background(), ">>> UPDATE")
	if formatted != 0 || out.Len() != 0 {
		t.Fatalf("a debug record at level warn formatted its attributes %d times and wrote %q", formatted, out.String())
	}
	l.With("args", counted{&formatted}).Warn("written")
	if formatted != 1 || !bytes.Contains(out.Bytes(), []byte("args=document")) {
		t.Fatalf("a warn record: formatted %d times, wrote %q", formatted, out.String())
	}
	// the eager handler formats in With already: what the lazy one saves
	eagerCount := 0
	slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})).
		With("args", counted{&eagerCount}).Debug("dropped")
	if eagerCount != 1 {
		t.Fatalf("the text handler formatted With's attributes %d times (expected 1: the premise of lazylog.go)", eagerCount)
	}
}
