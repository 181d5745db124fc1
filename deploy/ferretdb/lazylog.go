package main

// A log handler that formats a logger's attributes only when a record is written.
//
// FerretDB v1.24 logs every SQL statement at debug level as `l.With("args", args).DebugContext(...)`
// (internal/util/fsql). slog's TextHandler formats the attributes of With at once, in WithAttrs, whether or
// not a record at that level is ever written: at the default level (warn) that quoted the whole document of
// every insert and update into a string that was thrown away, 6 % of FerretDB's CPU while IPS cases ran
// (a CPU profile of tests/perf/bench_ips.py). lazyHandler keeps the attributes and groups as given and
// hands them to the real handler only when it writes a record, so what is logged is unchanged.

import (
	"context"
	"log/slog"
)

type lazyHandler struct {
	inner slog.Handler
	// steps are WithAttrs and WithGroup calls not yet applied to inner, in order; the slice is never
	// appended to in place, so loggers derived from one another share none of it.
	steps []lazyStep
}

type lazyStep struct {
	group string // a WithGroup when attrs is nil
	attrs []slog.Attr
}

func newLazyHandler(inner slog.Handler) *lazyHandler { return &lazyHandler{inner: inner} }

func (h *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *lazyHandler) with(step lazyStep) *lazyHandler {
	steps := make([]lazyStep, len(h.steps), len(h.steps)+1)
	copy(steps, h.steps)
	return &lazyHandler{inner: h.inner, steps: append(steps, step)}
}

func (h *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(lazyStep{attrs: attrs})
}

func (h *lazyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(lazyStep{group: name})
}

func (h *lazyHandler) Handle(ctx context.Context, record slog.Record) error {
	handler := h.inner
	for _, step := range h.steps {
		if step.attrs != nil {
			handler = handler.WithAttrs(step.attrs)
		} else {
			handler = handler.WithGroup(step.group)
		}
	}
	return handler.Handle(ctx, record)
}
