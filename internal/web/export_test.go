package web

import "testing"

// SetSplitAutoManifests makes the namespace page split the bytes of
// namespaces holding at most n manifests at every visit, until t ends.
func SetSplitAutoManifests(t testing.TB, n int64) {
	old := splitAutoManifests
	splitAutoManifests = n
	t.Cleanup(func() { splitAutoManifests = old })
}
