// Package bytesize is the one way berth writes a byte count for people: in
// IEC units with one decimal ("9.8 GiB", "300.0 MiB"), or in bytes under a
// KiB ("512 B"). Logs, refusals and the command line share it, so that a
// quota refusal and `berth usage` spell the same amount alike. Parse is the
// one way berth reads a size an operator types: the configuration's sizes
// and a quota's limit.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Format writes n in the largest IEC unit it reaches, with one decimal.
func Format(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	m := n
	if m < 0 {
		m = -m
	}
	div, exp := int64(unit), 0
	for q := m / unit; q >= unit; q /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// units are the IEC units Parse reads.
var units = []struct {
	name string
	n    int64
}{{"B", 1}, {"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50}}

// Parse reads a non-negative byte count: an integer, optionally followed
// (with or without a space) by B, KiB, MiB, GiB, TiB or PiB ("16MiB",
// "50 GiB", "5242880"). Units are binary, as object stores count.
func Parse(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("invalid size %q: empty", s)
	}
	i := 0
	for i < len(in) && in[i] >= '0' && in[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want a non-negative integer with an optional unit B, KiB, MiB, GiB, TiB or PiB", s)
	}
	n, err := strconv.ParseInt(in[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	unit := strings.TrimSpace(in[i:])
	mult := int64(1)
	if unit != "" {
		mult = 0
		for _, u := range units {
			if u.name == unit {
				mult = u.n
			}
		}
		if mult == 0 {
			return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KiB, MiB, GiB, TiB or PiB)", s, unit)
		}
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}
