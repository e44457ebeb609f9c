// Package duration is the grammar of every duration an operator types —
// flags, the YAML file, BERTH_* variables, management API bodies and CLI
// arguments — and the one way berth writes a duration back.
//
// The grammar is Go's (time.ParseDuration: "500ms", "90s", "1.5h",
// "2h45m") with two more units, "d" (24 hours) and "w" (7 days), which may
// carry fractions and mix with the others ("14d", "1.5d", "2w",
// "1w2d12h"). "0" is zero. A negative value, a missing unit and overflow
// are errors.
//
// Expiry labels on images (berth.expires-after, quay.expires-after) are not
// this grammar: they keep Quay's, read by oci.ParseExpiry.
package duration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

const (
	// Day is the unit "d".
	Day = 24 * time.Hour
	// Week is the unit "w".
	Week = 7 * Day
)

// ErrInvalid is wrapped by every error of Parse.
var ErrInvalid = errors.New("invalid duration")

// units lists the units Parse accepts, for its error messages.
const units = "ns, us, ms, s, m, h, d, w"

// Parse reads s in the grammar of the package comment.
func Parse(s string) (time.Duration, error) {
	switch {
	case s == "":
		return 0, fmt.Errorf("%w \"\": empty (want e.g. 500ms, 90s, 1h30m, 1.5d, 2w)", ErrInvalid)
	case s[0] == '-':
		return 0, fmt.Errorf("%w %q: must not be negative", ErrInvalid, s)
	}
	rest := strings.TrimPrefix(s, "+") // as in Go's grammar, a "+" may lead
	switch rest {
	case "":
		return 0, fmt.Errorf("%w %q: want a number and a unit", ErrInvalid, s)
	case "0":
		return 0, nil
	}
	isNum := func(c byte) bool { return c == '.' || '0' <= c && c <= '9' }
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && isNum(rest[i]) {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("%w %q: want a number before each unit", ErrInvalid, s)
		}
		j := i
		for j < len(rest) && !isNum(rest[j]) {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]

		var d time.Duration
		switch unit {
		case "":
			return 0, fmt.Errorf("%w %q: %s has no unit (%s)", ErrInvalid, s, num, units)
		case "d", "w":
			// Read the number as hours, which keeps Go's exact
			// handling of fractions, then scale.
			h, err := time.ParseDuration(num + "h")
			if err != nil {
				return 0, numberError(s, num)
			}
			mult := time.Duration(24)
			if unit == "w" {
				mult = 7 * 24
			}
			if h > math.MaxInt64/mult {
				return 0, fmt.Errorf("%w %q: too large", ErrInvalid, s)
			}
			d = h * mult
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			v, err := time.ParseDuration(num + unit)
			if err != nil {
				return 0, numberError(s, num)
			}
			d = v
		default:
			return 0, fmt.Errorf("%w %q: unknown unit %q (%s)", ErrInvalid, s, unit, units)
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("%w %q: too large", ErrInvalid, s)
		}
		total += d
	}
	return total, nil
}

// numberError explains why time.ParseDuration refused num, one number of
// s with a known unit: it is malformed, or, when it is well formed, too
// large.
func numberError(s, num string) error {
	if strings.Count(num, ".") > 1 || strings.Trim(num, ".") == "" {
		return fmt.Errorf("%w %q: bad number %q", ErrInvalid, s, num)
	}
	return fmt.Errorf("%w %q: too large", ErrInvalid, s)
}

// Format writes d in the largest natural units, in a form Parse reads
// back to the same value: whole weeks as "2w", then days, hours, minutes
// and seconds ("3d", "1d12h", "1h30m", "90s" as "1m30s", "1.5s", "500ms");
// zero is "0s". A negative d (never parsed, but possible in arithmetic) is
// written with a leading "-".
func Format(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < 0:
		if d == math.MinInt64 {
			return d.String()
		}
		return "-" + Format(-d)
	case d%Week == 0:
		return strconv.FormatInt(int64(d/Week), 10) + "w"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{Day, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(u.name)
			d -= n * u.unit
		}
	}
	if d > 0 {
		// Seconds and below: time.Duration.String writes "5s", "1.5s",
		// "500ms", "1.5µs", all of which Parse reads.
		b.WriteString(d.String())
	}
	return b.String()
}
