package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/berth/berth/internal/duration"
)

// Duration is a time.Duration that is written in config files, environment
// variables and flags as duration.Parse reads it ("90s", "1h30m", "14d",
// "2w", "1w2d12h"). It implements pflag.Value and yaml.Unmarshaler.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d as duration.Format does.
func (d Duration) String() string { return duration.Format(time.Duration(d)) }

// Set parses s with duration.Parse (pflag.Value).
func (d *Duration) Set(s string) error {
	v, err := duration.Parse(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Type names the flag's value type in help output (pflag.Value).
func (d *Duration) Type() string { return "duration" }

// UnmarshalYAML reads a scalar with duration.Parse.
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

// MarshalYAML writes d as duration.Format does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
