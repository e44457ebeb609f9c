package api

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		h             string
		start, length int64
		ok            bool
	}{
		{"0-0", 0, 1, true},
		{"0-9", 0, 10, true},
		{"5-14", 5, 10, true},
		{" 5-14 ", 5, 10, true},
		{"bytes=5-14", 5, 10, true},
		{"bytes 5-14/100", 5, 10, true},
		{"5-14/*", 5, 10, true},
		{"0-9223372036854775806", 0, math.MaxInt64, true},
		{"9223372036854775806-9223372036854775806", math.MaxInt64 - 1, 1, true},

		{"", 0, 0, false},
		{"5", 0, 0, false},
		{"-5", 0, 0, false},
		{"5-", 0, 0, false},
		{"9-5", 0, 0, false},
		{"+1-+1", 0, 0, false},
		{"1--5", 0, 0, false},
		{"1 - 5", 0, 0, false},
		{"0x1-0x2", 0, 0, false},
		{"0-9223372036854775807", 0, 0, false},
		{"9223372036854775807-9223372036854775807", 0, 0, false},
		{"0-9223372036854775808", 0, 0, false},
		{"0-99999999999999999999", 0, 0, false},
		{"0-1/", 0, 0, false},
		{"0-1/x", 0, 0, false},
		{"0-1/-5", 0, 0, false},
		{"bytes=bytes 0-1", 0, 0, false},
	}
	for _, tt := range tests {
		start, length, ok := parseContentRange(tt.h)
		if start != tt.start || length != tt.length || ok != tt.ok {
			t.Errorf("parseContentRange(%q): got %d, %d, %v; want %d, %d, %v", tt.h, start, length, ok, tt.start, tt.length, tt.ok)
		}
	}
}

// FuzzParseContentRange: no input panics, and an accepted one is a range
// whose length is a positive int64 that the parsed numbers spell back.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "5-14", "bytes=5-14", "bytes 5-14/100", "5-14/*", "0-9223372036854775807", "+1-+1", "1--5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, length, ok := parseContentRange(h)
		if !ok {
			if start != 0 || length != 0 {
				t.Fatalf("parseContentRange(%q): refused but got %d, %d", h, start, length)
			}
			return
		}
		if start < 0 || length <= 0 || start > math.MaxInt64-length {
			t.Fatalf("parseContentRange(%q): got start %d, length %d", h, start, length)
		}
		end := start + length - 1
		canon := strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10)
		if s2, l2, ok2 := parseContentRange(canon); !ok2 || s2 != start || l2 != length {
			t.Fatalf("parseContentRange(%q) = %d, %d, but its canonical form %q gives %d, %d, %v", h, start, length, canon, s2, l2, ok2)
		}
		if strings.Trim(h, " \t\r\n0123456789-/*bytes=") != "" {
			t.Fatalf("parseContentRange(%q): accepted characters outside the grammar", h)
		}
	})
}
