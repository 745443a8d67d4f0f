package registry_test

import (
	"context"
	"fmt"
	"time"

	"github.com/roster-io/roster/registry"
)

// Chat-room presence across three embedded nodes on one machine: each node
// registers its connections in the room's group; every node sees everyone.
func Example_chatPresence() {
	ctx := context.Background()
	var nodes []*registry.Registry
	for _, name := range []string{"eu-1", "eu-2", "us-1"} {
		cfg := registry.LocalConfig(name)
		cfg.Scopes = []string{"chat"}
		if len(nodes) > 0 {
			cfg.Seeds = []string{nodes[0].Addr()}
		}
		r, err := registry.Open(ctx, cfg)
		if err != nil {
			panic(err)
		}
		defer r.Close(ctx)
		nodes = append(nodes, r)
	}

	// Watch the room from us-1 before anyone arrives.
	w, err := nodes[2].Watch(ctx, "chat", registry.Group("room:lobby"))
	if err != nil {
		panic(err)
	}
	defer w.Close()

	// Alice connects to eu-1, Bob to eu-2: each node registers its own
	// connection, tied to the connection's lifetime.
	aliceConn, hangUp := context.WithCancel(ctx)
	if _, err := nodes[0].JoinWhile(aliceConn, "chat", "room:lobby", "alice", registry.Meta{"node": "eu-1"}); err != nil {
		panic(err)
	}
	if _, err := nodes[1].Join(ctx, "chat", "room:lobby", "bob", registry.Meta{"node": "eu-2"}); err != nil {
		panic(err)
	}
	for i := 0; i < 2; i++ {
		e := <-w.C
		fmt.Println(e.Type, e.Member.ID, "on", e.Member.Owner, "-", e.Reason)
	}

	// Alice hangs up: her member leaves everywhere.
	hangUp()
	e := <-w.C
	fmt.Println(e.Type, e.Member.ID, "on", e.Member.Owner, "-", e.Reason)

	// Every node answers "who is in the room?" from its own replica.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms, _ := nodes[0].Members("chat", "room:lobby")
		if len(ms) == 1 || time.Now().After(deadline) {
			fmt.Println("eu-1 sees:", ms[0].ID, "on", ms[0].Owner)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Unordered output:
	// join alice on eu-1 - joined
	// join bob on eu-2 - joined
	// leave alice on eu-1 - left
	// eu-1 sees: bob on eu-2
}
