//go:build !rosterbug_noleaves

package bug

// NoLeaves is true only in a build with the tag rosterbug_noleaves (see Names).
const NoLeaves = false
