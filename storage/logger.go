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
// returns. In Pebble v2.1.7 the calls that I/O failures reach (a failed
// commit, a failed MANIFEST write or sync, corruption found by a read)
// return an error or finish the commit right after, and Store.apply turns
// such a commit into ErrIO; the other calls report broken invariants, that
// is, Pebble bugs. The failed Store admits no further work.
//
// log is the store's logger for Pebble (component=pebble), not the
// store's own: adding the key to each record would repeat it.
type pebbleLogger struct {
	log   *slog.Logger
	fatal func(msg string)
}

// Infof implements pebble.Logger. Pebble's informational lines (WAL and
// table creation, compactions) are Debug-level for an application.
func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

// Errorf implements pebble.Logger.
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf implements pebble.Logger; see the type comment.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("fatal: " + msg)
	l.fatal(msg)
}
