package gc

// EventKind is eventKind for the external tests: the event a deletion of
// a review kind is emitted as.
var EventKind = eventKind

// SetDeleteBatch makes the collectors of o delete bytes n keys at a time.
func SetDeleteBatch(o *Options, n int) { o.deleteBatch = n }

// SplitStages makes every transaction of o's collectors decide one stage
// and record what it frees as reviews, as they do under pushes.
func SplitStages(o *Options) { o.splitAlways = true }
