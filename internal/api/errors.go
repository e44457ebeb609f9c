package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/berth/berth/internal/auth"
	"github.com/berth/berth/internal/gc"
	"github.com/berth/berth/internal/oci"
	"github.com/berth/berth/internal/policy"
	"github.com/berth/berth/internal/registry"
)

// API-level errors, beside those of the registry.
var (
	errRouteUnknown     = errors.New("no such endpoint")
	errMethodNotAllowed = errors.New("method not allowed on this endpoint")
	errPagination       = errors.New("invalid pagination number")
)

// errorTable maps errors to OCI error codes, first match wins: specific
// sentinels come before those they also wrap (an unsupported digest
// algorithm wraps both ErrUnsupported and ErrDigestInvalid and is answered
// DIGEST_INVALID; an unsupported manifest media type wraps ErrUnsupported
// and ErrManifestInvalid and is answered MANIFEST_INVALID, as distribution
// does). Anything else is 500 UNKNOWN.
var errorTable = []struct {
	err     error
	code    string
	status  int
	message string
}{
	// The management API's own codes (/berth/v1).
	{gc.ErrPurgeIncomplete, "PURGE_INCOMPLETE", http.StatusConflict, "purge incomplete; it is resumable: send the request again"},
	{errNoCollector, "UNSUPPORTED", http.StatusNotImplemented, "this server runs no garbage collector"},
	{errNoAccounts, "UNSUPPORTED", http.StatusNotImplemented, "this server has no accounts"},

	// Access control (auth.go, token.go).
	{errUnauthorized, "UNAUTHORIZED", http.StatusUnauthorized, "authentication required"},
	{auth.ErrDenied, "DENIED", http.StatusForbidden, "requested access to the resource is denied"},
	{auth.ErrThrottled, "TOOMANYREQUESTS", http.StatusTooManyRequests, "too many failed logins; retry later"},
	{errGrantUnsupported, "UNSUPPORTED", http.StatusBadRequest, "unsupported grant type"},
	{auth.ErrAccountUnknown, "ACCOUNT_UNKNOWN", http.StatusNotFound, "account unknown"},
	{auth.ErrAccountExists, "ACCOUNT_EXISTS", http.StatusConflict, "account already exists"},
	{auth.ErrGrantUnknown, "GRANT_UNKNOWN", http.StatusNotFound, "grant unknown"},
	{registry.ErrPolicyUnknown, "POLICY_UNKNOWN", http.StatusNotFound, "policy unknown"},
	{registry.ErrQuotaUnknown, "QUOTA_UNKNOWN", http.StatusNotFound, "quota unknown"},
	{registry.ErrScopeTooLarge, "SCOPE_TOO_LARGE", http.StatusUnprocessableEntity, "too many manifests to classify in one read; split a smaller scope"},
	{auth.ErrNamespaceUnknown, "NAME_UNKNOWN", http.StatusNotFound, "namespace not known to registry"},
	{auth.ErrInvalid, "INVALID_ARGUMENT", http.StatusBadRequest, "invalid argument"},

	{registry.ErrNameInvalid, "NAME_INVALID", http.StatusBadRequest, "invalid repository name"},
	{registry.ErrNamespaceUnknown, "NAME_UNKNOWN", http.StatusNotFound, "namespace not known to registry"},
	{registry.ErrNameUnknown, "NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry"},
	// A mismatch also wraps ErrDigestInvalid. A malformed digest
	// (*oci.DigestError) is answered with its own text as the message.
	{registry.ErrDigestMismatch, "DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content"},
	{registry.ErrDigestInvalid, "DIGEST_INVALID", http.StatusBadRequest, "invalid digest"},
	{registry.ErrManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", http.StatusNotFound, "manifest references a manifest or blob unknown to registry"},
	{registry.ErrManifestInvalid, "MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid"},
	{registry.ErrTagInvalid, "MANIFEST_INVALID", http.StatusBadRequest, "invalid tag"},
	{registry.ErrManifestUnknown, "MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry"},
	{registry.ErrTagUnknown, "MANIFEST_UNKNOWN", http.StatusNotFound, "tag unknown to registry"},
	{registry.ErrBlobUnknown, "BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry"},
	{registry.ErrUploadUnknown, "BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry"},
	// Before ErrUploadInvalid and context.Canceled, which a cut body
	// also gives. BLOB_UPLOAD_INVALID: the spec has no timeout code, and
	// uploads are what stalls.
	{errBodyIdle, "BLOB_UPLOAD_INVALID", http.StatusRequestTimeout, "request body made no progress; an upload keeps what it held before this request"},
	{registry.ErrRangeInvalid, "BLOB_UPLOAD_INVALID", http.StatusRequestedRangeNotSatisfiable, "chunk out of order"},
	{registry.ErrUploadInvalid, "BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid"},
	{registry.ErrTooLarge, "SIZE_INVALID", http.StatusRequestEntityTooLarge, "content too large"},
	{registry.ErrTooManyUploads, "TOOMANYREQUESTS", http.StatusTooManyRequests, "too many open upload sessions; retry later"},
	{registry.ErrSizeInvalid, "SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length"},
	// Answered with the refusal's own text (*policy.ImmutableError), which
	// names the tag and the rule: a purge the gc refuses wraps it too.
	{registry.ErrImmutable, "DENIED", http.StatusForbidden, "tag is immutable"},
	{registry.ErrDenied, "DENIED", http.StatusForbidden, "requested access to the resource is denied"},
	{registry.ErrInvalidArgument, "INVALID_ARGUMENT", http.StatusBadRequest, "invalid argument"},
	{registry.ErrUnsupported, "UNSUPPORTED", http.StatusBadRequest, "the operation is unsupported"},
	{errPagination, "PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested"},
	{errMethodNotAllowed, "UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported"},
	{errRouteUnknown, "NOT_FOUND", http.StatusNotFound, "no such endpoint"},
	{registry.ErrUnavailable, "UNAVAILABLE", http.StatusServiceUnavailable, "storage temporarily unavailable; retry"},
	{context.Canceled, "UNKNOWN", 499, "request cancelled"},
}

// retryAfterTooMany is the Retry-After, in seconds, of a 429: open upload
// sessions close when their pushes finish, typically within a minute
// (docs/design/limits.md).
const retryAfterTooMany = 60

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// classify returns the table row of err: code, status and message.
func classify(err error) (code string, status int, message string) {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.code, e.status, e.message
		}
	}
	return "UNKNOWN", http.StatusInternalServerError, "internal server error"
}

// writeError writes err as the OCI error envelope. message is the code's
// generic text, or for a malformed digest what is wrong with it, or for a
// write an immutable rule refused the refusal, naming tag and rule; detail is
// the precise error, except for internal errors, whose text goes to the
// request log only. A chunk out of order also says,
// in a Range header, where the upload ends.
func writeError(w http.ResponseWriter, r *http.Request, err error) int {
	code, status, message := classify(err)
	entry := errorEntry{Code: code, Message: message}
	// Internal failures keep their details (endpoints, keys) in the log.
	if status != http.StatusInternalServerError && status != http.StatusServiceUnavailable {
		entry.Detail = err.Error()
	}
	switch status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case http.StatusTooManyRequests:
		retry := retryAfterTooMany
		var te *auth.ThrottledError
		if errors.As(err, &te) {
			retry = int((te.RetryAfter + time.Second - 1) / time.Second)
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	var de *oci.DigestError
	if code == "DIGEST_INVALID" && errors.As(err, &de) {
		entry.Message = de.Error()
	}
	var ie *policy.ImmutableError
	if errors.As(err, &ie) {
		entry.Message = ie.Error()
	}
	var qe *registry.QuotaError
	if errors.As(err, &qe) {
		entry.Message = qe.Error()
	}
	var mbu *registry.ManifestBlobUnknownError
	if errors.As(err, &mbu) {
		entry.Detail = map[string]string{"digest": mbu.Digest.String(), "reason": err.Error()}
	}
	var rng *registry.RangeError
	if errors.As(err, &rng) {
		setRange(w, rng.Size)
		w.Header().Set("Location", uploadLocation(routeOf(r).Repo, routeOf(r).UploadID))
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{entry}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return status
}
