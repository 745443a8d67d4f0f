package storage

import (
	"log/slog"

	"github.com/roster-io/roster/internal/syncbuf"
)

func slogTo(b *syncbuf.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// quietLogger silences Pebble in tests that open a raw Pebble DB.
var quietLogger = pebbleLogger{log: slog.New(slog.DiscardHandler), fatal: func(string) {}}
