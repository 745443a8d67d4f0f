//go:build rosterbug_reusecounters

package bug

// ReuseCounters is true only in a build with the tag rosterbug_reusecounters.
const ReuseCounters = true
