package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client speaks the OCI distribution API over plain HTTP, the same way for
// every registry: HEAD a shared blob before uploading it (once per repo and
// client), POST + PUT monolithic uploads, PUT the manifest by tag.
type client struct {
	base  string // http://host:port
	hc    *http.Client
	known sync.Map // repo@digest -> struct{}: blobs known to be in repo
	// transient counts blob requests retried after a 5xx or a connection
	// error (distribution 2.8 occasionally answers a concurrent HEAD 500).
	transient atomic.Int64
}

// retry runs fn up to 3 times while it fails with a 5xx or a transport
// error, as registry clients do for blob requests.
func (c *client) retry(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; i < 3; i++ {
		err = fn()
		var he *httpError
		if err == nil || ctx.Err() != nil || (errors.As(err, &he) && he.status < 500) {
			return err
		}
		c.transient.Add(1)
		time.Sleep(time.Duration(50<<i) * time.Millisecond)
	}
	return err
}

func newClient(addr string) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &client{base: "http://" + addr, hc: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}
}

// forget drops the cache of known blobs (after a collection, which may
// have deleted some).
func (c *client) forget() { c.known.Clear() }

// errBlobUnknown is a manifest PUT answered MANIFEST_BLOB_UNKNOWN (or
// BLOB_UNKNOWN): the client re-uploads the blobs and retries.
var errBlobUnknown = errors.New("manifest blob unknown")

type httpError struct {
	op     string
	status int
	body   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.status, strings.TrimSpace(e.body))
}

func (c *client) do(ctx context.Context, method, u string, body []byte, hdr map[string]string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = int64(len(body))
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return c.hc.Do(req)
}

func drain(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return string(b)
}

// blobExists is HEAD /v2/<repo>/blobs/<digest>.
func (c *client) blobExists(ctx context.Context, repo, dg string) (bool, error) {
	resp, err := c.do(ctx, http.MethodHead, c.base+"/v2/"+repo+"/blobs/"+dg, nil, nil)
	if err != nil {
		return false, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, &httpError{"HEAD blob", resp.StatusCode, ""}
}

// uploadBlob is POST /blobs/uploads/ then PUT <location>?digest=.
func (c *client) uploadBlob(ctx context.Context, repo, dg string, data []byte) error {
	return c.uploadBlobFrom(ctx, repo, dg, int64(len(data)), func() io.Reader { return bytes.NewReader(data) })
}

func (c *client) uploadBlobFrom(ctx context.Context, repo, dg string, size int64, body func() io.Reader) error {
	resp, err := c.do(ctx, http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		return err
	}
	msg := drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return &httpError{"POST upload", resp.StatusCode, msg}
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("bad upload location: %w", err)
	}
	u, _ := url.Parse(c.base)
	u = u.ResolveReference(loc)
	q := u.Query()
	q.Set("digest", dg)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body())
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.hc.Do(req)
	if err != nil {
		return err
	}
	msg = drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return &httpError{"PUT upload", resp.StatusCode, msg}
	}
	return nil
}

// pushImage uploads the blobs the repo lacks and PUTs the manifest by tag.
// It returns the manifest PUT latency and how many times the PUT was
// retried after MANIFEST_BLOB_UNKNOWN.
func (c *client) pushImage(ctx context.Context, im *image, data map[string][]byte) (time.Duration, int, error) {
	retries := 0
	force := false
	for {
		for _, b := range im.blobs() {
			k := im.repo + "@" + b.digest
			if b.shared && !force {
				if _, ok := c.known.Load(k); ok {
					continue
				}
				var ok bool
				err := c.retry(ctx, func() (err error) {
					ok, err = c.blobExists(ctx, im.repo, b.digest)
					return err
				})
				if err != nil {
					return 0, retries, err
				}
				if ok {
					c.known.Store(k, struct{}{})
					continue
				}
			}
			if err := c.retry(ctx, func() error { return c.uploadBlob(ctx, im.repo, b.digest, data[b.digest]) }); err != nil {
				return 0, retries, err
			}
			if b.shared {
				c.known.Store(k, struct{}{})
			}
		}
		took, err := c.putManifest(ctx, im.repo, im.tag, im.manifest)
		if errors.Is(err, errBlobUnknown) && retries < 3 {
			retries++
			force = true
			continue
		}
		return took, retries, err
	}
}

func (c *client) putManifest(ctx context.Context, repo, ref string, m []byte) (time.Duration, error) {
	start := time.Now()
	resp, err := c.do(ctx, http.MethodPut, c.base+"/v2/"+repo+"/manifests/"+ref, m, map[string]string{"Content-Type": mtManifest})
	if err != nil {
		return 0, err
	}
	msg := drain(resp)
	took := time.Since(start)
	if resp.StatusCode == http.StatusCreated {
		return took, nil
	}
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(msg, "BLOB_UNKNOWN") {
		return took, fmt.Errorf("%w: %s", errBlobUnknown, msg)
	}
	return took, &httpError{"PUT manifest", resp.StatusCode, msg}
}

// deleteManifest is DELETE /v2/<repo>/manifests/<digest>.
func (c *client) deleteManifest(ctx context.Context, repo, dg string) error {
	resp, err := c.do(ctx, http.MethodDelete, c.base+"/v2/"+repo+"/manifests/"+dg, nil, nil)
	if err != nil {
		return err
	}
	msg := drain(resp)
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return &httpError{"DELETE manifest", resp.StatusCode, msg}
	}
	return nil
}

// manifestStatus is the status of GET /v2/<repo>/manifests/<ref>.
func (c *client) manifestStatus(ctx context.Context, repo, ref string) (int, error) {
	resp, err := c.do(ctx, http.MethodGet, c.base+"/v2/"+repo+"/manifests/"+ref, nil, map[string]string{"Accept": mtManifest})
	if err != nil {
		return 0, err
	}
	drain(resp)
	return resp.StatusCode, nil
}

// getVerified GETs url and checks the body against digest; returns bytes read.
func (c *client) getVerified(ctx context.Context, u, dg, accept string) ([]byte, error) {
	var hdr map[string]string
	if accept != "" {
		hdr = map[string]string{"Accept": accept}
	}
	resp, err := c.do(ctx, http.MethodGet, u, nil, hdr)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg := drain(resp)
		return nil, &httpError{"GET " + u, resp.StatusCode, msg}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if dg != "" && sha(b) != dg {
		return nil, fmt.Errorf("GET %s: digest mismatch", u)
	}
	return b, nil
}

// pullImage GETs the manifest by tag (checking it is the expected digest
// when want is set), then the config and every layer, verifying digests.
func (c *client) pullImage(ctx context.Context, repo, tag, want string) (int64, error) {
	mb, err := c.getVerified(ctx, c.base+"/v2/"+repo+"/manifests/"+tag, "", mtManifest)
	if err != nil {
		return 0, err
	}
	if want != "" && sha(mb) != want {
		return 0, fmt.Errorf("%s:%s: got manifest %s, want %s", repo, tag, sha(mb), want)
	}
	var m struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return 0, fmt.Errorf("%s:%s: %w", repo, tag, err)
	}
	n := int64(len(mb))
	ds := []string{m.Config.Digest}
	for _, l := range m.Layers {
		ds = append(ds, l.Digest)
	}
	for _, d := range ds {
		b, err := c.getVerified(ctx, c.base+"/v2/"+repo+"/blobs/"+d, d, "")
		if err != nil {
			return n, err
		}
		n += int64(len(b))
	}
	return n, nil
}

// getCount GETs u and counts the bytes, without keeping them.
func (c *client) getCount(ctx context.Context, u string) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, u, nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, &httpError{"GET " + u, resp.StatusCode, ""}
	}
	return io.Copy(io.Discard, resp.Body)
}

// up reports whether /v2/ answers.
func (c *client) up(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.do(ctx, http.MethodGet, c.base+"/v2/", nil, nil)
	if err != nil {
		return false
	}
	drain(resp)
	return true
}

// stream is a deterministic pseudo-random byte stream of a fixed size, for
// the big blob (never held in memory).
type stream struct {
	seed [32]byte
	size int64
}

func (s stream) reader() io.Reader {
	return io.LimitReader(rand.NewChaCha8(s.seed), s.size)
}

func (s stream) digest() string {
	h := sha256.New()
	_, _ = io.Copy(h, s.reader())
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
