// Command roster-attack performs the attacks of issue #15 against a real
// `roster serve` process on 127.0.0.1 and reports the process's memory
// (resident set, from /proc) before and after each, as an outsider on the
// same network or a hostile HTTP client would attack it:
//
//	go run ./cmd/roster-attack                  # builds ./cmd/roster, runs every attack
//	go run ./cmd/roster-attack -bin ./roster -max-rss 400
//
// It starts two nodes, n1 (the peer) and n2 (the victim) (local profile, loopback, no
// gossip key: the configuration an outsider can reach the most of), and
// attacks the victim. After each attack it checks that the victim still
// answers and still shows the peer's member with the peer's real
// incarnation. The last line is the verdict: the victim's peak resident
// set against -max-rss; the exit status is 1 if it was exceeded or a check
// failed. Everything it sends goes to 127.0.0.1, and every loop is bounded
// in count and time.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "roster `binary` to attack (run as BIN serve ...); empty: build ./cmd/roster")
	flag.Float64Var(&o.scale, "scale", 1, "scale the attacks' counts (1: the figures of issue #15)")
	flag.DurationVar(&o.hold, "hold", 10*time.Second, "how long stalled streams, slow bodies, watchers and floods are kept up")
	flag.IntVar(&o.maxRSS, "max-rss", 256, "the victim's peak resident set must stay below this many `MiB`")
	flag.Parse()
	os.Exit(run(o, os.Stdout))
}

type options struct {
	bin    string
	scale  float64
	hold   time.Duration
	maxRSS int
}

func run(o options, out *os.File) int {
	res, err := attack(o, out)
	if err != nil {
		fmt.Fprintf(out, "ERROR: %v\n", err)
		return 2
	}
	return res
}
