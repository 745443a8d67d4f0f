//go:build !rosterbug_norejoin

package bug

// NoRejoin is true only in a build with the tag rosterbug_norejoin (see Names).
const NoRejoin = false
