package torture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berth/berth/internal/gc/gcoracle"
)

// The credentials and region of the run's versitygw.
const (
	s3AccessKey = "berth"
	s3SecretKey = "berthsecret"
	s3Region    = "us-east-1"
	// s3Prefix is the prefix berth writes under: the final inspection also
	// checks that nothing is written outside it.
	s3Prefix = "torture/"
	// s3PartSize is berth's multipart part size in the run: S3's minimum,
	// so that a few MiB make a multipart upload.
	s3PartSize = 5 << 20
)

// s3Server is the object store of a run with -blob s3: a versitygw process
// on loopback serving a directory of the work directory, and the bucket the
// berth replicas share. It is never killed during the run: the torture is
// about berth's crashes, not the storage's.
type s3Server struct {
	bin      string
	root     string // the posix backend's directory
	logPath  string
	addr     string // host:port, kept across restarts
	endpoint string
	bucket   string
	cmd      *exec.Cmd
	done     chan struct{}
	client   *awss3.Client
}

// findVersitygw locates the versitygw binary: the -versitygw flag,
// $BERTH_VERSITYGW, PATH, then $(go env GOPATH)/bin.
func findVersitygw(flagValue string) (string, error) {
	for _, p := range []string{flagValue, os.Getenv("BERTH_VERSITYGW")} {
		if p != "" {
			return filepath.Abs(p)
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "versitygw")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p, nil
			}
		}
	}
	return "", errors.New("versitygw not found (give -versitygw, set BERTH_VERSITYGW, or put it on PATH or in $(go env GOPATH)/bin)")
}

// startS3 starts versitygw on a free loopback port over <dir>/s3 and
// creates the run's bucket.
func startS3(ctx context.Context, cfg Config, dir string) (*s3Server, error) {
	bin, err := findVersitygw(cfg.VersityGW)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "s3")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	s := &s3Server{bin: bin, root: root, logPath: filepath.Join(dir, "versitygw.log"),
		bucket: fmt.Sprintf("torture-%d-%06x", cfg.Seed, rand.Uint32()&0xffffff)}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if lastErr = s.launch(ctx, fmt.Sprintf("127.0.0.1:%d", port)); lastErr == nil {
			break
		}
	}
	if s.cmd == nil {
		return nil, fmt.Errorf("versitygw did not start: %w (see %s)", lastErr, s.logPath)
	}
	s.client = awss3.New(awss3.Options{
		Region:       s3Region,
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3AccessKey, s3SecretKey, ""),
		HTTPClient:   &http.Client{Timeout: time.Minute},
	})
	if _, err := s.client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		s.stop()
		return nil, fmt.Errorf("creating bucket %s: %w", s.bucket, err)
	}
	return s, nil
}

// env is what every berth process of the run needs to use the bucket.
func (s *s3Server) env() []string {
	return []string{
		"BERTH_STORAGE=s3",
		"BERTH_S3_BUCKET=" + s.bucket,
		"BERTH_S3_ENDPOINT=" + s.endpoint,
		"BERTH_S3_PATH_STYLE=true",
		"BERTH_S3_REGION=" + s3Region,
		"BERTH_S3_ACCESS_KEY=" + s3AccessKey,
		"BERTH_S3_SECRET_KEY=" + s3SecretKey,
		"BERTH_S3_PREFIX=" + s3Prefix,
		fmt.Sprintf("BERTH_S3_PART_SIZE=%d", s3PartSize),
	}
}

// launch starts versitygw on addr over s.root and waits until it answers.
func (s *s3Server) launch(ctx context.Context, addr string) error {
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(s.bin, "--port", addr, "posix", s.root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s3AccessKey, "ROOT_SECRET_KEY="+s3SecretKey)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting versitygw: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	// Any HTTP answer (403 without credentials) means it listens.
	if err := waitHTTP(ctx, "http://"+addr+"/", done, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return err
	}
	s.cmd, s.done, s.addr, s.endpoint = cmd, done, addr, "http://"+addr
	return nil
}

// outage SIGKILLs versitygw, keeps it down for down, and starts it again on
// the same address and directory (retrying while the port is not yet free).
func (s *s3Server) outage(ctx context.Context, down time.Duration) error {
	_ = s.cmd.Process.Kill()
	<-s.done
	time.Sleep(down)
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = s.launch(ctx, s.addr); err == nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("restarting versitygw on %s: %w", s.addr, err)
}

func (s *s3Server) stop() {
	if s == nil || s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// s3Object is one object of the bucket as S3 lists it.
type s3Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// s3Upload is one multipart upload in progress.
type s3Upload struct {
	Key, UploadID string
	Initiated     time.Time
}

// objects lists every object of the bucket, page by page.
func (s *s3Server) objects(ctx context.Context) ([]s3Object, error) {
	var out []s3Object
	p := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{Bucket: aws.String(s.bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("listing objects: %w", err)
		}
		for _, o := range page.Contents {
			out = append(out, s3Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// uploads lists every multipart upload in progress in the bucket.
func (s *s3Server) uploads(ctx context.Context) ([]s3Upload, error) {
	var out []s3Upload
	in := &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket)}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return out, fmt.Errorf("listing multipart uploads: %w", err)
		}
		for _, u := range page.Uploads {
			out = append(out, s3Upload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// open streams an object.
func (s *s3Server) open(ctx context.Context, key string) (io.ReadCloser, error) {
	res, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	return res.Body, nil
}

// s3Bytes lists the bucket itself, not through berth's store, for the
// oracle, mapping it onto blob/s3's layout (P = the prefix): P/blobs/<key>
// are committed bytes, P/uploads/<id>/… an upload's state and buffered
// tail, and a multipart upload of P/blobs/<id>/<32 hex> belongs to upload
// id; anything else is outside the layout.
func (rn *runner) s3Bytes(ctx context.Context, lv *liveness) (gcoracle.Bytes, error) {
	s := rn.cl.s3
	var b gcoracle.Bytes
	objs, err := s.objects(ctx)
	if err != nil {
		return b, err
	}
	blobs, uploads := s3Prefix+"blobs/", s3Prefix+"uploads/"
	for _, o := range objs {
		lv.Rows["object"]++
		if o.Size > s3PartSize {
			// Larger than a part: committed by CompleteMultipartUpload.
			lv.Rows["object-multipart"]++
		}
		obj := gcoracle.Object{Name: o.Key, Size: o.Size, ModTime: o.ModTime}
		switch {
		case strings.HasPrefix(o.Key, blobs):
			obj.Key = strings.TrimPrefix(o.Key, blobs)
			b.Blobs = append(b.Blobs, obj)
		case strings.HasPrefix(o.Key, uploads):
			obj.Key, _, _ = strings.Cut(strings.TrimPrefix(o.Key, uploads), "/")
			b.Staging = append(b.Staging, obj)
		default:
			obj.Name = fmt.Sprintf("%s (berth writes under %sblobs/ and %suploads/)", o.Key, s3Prefix, s3Prefix)
			b.Foreign = append(b.Foreign, obj)
		}
	}
	mps, err := s.uploads(ctx)
	if err != nil {
		return b, err
	}
	for _, u := range mps {
		lv.Rows["multipart"]++
		if o, ok := multipartObject(u); ok {
			b.Multipart = append(b.Multipart, o)
		} else {
			b.Foreign = append(b.Foreign, o)
		}
	}
	b.Open = func(ctx context.Context, key string) (io.ReadCloser, error) { return s.open(ctx, blobs+key) }
	return b, nil
}

// multipartObject maps one multipart upload in progress for the oracle.
// blob/s3 writes an upload's parts to its final name, P/blobs/<upload
// id>/<32 hex>, so the key names the session that owns it: the upload is
// excused only while that session is open, or while it is younger than
// the final sweep's cutoff; any other session being open says nothing
// about it. ok is false when the key is outside that layout.
func multipartObject(u s3Upload) (o gcoracle.Object, ok bool) {
	rest, ok := strings.CutPrefix(u.Key, s3Prefix+"blobs/")
	id, _, _ := strings.Cut(rest, "/")
	o = gcoracle.Object{Key: id, Name: fmt.Sprintf("%s of %s (initiated %s)", u.UploadID, u.Key, u.Initiated.Format(time.RFC3339Nano)), ModTime: u.Initiated}
	if !ok || id == "" {
		o.Name += fmt.Sprintf(", outside berth's layout (want %sblobs/<upload id>/<key>)", s3Prefix)
		return o, false
	}
	return o, true
}
