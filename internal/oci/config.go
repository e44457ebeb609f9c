package oci

import (
	"encoding/json"
	"fmt"
)

// ConfigLabels returns the labels of an image config blob (OCI or Docker),
// found at "config": {"Labels": {...}}. A config without labels gives an
// empty map and no error. Bytes that are not JSON, or labels that are not a
// map of strings, give an error wrapping ErrConfigInvalid.
func ConfigLabels(configJSON []byte) (map[string]string, error) {
	var c struct {
		Config *struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return nil, fmt.Errorf("reading labels: %s: %w", jsonError(err), ErrConfigInvalid)
	}
	labels := map[string]string{}
	if c.Config != nil {
		for k, v := range c.Config.Labels {
			labels[k] = v
		}
	}
	return labels, nil
}
