package bytesize

import (
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{300 << 20, "300.0 MiB"},
		{10 << 30, "10.0 GiB"},
		{9<<30 + 800<<20, "9.8 GiB"},
		{-2048, "-2.0 KiB"},
		{1 << 62, "4.0 EiB"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "5242880", want: 5 << 20},
		{in: "8MiB", want: 8 << 20},
		{in: "50 GiB", want: 50 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "1PiB", want: 1 << 50},
		{in: "10B", want: 10},
		{in: "", wantErr: "empty"},
		{in: "-1", wantErr: "non-negative integer"},
		{in: "1.5GiB", wantErr: "unknown unit"},
		{in: "8MB", wantErr: "unknown unit"},
		{in: "99999999999999999999", wantErr: "too large"},
		{in: "9999PiB", wantErr: "too large"},
	} {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
