package apitype

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// big is an incarnation above 2^53: a float64 (JavaScript's number) cannot
// hold it exactly.
const big = uint64(1)<<62 + 1

// TestIncarnationIsAString: members, nodes and snapshots encode their
// incarnation as a decimal string, and decode it from a string or, as
// older nodes sent it, a number, exactly.
func TestIncarnationIsAString(t *testing.T) {
	created := true
	b, err := json.Marshal(Member{ID: "m", Group: "g", Owner: "n", Incarnation: big, Created: &created})
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"m","group":"g","meta":null,"owner":"n","incarnation":"4611686018427387905","confirmed":false,"created":true}`, string(b))
	b, err = json.Marshal(Node{Name: "n", Incarnation: big})
	require.NoError(t, err)
	require.Contains(t, string(b), `"incarnation":"4611686018427387905"`)
	b, err = json.Marshal(Snapshot{Type: "snapshot", Node: "n", Incarnation: big})
	require.NoError(t, err)
	require.Contains(t, string(b), `"incarnation":"4611686018427387905"`)

	for _, in := range []string{`"4611686018427387905"`, `4611686018427387905`} {
		var m Member
		require.NoError(t, json.Unmarshal([]byte(`{"id":"m","meta":{"k":"v"},"incarnation":`+in+`}`), &m), in)
		require.Equal(t, big, m.Incarnation, in)
		require.Equal(t, "v", m.Meta["k"], "the other fields decode too")
		require.Nil(t, m.Created, "absent outside a join's answer")
		var n Node
		require.NoError(t, json.Unmarshal([]byte(`{"name":"n","incarnation":`+in+`}`), &n), in)
		require.Equal(t, big, n.Incarnation, in)
		require.Equal(t, "n", n.Name)
	}
	var m Member
	err = json.Unmarshal([]byte(`{"incarnation":"12x"}`), &m)
	require.ErrorContains(t, err, "want a decimal string")
	err = json.Unmarshal([]byte(`{"incarnation":-1}`), &m)
	require.Error(t, err, "a negative incarnation")

	var i Incarnation
	b, err = json.Marshal(Incarnation(big))
	require.NoError(t, err)
	require.Equal(t, `"4611686018427387905"`, string(b))
	require.NoError(t, json.Unmarshal(b, &i))
	require.EqualValues(t, big, i)
	require.NoError(t, json.Unmarshal([]byte(`null`), &i))
	require.EqualValues(t, big, i, "null leaves it unchanged")
}

// TestCreatedDistinguishesFalse: a join's answer says created false
// (an update) explicitly; elsewhere the field is absent.
func TestCreatedDistinguishesFalse(t *testing.T) {
	updated := false
	b, err := json.Marshal(Member{Created: &updated})
	require.NoError(t, err)
	require.Contains(t, string(b), `"created":false`)
	b, err = json.Marshal(Member{})
	require.NoError(t, err)
	require.NotContains(t, string(b), `created`)
}
