package checker

import (
	"sort"
	"strings"
)

// Validity is a checker's verdict, as Jepsen's :valid?: true, false, or
// unknown (the history does not say: too few reads, a node never read).
type Validity string

const (
	Valid   Validity = "valid"
	Invalid Validity = "invalid"
	Unknown Validity = "unknown"
)

// Result is one checker's verdict on a history.
type Result struct {
	// Checker names the checker (convergence, set, owner-visibility,
	// watch, persistence, availability, hygiene).
	Checker string   `json:"checker"`
	Valid   Validity `json:"valid"`
	// Anomalies names what was found wrong (lost-joins, resurrected,
	// phantoms, duplicates, ghosts, misses, ...); empty when valid.
	Anomalies []string `json:"anomalies,omitempty"`
	// Counts are the checker's tallies (lost: 3, stable: 1200, ...).
	Counts map[string]int `json:"counts,omitempty"`
	// Quantiles are latency and time distributions in milliseconds, by
	// name then quantile ("0.5", "0.99", "1"), e.g. stable-latency or
	// heal-to-agreement.
	Quantiles map[string]map[string]float64 `json:"quantiles,omitempty"`
	// Examples are a few offending items per anomaly, for a reader.
	Examples map[string][]string `json:"examples,omitempty"`
	// Notes say what the checker could not judge, or why unknown.
	Notes []string `json:"notes,omitempty"`
}

// Report is the composition of every checker's result: invalid if any
// is, else unknown if any is, else valid.
type Report struct {
	Valid   Validity `json:"valid"`
	Results []Result `json:"results"`
	// Skipped names the checkers Check did not run, with why (the
	// history holds nothing they judge: no watch events, no faults, no
	// logs or metrics).
	Skipped map[string]string `json:"skipped,omitempty"`
}

// Compose builds a Report from results.
func Compose(results ...Result) Report {
	r := Report{Valid: Valid, Results: results}
	for _, res := range results {
		switch res.Valid {
		case Invalid:
			r.Valid = Invalid
		case Unknown:
			if r.Valid == Valid {
				r.Valid = Unknown
			}
		}
	}
	return r
}

// Verdict is the report's last line, as Jepsen prints it: VALID,
// UNKNOWN: <checkers>, or INVALID: <anomalies> (a checker's name where it
// named none).
func (r Report) Verdict() string {
	var names []string
	for _, res := range r.Results {
		if res.Valid != r.Valid || r.Valid == Valid {
			continue
		}
		if len(res.Anomalies) == 0 || r.Valid == Unknown {
			names = append(names, res.Checker)
			continue
		}
		names = append(names, res.Anomalies...)
	}
	sort.Strings(names)
	switch r.Valid {
	case Valid:
		return "VALID"
	case Unknown:
		return "UNKNOWN: " + strings.Join(names, ", ")
	default:
		return "INVALID: " + strings.Join(names, ", ")
	}
}

// ExitCode is the suite's exit status for the report: 0 valid, 1
// invalid, 2 unknown.
func (r Report) ExitCode() int {
	switch r.Valid {
	case Valid:
		return 0
	case Invalid:
		return 1
	default:
		return 2
	}
}
