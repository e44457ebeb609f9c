package web

import "testing"

// SetSplitAuto makes the namespace page split the bytes of namespaces
// holding at most n manifests and live tags at every visit, until t ends.
func SetSplitAuto(t testing.TB, n int64) {
	old := splitAuto
	splitAuto = n
	t.Cleanup(func() { splitAuto = old })
}
