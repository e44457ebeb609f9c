package oci

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigLabels(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"labels", `{"architecture":"amd64","config":{"Env":["A=b"],"Labels":{"quay.expires-after":"2d","org.opencontainers.image.title":"x"}}}`,
			map[string]string{"quay.expires-after": "2d", "org.opencontainers.image.title": "x"}, false},
		{"no labels", `{"config":{"Env":["A=b"]}}`, map[string]string{}, false},
		{"null labels", `{"config":{"Labels":null}}`, map[string]string{}, false},
		{"no config", `{"architecture":"arm64"}`, map[string]string{}, false},
		{"empty object", `{}`, map[string]string{}, false},
		{"not json", `not json`, nil, true},
		{"truncated", `{"config":{"Labels":{"a":`, nil, true},
		{"label not string", `{"config":{"Labels":{"a":1}}}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigLabels([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrConfigInvalid) {
					t.Fatalf("ConfigLabels(%s) error = %v, want ErrConfigInvalid", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigLabels(%s) = %v, want nil", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("labels mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
