// Package s3 is the blob.Store backend on S3-compatible object storage, for
// registries that run several replicas or keep bytes off the machine. It
// also implements blob.Redirector (presigned GETs) and blob.BatchDeleter
// (DeleteObjects).
//
// # Layout (an invariant: change it only with a migration)
//
// Every object name starts with the configured prefix P ("" or ending in
// "/", which New adds when missing). Stores with different prefixes share a
// bucket without seeing each other's objects as long as no prefix lies
// inside another store's blobs/ or uploads/ (prefixes "" and "blobs/team/"
// would not be isolated: the first store's Walk would list the second's
// objects as its own, and sweep would delete them). ValidPrefix refuses a
// prefix with a segment named "blobs" or "uploads", which rules that out;
// nesting otherwise is safe ("a/" and "a/b/").
//
//	P blobs/<key>                committed objects. UploadCommit returns
//	                             <key> = "<upload id>/<32 random hex>", chosen
//	                             when the upload's state is first written,
//	                             because a multipart upload must name its
//	                             final object up front. Keys are relative to
//	                             "P blobs/", so no key can name a staging
//	                             object. Walk lists these.
//	P uploads/<id>/state         the upload's state, a small JSON object (see
//	                             below). Writing it is the commit point of an
//	                             append.
//	P uploads/<id>/tail-<hex>    tail segments: the bytes past the last full
//	                             part, a new object per append.
//
// In-progress multipart uploads live on the final name, "P blobs/<key>",
// and become an object there only when completed.
//
// # Uploads
//
// All upload state is in the bucket, none in process memory, so an upload
// survives a restart and can be continued by another replica. The state
// holds: a format version; the final key; the part size (fixed for the
// upload's life, so replicas configured differently agree); the S3
// multipart upload id ("" until the first full part); the completed parts
// (number, ETag, size); the tail segments (name, size); the total size; and
// the marshaled sha256 and sha512 states over all bytes so far (the digest
// algorithm is known only at commit, and the bytes are never read back to
// hash them).
//
// UploadAppend reads the state (none: size 0), checks the offset, and reads
// the request body into a buffer of one part (pooled; the only memory that
// grows with the part size). Whenever old tail + new bytes fill a part, it
// fetches the old tail segments into the front of the buffer, creates the
// multipart upload if there is none, and uploads the part with the next
// number. At EOF the bytes that do not fill a part become one new tail
// segment, written under a fresh random name; only when the state already
// lists 32 segments is the whole tail rewritten as one, so tiny chunks cost
// neither a quadratic re-upload of the tail nor an unbounded state. Last,
// the new state is written: once the body is all read, that write runs to
// its end (bounded by a minute) even if the caller's context is done, so a
// write that lands is never undone. A failed append writes no state, so the
// upload keeps its old size (all-or-nothing); parts it uploaded beyond the
// state's list are ignored and overwritten by later appends, and it
// removes, best effort, the tail segment and the multipart upload it
// created — unless the state write failed yet the stored state is the new
// one (its answer was lost: then the append succeeded), or the state
// cannot be read back to tell (then it removes nothing). The old
// segments a successful append replaced are deleted after the state write;
// anything else under uploads/<id>/ is deleted by abort, or by sweep once
// the upload session is gone.
//
// UploadCommit verifies the digest from the saved hash state. Below one part
// (no multipart upload) it writes the tail bytes to the final name with one
// PutObject; otherwise it uploads the tail as the last part and completes
// the multipart upload with exactly the parts the state lists; that is the
// commit point, and it runs to its end (bounded by five minutes) even if
// the caller's context is done. If the multipart upload is gone (an earlier
// commit completed it but its answer was lost, or the state remained), the
// commit succeeds when the object under the final name has the state's
// size and the ETag S3 gives the object of the state's parts and tail (MD5
// of the parts' MD5s), and fails with ErrUploadGone otherwise (also on
// servers whose ETags are not MD5s). Then it deletes the state, then the tail segments it names
// (one DeleteObjects; no listing): a crash in between leaves no state
// naming missing segments, only garbage that WalkUploads reports (a failure
// of this cleanup does not fail the commit, for the object is there; sweep
// removes the rest, and what a failed append could not undo, once the
// upload session is gone). Large blobs are never copied server-side.
//
// Parts are at most 10,000 (S3's limit), so an upload holds at most 10,000
// times the part size (78 GiB at the default 8 MiB).
//
// # Crash leftovers
//
// WalkUploads reports every id that has objects under uploads/<id>/ (size
// from the state, or 0) and every id that has a multipart upload under
// blobs/<id>/ but nothing under uploads/ — a first append that crashed
// between CreateMultipartUpload and its state write, or one still running
// (a monolithic push writes its state only at its end). The ModTime of the
// latter is its newest part's (ListParts), so it advances as the bytes
// arrive, like a staging file's mtime, and sweep does not take a long push
// for a leftover. UploadAbort aborts all
// multipart uploads under blobs/<id>/ and deletes everything under
// uploads/<id>/, so berth sweep and the collector clean both. Buckets should
// still have an AbortIncompleteMultipartUpload lifecycle rule as a backstop.
//
// # Concurrency
//
// Within one process, calls on one upload id are serialised by a per-id
// lock, and the offset is checked against the state under it. Across
// processes exclusion is the metadata store's job (the upload session row);
// two replicas appending to one id at once is client misbehaviour. It can
// fail the upload, but it can never commit an object whose bytes do not
// hash to the verified digest, because every byte a state vouches for is
// pinned:
//
//   - tail segments are written once, under random names, before the state
//     that names them, and are never overwritten;
//   - parts are named by number and may be overwritten by another writer,
//     but the state records each part's ETag, and CompleteMultipartUpload
//     checks them: if any listed part now holds other bytes, S3 refuses
//     with InvalidPart and the commit fails;
//   - the state is written whole by one PutObject, so its hashes, parts and
//     segments all come from the one writer that hashed those bytes.
//
// The final name is unique per upload, and a concurrent writer that started
// the upload from no state picks its own name and multipart upload.
//
// # Requests
//
// Open issues a HeadObject for the size; the Reader's first Read after Open
// or after a Seek that moves it issues a GetObject ranged from the current
// offset, so http.ServeContent's Range requests fetch only what they serve.
// The SDK's default CRC checksums are sent and checked only where S3 requires
// them (S3-compatible servers may reject or omit them). NoSuchKey/NotFound
// map to blob.ErrNotFound; NoSuchUpload on abort is success. Deletes of
// several objects use DeleteObjects; once the server answers it with
// NotImplemented or MethodNotAllowed (501/405: GCS's XML API, some
// gateways), the store sends one DeleteObject per object for its life.
// Besides the
// SDK's standard retries (throttling, 5xx, connection errors), a 409
// ExistingObjectIsDirectory is retried: versitygw's posix backend answers it
// when a write races a delete that prunes the write's parent directory
// (TestWritesRaceDeletes; found by the torture run).
package s3
