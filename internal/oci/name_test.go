package oci

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateRepoName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring of the message; "" means valid
	}{
		{"single", "alpine", ""},
		{"two components", "library/alpine", ""},
		{"many components", "a/b/c/d-e/f_g/h.i/j__k", ""},
		{"digits", "0/1/2", ""},
		{"dash run", "a---b", ""},
		{"double underscore", "a__b", ""},
		{"length 255", strings.Repeat("a", 255), ""},
		{"length 255 multi", strings.Repeat("ab/", 84) + "abc", ""},
		{"length 256", strings.Repeat("a", 256), "longer than 255"},
		{"empty", "", "empty"},
		{"uppercase", "Library/alpine", "uppercase"},
		{"uppercase later", "library/alpinE", "uppercase"},
		{"double dot", "a..b", `separator ".."`},
		{"triple underscore", "a___b", `separator "___"`},
		{"dot underscore", "a._b", `separator "._"`},
		{"dash dot", "a-.b", `separator "-."`},
		{"empty component", "a//b", "empty component"},
		{"leading slash", "/a", "empty component"},
		{"trailing slash", "a/", "empty component"},
		{"leading dot", ".a", "starts with separator"},
		{"leading dash", "-a", "starts with separator"},
		{"leading underscore in component", "a/_b", "starts with separator"},
		{"trailing dash", "a-", "ends with separator"},
		{"trailing dot in component", "a./b", "ends with separator"},
		{"dotdot component", "a/../b", "starts with separator"},
		{"colon", "a:b", "not allowed"},
		{"space", "a b", "not allowed"},
		{"colon names the character", "a:b", "character ':' at offset 1 is not allowed"},
		{"unicode", "café", "character 'é' at offset 3 is not allowed"},
		{"unicode in a later component", "acme/naïve", "path component 2: character 'ï' at offset 2"},
		{"not UTF-8", "caf\xe9", "byte 0xe9 at offset 3 is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRepoName(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateRepoName(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateRepoName(%q) = nil, want error containing %q", tt.in, tt.wantErr)
			}
			if !errors.Is(err, ErrNameInvalid) {
				t.Errorf("got %v, want it to wrap ErrNameInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestValidateTagMessage: a refused character is named as the character
// it is, not as one of its bytes.
func TestValidateTagMessage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1:2", "character ':' at offset 2"},
		{"vé", "character 'é' at offset 1"},
		{"v\xff", "byte 0xff at offset 1"},
	} {
		if err := ValidateTag(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidateTag(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestValidateTag(t *testing.T) {
	tests := []struct {
		in    string
		valid bool
	}{
		{"latest", true},
		{"v1.2.3", true},
		{"_x", true},
		{"A-b_C.d", true},
		{"9", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{".hidden", false},
		{"-x", false},
		{"a:b", false},
		{"a/b", false},
		{"a b", false},
		{"sha256:" + strings.Repeat("a", 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := ValidateTag(tt.in)
			if got := err == nil; got != tt.valid {
				t.Fatalf("ValidateTag(%q) = %v, got valid=%v, want %v", tt.in, err, got, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrTagInvalid) {
				t.Errorf("got %v, want it to wrap ErrTagInvalid", err)
			}
		})
	}
}

func TestSplitRepo(t *testing.T) {
	tests := []struct{ in, ns, rest string }{
		{"a/b/c", "a", "b/c"},
		{"a/b", "a", "b"},
		{"a", "a", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ns, rest := SplitRepo(tt.in)
			if ns != tt.ns || rest != tt.rest {
				t.Errorf("SplitRepo(%q) = (%q, %q), want (%q, %q)", tt.in, ns, rest, tt.ns, tt.rest)
			}
		})
	}
}
