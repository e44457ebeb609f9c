package sqlstore_test

import (
	"testing"

	"github.com/berth/berth/internal/meta"
	"github.com/berth/berth/internal/meta/metatest"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
)

func TestStore(t *testing.T) {
	for _, b := range sqltest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			metatest.Run(t, func(t *testing.T) meta.Store { return sqltest.Open(t, b.DSN(t)) })
		})
	}
}
