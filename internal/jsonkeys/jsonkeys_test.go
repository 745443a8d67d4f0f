package jsonkeys

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDuplicates(t *testing.T) {
	dups, err := Duplicates([]byte(`{"a":1,"b":{"a":2,"c":[{"a":1},{"a":2}]},"a":3}`))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, dups, "only the outer a repeats")

	dups, err = Duplicates([]byte(`{"k":{"x":1,"x":2},"s":"k","k2":["k","k"]}`))
	require.NoError(t, err)
	require.Equal(t, []string{"x"}, dups, "string values are not keys")

	dups, err = Duplicates([]byte(`[{"a":1},{"a":1}]`))
	require.NoError(t, err)
	require.Empty(t, dups, "sibling objects do not clash")

	_, err = Duplicates([]byte(`{"a":`))
	require.ErrorIs(t, err, ErrSyntax)
}

func TestLines(t *testing.T) {
	out := []byte("banner line\n{\"a\":1}\n{\"a\":1,\"a\":2}\n\n{\"b\":\n")
	bad := Lines(out)
	require.Len(t, bad, 2)
	require.Contains(t, bad[0], `repeats ["a"]`)
	require.Contains(t, bad[1], "not a JSON document")
	require.Empty(t, Lines([]byte("{\"a\":1}\n{\"a\":{\"a\":1}}\n")))
}
