//go:build !rosterbug_nohide

package bug

// NoHide is true only in a build with the tag rosterbug_nohide (see Names).
const NoHide = false
