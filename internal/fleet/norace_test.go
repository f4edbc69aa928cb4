//go:build !race

package fleet

// raceEnabled is true when the test binary has the race detector; the app
// is then built with it too.
const raceEnabled = false
