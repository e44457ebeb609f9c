package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// maxInFlight bounds the open-loop probe's PUTs in flight: a PUT due while
// that many are unanswered is not sent and counts as a failure (the
// registry is not keeping up with the rate at all).
const maxInFlight = 64

var errTooManyInFlight = errors.New("not sent: too many PUTs in flight")

// runOpen PUTs count manifests (0: until stop) at p.rate per second on
// average, with exponentially distributed gaps (Poisson arrivals: many
// independent clients), each on a goroutine of its own. A PUT's latency
// runs from its own send, and a slow PUT delays no later one: where a
// closed-loop client sends less while the registry is slow and so samples
// slow moments less (coordinated omission), this one samples every moment
// alike. The gaps come from a generator seeded with the dataset's seed, so
// two runs send at the same offsets.
func (p *prober) runOpen(ctx context.Context, count int, stop <-chan struct{}) latStats {
	rng := rand.New(rand.NewPCG(p.d.seed, 0x9e3779b97f4a7c15))
	rec := newPutRecorder()
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxInFlight)
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for i := 0; count <= 0 || i < count; i++ {
		next = next.Add(time.Duration(rng.ExpFloat64() / p.rate * float64(time.Second)))
		timer.Reset(time.Until(next))
		select {
		case <-stop:
			break loop
		case <-ctx.Done():
			break loop
		case <-timer.C:
		}
		m := p.manifest()
		tag := fmt.Sprintf("p%06d", p.counter)
		select {
		case slots <- struct{}{}:
		default:
			rec.record(0, errTooManyInFlight)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			rec.record(p.cl.putManifest(ctx, "probe/p", tag, m))
		})
	}
	wg.Wait()
	return rec.stats(true)
}
