// Package fs is the filesystem backend of blob.Store, the default for a
// single machine.
//
// # On-disk layout (an invariant: change it only with a migration)
//
//	<root>/
//	  blobs/<key>        committed objects; <key> is a blob storage key with
//	                     "/" as the directory separator, e.g.
//	                     blobs/sha256/ab/ab12…ef-0f1e…9a (see blob.NewKey):
//	                     one file in one of 256 fan-out directories per
//	                     algorithm. Keys made before 2026-11-29 have a
//	                     directory per blob, blobs/sha256/ab/ab12…ef/0f1e…9a;
//	                     they are read and deleted alike (a key is a path).
//	                     Files whose name starts with "." are never objects
//	                     (blob.ValidKey forbids such segments) and Walk skips
//	                     them. Directories left empty by Delete are removed
//	                     best-effort, except blobs/<alg>/ and
//	                     blobs/<alg>/<xx>/, which stay.
//	  uploads/<id>       one staging file per upload id ([A-Za-z0-9-]+),
//	                     grown by UploadAppend. WalkUploads lists these.
//	  tmp/               reserved for the store's temporary files; nothing in
//	                     it is an object or an upload. Currently unused: the
//	                     staging file itself is the temporary file of a commit.
//
// The whole root must be one filesystem, so that rename from uploads/ to
// blobs/ is atomic. Directories are created datadir.DirMode (0700) and files
// datadir.FileMode (0600): only berth's user reads an image. The root
// itself, when it already exists, is left as it is (app tightens the data
// directory).
//
// # Durability and atomicity
//
//   - UploadAppend writes with O_APPEND and fsyncs the staging file before it
//     returns (and fsyncs uploads/ when it created the file). On error it
//     truncates the file back to its size before the call: appends are
//     all-or-nothing.
//   - UploadCommit stream-hashes the staging file with a fixed-size buffer
//     (memory does not grow with the object), fsyncs it, creates the key's
//     parent directories (fsyncing each new directory's parent), renames the
//     staging file to blobs/<key> and fsyncs the destination directory and
//     uploads/. A crash leaves either the staging file or the complete
//     committed object, never a partial object under a key.
//   - Delete and DeleteBatch unlink the files, then make the unlinks durable
//     with one syncfs(2) of the filesystem per batch. A Reader opened before
//     the Delete keeps reading the old bytes (POSIX unlink semantics).
//
// # Concurrency
//
// Within one process, calls on the same upload id (append, commit, abort) are
// serialised by a per-id lock, and UploadAppend re-checks the offset against
// the file's size under that lock, so of two concurrent appends at the same
// offset one wins and the other gets blob.ErrOffset. Exclusion across
// processes is not provided here: it is the metadata store's job (the upload
// session row is locked by whoever writes to the upload). A commit that races
// with Delete pruning the now-empty parent directory (only hand-made keys
// and keys of the older form have one to prune) retries.
package fs
