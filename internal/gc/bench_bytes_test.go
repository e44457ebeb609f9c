package gc_test

// Collection throughput by byte store (bench/GC.md "Bytes on S3"): the same
// garbage collected with its bytes on the filesystem, on S3 with batch
// deletes (DeleteObjects), and on S3 one DeleteObject per key.

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berth/berth/internal/blob"
	blobfs "github.com/berth/berth/internal/blob/fs"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/meta/sqlstore/sqltest"
	"github.com/berth/berth/internal/review"
	"github.com/berth/berth/internal/testenv/registryenv"
)

// timedBlobs measures the time the collector spends deleting bytes, and
// how many requests it makes for it. It is not a blob.BatchDeleter: the
// collector deletes through it one key at a time.
type timedBlobs struct {
	blob.Store
	spent    atomic.Int64 // nanoseconds inside deletes
	requests atomic.Int64
}

func (t *timedBlobs) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := t.Store.Delete(ctx, key)
	t.spent.Add(int64(time.Since(start)))
	t.requests.Add(1)
	return err
}

// timedBatchBlobs is timedBlobs that passes batch deletes through.
type timedBatchBlobs struct{ timedBlobs }

func (t *timedBatchBlobs) DeleteBatch(ctx context.Context, keys []string) []error {
	start := time.Now()
	errs := blob.DeleteMany(ctx, t.Store, keys)
	t.spent.Add(int64(time.Since(start)))
	t.requests.Add(int64((len(keys) + 999) / 1000))
	return errs
}

// s3Put writes objects straight into the S3 store's layout
// (<prefix>blobs/<key>), with a few PUTs in flight; wait returns when all
// are written.
func s3Put(tb testing.TB, bucket *registryenv.Bucket) (put putFunc, wait func()) {
	type job struct {
		key string
		b   []byte
	}
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				_, err := bucket.Client.PutObject(context.Background(), &awss3.PutObjectInput{
					Bucket: aws.String(bucket.Config.Bucket), Key: aws.String(bucket.Config.Prefix + "blobs/" + j.key),
					Body: bytes.NewReader(j.b), ContentLength: aws.Int64(int64(len(j.b)))})
				if err != nil {
					failed.CompareAndSwap(nil, err)
				}
			}
		})
	}
	return func(key string, b []byte) { jobs <- job{key, b} }, func() {
		close(jobs)
		wg.Wait()
		if err, _ := failed.Load().(error); err != nil {
			tb.Fatalf("writing bytes to S3: %v", err)
		}
	}
}

// BenchmarkGCBytes collects the same amount of garbage (BERTH_GCBENCH_BYTES_N
// images, default 2000: ~5000 blobs) with metadata on PostgreSQL and bytes
// on the filesystem, on S3 with batch deletes, and on S3 one key per
// request. Each iteration builds the three (untimed) and collects them back
// to back in a rotating order, so a shared machine's load hits all alike.
// Per store it reports blobs/s of the whole collection (rows and bytes),
// delete-blobs/s (blobs per second spent inside the byte deletes alone) and
// delete requests per collection. Run with -benchtime=1x or 3x.
func BenchmarkGCBytes(b *testing.B) {
	n := envInt(b, "BERTH_GCBENCH_BYTES_N", 2000)
	type variant struct {
		name  string
		blobs func(b *testing.B) (blob.Store, putFunc, func())
		batch bool
	}
	variants := []variant{
		{name: "fs", blobs: func(b *testing.B) (blob.Store, putFunc, func()) {
			root := filepath.Join(b.TempDir(), "storage")
			put := fsPut(b, root)
			fs, err := blobfs.New(root)
			if err != nil {
				b.Fatal(err)
			}
			return fs, put, func() {}
		}},
		{name: "s3-batch", batch: true, blobs: func(b *testing.B) (blob.Store, putFunc, func()) {
			st, bucket := s3Blobs(b)
			put, wait := s3Put(b, bucket)
			return st, put, wait
		}},
		{name: "s3-single", blobs: func(b *testing.B) (blob.Store, putFunc, func()) {
			st, bucket := s3Blobs(b)
			put, wait := s3Put(b, bucket)
			return st, put, wait
		}},
	}
	type totals struct {
		collect, deletes time.Duration
		blobs            int
		requests         int64
	}
	sums := make([]totals, len(variants))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		type prepared struct {
			c    *gc.Collector
			tb   *timedBlobs
			want genResult
			t0   time.Time
		}
		ps := make([]prepared, len(variants))
		for k, v := range variants {
			store := sqltest.Open(b, sqltest.PostgresDSN(b))
			raw, put, wait := v.blobs(b)
			t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
			want := generate(b, store, put, genSpec{Repos: 100, Garbage: n, Seed: uint64(i + 1)}, t0)
			wait()
			var bs blob.Store
			var tb *timedBlobs
			if v.batch {
				tbb := &timedBatchBlobs{timedBlobs{Store: raw}}
				bs, tb = tbb, &tbb.timedBlobs
			} else {
				tb = &timedBlobs{Store: raw}
				bs = tb
			}
			ps[k] = prepared{c: gc.New(store, bs, benchOptions(t0)), tb: tb, want: want, t0: t0}
		}
		b.StartTimer()
		for j := range variants {
			k := (i + j) % len(variants)
			p := ps[k]
			start := time.Now()
			s, err := p.c.RunOnce(context.Background(), gc.RunOptions{})
			el := time.Since(start)
			if err != nil {
				b.Fatalf("%s: RunOnce: %v", variants[k].name, err)
			}
			if s.Deleted[review.KindBlob] != p.want.Blobs || s.Errors != 0 {
				b.Fatalf("%s: deleted %v (errors %d), want %d blobs", variants[k].name, s.Deleted, s.Errors, p.want.Blobs)
			}
			sums[k].collect += el
			sums[k].deletes += time.Duration(p.tb.spent.Load())
			sums[k].blobs += p.want.Blobs
			sums[k].requests += p.tb.requests.Load()
			b.Logf("%s iteration %d: %d blobs collected in %v, %v of it deleting bytes in %d requests", variants[k].name, i, p.want.Blobs,
				el.Round(time.Millisecond), time.Duration(p.tb.spent.Load()).Round(time.Millisecond), p.tb.requests.Load())
		}
		b.StopTimer()
	}
	for k, v := range variants {
		t := sums[k]
		b.ReportMetric(float64(t.blobs)/t.collect.Seconds(), v.name+"-blobs/s")
		b.ReportMetric(float64(t.blobs)/t.deletes.Seconds(), v.name+"-delete-blobs/s")
		b.ReportMetric(float64(t.requests)/float64(b.N), v.name+"-requests/op")
	}
}
