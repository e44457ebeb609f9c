package duration

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"500ms", 500 * time.Millisecond},
		{"1.5s", 1500 * time.Millisecond},
		{"90s", 90 * time.Second},
		{"90m", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"10us", 10 * time.Microsecond},
		{"10µs", 10 * time.Microsecond},
		{"3ns", 3},
		{"1d", Day},
		{"1.5d", 36 * time.Hour},
		{".5d", 12 * time.Hour},
		{"14d", 14 * Day},
		{"2w", 2 * Week},
		{"0.5w", 84 * time.Hour},
		{"1w2d12h", Week + 2*Day + 12*time.Hour},
		{"1d12h30m15.5s", Day + 12*time.Hour + 30*time.Minute + 15500*time.Millisecond},
		{"106751d", 106751 * Day},
		{"+1d", Day},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{
		"", " 1h", "1h ", "-1h", "-0", "+", "1", "10", "h", "1x", "1hh", "1.2.3h", "1d-2h",
		"1 d", "d1", "106752d", "15251w", "9223372036854775807ns1ns", "1e3s",
	} {
		t.Run(in, func(t *testing.T) {
			d, err := Parse(in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", in, d)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q): %v does not wrap ErrInvalid", in, err)
			}
		})
	}
}

// TestParseErrors: an error says what is wrong.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"-1h", "negative"},
		{"-1d", "negative"},
		{"10", "10 has no unit"},
		{"1y", `unknown unit "y"`},
		{"d", "want a number"},
		{"1..5d", `bad number "1..5"`},
		{"100000000w", "too large"},
		{"2562047h1000h", "too large"},
		{"9999999999999999999ns", "too large"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q): got error %v, want one containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{3, "3ns"},
		{500 * time.Millisecond, "500ms"},
		{1500 * time.Millisecond, "1.5s"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + 5*time.Second, "1h5s"},
		{24 * time.Hour, "1d"},
		{36 * time.Hour, "1d12h"},
		{72 * time.Hour, "3d"},
		{10 * Day, "10d"},
		{14 * Day, "2w"},
		{Week + 2*Day + 12*time.Hour, "9d12h"},
		{Day + 500*time.Millisecond, "1d500ms"},
		{-90 * time.Minute, "-1h30m"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := Format(tc.in); got != tc.want {
				t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRoundTrip: what Format writes, Parse reads back to the same value,
// and what an operator writes in the largest natural units comes back as
// written.
func TestRoundTrip(t *testing.T) {
	for _, in := range []string{"0s", "500ms", "1.5s", "1m30s", "1h", "1h30m", "1d", "1d12h", "3d", "2w", "10d", "1d1h1m1s", "1d500ms", "1.5µs"} {
		t.Run(in, func(t *testing.T) {
			d, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			if got := Format(d); got != in {
				t.Errorf("Format(Parse(%q)) = %q, want %q", in, got, in)
			}
		})
	}
	for _, d := range []time.Duration{1, 999, time.Second - 1, 36*time.Hour + 1, 13*Day + 23*time.Hour + 59*time.Minute + 59*time.Second + 999999999, math.MaxInt64} {
		t.Run(d.String(), func(t *testing.T) {
			s := Format(d)
			got, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse(Format(%v) = %q): %v", d, s, err)
			}
			if got != d {
				t.Errorf("Parse(Format(%v) = %q) = %v", d, s, got)
			}
		})
	}
}
