//go:build !linux

package main

import "time"

// threadCPU is 0 where the CPU time of one thread cannot be read: the
// scale experiment's load figure then includes its poller.
func threadCPU() time.Duration { return 0 }
