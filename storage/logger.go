package storage

import (
	"context"
	"fmt"
	"log/slog"
)

// pebbleLogger routes Pebble's logging to slog. Pebble calls Fatalf for
// failures it considers unrecoverable (a failed commit, a failed MANIFEST
// write, a failed invariant) and expects it not to return: its default
// logger calls os.Exit. Here Fatalf marks the Store failed instead and
// returns; every code path in Pebble v2.1.7 that calls Fatalf either returns
// an error right after or completes a commit whose error the Store then
// reports (see Store.apply), and the failed Store admits no further work.
type pebbleLogger struct {
	log   *slog.Logger
	fatal func(msg string)
}

// Infof implements pebble.Logger. Pebble's informational lines (WAL and
// table creation, compactions) are Debug-level for an application.
func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

// Errorf implements pebble.Logger.
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf implements pebble.Logger; see the type comment.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("fatal: "+msg, "component", "pebble")
	l.fatal(msg)
}
