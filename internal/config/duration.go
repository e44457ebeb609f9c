package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// Duration is a time.Duration that is written in config files, environment
// variables and flags as ParseDuration reads it ("90s", "1h30m", "14d",
// "2w", "1w2d12h"). It implements pflag.Value and yaml.Unmarshaler.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d as FormatDuration does.
func (d Duration) String() string { return FormatDuration(time.Duration(d)) }

// Set parses s with ParseDuration (pflag.Value).
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Type names the flag's value type in help output (pflag.Value).
func (d *Duration) Type() string { return "duration" }

// UnmarshalYAML reads a scalar with ParseDuration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalScalar(n, `a duration such as "1h" or "14d"`, d.Set)
}

// unmarshalScalar reads a YAML scalar with set (a pflag.Value's Set), so a
// file and a flag parse a value alike; errors name the line, and want says
// what the value should look like.
func unmarshalScalar(n *yaml.Node, want string, set func(string) error) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want %s", n.Line, want)
	}
	if err := set(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// MarshalYAML writes d as FormatDuration does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// ParseDuration parses a non-negative duration: a Go duration
// (time.ParseDuration: "300ms", "1.5h", "2h45m") in which the units "d"
// (24 hours) and "w" (7 days) are also accepted, alone or mixed with the
// others ("14d", "2w", "1w2d12h", "1.5d"). "0" is zero. Negative values, a
// missing unit and overflow are errors.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, errors.New("invalid duration \"\": empty")
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", orig)
	}
	s = strings.TrimPrefix(s, "+")
	if s == "0" {
		return 0, nil
	}
	isNum := func(c byte) bool { return c == '.' || ('0' <= c && c <= '9') }
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && isNum(s[i]) {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid duration %q: want a number before each unit", orig)
		}
		num := s[:i]
		s = s[i:]
		j := 0
		for j < len(s) && !isNum(s[j]) {
			j++
		}
		unit := s[:j]
		s = s[j:]

		var d time.Duration
		switch unit {
		case "":
			return 0, fmt.Errorf("invalid duration %q: missing unit (ns, us, ms, s, m, h, d, w)", orig)
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q: bad number %q", orig, num)
			}
			mult := day
			if unit == "w" {
				mult = week
			}
			v := f * float64(mult)
			if v >= math.MaxInt64 {
				return 0, fmt.Errorf("invalid duration %q: too large", orig)
			}
			d = time.Duration(v)
		default:
			v, err := time.ParseDuration(num + unit)
			if err != nil {
				if strings.Contains(err.Error(), "unknown unit") {
					return 0, fmt.Errorf("invalid duration %q: unknown unit %q (ns, us, ms, s, m, h, d, w)", orig, unit)
				}
				return 0, fmt.Errorf("invalid duration %q", orig)
			}
			d = v
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("invalid duration %q: too large", orig)
		}
		total += d
	}
	return total, nil
}

// FormatDuration writes d in the shortest form ParseDuration reads back:
// whole weeks as "2w", whole days as "3d", otherwise time.Duration.String
// without trailing zero units ("1h", "1h30m", "10s", "0s").
func FormatDuration(d time.Duration) string {
	switch {
	case d > 0 && d%week == 0:
		return strconv.FormatInt(int64(d/week), 10) + "w"
	case d > 0 && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
