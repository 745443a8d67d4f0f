package storage

import "log/slog"

// quietLogger silences Pebble in tests that open a raw Pebble DB.
var quietLogger = pebbleLogger{log: slog.New(slog.DiscardHandler), fatal: func(string) {}}
