package api

import "net/http"

// base answers GET /v2/: the API version check.
func (h *handler) base(w http.ResponseWriter, r *http.Request) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, "application/json", []byte("{}"))
	return nil
}
