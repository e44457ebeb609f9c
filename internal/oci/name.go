package oci

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxNameLength is the longest repository name accepted, in bytes.
const maxNameLength = 255

// ValidateRepoName reports whether name follows the distribution-spec grammar
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// and is at most 255 characters long. The error wraps ErrNameInvalid and says
// which rule failed.
func ValidateRepoName(name string) error {
	if name == "" {
		return fmt.Errorf("repository name is empty: %w", ErrNameInvalid)
	}
	if len(name) > maxNameLength {
		return fmt.Errorf("repository name is %d characters, longer than %d: %w", len(name), maxNameLength, ErrNameInvalid)
	}
	for i, comp := range strings.Split(name, "/") {
		if err := validateNameComponent(comp); err != nil {
			return fmt.Errorf("repository name %q, path component %d: %s: %w", name, i+1, err, ErrNameInvalid)
		}
	}
	return nil
}

// validateNameComponent checks one path component against
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*. The error is a bare message.
func validateNameComponent(c string) error {
	if c == "" {
		return fmt.Errorf("empty component (leading, trailing or doubled '/')")
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		switch {
		case isLowerAlnum(b), b == '.', b == '_', b == '-':
		case b >= 'A' && b <= 'Z':
			return fmt.Errorf("uppercase letter %q at offset %d (names must be lowercase)", b, i)
		default:
			return fmt.Errorf("%s at offset %d is not allowed (want a-z, 0-9, '.', '_', '-')", characterAt(c, i), i)
		}
	}
	if !isLowerAlnum(c[0]) {
		return fmt.Errorf("starts with separator %q (must start with a-z or 0-9)", c[0])
	}
	if !isLowerAlnum(c[len(c)-1]) {
		return fmt.Errorf("ends with separator %q (must end with a-z or 0-9)", c[len(c)-1])
	}
	// Every maximal run of separators must be ".", "_", "__" or "-+".
	for i := 0; i < len(c); {
		if isLowerAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !isLowerAlnum(c[j]) {
			j++
		}
		if sep := c[i:j]; !validSeparator(sep) {
			return fmt.Errorf("separator %q is not allowed (want '.', '_', '__' or a run of '-')", sep)
		}
		i = j
	}
	return nil
}

func validSeparator(s string) bool {
	switch s {
	case ".", "_", "__":
		return true
	}
	return strings.Trim(s, "-") == ""
}

func isLowerAlnum(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9')
}

// maxTagLength is the longest tag accepted.
const maxTagLength = 128

// ValidateTag reports whether tag matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
// The error wraps ErrTagInvalid.
func ValidateTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("tag is empty: %w", ErrTagInvalid)
	}
	if len(tag) > maxTagLength {
		return fmt.Errorf("tag is %d characters, longer than %d: %w", len(tag), maxTagLength, ErrTagInvalid)
	}
	if b := tag[0]; b == '.' || b == '-' {
		return fmt.Errorf("tag %q starts with %q (must start with a letter, digit or '_'): %w", tag, b, ErrTagInvalid)
	}
	for i := 0; i < len(tag); i++ {
		b := tag[i]
		if !isAlnum(b) && b != '_' && b != '.' && b != '-' {
			return fmt.Errorf("tag %q: %s at offset %d is not allowed (want letters, digits, '_', '.', '-'): %w", tag, characterAt(tag, i), i, ErrTagInvalid)
		}
	}
	return nil
}

// characterAt names the character that starts at byte offset i of s, as
// the character it is ("character 'é'"), or, where s is not UTF-8 there,
// as the byte ("byte 0xff").
func characterAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte %#02x", s[i])
	}
	return fmt.Sprintf("character %q", r)
}

func isAlnum(b byte) bool {
	return isLowerAlnum(b) || (b >= 'A' && b <= 'Z')
}

// SplitRepo splits a repository name at its first '/': the first path
// component is the namespace, the rest (possibly empty) names the repository
// within it. "a/b/c" gives ("a", "b/c"); "a" gives ("a", "").
func SplitRepo(name string) (namespace, rest string) {
	namespace, rest, _ = strings.Cut(name, "/")
	return namespace, rest
}
