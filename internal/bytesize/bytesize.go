// Package bytesize is the one way berth writes a byte count for people: in
// IEC units with one decimal ("9.8 GiB", "300.0 MiB"), or in bytes under a
// KiB ("512 B"). Logs, refusals and the command line share it, so that a
// quota refusal and `berth usage` spell the same amount alike.
package bytesize

import "fmt"

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
