package torture

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// outcome classifies an answer. A write is acknowledged (ok) or refused
// (failed) only when berth answered; a broken connection, a timeout or a
// 5xx leaves it unknown.
type outcome int

const (
	outOK outcome = iota
	outFailed
	outUnknown
)

func (o outcome) String() string {
	switch o {
	case outOK:
		return "ok"
	case outFailed:
		return "refused"
	}
	return "unknown"
}

// resp is one HTTP exchange as the harness saw it.
type resp struct {
	status int
	code   string // OCI error code, if any
	header http.Header
	body   []byte
	err    error
	sent   time.Time
	got    time.Time
}

func (r resp) outcome() outcome {
	switch {
	case r.err != nil || r.status >= 500 || r.status == 0:
		return outUnknown
	case r.status >= 200 && r.status < 300:
		return outOK
	}
	return outFailed
}

func (r resp) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	s := strconv.Itoa(r.status)
	if r.code != "" {
		s += " " + r.code
	}
	return s
}

// client speaks the OCI distribution API and berth's management API to the
// replicas of a cluster.
type client struct {
	http    *http.Client
	cluster *cluster
	stats   *stats
}

func newHTTPClient() *http.Client {
	tr := &http.Transport{
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 90 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends one request to base (a replica's URL) and reads the whole answer.
func (c *client) do(ctx context.Context, base, method, path string, hdr map[string]string, body []byte) resp {
	u := path
	if !strings.HasPrefix(path, "http") {
		u = base + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return resp{err: err, sent: time.Now(), got: time.Now()}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	r := resp{sent: time.Now()}
	res, err := c.http.Do(req)
	if err != nil {
		r.err, r.got = err, time.Now()
		return r
	}
	defer res.Body.Close()
	r.status, r.header = res.StatusCode, res.Header
	r.body, err = io.ReadAll(io.LimitReader(res.Body, 64<<20))
	r.got = time.Now()
	if err != nil {
		r.err = err
	}
	if res.StatusCode >= 400 && len(r.body) > 0 {
		var env struct {
			Errors []struct {
				Code string `json:"code"`
			} `json:"errors"`
		}
		if json.Unmarshal(r.body, &env) == nil && len(env.Errors) > 0 {
			r.code = env.Errors[0].Code
		}
	}
	if c.stats != nil && (r.status >= 500) {
		c.stats.serverError(method, path, r)
	}
	return r
}

// Blob operations. Each returns the exchange that decided the outcome.

func (c *client) headBlob(ctx context.Context, base, repo, d string) resp {
	return c.do(ctx, base, http.MethodHead, "/v2/"+repo+"/blobs/"+d, nil, nil)
}

func (c *client) getBlob(ctx context.Context, base, repo, d string) resp {
	return c.do(ctx, base, http.MethodGet, "/v2/"+repo+"/blobs/"+d, nil, nil)
}

// pushMonolithic is POST ?digest= with the whole body.
func (c *client) pushMonolithic(ctx context.Context, base, repo, d string, data []byte) resp {
	return c.do(ctx, base, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+url.QueryEscape(d),
		map[string]string{"Content-Type": "application/octet-stream"}, data)
}

// startUpload opens a session and returns its absolute location.
func (c *client) startUpload(ctx context.Context, base, repo string) (string, resp) {
	r := c.do(ctx, base, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if r.outcome() != outOK || r.status != http.StatusAccepted {
		return "", r
	}
	return location(base, r.header.Get("Location")), r
}

func location(base, loc string) string {
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		// Keep the path only: the session may be continued on another replica.
		if u, err := url.Parse(loc); err == nil {
			return u.RequestURI()
		}
	}
	return loc
}

func withQuery(loc, kv string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + kv
	}
	return loc + "?" + kv
}

func (c *client) patchUpload(ctx context.Context, base, loc string, offset int, chunk []byte) resp {
	return c.do(ctx, base, http.MethodPatch, loc, map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", offset, offset+len(chunk)-1),
	}, chunk)
}

func (c *client) finishUpload(ctx context.Context, base, loc, d string, rest []byte) resp {
	hdr := map[string]string{"Content-Type": "application/octet-stream"}
	if rest == nil {
		rest = []byte{}
	}
	return c.do(ctx, base, http.MethodPut, withQuery(loc, "digest="+url.QueryEscape(d)), hdr, rest)
}

// mount asks for a cross-repository mount; on 202 it returns the session
// berth opened instead.
func (c *client) mount(ctx context.Context, base, repo, from, d string) (string, resp) {
	r := c.do(ctx, base, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+url.QueryEscape(d)+"&from="+url.QueryEscape(from), nil, nil)
	if r.status == http.StatusAccepted {
		return location(base, r.header.Get("Location")), r
	}
	return "", r
}

// Manifests.

func (c *client) putManifest(ctx context.Context, base, repo, ref, mediaType string, body []byte) resp {
	return c.do(ctx, base, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, map[string]string{"Content-Type": mediaType}, body)
}

func (c *client) getManifest(ctx context.Context, base, repo, ref string) resp {
	return c.do(ctx, base, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, map[string]string{
		"Accept": mediaIndex + ", " + mediaManifest}, nil)
}

func (c *client) deleteManifest(ctx context.Context, base, repo, ref string) resp {
	return c.do(ctx, base, http.MethodDelete, "/v2/"+repo+"/manifests/"+ref, nil, nil)
}

func (c *client) referrers(ctx context.Context, base, repo, d string) resp {
	return c.do(ctx, base, http.MethodGet, "/v2/"+repo+"/referrers/"+d, nil, nil)
}

// Management API.

func (c *client) restoreTag(ctx context.Context, base, repo, tag, d string) resp {
	b, _ := json.Marshal(map[string]string{"digest": d})
	return c.do(ctx, base, http.MethodPost, "/berth/v1/repositories/"+repo+"/_tags/"+tag+"/restore",
		map[string]string{"Content-Type": "application/json"}, b)
}

func (c *client) setExpiry(ctx context.Context, base, repo, tag string, in time.Duration) resp {
	b, _ := json.Marshal(map[string]string{"in": in.String()})
	return c.do(ctx, base, http.MethodPut, "/berth/v1/repositories/"+repo+"/_tags/"+tag+"/expiry",
		map[string]string{"Content-Type": "application/json"}, b)
}

func (c *client) clearExpiry(ctx context.Context, base, repo, tag string) resp {
	return c.do(ctx, base, http.MethodDelete, "/berth/v1/repositories/"+repo+"/_tags/"+tag+"/expiry", nil, nil)
}

func (c *client) purge(ctx context.Context, base, repo string) resp {
	return c.do(ctx, base, http.MethodPost, "/berth/v1/purge/"+repo, nil, nil)
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// tagHistory lists every lifetime of tag of repo, or of every tag of repo
// when tag is "", newest first.
func (c *client) tagHistory(ctx context.Context, base, repo, tag string) resp {
	p := "/berth/v1/repositories/" + repo + "/_tags/history"
	if tag != "" {
		p = "/berth/v1/repositories/" + repo + "/_tags/" + tag + "/history"
	}
	return c.do(ctx, base, http.MethodGet, p, nil, nil)
}

// putPolicy is PUT /berth/v1/repositories/<repo>/_policies/<name>
// with a rule document (api.PolicyRule).
func (c *client) putPolicy(ctx context.Context, base, repo, name string, rule map[string]any) resp {
	b, _ := json.Marshal(rule)
	return c.do(ctx, base, http.MethodPut, "/berth/v1/repositories/"+repo+"/_policies/"+name,
		map[string]string{"Content-Type": "application/json"}, b)
}

// historyRow is one lifetime of a tag history document (api.TagLifetime).
type historyRow struct {
	Tag      string     `json:"tag"`
	Digest   string     `json:"digest"`
	Start    time.Time  `json:"start"`
	End      *time.Time `json:"end"`
	Live     bool       `json:"live"`
	EndCause string     `json:"end_cause"`
}

// parseHistory reads a tag history document's lifetimes.
func parseHistory(body []byte) ([]historyRow, error) {
	var h struct {
		Lifetimes []historyRow `json:"lifetimes"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("parsing tag history: %w", err)
	}
	return h.Lifetimes, nil
}
