package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// pagination reads ?n= and ?last=; n is -1 when absent.
func pagination(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	if !q.Has("n") {
		return -1, last, nil
	}
	n, err = strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		return 0, "", fmt.Errorf("n=%q is not a non-negative integer: %w", q.Get("n"), errPagination)
	}
	return n, last, nil
}

// setNext sets the Link header to the next page after last.
func setNext(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{}
	if n >= 0 {
		q.Set("n", strconv.Itoa(n))
	}
	q.Set("last", last)
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

// tags serves GET /v2/<name>/tags/list with n/last pagination.
func (h *handler) tags(w http.ResponseWriter, r *http.Request, rt Route) error {
	if err := allow(w, r, http.MethodGet, http.MethodHead); err != nil {
		return err
	}
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	tags, more, err := h.reg.Tags(r.Context(), rt.Repo, last, n)
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	if more && len(tags) > 0 {
		setNext(w, "/v2/"+rt.Repo+"/tags/list", n, tags[len(tags)-1])
	}
	body, err := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Repo, tags})
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, "application/json", body)
	return nil
}
