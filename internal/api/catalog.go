package api

import (
	"encoding/json"
	"net/http"
)

// catalog serves GET /v2/_catalog with n/last pagination.
func (h *handler) catalog(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	repos, more, err := h.reg.Catalog(r.Context(), last, n)
	if err != nil {
		return err
	}
	if repos == nil {
		repos = []string{}
	}
	if more && len(repos) > 0 {
		setNext(w, "/v2/_catalog", n, repos[len(repos)-1])
	}
	body, err := json.Marshal(struct {
		Repositories []string `json:"repositories"`
	}{repos})
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, "application/json", body)
	return nil
}
