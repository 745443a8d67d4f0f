package main

// membership is the cluster as the failure detector reports it: one
// list shared by every simulated node (each node's own view, as memberlist
// gives it, differs only by when each learns of a failure; the simulator
// applies a detection delay instead). Removal swaps with the last entry,
// so it is O(1) and positions change, as dissem.View allows.
type membership struct {
	names []string
	pos   map[string]int
}

func newMembership(names []string) *membership {
	m := &membership{names: append([]string(nil), names...), pos: make(map[string]int, len(names))}
	for i, n := range m.names {
		m.pos[n] = i
	}
	return m
}

func (m *membership) remove(name string) {
	i, ok := m.pos[name]
	if !ok {
		return
	}
	last := len(m.names) - 1
	m.names[i] = m.names[last]
	m.pos[m.names[i]] = i
	m.names = m.names[:last]
	delete(m.pos, name)
}

func (m *membership) add(name string) {
	if _, ok := m.pos[name]; ok {
		return
	}
	m.pos[name] = len(m.names)
	m.names = append(m.names, name)
}

// nodeView is one node's dissem.View: the shared membership without the
// node itself.
type nodeView struct {
	m    *membership
	self string
}

func (v nodeView) Len() int {
	if _, ok := v.m.pos[v.self]; ok {
		return len(v.m.names) - 1
	}
	return len(v.m.names)
}

func (v nodeView) At(i int) string {
	if p, ok := v.m.pos[v.self]; ok && i >= p {
		i++
	}
	return v.m.names[i]
}

func (v nodeView) Has(name string) bool {
	_, ok := v.m.pos[name]
	return ok && name != v.self
}
