//go:build !rosterbug_nofsync

package bug

// AckBeforeFsync is true only in a build with the tag rosterbug_nofsync (see Names).
const AckBeforeFsync = false
