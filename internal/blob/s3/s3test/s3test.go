// Package s3test gives tests a real S3 server: a fresh, empty bucket per
// call of New.
//
// With BERTH_TEST_S3_ENDPOINT set, it uses that server (credentials from
// BERTH_TEST_S3_ACCESS_KEY and BERTH_TEST_S3_SECRET_KEY). Otherwise it
// starts one versitygw per test process — the binary named by
// $BERTH_VERSITYGW, else versitygw on PATH, else $(go env GOPATH)/bin — on a
// free loopback port, serving a temporary directory; it dies with the test
// binary. Without a server the test is skipped, or fails when CI=true.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/berth/berth/internal/blob/s3"
)

// Credentials of the versitygw this package starts.
const (
	rootAccessKey = "berth"
	rootSecretKey = "berthsecret"
)

var (
	once      sync.Once
	serverURL string
	serverErr error
)

// Server returns the endpoint and credentials of the test S3 server,
// starting it on first use, for tests that run berth as a process.
func Server(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	if ep := os.Getenv("BERTH_TEST_S3_ENDPOINT"); ep != "" {
		return ep, os.Getenv("BERTH_TEST_S3_ACCESS_KEY"), os.Getenv("BERTH_TEST_S3_SECRET_KEY")
	}
	once.Do(start)
	if serverErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("s3test: no S3 server: %v", serverErr)
		}
		t.Skipf("s3test: no S3 server (set BERTH_TEST_S3_ENDPOINT or install versitygw): %v", serverErr)
	}
	return serverURL, rootAccessKey, rootSecretKey
}

// New creates a fresh, empty bucket on the test server and returns the
// Config of a Store on it (path-style, static credentials, default part
// size). The bucket and everything in it are removed when t ends.
func New(t testing.TB) s3.Config {
	t.Helper()
	ep, ak, sk := Server(t)
	cfg := s3.Config{
		Bucket:    "berth-test-" + randomHex(8),
		Region:    s3.DefaultRegion,
		Endpoint:  ep,
		PathStyle: true,
		AccessKey: ak,
		SecretKey: sk,
	}
	client := Client(cfg)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		t.Fatalf("s3test: creating bucket %s at %s: %v", cfg.Bucket, ep, err)
	}
	t.Cleanup(func() { removeBucket(client, cfg.Bucket) })
	return cfg
}

// Client returns a plain SDK client for cfg, for tests that look at the
// bucket behind a Store's back.
func Client(cfg s3.Config) *awss3.Client {
	region := cfg.Region
	if region == "" {
		region = s3.DefaultRegion
	}
	return awss3.New(awss3.Options{
		Region:                     region,
		BaseEndpoint:               aws.String(cfg.Endpoint),
		UsePathStyle:               cfg.PathStyle,
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// removeBucket empties and deletes bucket, best effort.
func removeBucket(client *awss3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := aws.String(bucket)
	uploads, err := client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: b})
	if err == nil {
		for _, u := range uploads.Uploads {
			_, _ = client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: b, Key: u.Key, UploadId: u.UploadId})
		}
	}
	pages := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: b})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			break
		}
		if len(page.Contents) == 0 {
			continue
		}
		objs := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			objs[i] = types.ObjectIdentifier{Key: o.Key}
		}
		_, _ = client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
	}
	_, _ = client.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: b})
}

// start runs versitygw, retrying if another process takes the port first.
func start() {
	bin, err := versitygw()
	if err != nil {
		serverErr = err
		return
	}
	for range 3 {
		serverURL, serverErr = run(bin)
		if serverErr == nil {
			return
		}
	}
}

func versitygw() (string, error) {
	if p := os.Getenv("BERTH_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := build.Default.GOPATH
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		gopath = strings.Split(string(bytes.TrimSpace(out)), string(os.PathListSeparator))[0]
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw not in $BERTH_VERSITYGW, on PATH or at %s", p)
	}
	return p, nil
}

// dirPrefix starts the name of a server's root directory, followed by the
// pid of the test process that owns it.
const dirPrefix = "berth-versitygw-"

// removeStale removes the root directories of test processes that are gone
// (killed before their buckets' cleanup ran; the server died with them).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(d), dirPrefix), "-", 2)[0])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}

// run starts bin on a free loopback port and waits until it answers.
func run(bin string) (string, error) {
	removeStale()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()

	out := &lockedWriter{}
	cmd := exec.Command(bin, "--port", addr, "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+rootAccessKey, "ROOT_SECRET_KEY="+rootSecretKey)
	cmd.Stdout, cmd.Stderr = out, out
	// Kill the server when the test binary dies. Pdeathsig fires when the
	// thread that started the child exits, so start it from a goroutine
	// that keeps its thread locked for the child's whole life.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the child
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		os.RemoveAll(dir)
		close(exited)
	}()
	if err := <-started; err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("starting %s: %w", bin, err)
	}
	url := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return "", fmt.Errorf("%s exited: %s", bin, strings.TrimSpace(out.String()))
		default:
		}
		resp, err := http.Get(url + "/")
		if err == nil {
			resp.Body.Close()
			return url, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return "", errors.New(bin + " did not answer within 10s")
}

// lockedWriter keeps the first 64 KiB of the server's output, where
// startup errors are.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 64<<10 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
