//go:build race

package rules

// The race detector slows the Go side of every guest loop check several
// times over; timing bounds in tests scale by this factor.
const raceSlowdown = 10
