package main

import (
	"context"
	"io"
	"log/slog"
)

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(uniqueKeys(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(uniqueKeys(slog.NewJSONHandler(w, opts))), nil
	}
	return nil, usageErr("--log-format %q: want text or json", format)
}

// uniqueKeys wraps h so that a record carries each key once: loggers are
// derived in layers (serve sets component=registry, the storage it opens
// adds component=storage to the logger it is given), and slog's handlers
// write every attribute they are given, so a JSON record had
// "component":"registry","component":"storage", which JSON decoders
// resolve differently. The attribute added last (the innermost logger's,
// then the call's own) replaces earlier ones of the same key.
func uniqueKeys(h slog.Handler) slog.Handler { return &dedupHandler{inner: h} }

// dedupHandler holds the attributes added since the last group (h.inner
// has everything before) and merges them with a record's at Handle.
type dedupHandler struct {
	inner slog.Handler
	attrs []slog.Attr
}

func (h *dedupHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *dedupHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &dedupHandler{inner: h.inner, attrs: merge(h.attrs, as)}
}

func (h *dedupHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	// Keys inside the group cannot clash with those outside it.
	inner := h.inner
	if len(h.attrs) > 0 {
		inner = inner.WithAttrs(h.attrs)
	}
	return &dedupHandler{inner: inner.WithGroup(name)}
}

func (h *dedupHandler) Handle(ctx context.Context, r slog.Record) error {
	own := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool { own = append(own, a); return true })
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(merge(h.attrs, own)...)
	return h.inner.Handle(ctx, out)
}

// merge returns base followed by add, each key once: a later attribute
// replaces an earlier one of the same key in place. base is not modified.
func merge(base, add []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, 0, len(base)+len(add))
	at := make(map[string]int, len(base)+len(add))
	for _, list := range [2][]slog.Attr{base, add} {
		for _, a := range list {
			if a.Equal(slog.Attr{}) {
				continue
			}
			if i, ok := at[a.Key]; ok && a.Key != "" {
				out[i] = a
				continue
			}
			at[a.Key] = len(out)
			out = append(out, a)
		}
	}
	return out
}
