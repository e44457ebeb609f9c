package api

// The token endpoint of the Docker/OCI token protocol (docs/design/auth.md):
//
//	GET  /auth/token?service=…&scope=…[&scope=…]   Basic credentials, or none (anonymous)
//	POST /auth/token                               the OAuth2 password grant (containerd, buildx)
//
// It answers {"token", "access_token", "expires_in", "issued_at"}: a JWT
// granting the part of the asked scopes that the subject is permitted.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berth/berth/internal/auth"
)

const tokenPath = "/auth/token"

// errGrantUnsupported answers an OAuth2 grant other than password.
var errGrantUnsupported = errors.New("unsupported grant type")

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// maxTokenForm bounds a POST /auth/token body.
const maxTokenForm = 64 << 10

func (h *handler) token(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Auth == nil || h.opts.Auth.External() != nil {
		// Access control off, or tokens come from elsewhere.
		return errRouteUnknown
	}
	if err := allow(w, r, http.MethodGet, http.MethodPost); err != nil {
		return err
	}
	ctx := r.Context()
	var service, name, secret string
	var scopes []string
	hasCreds := false
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			return fmt.Errorf("reading the token request form: %w: %w", err, auth.ErrInvalid)
		}
		switch gt := r.PostForm.Get("grant_type"); gt {
		case "password":
			name, secret, hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		default:
			return fmt.Errorf("grant_type %q: berth issues tokens for the password grant only: %w", gt, errGrantUnsupported)
		}
		service = r.PostForm.Get("service")
		scopes = r.PostForm["scope"]
	} else {
		q := r.URL.Query()
		service, scopes = q.Get("service"), q["scope"]
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, cred, _ := strings.Cut(h, " ")
			if !strings.EqualFold(scheme, "Basic") {
				return &challengeError{err: fmt.Errorf("the token endpoint takes Basic credentials, not %q", scheme), basic: true}
			}
			var ok bool
			if name, secret, ok = parseBasic(cred); !ok {
				return &challengeError{err: errors.New("malformed Basic credentials"), basic: true}
			}
			hasCreds = true
		}
	}
	sub := auth.Anonymous
	if hasCreds {
		h.warnPlainBasic(r)
		var err error
		sub, err = h.opts.Auth.Authenticate(ctx, name, secret, clientAddr(r))
		if errors.Is(err, auth.ErrUnauthenticated) {
			return &challengeError{err: errors.New("invalid username or password"), basic: true}
		}
		if err != nil {
			return err
		}
	}
	var asked []auth.Access
	for _, list := range scopes {
		for _, s := range strings.Fields(list) {
			a, err := auth.ParseScope(s)
			if err != nil {
				return err
			}
			asked = append(asked, a)
		}
	}
	tok, err := h.opts.Auth.IssueToken(ctx, sub, service, asked)
	if err != nil {
		return err
	}
	r = r.WithContext(withAccess(ctx, &access{subject: sub}))
	body, _ := json.Marshal(tokenResponse{
		Token:       tok.Token,
		AccessToken: tok.Token,
		ExpiresIn:   int(tok.ExpiresIn / time.Second),
		IssuedAt:    tok.IssuedAt.UTC().Format(time.RFC3339),
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, "application/json", body)
	return nil
}
