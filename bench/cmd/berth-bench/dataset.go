package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// The dataset is a pure function of (seed, repos, tags): the same logical
// images, blobs and garbage for every registry.
//
// Every image has a config and 3–10 layers:
//   - 1 base layer from a global pool of baseLayers (shared across images and
//     repositories, 32 KiB each),
//   - 1–2 repository layers from a per-repository pool of repoLayers (8 KiB),
//   - 1–7 layers unique to the image (1–4 KiB).
//
// Garbage: overwriteFrac of the tags are re-pushed with a new image (the old
// manifest becomes untagged), deleteFrac of the manifests are deleted by
// digest (which ends their tags), both chosen by the seed.
const (
	baseLayers    = 4
	baseLayerSize = 32 << 10
	repoLayers    = 3
	repoLayerSize = 8 << 10
	overwriteFrac = 0.15
	deleteFrac    = 0.15
)

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type dataset struct {
	seed  uint64
	repos int
	tags  int
}

// ref names one tag of the dataset.
type ref struct{ repo, tag int }

func (d dataset) repoName(r int) string { return fmt.Sprintf("bench/r%04d", r) }
func (d dataset) tagName(t int) string  { return fmt.Sprintf("t%04d", t) }
func (d dataset) manifests() int        { return d.repos * d.tags }

// blobRef is a blob of an image; shared blobs may already be in the repo.
type blobRef struct {
	digest string
	size   int64
	shared bool
	key    string // generator key
}

type image struct {
	repo     string
	tag      string
	config   blobRef
	layers   []blobRef
	manifest []byte
	digest   string // of manifest
}

func (im *image) blobs() []blobRef { return append([]blobRef{im.config}, im.layers...) }

// bytesOf generates the content of a blob from its key, deterministically.
func (d dataset) bytesOf(key string, size int) []byte {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%s", d.seed, key)))
	r := rand.NewChaCha8(h)
	b := make([]byte, size)
	_, _ = r.Read(b)
	return b
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// rng returns a generator seeded by the dataset seed and the given ints.
func (d dataset) rng(parts ...int) *rand.Rand {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[0:], d.seed)
	for i, p := range parts {
		if i >= 3 {
			break
		}
		binary.LittleEndian.PutUint64(s[8+8*i:], uint64(p))
	}
	return rand.New(rand.NewChaCha8(s))
}

// build returns image (repo r, tag t, generation gen) with its blob bytes.
// Generation 0 is the initial push, 1 an overwrite; probe images use
// repo -1 and gen as a counter.
func (d dataset) build(r, t, gen int, repoName, tagName string) (*image, map[string][]byte) {
	g := d.rng(r, t, gen)
	data := map[string][]byte{}
	im := &image{repo: repoName, tag: tagName}
	add := func(key string, size int, shared bool) blobRef {
		b := d.bytesOf(key, size)
		br := blobRef{digest: sha(b), size: int64(size), shared: shared, key: key}
		data[br.digest] = b
		return br
	}
	if r >= 0 {
		im.layers = append(im.layers, add(fmt.Sprintf("base-%d", g.IntN(baseLayers)), baseLayerSize, true))
		nr := 1 + g.IntN(2)
		first := g.IntN(repoLayers)
		for i := 0; i < nr; i++ {
			im.layers = append(im.layers, add(fmt.Sprintf("repo-%d-%d", r, (first+i)%repoLayers), repoLayerSize, true))
		}
		nu := 1 + g.IntN(7)
		for i := 0; i < nu; i++ {
			im.layers = append(im.layers, add(fmt.Sprintf("uniq-%d-%d-%d-%d", r, t, gen, i), 1024+g.IntN(3072), false))
		}
	} else {
		// probe image: one small unique layer
		im.layers = append(im.layers, add(fmt.Sprintf("probe-%d-%d", t, gen), 1024, false))
	}
	diffIDs := make([]string, len(im.layers))
	for i, l := range im.layers {
		diffIDs[i] = l.digest
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"berth.bench": fmt.Sprintf("%s:%s/%d", repoName, tagName, gen)}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	im.config = blobRef{digest: sha(cfg), size: int64(len(cfg))}
	data[im.config.digest] = cfg
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: mtManifest, Config: desc{mtConfig, im.config.digest, im.config.size}}
	for _, l := range im.layers {
		m.Layers = append(m.Layers, desc{mtLayer, l.digest, l.size})
	}
	im.manifest, _ = json.Marshal(m)
	im.digest = sha(im.manifest)
	return im, data
}

// plan is the garbage plan: which tags are overwritten, which manifests
// deleted now, and which (fixed count) deleted in the fixed-garbage step.
type plan struct {
	overwrite []ref
	del       []ref
	fixedDel  []ref
	probeDel  []ref // deleted for the collection measured under probe load
	live      []ref // tags alive at the end, in shuffled order (pull sample first)
}

func (d dataset) plan(fixed int) plan {
	all := make([]ref, 0, d.manifests())
	for r := 0; r < d.repos; r++ {
		for t := 0; t < d.tags; t++ {
			all = append(all, ref{r, t})
		}
	}
	g := d.rng(-1, -1, -1)
	g.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	no := int(float64(len(all)) * overwriteFrac)
	nd := int(float64(len(all)) * deleteFrac)
	p := plan{overwrite: all[:no], del: all[no : no+nd]}
	rest := all[no+nd:]
	fixed = min(fixed, len(rest)/3)
	p.fixedDel = rest[:fixed]
	p.probeDel = rest[fixed : 2*fixed]
	p.live = append(append([]ref{}, rest[2*fixed:]...), p.overwrite...)
	return p
}
