//go:build rosterbug_watchdrop

package bug

// WatchDrop is true only in a build with the tag rosterbug_watchdrop.
const WatchDrop = true
