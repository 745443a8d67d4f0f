package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/roster-io/roster/registry"
)

// BenchmarkHTTPJoin measures members registered per second through the
// HTTP API of one node, one request per member with 64 concurrent clients
// (single) beside batches (POST /v1/scopes/{scope}/batch) of 1,000 and
// 10,000 members from 4 clients (batch=N), in the same run: durable and
// session-bound members, in memory and persisted (-datadir: fsynced
// before the answer, concurrent writers sharing fsyncs; a batch is one
// fsync). Each sub-benchmark reports members/s.
//
//	go test ./server -run '^$' -bench HTTPJoin -benchtime 100000x
func BenchmarkHTTPJoin(b *testing.B) {
	for _, kind := range []string{"durable", "session", "durable-datadir", "session-datadir"} {
		for _, mode := range []string{"single", "batch=1000", "batch=10000"} {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				var editReg func(*registry.Config)
				if strings.HasSuffix(kind, "-datadir") {
					dir := b.TempDir()
					editReg = func(c *registry.Config) { c.DataDir = dir }
				}
				nd := startClusterWith(b, 1, editReg, nil)[0]
				session := ""
				if strings.HasPrefix(kind, "session") {
					session = nd.call(b, "POST", "/v1/sessions", `{"ttl":"1h"}`).body["id"].(string)
				}
				var size int
				if _, err := fmt.Sscanf(mode, "batch=%d", &size); err == nil {
					benchBatch(b, nd, session, size)
				} else {
					benchSingle(b, nd, session)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "members/s")
			})
		}
	}
}

// benchSingle joins b.N members, one PUT each, from 64 clients.
func benchSingle(b *testing.B, nd *node, session string) {
	body := []byte(`{"meta":{"addr":"10.0.0.1:4000"}}`)
	if session != "" {
		body = fmt.Appendf(nil, `{"meta":{"addr":"10.0.0.1:4000"},"session":%q}`, session)
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
}

// benchBatch joins b.N members in batches of size from 4 clients (the
// server's default MaxBatchesInFlight); each client encodes its requests
// and checks that every op of the answer succeeded.
func benchBatch(b *testing.B, nd *node, session string, size int) {
	sess := ""
	if session != "" {
		sess = fmt.Sprintf(`,"session":%q`, session)
	}
	url := nd.url + "/v1/scopes/default/batch"
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body []byte
			var out bytes.Buffer
			for {
				from := next.Add(int64(size)) - int64(size)
				if from >= int64(b.N) {
					return
				}
				to := min(from+int64(size), int64(b.N))
				body = append(body[:0], `{"ops":[`...)
				for i := from; i < to; i++ {
					if i > from {
						body = append(body, ',')
					}
					body = fmt.Appendf(body, `{"op":"join","group":"g%d","id":"m%d","meta":{"addr":"10.0.0.1:4000"}%s}`, i%64, i, sess)
				}
				body = append(body, `]}`...)
				resp, err := nd.hc.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				out.Reset()
				_, err = out.ReadFrom(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Errorf("status %d, %v: %.200s", resp.StatusCode, err, out.Bytes())
					return
				}
				if ok := bytes.Count(out.Bytes(), []byte(`{"status":200,`)); ok != int(to-from) {
					b.Errorf("%d of %d ops joined: %.300s", ok, to-from, out.Bytes())
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
}
