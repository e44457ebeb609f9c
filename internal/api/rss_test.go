package api_test

// TestServeRSS measures the resident memory of a real "berth serve" process
// while a 1 GiB blob is pushed and pulled through it. It is a measurement,
// not a unit test: it runs only with BERTH_BENCH_RSS=1 (CI skips it).
//
//	BERTH_BENCH_RSS=1 go test -run TestServeRSS -v ./internal/api/
//
// BERTH_BENCH_RSS_MIB sets the blob size (default 1024); BERTH_BENCH_RSS_DB
// a postgres:// URL for the metadata (default SQLite in the data dir);
// BERTH_BENCH_RSS_S3=1 keeps the bytes in a fresh S3 bucket (s3test's
// versitygw) instead of the data dir, and BERTH_BENCH_RSS_S3=redirect also
// redirects the pull to a presigned URL (the pull then measures the client
// reading from S3, and berth's RSS only its redirect);
// BERTH_BIN a prebuilt berth binary (default: go build ./cmd/berth into a
// temp dir).
// The result is in bench/README.md.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth/berth/internal/blob/s3/s3test"
)

// rssSampler polls /proc/<pid>/status every interval and keeps the peak
// VmRSS seen since the last mark.
type rssSampler struct {
	pid  int
	mu   sync.Mutex
	peak int64 // KiB
	last int64 // KiB
	stop chan struct{}
	done chan struct{}
}

func procStatusKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func startSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if kib, err := procStatusKiB(pid, "VmRSS"); err == nil {
				s.mu.Lock()
				s.last = kib
				s.peak = max(s.peak, kib)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// mark returns the peak since the previous mark and the latest sample, and
// starts a new window.
func (s *rssSampler) mark() (peak, last int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	peak, last = s.peak, s.last
	s.peak = s.last
	return peak, last
}

func (s *rssSampler) close() { close(s.stop); <-s.done }

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func TestServeRSS(t *testing.T) {
	if os.Getenv("BERTH_BENCH_RSS") != "1" {
		t.Skip("set BERTH_BENCH_RSS=1 to measure the RSS of berth serve during a 1 GiB push and pull")
	}
	size := int64(1024) << 20
	if v := os.Getenv("BERTH_BENCH_RSS_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("BERTH_BENCH_RSS_MIB=%q: want a positive integer", v)
		}
		size = n << 20
	}
	dir := t.TempDir()
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "berth")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/berth/berth/cmd/berth").CombinedOutput()
		if err != nil {
			t.Fatalf("go build ./cmd/berth: %v\n%s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", filepath.Join(dir, "data"), "--log-level", "warn")
	backend := "SQLite"
	if db := os.Getenv("BERTH_BENCH_RSS_DB"); db != "" {
		cmd.Args = append(cmd.Args, "--db", db)
		backend = "PostgreSQL"
	}
	blobBackend := "blob/fs"
	switch mode := os.Getenv("BERTH_BENCH_RSS_S3"); mode {
	case "":
	case "1", "redirect":
		cfg := s3test.New(t)
		_, access, secret := s3test.Server(t)
		cmd.Args = append(cmd.Args, "--storage", "s3", "--s3-bucket", cfg.Bucket, "--s3-endpoint", cfg.Endpoint,
			"--s3-path-style", "--s3-access-key", access, "--s3-secret-key", secret)
		blobBackend = "blob/s3 on versitygw"
		if mode == "redirect" {
			cmd.Args = append(cmd.Args, "--s3-redirect")
			blobBackend += ", redirected pulls"
		}
	default:
		t.Fatalf("BERTH_BENCH_RSS_S3=%q: want 1 or redirect", mode)
	}
	cmd.Env = append(os.Environ(), "BERTH_DB=", "BERTH_CONFIG=")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth serve did not answer on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	pid := cmd.Process.Pid
	time.Sleep(time.Second) // let startup settle
	s := startSampler(pid, 100*time.Millisecond)
	defer s.close()
	time.Sleep(time.Second)
	type phase struct {
		name       string
		peak, last int64
		dur        time.Duration
	}
	var phases []phase
	record := func(name string, dur time.Duration) {
		peak, last := s.mark()
		phases = append(phases, phase{name, peak, last, dur})
	}
	record("idle after start", time.Second)

	ctx := context.Background()
	const repo = "rss/big"
	// Push: POST a session, PATCH the whole blob streamed from a generator
	// (never held in memory), PUT the digest.
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %v %v", err, resp)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	h := sha256.New()
	gen := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'}), size), h)
	start := time.Now()
	req, _ = http.NewRequestWithContext(ctx, "PATCH", base+loc, gen)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH %d bytes: %v %v", size, err, resp)
	}
	resp.Body.Close()
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	req, _ = http.NewRequestWithContext(ctx, "PUT", base+resp.Header.Get("Location")+"?digest="+d, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT digest: %v %v", err, resp)
	}
	resp.Body.Close()
	record("push", time.Since(start))
	time.Sleep(2 * time.Second)
	record("idle after push", 2*time.Second)

	// Pull, hashing what comes back.
	start = time.Now()
	resp, err = http.Get(base + "/v2/" + repo + "/blobs/" + d)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob: %v %v", err, resp)
	}
	h.Reset()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("GET blob: read %d bytes (%v), want %d", n, err, size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d {
		t.Fatalf("GET blob: got content %s, want %s", got, d)
	}
	record("pull", time.Since(start))
	time.Sleep(2 * time.Second)
	record("idle after pull", 2*time.Second)

	hwm, _ := procStatusKiB(pid, "VmHWM")
	var sb strings.Builder
	fmt.Fprintf(&sb, "berth serve (pid %d, %s + %s), blob of %d MiB, VmRSS sampled every 100 ms:\n", pid, backend, blobBackend, size>>20)
	fmt.Fprintf(&sb, "  %-18s %12s %12s %10s\n", "phase", "peak VmRSS", "end VmRSS", "duration")
	for _, p := range phases {
		fmt.Fprintf(&sb, "  %-18s %12s %12s %10s\n", p.name, mib(p.peak), mib(p.last), p.dur.Round(time.Millisecond))
	}
	fmt.Fprintf(&sb, "  process VmHWM (peak RSS over its life): %s\n", mib(hwm))
	t.Log("\n" + sb.String())

	// Flat: serving the blob must not grow the process by anything like
	// its size. 64 MiB over the idle peak is generous.
	idle := phases[0].peak
	for _, p := range phases[1:] {
		if p.peak-idle > 64<<10 {
			t.Errorf("%s: peak VmRSS %s is %s over idle (%s); want it flat (< 64 MiB over)", p.name, mib(p.peak), mib(p.peak-idle), mib(idle))
		}
	}
}
