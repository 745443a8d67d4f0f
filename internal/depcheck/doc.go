// Package depcheck holds the test that keeps roster's package boundaries
// (issue 17, acceptance 4): package server, and package regtype that it
// names the registry's values through, depend on neither package
// registry, nor package gossip (or its subpackages), nor memberlist; and
// no package outside gossip imports memberlist directly. The test asks the
// go command (go list), so it sees what a build sees; it skips where the
// go command is not on PATH. The package has no code of its own.
package depcheck
