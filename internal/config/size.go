package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Byte size units accepted by ParseSize (binary, as object stores count).
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// Size is a byte count written in config files, environment variables and
// flags as ParseSize reads it ("8MiB", "512KiB", "16777216"). It implements
// pflag.Value and yaml.Unmarshaler.
type Size int64

// Bytes returns s as a number of bytes.
func (s Size) Bytes() int64 { return int64(s) }

// String formats s in the largest binary unit that divides it ("8MiB"), or
// in bytes.
func (s Size) String() string {
	for _, u := range []struct {
		n    int64
		name string
	}{{GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if s != 0 && int64(s)%u.n == 0 {
			return strconv.FormatInt(int64(s)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// Set parses v with ParseSize (pflag.Value).
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// Type names the flag's value type in help output (pflag.Value).
func (s *Size) Type() string { return "size" }

// UnmarshalYAML reads a scalar with ParseSize.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	return unmarshalScalar(n, `a size such as "8MiB"`, s.Set)
}

// MarshalYAML writes s as String does.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// ParseSize parses a non-negative byte count: an integer, optionally
// followed by B, KiB, MiB or GiB ("16MiB", "5242880").
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("invalid size %q: empty", s)
	}
	i := 0
	for i < len(in) && in[i] >= '0' && in[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want a non-negative integer with an optional unit B, KiB, MiB or GiB", s)
	}
	n, err := strconv.ParseInt(in[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	var mult int64
	switch strings.TrimSpace(in[i:]) {
	case "", "B":
		mult = 1
	case "KiB":
		mult = KiB
	case "MiB":
		mult = MiB
	case "GiB":
		mult = GiB
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KiB, MiB or GiB)", s, strings.TrimSpace(in[i:]))
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}
