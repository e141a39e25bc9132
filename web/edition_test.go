package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"newsletter/edition"
)

// publishSeed stores the seed edition and starts its send, so its web
// edition is public.
func (f *fixture) publishSeed(t *testing.T) {
	t.Helper()
	data, err := readSeed()
	if err != nil {
		t.Fatal(err)
	}
	ed, format, err := edition.Parse(data, edition.ParseOptions{SiteURL: "https://london-daily.example"})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := f.eds.Save(context.Background(), ed, format)
	if err != nil {
		t.Fatal(err)
	}
	if err := edition.MarkSendStarted(context.Background(), f.eds.DB, id, 0, ""); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) get(t *testing.T, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body(t, resp)
}

// The web edition is rendered once per version of the edition: served
// from the cache while the stored content is the same version, again
// when a new import time says it changed; and a conditional GET is
// answered 304 (RFC 9110 sections 13.1.2 and 13.1.3).
func TestWebEditionCachedAndConditional(t *testing.T) {
	f := newFixture(t)
	f.publishSeed(t)
	const path = "/editions/2025-11-13"
	resp, page := f.get(t, path)
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp.StatusCode != 200 || etag == "" || lastMod == "" || !strings.Contains(page, "Russia and Belarus") {
		t.Fatalf("first GET: %d, ETag %q, Last-Modified %q", resp.StatusCode, etag, lastMod)
	}
	for _, h := range [][]string{{"If-None-Match", etag}, {"If-Modified-Since", lastMod}} {
		if resp, b := f.get(t, path, h...); resp.StatusCode != http.StatusNotModified || b != "" {
			t.Errorf("GET with %s: %d %.100q, want 304 and no body", h[0], resp.StatusCode, b)
		}
	}
	if resp, _ := f.get(t, path, "If-None-Match", `"something else"`); resp.StatusCode != 200 {
		t.Errorf("GET with another ETag: %d, want 200", resp.StatusCode)
	}

	// The same version (id, imported_at) is not read again: the page
	// comes from the cache even though the row's content changed under it.
	const renamed = `jsonb_set(content, '{lead,title}', '"A new headline"')`
	if _, err := f.eds.DB.Exec(`UPDATE editions SET content = ` + renamed + ` WHERE date = '2025-11-13'`); err != nil {
		t.Fatal(err)
	}
	if resp, page := f.get(t, path); resp.Header.Get("ETag") != etag || strings.Contains(page, "A new headline") {
		t.Errorf("same version: ETag %q (was %q), the page was rendered again", resp.Header.Get("ETag"), etag)
	}
	// A new version is rendered.
	if _, err := f.eds.DB.Exec(`UPDATE editions SET imported_at = imported_at + interval '1 minute' WHERE date = '2025-11-13'`); err != nil {
		t.Fatal(err)
	}
	resp, page = f.get(t, path, "If-None-Match", etag)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag || !strings.Contains(page, "A new headline") {
		t.Errorf("new version: %d, ETag %q (was %q), new headline shown: %v", resp.StatusCode, resp.Header.Get("ETag"), etag, strings.Contains(page, "A new headline"))
	}
}
