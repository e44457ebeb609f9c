package gc

// Emit publishes an event that happened outside the collector — a push or a
// tag deletion through the registry — to the collector's hooks and
// webhooks, so that every event reaches the same targets through one queue,
// one retry policy and one set of metrics. It never blocks (a full webhook
// queue drops the event and counts it). Emit must not be called after
// Close.
func (c *Collector) Emit(e Event) { c.hooks.emit(e) }
