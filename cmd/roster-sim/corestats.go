package main

import (
	"fmt"
	"io"
	"reflect"

	"github.com/roster-io/roster/gossip/dissem"
)

// coreStats sums every core's dissem.Stats, per change: what the
// protocol did to spread them (grafts, prunes, duplicates), to find where
// copies and delay come from.
func (s *sim) coreStats() dissem.Stats {
	var sum dissem.Stats
	sv := reflect.ValueOf(&sum).Elem()
	for _, n := range s.nodes {
		st := n.core.Stats()
		v := reflect.ValueOf(st)
		for i := range v.NumField() {
			f := sv.Field(i)
			f.SetUint(f.Uint() + v.Field(i).Uint())
		}
	}
	return sum
}

// printCoreStats writes the summed Stats as counts per change.
func printCoreStats(w io.Writer, label string, st dissem.Stats, changes int) {
	v := reflect.ValueOf(st)
	t := v.Type()
	fmt.Fprintf(w, "%s core stats per change:", label)
	for i := range v.NumField() {
		if x := v.Field(i).Uint(); x > 0 {
			fmt.Fprintf(w, " %s=%.1f", t.Field(i).Name, float64(x)/float64(max(changes, 1)))
		}
	}
	fmt.Fprintln(w)
}

// treeShape describes the eager links at the end of a run: how many,
// how many one-sided, the live nodes with none, and the live nodes an
// eager push from node 0 reaches.
func (s *sim) treeShape() string {
	eager := make([]map[string]bool, len(s.nodes))
	edges, oneSided, none := 0, 0, 0
	for i, n := range s.nodes {
		e, _ := n.core.Peers()
		eager[i] = map[string]bool{}
		for _, p := range e {
			eager[i][p] = true
		}
		if !n.down && len(e) == 0 {
			none++
		}
		edges += len(e)
	}
	for i, n := range s.nodes {
		for p := range eager[i] {
			if !eager[s.index[p]][n.name] {
				oneSided++
			}
		}
	}
	seen := make([]bool, len(s.nodes))
	queue := []int32{0}
	seen[0] = true
	reached := 0
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		if s.nodes[i].down {
			continue
		}
		reached++
		for p := range eager[i] {
			j := s.index[p]
			if !seen[j] {
				seen[j] = true
				queue = append(queue, j)
			}
		}
	}
	up := 0
	for _, n := range s.nodes {
		if !n.down {
			up++
		}
	}
	return fmt.Sprintf("eager links %d (%.2f per node), one-sided %d, up nodes with none %d, reached by eager push from node 0: %d of %d up",
		edges, float64(edges)/float64(len(s.nodes)), oneSided, none, reached, up)
}
