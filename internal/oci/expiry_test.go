package oci

import (
	"errors"
	"testing"
	"time"
)

func TestParseExpiry(t *testing.T) {
	tests := []struct {
		in    string
		want  time.Duration
		valid bool
	}{
		{"90s", 90 * time.Second, true},
		{"90m", 90 * time.Minute, true},
		{"2h", 2 * time.Hour, true},
		{"3d", 72 * time.Hour, true},
		{"1w", 168 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"1w2d3h4m5s", 9*24*time.Hour + 3*time.Hour + 4*time.Minute + 5*time.Second, true},
		{" 2h ", 2 * time.Hour, true},
		{"0h1m", time.Minute, true},
		{"", 0, false},
		{"0s", 0, false},
		{"0h0m", 0, false},
		{"-1h", 0, false},
		{"1", 0, false},
		{"h", 0, false},
		{"1y", 0, false},
		{"1H", 0, false},
		{"1.5h", 0, false},
		{"1h 30m", 0, false},
		{"99999999999999999999s", 0, false},
		{"20000000w", 0, false},
		{"9223372036s9223372036s", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseExpiry(tt.in)
			if !tt.valid {
				if !errors.Is(err, ErrExpiryInvalid) {
					t.Fatalf("ParseExpiry(%q) = %v, %v; want an ErrExpiryInvalid error", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseExpiry(%q) = %v, want nil", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
