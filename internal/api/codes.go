package api

// ErrorCode is the code the API answers err with (errorTable), for the
// command line's JSON errors: the same failure carries the same code on
// both. ok is false for an error the table does not know (the API's
// UNKNOWN).
func ErrorCode(err error) (code string, ok bool) {
	code, _, _ = classify(err)
	return code, code != "UNKNOWN"
}
