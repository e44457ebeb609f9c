package gc

// EventKind is eventKind for the external tests: the event a deletion of
// a review kind is emitted as.
var EventKind = eventKind
