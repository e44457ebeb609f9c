package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/berth/berth/internal/blob"
)

const (
	// DefaultPartSize is the multipart part size when Config.PartSize is 0.
	DefaultPartSize = 8 << 20
	// MinPartSize is S3's minimum size of every part but the last.
	MinPartSize = 5 << 20
	// MaxPartSize is S3's maximum part size.
	MaxPartSize = 5 << 30
	// DefaultRegion is the region when Config.Region is empty and the
	// SDK's chain (AWS_REGION, AWS_DEFAULT_REGION, the shared config file's
	// profile) names none.
	DefaultRegion = "us-east-1"

	// MaxParts is S3's limit on parts per multipart upload: an object is at
	// most MaxParts × the part size.
	MaxParts = 10_000

	maxDeleteBatch = 1000 // S3's limit on keys per DeleteObjects
)

// Config configures a Store.
type Config struct {
	// Bucket must exist; New checks it.
	Bucket string
	// Region; empty lets the SDK's chain decide (AWS_REGION, the shared
	// config file), and DefaultRegion when it names none.
	Region string
	// Endpoint is the S3 endpoint URL, e.g. http://127.0.0.1:9000; empty
	// means AWS's endpoint for Region.
	Endpoint string
	// PathStyle addresses the bucket as <endpoint>/<bucket> instead of
	// <bucket>.<endpoint> (most S3-compatible servers need it).
	PathStyle bool
	// Prefix is prepended to every object name: "" or a path that
	// blob.ValidPrefix accepts; a missing trailing "/" is added.
	Prefix string
	// AccessKey, SecretKey and SessionToken are static credentials. When
	// AccessKey is empty the SDK's default chain is used (environment
	// AWS_ACCESS_KEY_ID etc., shared config files, IMDS).
	AccessKey, SecretKey, SessionToken string
	// PartSize is the multipart part size: 0 means DefaultPartSize; it must
	// be at least MinPartSize. Each in-flight append buffers one part.
	PartSize int64
}

// validate reports every problem at once. It fills in no defaults: New
// does, in one place.
func (c *Config) validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket is empty"))
	}
	if err := blob.ValidPrefix(c.Prefix); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.PartSize == 0: // DefaultPartSize
	case c.PartSize < MinPartSize:
		errs = append(errs, fmt.Errorf("part size %d: below S3's minimum of %d (5 MiB)", c.PartSize, MinPartSize))
	case c.PartSize > MaxPartSize:
		errs = append(errs, fmt.Errorf("part size %d: above S3's maximum of %d (5 GiB)", c.PartSize, int64(MaxPartSize)))
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("access key and secret key: set both or neither"))
	}
	if c.SessionToken != "" && c.AccessKey == "" {
		errs = append(errs, errors.New("session token without an access key"))
	}
	return errors.Join(errs...)
}

// where names the bucket's location for error messages.
func (c *Config) where() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	if c.Region == "" {
		return "AWS (region from the SDK's chain)"
	}
	return "AWS region " + c.Region
}

var (
	_ blob.Store        = (*Store)(nil)
	_ blob.Redirector   = (*Store)(nil)
	_ blob.BatchDeleter = (*Store)(nil)
	_ blob.UploadKeyer  = (*Store)(nil)
	_ blob.Pinger       = (*Store)(nil)
)

// Store is a blob.Store on an S3 bucket. See the package documentation for
// the layout and the upload protocol.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
	prefix  string
	// partSize is the part size of uploads this Store starts; an upload
	// keeps the part size it started with (it is in its state).
	partSize int64

	locks blob.IDLocks
	bufs  sync.Pool // *[]byte of partSize bytes
	// noDeleteObjects: the server answered DeleteObjects with
	// NotImplemented; delete one object per request from then on.
	noDeleteObjects atomic.Bool
}

// New returns a Store on cfg.Bucket. It checks the bucket with HeadBucket,
// so a wrong name, endpoint or credentials fail here with a clear message.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("s3: config: %w", err)
	}
	// The zero values' defaults, all here. A region given in the options
	// would override the SDK's chain, so it is given only when configured;
	// DefaultRegion is the SDK's last resort.
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	opts := []func(*config.LoadOptions) error{
		config.WithDefaultRegion(DefaultRegion),
		// Since 2025 the SDK adds CRC checksums to every request and
		// validates them on responses; S3-compatible servers may reject
		// or omit them. Send and check them only where S3 requires it.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Retryables = append(o.Retryables, retry.IsErrorRetryableFunc(directoryRace))
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: bucket %q at %s: loading AWS config: %w", cfg.Bucket, cfg.where(), err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	cfg.Region = awsCfg.Region // for where()
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return nil, fmt.Errorf("s3: bucket %q at %s: %s: %w", cfg.Bucket, cfg.where(), bucketProblem(err), err)
	}
	s := &Store{
		client:   client,
		presign:  s3.NewPresignClient(client),
		bucket:   cfg.Bucket,
		prefix:   cfg.Prefix,
		partSize: cfg.PartSize,
	}
	s.bufs.New = func() any { b := make([]byte, s.partSize); return &b }
	return s, nil
}

// Ping checks the bucket with HeadBucket, as New does.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("s3: bucket %q: %s: %w", s.bucket, bucketProblem(err), unavailable(err))
	}
	return nil
}

// directoryRace marks as retryable the error a POSIX-backed S3 gateway
// (versitygw's posix backend) returns when a write races a delete that
// pruned the write's now-empty parent directory: it reports every failure to
// create the parent or link the file as 409 ExistingObjectIsDirectory. No
// berth key is a prefix of another, so on this store the code can only mean
// that race, and the write succeeds when tried again. Real S3 never sends it.
func directoryRace(err error) aws.Ternary {
	if errorCode(err) == "ExistingObjectIsDirectory" {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}

// unavailable marks err with blob.ErrUnavailable when S3 could not serve
// the request now but might soon: no answer (connection refused or reset,
// a timeout), a 5xx, or 429/503 throttling. The API answers those 503, and
// clients retry; anything else (a 4xx, a digest mismatch) passes unchanged.
func unavailable(err error) error {
	if err == nil || errors.Is(err, blob.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	var send *smithyhttp.RequestSendError
	if st := httpStatus(err); st >= 500 || st == http.StatusTooManyRequests || errors.As(err, &send) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", blob.ErrUnavailable, err)
	}
	return err
}

// bucketProblem says in words what a failed HeadBucket means.
func bucketProblem(err error) string {
	switch code := errorCode(err); {
	case code == "NotFound" || code == "NoSuchBucket" || httpStatus(err) == 404:
		return "no such bucket"
	case code == "Forbidden" || code == "AccessDenied" || httpStatus(err) == 403:
		return "access denied (check the credentials and the bucket policy)"
	case code == "PermanentRedirect" || httpStatus(err) == 301:
		return "the bucket is in another region"
	case httpStatus(err) == 0 && strings.Contains(err.Error(), "credentials"):
		return "no credentials (set an access and secret key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a shared profile or instance role)"
	case httpStatus(err) == 0:
		return "cannot reach the endpoint"
	default:
		return "checking the bucket"
	}
}

// errorCode is the S3 error code of err ("NoSuchKey", ...), or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus is the HTTP status of a failed S3 call, or 0 when there was no
// response.
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// isNotFound reports whether err says the object does not exist. HeadObject
// has no body, so its 404 arrives as "NotFound".
func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	return false
}

func isNoSuchUpload(err error) bool { return errorCode(err) == "NoSuchUpload" }

// Object names under the prefix P (see the package documentation).

func (s *Store) blobName(key string) string { return s.prefix + "blobs/" + key }

// KeyUpload implements blob.UploadKeyer: a key is "<upload id>/<32 hex>".
func (s *Store) KeyUpload(key string) (string, bool) {
	id, suffix, ok := strings.Cut(key, "/")
	if !ok || blob.ValidUploadID(id) != nil || len(suffix) != 32 || strings.Trim(suffix, "0123456789abcdef") != "" {
		return "", false
	}
	return id, true
}
func (s *Store) blobsPrefix() string           { return s.prefix + "blobs/" }
func (s *Store) uploadsPrefix() string         { return s.prefix + "uploads/" }
func (s *Store) uploadPrefix(id string) string { return s.prefix + "uploads/" + id + "/" }
func (s *Store) stateName(id string) string    { return s.uploadPrefix(id) + "state" }

// randomHex returns 32 random lowercase hex digits.
func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}
