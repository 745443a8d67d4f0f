package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roster-io/roster/crdt"
	"github.com/roster-io/roster/gossip"
)

// target is what the attacks work on.
type target struct {
	o       options
	victim  *node
	peer    *node
	peerInc uint64
}

type step struct {
	name string
	what string
	run  func(t *target) (string, error)
}

var steps = []step{
	{"forged-incarnation", "a delta claiming peer at incarnation 2^62-1, digests naming it higher, a forged leave", (*target).forgedIncarnation},
	{"phantom-owners", "20,000 datagrams whose deltas claim made-up owners", (*target).phantomOwners},
	{"relay-amplification", "a 45 KB relay request naming peer 15,000 times", (*target).relayAmplification},
	{"out-of-order-chunks", "40 transfer chunks of 2.2 MB, each before its predecessor", (*target).outOfOrderChunks},
	{"stalled-streams", "100 TCP streams claiming 20 MiB, 30 claiming 15 MiB, all stalled", (*target).stalledStreams},
	{"slow-bodies", "300 HTTP requests whose bodies never finish", (*target).slowBodies},
	{"stalled-watchers", "150 SSE watchers that never read, under churn", (*target).stalledWatchers},
	{"session-flood", "sessions of 24 h created as fast as the node answers", (*target).sessionFlood},
}

func (t *target) count(n int) int { return max(1, int(float64(n)*t.o.scale)) }

func attack(o options, out io.Writer) (int, error) {
	dir, err := os.MkdirTemp("", "roster-attack-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if o.bin == "" {
		if o.bin, err = buildRoster(dir); err != nil {
			return 0, err
		}
	}
	peer, err := startNode(o.bin, dir, "n1")
	if err != nil {
		return 0, err
	}
	defer peer.stop()
	if err := peer.waitReady(30 * time.Second); err != nil {
		return 0, err
	}
	victim, err := startNode(o.bin, dir, "n2", peer.gossip)
	if err != nil {
		return 0, err
	}
	defer victim.stop()
	if err := victim.waitReady(30 * time.Second); err != nil {
		return 0, err
	}
	t := &target{o: o, victim: victim, peer: peer}
	if code, err := peer.do("PUT", "/v1/scopes/default/groups/g/members/peer-member", map[string]any{"meta": map[string]string{}}, nil); err != nil || code/100 != 2 {
		return 0, fmt.Errorf("join on peer: %d %v", code, err)
	}
	if err := t.settle(15 * time.Second); err != nil {
		return 0, err
	}
	_, peak0, err := victim.memory()
	if err != nil {
		return 0, err
	}
	rss0, _, _ := victim.memory()
	fmt.Fprintf(out, "victim pid %d, peer incarnation %d; resident set at start %s (peak %s)\n\n", victim.cmd.Process.Pid, t.peerInc, mib(rss0), mib(peak0))
	fmt.Fprintf(out, "%-20s  %9s  %9s  %s\n", "attack", "rss after", "peak", "what / outcome")
	failed := 0
	for _, s := range steps {
		outcome, err := s.run(t)
		if err == nil {
			err = t.settle(15 * time.Second)
		}
		rss, peak, merr := victim.memory()
		if merr != nil {
			return 0, fmt.Errorf("after %s: the victim is gone: %v\n%s", s.name, merr, victim.log.String())
		}
		status := s.what
		if outcome != "" {
			status += ": " + outcome
		}
		if err != nil {
			failed++
			status += "; FAILED: " + err.Error()
		}
		fmt.Fprintf(out, "%-20s  %9s  %9s  %s\n", s.name, mib(rss), mib(peak), status)
	}
	_, peak, _ := victim.memory()
	if strings.Contains(victim.log.String(), "panic:") {
		failed++
		fmt.Fprintf(out, "\nthe victim's log shows a panic:\n%s\n", victim.log.String())
	}
	verdict := "OK"
	code := 0
	if peak > int64(o.maxRSS)<<20 {
		verdict, code = "EXCEEDED", 1
	}
	if failed > 0 {
		verdict, code = fmt.Sprintf("%s, %d checks FAILED", verdict, failed), 1
	}
	fmt.Fprintf(out, "\npeak resident set %s, bound %d MiB, start %s: %s\n", mib(peak), o.maxRSS, mib(rss0), verdict)
	return code, nil
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// settle waits until the victim answers, lists both nodes alive with the
// peer at its real incarnation, and shows the peer's member: what every
// attack must leave standing.
func (t *target) settle(d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if !t.victim.alive() {
			return fmt.Errorf("the victim exited: %v", t.victim.exitStatus)
		}
		last = t.check()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func (t *target) check() error {
	ns, err := t.victim.nodes()
	if err != nil {
		return err
	}
	if len(ns) != 2 {
		return fmt.Errorf("the victim lists %d nodes, want 2", len(ns))
	}
	for _, n := range ns {
		if n.Name == t.peer.name {
			if n.State != "alive" {
				return fmt.Errorf("the victim sees %s %s", n.Name, n.State)
			}
			if t.peerInc == 0 {
				t.peerInc = n.incarnation()
			}
			if n.incarnation() != t.peerInc {
				return fmt.Errorf("the victim sees %s at incarnation %d, want %d", n.Name, n.incarnation(), t.peerInc)
			}
		}
	}
	ms, err := t.victim.members("g")
	if err != nil {
		return err
	}
	if len(ms) != 1 || ms[0].ID != "peer-member" || ms[0].Owner != t.peer.name {
		return fmt.Errorf("the victim shows %v, want peer-member on %s", ms, t.peer.name)
	}
	return nil
}

// udp sends datagrams to the victim's gossip port, pacing them so that
// the kernel's socket buffer does not drop most of them.
func (t *target) udp(pkts ...[]byte) error {
	c, err := net.Dial("udp", t.victim.gossip)
	if err != nil {
		return err
	}
	defer c.Close()
	for i, p := range pkts {
		if _, err := c.Write(p); err != nil {
			return err
		}
		if i%200 == 199 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// delta returns a delta of replica (name, inc) joining g/id for each id:
// the join's own delta for one, the replica's whole state (an
// authoritative chunk) for several.
func delta(name string, inc uint64, ids ...string) *crdt.Delta {
	st, err := crdt.New(crdt.ReplicaID{Name: name, Incarnation: inc}, crdt.DefaultOptions())
	if err != nil {
		panic(err)
	}
	var last *crdt.Delta
	for _, id := range ids {
		if last, err = st.Join("g", id, nil, nil); err != nil {
			panic(err)
		}
	}
	if len(ids) > 1 {
		return st.Snapshot(64 << 20)[0]
	}
	return last
}

func (t *target) forgedIncarnation() (string, error) {
	top := uint64(crdt.MaxCounter - 1)
	dig := crdt.EncodeDigest(crdt.Digest{Entries: []crdt.DigestEntry{{Name: t.peer.name, Incarnation: top, Top: 1}}})
	return "", t.udp(
		gossip.PlainPacket(gossip.ForgeDeltas("default", nil, [][]byte{crdt.EncodeDelta(delta(t.peer.name, top, "evil"))})),
		gossip.PlainPacket(gossip.ForgeDigest("default", "intruder", dig)),
		gossip.PlainPacket(gossip.ForgeDigest("default", t.peer.name, dig)),
		gossip.PlainPacket(gossip.ForgeLeaving(t.peer.name, t.peerInc)),
	)
}

func (t *target) phantomOwners() (string, error) {
	n := t.count(20000)
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = gossip.PlainPacket(gossip.ForgeDeltas("default", nil, [][]byte{crdt.EncodeDelta(delta(fmt.Sprintf("ghost-%d", i), 1, "x"))}))
	}
	return fmt.Sprintf("%d sent", n), t.udp(pkts...)
}

func (t *target) relayAmplification() (string, error) {
	names := make([]string, 15000)
	for i := range names {
		names[i] = t.peer.name
	}
	msg := gossip.ForgeDeltas("default", names, [][]byte{crdt.EncodeDelta(delta(t.peer.name, t.peerInc, "relayed"))})
	return fmt.Sprintf("%d bytes", len(msg)), t.udp(gossip.PlainPacket(msg))
}

func (t *target) outOfOrderChunks() (string, error) {
	ids := make([]string, 28000)
	for i := range ids {
		ids[i] = fmt.Sprintf("member-%07d-padding-padding-padding-padding-padding-padding-padding-pad", i)
	}
	d := delta(t.peer.name, t.peerInc, ids...)
	n := t.count(40)
	sent := 0
	for i := range n {
		c := *d
		c.Xfer, c.Seq = 7, uint32(2+i)
		msg := gossip.ForgeDeltas("default", nil, [][]byte{crdt.EncodeDelta(&c)})
		conn, err := net.DialTimeout("tcp", t.victim.gossip, 5*time.Second)
		if err != nil {
			return "", err
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(gossip.PlainStream(msg, len(msg))); err == nil {
			sent += len(msg)
		}
		_ = conn.Close()
	}
	return fmt.Sprintf("%d chunks, %s sent", n, mib(int64(sent))), nil
}

func (t *target) stalledStreams() (string, error) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	open := func(k, claim int) {
		for range t.count(k) {
			c, err := net.DialTimeout("tcp", t.victim.gossip, 5*time.Second)
			if err != nil {
				continue
			}
			_, _ = c.Write(gossip.PlainStream(nil, claim))
			conns = append(conns, c)
		}
	}
	open(100, 20<<20)
	open(30, 15<<20)
	time.Sleep(t.o.hold)
	return fmt.Sprintf("%d held %v", len(conns), t.o.hold), t.check()
}

func (t *target) slowBodies() (string, error) {
	host := strings.TrimPrefix(t.victim.http, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range t.count(300) {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			break // the listener's limit: what the attack is for
		}
		fmt.Fprintf(c, "PUT /v1/scopes/default/groups/g/members/slow-%d HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"meta\":", i, host)
		conns = append(conns, c)
	}
	time.Sleep(t.o.hold)
	// The node still answers while they hang (or after it cut them).
	code, err := t.victim.do("GET", "/v1/nodes", nil, nil)
	if err == nil && code != 200 {
		err = fmt.Errorf("GET /v1/nodes during the attack: %d", code)
	}
	return fmt.Sprintf("%d opened", len(conns)), err
}

func (t *target) stalledWatchers() (string, error) {
	host := strings.TrimPrefix(t.victim.http, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range t.count(150) {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			break
		}
		fmt.Fprintf(c, "GET /v1/scopes/default/watch HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", host)
		conns = append(conns, c)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // and never read it
		}
	}
	var ops atomic.Int64
	stop := time.Now().Add(t.o.hold)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; time.Now().Before(stop); i++ {
				id := fmt.Sprintf("churn-%d-%d", w, i%500)
				method := "PUT"
				if i%1000 >= 500 {
					method = "DELETE"
				}
				req, _ := http.NewRequest(method, t.victim.http+"/v1/scopes/default/groups/churn/members/"+id, strings.NewReader(`{"meta":{"pad":"`+strings.Repeat("x", 200)+`"}}`))
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d watchers, %d joins/leaves in %v", len(conns), ops.Load(), t.o.hold), nil
}

func (t *target) sessionFlood() (string, error) {
	var created, refused atomic.Int64
	stop := time.Now().Add(t.o.hold)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				code, err := t.victim.do("POST", "/v1/sessions", map[string]string{"ttl": "24h"}, nil)
				switch {
				case err != nil:
				case code/100 == 2:
					created.Add(1)
				default:
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("%d created, %d refused", created.Load(), refused.Load()), nil
}
