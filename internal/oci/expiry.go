package oci

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// ParseExpiry parses an expiry label value: one or more <integer><unit> terms
// with units s, m, h, d (24h) and w (7d), such as "90s", "90m", "2h", "3d",
// "1w" or "1h30m". Surrounding spaces are ignored. The result must be
// positive; errors wrap ErrExpiryInvalid.
//
// This is deliberately not the grammar of the durations an operator types
// (internal/duration): labels are written into images, often for Quay, so
// berth reads them as Quay reads quay.expires-after (whole numbers, no
// fractions, no sub-second units) and an image labelled for Quay expires
// alike in both.
func ParseExpiry(s string) (time.Duration, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return 0, fmt.Errorf("expiry is empty: %w", ErrExpiryInvalid)
	}
	var total time.Duration
	for rest := v; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expiry %q: expected a number at %q (want e.g. 90m, 2h, 3d, 1w, 1h30m): %w", s, rest, ErrExpiryInvalid)
		}
		if i == len(rest) {
			return 0, fmt.Errorf("expiry %q: number %s has no unit (want s, m, h, d or w): %w", s, rest, ErrExpiryInvalid)
		}
		var unit time.Duration
		switch rest[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("expiry %q: unknown unit %q (want s, m, h, d or w): %w", s, rest[i], ErrExpiryInvalid)
		}
		var n int64
		for _, c := range rest[:i] {
			d := int64(c - '0')
			if n > (math.MaxInt64-d)/10 {
				return 0, fmt.Errorf("expiry %q is too large: %w", s, ErrExpiryInvalid)
			}
			n = n*10 + d
		}
		if n > int64(math.MaxInt64/unit) || total > time.Duration(math.MaxInt64)-time.Duration(n)*unit {
			return 0, fmt.Errorf("expiry %q is too large: %w", s, ErrExpiryInvalid)
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if total <= 0 {
		return 0, fmt.Errorf("expiry %q is zero, want a positive duration: %w", s, ErrExpiryInvalid)
	}
	return total, nil
}
