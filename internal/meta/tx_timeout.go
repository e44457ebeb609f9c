package meta

import (
	"context"
	"time"
)

type txTimeoutKey struct{}

// WithTxTimeout returns ctx carrying d: the time bound of the transactions
// Update and View run under ctx, instead of the store's own (10s by
// default). It is for the rare transaction that must do more than the bound
// allows and cannot be cut into batches; every transaction stays bounded,
// and a caller's earlier deadline still wins.
func WithTxTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, txTimeoutKey{}, d)
}

// TxTimeoutFrom is the bound ctx carries, if any.
func TxTimeoutFrom(ctx context.Context) (time.Duration, bool) {
	d, ok := ctx.Value(txTimeoutKey{}).(time.Duration)
	return d, ok && d > 0
}
