package config

import (
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/berth/berth/internal/bytesize"
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

// ParseSize parses a non-negative byte count as every size an operator
// types is read (bytesize.Parse): an integer, optionally followed by B,
// KiB, MiB, GiB, TiB or PiB ("16MiB", "5242880").
func ParseSize(s string) (int64, error) { return bytesize.Parse(s) }
