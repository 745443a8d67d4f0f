package client_test

import (
	"encoding/json"
	"testing"

	"github.com/roster-io/roster/client"
	"github.com/stretchr/testify/require"
)

// TestIncarnationAsString: incarnations exceed 2^53 and travel as decimal
// strings; a number (an older node) still decodes, and encoding (the CLI's
// --json) writes the string again, exact to the last digit.
func TestIncarnationAsString(t *testing.T) {
	const inc = uint64(4611686018427387903) // 2^62-1: float64 would round it
	for _, v := range []string{`"4611686018427387903"`, `4611686018427387903`} {
		var m client.Member
		require.NoError(t, json.Unmarshal([]byte(`{"id":"a","group":"g","meta":{},"owner":"n0","incarnation":`+v+`,"confirmed":true}`), &m))
		require.Equal(t, client.Member{ID: "a", Group: "g", Meta: map[string]string{}, Owner: "n0", Incarnation: inc, Confirmed: true}, m)

		var n client.Node
		require.NoError(t, json.Unmarshal([]byte(`{"name":"n0","incarnation":`+v+`,"state":"alive","scopes":["default"],"addr":"x","self":true}`), &n))
		require.Equal(t, client.Node{Name: "n0", Incarnation: inc, State: "alive", Scopes: []string{"default"}, Addr: "x", Self: true}, n)

		var e client.Event
		require.NoError(t, json.Unmarshal([]byte(`{"type":"snapshot","seq":3,"members":[{"id":"a","incarnation":`+v+`}],"node":"n0","incarnation":`+v+`}`), &e))
		require.Equal(t, inc, e.Incarnation)
		require.Equal(t, inc, e.Members[0].Incarnation)
		require.Equal(t, uint64(3), e.Seq)
	}
	for _, bad := range []string{`"12x"`, `-1`, `1.5`, `"18446744073709551616"`} {
		var m client.Member
		require.Error(t, json.Unmarshal([]byte(`{"incarnation":`+bad+`}`), &m), bad)
	}
	b, err := json.Marshal(client.Member{ID: "a", Incarnation: inc})
	require.NoError(t, err)
	require.Contains(t, string(b), `"incarnation":"4611686018427387903"`)
	b, err = json.Marshal(client.Node{Name: "n0", Incarnation: inc})
	require.NoError(t, err)
	require.Contains(t, string(b), `"incarnation":"4611686018427387903"`)
}
