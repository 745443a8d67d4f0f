package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/roster-io/roster/registry"
)

// BenchmarkHTTPJoin measures joins per second through the HTTP API of one
// node with 64 concurrent clients, for durable and session-bound members,
// in memory and persisted (DataDir: fsynced before each join is answered,
// concurrent joins sharing fsyncs).
//
//	go test ./server -run '^$' -bench HTTPJoin -benchtime 20000x
func BenchmarkHTTPJoin(b *testing.B) {
	for _, kind := range []string{"durable", "session", "durable-datadir", "session-datadir"} {
		b.Run(kind, func(b *testing.B) {
			var editReg func(*registry.Config)
			if strings.HasSuffix(kind, "-datadir") {
				dir := b.TempDir()
				editReg = func(c *registry.Config) { c.DataDir = dir }
			}
			nd := startClusterWith(b, 1, editReg, nil)[0]
			body := []byte(`{"meta":{"addr":"10.0.0.1:4000"}}`)
			if strings.HasPrefix(kind, "session") {
				r := nd.call(b, "POST", "/v1/sessions", `{"ttl":"1h"}`)
				body = fmt.Appendf(nil, `{"meta":{"addr":"10.0.0.1:4000"},"session":%q}`, r.body["id"])
			}
			var seq atomic.Int64
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					url := fmt.Sprintf("%s/v1/scopes/default/groups/g%d/members/m%d", nd.url, n%64, n)
					req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
					resp, err := nd.hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
		})
	}
}
