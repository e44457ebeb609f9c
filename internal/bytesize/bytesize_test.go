package bytesize

import "testing"

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{300 << 20, "300.0 MiB"},
		{10 << 30, "10.0 GiB"},
		{9<<30 + 800<<20, "9.8 GiB"},
		{-2048, "-2.0 KiB"},
		{1 << 62, "4.0 EiB"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
