package storage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (test with errors.Is) and names the store directory and the cause.
var (
	// ErrCorrupt reports stored data that fails a checksum or does not
	// decode: a Pebble file, the MANIFEST, or one of the values this package
	// wrote.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrVersion reports a directory written in a format this build does not
	// understand.
	ErrVersion = errors.New("storage: unsupported format version")
	// ErrLocked reports a directory already in use by another process or
	// another open Store in this process.
	ErrLocked = errors.New("storage: directory locked by another store")
	// ErrIdentity reports a node name that differs from the name stored in
	// the directory: the directory belongs to another node.
	ErrIdentity = errors.New("storage: node identity mismatch")
	// ErrClosed reports use of a closed Store.
	ErrClosed = errors.New("storage: store closed")
	// ErrIO reports a failed read, write or sync, including a read-only or
	// full disk. After a failed write the Store refuses every further
	// operation with ErrIO until Recover succeeds or it is reopened.
	ErrIO = errors.New("storage: I/O error")
	// ErrInvalid reports a bad argument; nothing was written.
	ErrInvalid = errors.New("storage: invalid argument")
)

// errorf builds an error that wraps kind, names dir and wraps cause (if any)
// so that errors.Is works for both.
func errorf(kind error, dir, what string, cause error) error {
	if cause == nil {
		return fmt.Errorf("%w: %s (dir %s)", kind, what, dir)
	}
	return fmt.Errorf("%w: %s (dir %s): %w", kind, what, dir, cause)
}
