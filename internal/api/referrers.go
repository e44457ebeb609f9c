package api

import (
	"encoding/json"
	"net/http"

	"github.com/berth/berth/internal/oci"
)

type descriptorJSON struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type indexJSON struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     string           `json:"mediaType"`
	Manifests     []descriptorJSON `json:"manifests"`
}

// referrers serves GET /v2/<name>/referrers/<digest>[?artifactType=]: an
// OCI index of the manifests whose subject is digest (empty for an unknown
// subject).
func (h *handler) referrers(w http.ResponseWriter, r *http.Request, rt Route) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	artifactType := r.URL.Query().Get("artifactType")
	descs, err := h.reg.Referrers(r.Context(), rt.Repo, rt.Ref, artifactType)
	if err != nil {
		return err
	}
	idx := indexJSON{SchemaVersion: 2, MediaType: oci.MediaTypeOCIIndex, Manifests: []descriptorJSON{}}
	for _, d := range descs {
		idx.Manifests = append(idx.Manifests, descriptorJSON{
			MediaType:    d.MediaType,
			Digest:       d.Digest.String(),
			Size:         d.Size,
			ArtifactType: d.ArtifactType,
			Annotations:  d.Annotations,
		})
	}
	body, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	writeJSON(w, r, http.StatusOK, oci.MediaTypeOCIIndex, body)
	return nil
}
