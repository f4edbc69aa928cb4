//go:build race

package gobwire

// raceEnabled is true when the test binary has the race detector, under
// which sync.Pool drops some of what it is given, so that pooled scratch
// space is allocated again.
const raceEnabled = true
