package storage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPutMemberSync measures PutMember throughput on a real directory
// (b.TempDir()) with 1 and 64 concurrent writers, in SyncAlways mode (every
// acknowledged write fsynced; concurrent writers share fsyncs) and
// SyncInterval mode (fsync every 10ms), over 100k distinct members (the
// size of a large node; later operations replace them). It reports ops/s, fsyncs per
// operation and, for SyncAlways, the number of writes sharing each WAL
// fsync (group commit).
func BenchmarkPutMemberSync(b *testing.B) {
	for _, mode := range []SyncMode{SyncAlways, SyncInterval} {
		for _, writers := range []int{1, 64} {
			b.Run(fmt.Sprintf("mode=%v/writers=%d", mode, writers), func(b *testing.B) {
				benchPut(b, mode, writers)
			})
		}
	}
}

func benchPut(b *testing.B, mode SyncMode, writers int) {
	opts := DefaultOptions()
	opts.Sync = mode
	s, err := Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	meta := make([]byte, 64)
	m0 := s.Metrics()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				// 100k distinct members (a large node), then replacements.
				m := Member{Scope: "bench", Group: fmt.Sprintf("g%d", i%64), ID: fmt.Sprintf("m%d", i%100_000), Meta: meta}
				if err := s.PutMember(m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	m := s.Metrics()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(m.WALSyncs-m0.WALSyncs)/float64(b.N), "fsyncs/op")
	if mode == SyncAlways && m.WALSyncs > m0.WALSyncs {
		b.ReportMetric(float64(b.N)/float64(m.WALSyncs-m0.WALSyncs), "writes/fsync")
		b.ReportMetric(float64(b.N)/float64(m.SyncedCommits-m0.SyncedCommits), "writes/commit")
	}
}

// BenchmarkSaveCache measures replacing a 100k-member-sized cache (about
// 4 MB in 64 chunks).
func BenchmarkSaveCache(b *testing.B) {
	s, err := Open(b.TempDir(), DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	chunks := make([][]byte, 64)
	for i := range chunks {
		chunks[i] = make([]byte, 64<<10)
	}
	b.SetBytes(64 * 64 << 10)
	b.ResetTimer()
	for b.Loop() {
		if err := s.SaveCache("scope", chunks); err != nil {
			b.Fatal(err)
		}
	}
}
