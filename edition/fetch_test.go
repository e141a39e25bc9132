package edition_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"newsletter/edition"
)

const feedRSS = `<rss version="2.0"><channel><title>Gazette</title><link>https://gazette.example</link>
<item><title>Lead story</title><link>https://gazette.example/lead</link><pubDate>Wed, 12 Nov 2025 22:30:00 GMT</pubDate>
<description>&lt;p&gt;One&lt;/p&gt;</description></item>
<item><title>Second story</title><link>https://gazette.example/second</link></item></channel></rss>`

func fetch(t *testing.T, url string, cond edition.Validators) (*edition.Fetched, error) {
	t.Helper()
	return edition.NewFetcher("newsletter-test (+https://news.example.com/newsletter)").
		Fetch(context.Background(), url, cond, edition.ParseOptions{Date: date(2025, 11, 13)})
}

// A 200 gives the edition, for the day asked (not the first item's), and
// the page's validators; a request conditional on them gets a 304.
func TestFetchConditional(t *testing.T) {
	var ua, inm, ims atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.UserAgent())
		inm.Store(r.Header.Get("If-None-Match"))
		ims.Store(r.Header.Get("If-Modified-Since"))
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Thu, 13 Nov 2025 05:00:00 GMT")
		fmt.Fprint(w, feedRSS)
	}))
	defer srv.Close()

	got, err := fetch(t, srv.URL, edition.Validators{})
	if err != nil {
		t.Fatal(err)
	}
	if got.NotModified || got.Edition.DateString() != "2025-11-13" || got.Edition.Lead.Title != "Lead story" || got.Format != edition.FormatRSS {
		t.Fatalf("200: %+v", got)
	}
	want := edition.Validators{ETag: `"v1"`, LastModified: "Thu, 13 Nov 2025 05:00:00 GMT"}
	if got.Validators != want {
		t.Errorf("validators %+v, want %+v", got.Validators, want)
	}
	if ua.Load() != "newsletter-test (+https://news.example.com/newsletter)" || inm.Load() != "" || ims.Load() != "" {
		t.Errorf("first request: User-Agent %q, If-None-Match %q, If-Modified-Since %q", ua.Load(), inm.Load(), ims.Load())
	}

	again, err := fetch(t, srv.URL, got.Validators)
	if err != nil || !again.NotModified || again.Imported != nil {
		t.Fatalf("conditional fetch: %+v, %v; want NotModified", again, err)
	}
	if inm.Load() != want.ETag || ims.Load() != want.LastModified {
		t.Errorf("conditional request sent If-None-Match %q, If-Modified-Since %q", inm.Load(), ims.Load())
	}
}

// Every answer that is not a page with an edition on it is an error that
// says which.
func TestFetchRefusals(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) })
	mux.HandleFunc("/404", http.NotFound)
	// A 304 to a request that was not conditional says nothing about a page.
	mux.HandleFunc("/304", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	mux.HandleFunc("/loop/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop/b", http.StatusFound) })
	mux.HandleFunc("/loop/b", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop/a", http.StatusFound) })
	mux.HandleFunc("/chain/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"x", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!DOCTYPE html><html><head><title>Gazette</title></head><body><p>Welcome</p></body></html>")
	})
	mux.HandleFunc("/declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(100<<20))
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("<rss>")) // the client stops at the header; the server gives up
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]string{
		"/500":      "500 Internal Server Error",
		"/404":      "404 Not Found",
		"/304":      "304 Not Modified",
		"/loop/a":   "redirect loop: " + srv.URL + "/loop/a -> " + srv.URL + "/loop/b -> " + srv.URL + "/loop/a",
		"/chain/":   fmt.Sprintf("more than %d redirects", edition.MaxRedirects),
		"/html":     "an HTML page, not an edition",
		"/declared": "over the limit of 4194304 bytes",
	} {
		got, err := fetch(t, srv.URL+path, edition.Validators{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %+v, %v; want an error saying %q", path, got, err, want)
		}
	}
	if _, err := fetch(t, "ftp://gazette.example/feed", edition.Validators{}); err == nil {
		t.Error("fetched an ftp URL")
	}
}

// A 100 MB body without a length is refused at the limit: the client stops
// reading there, so the server gets to write little more than the limit
// and what the socket buffers hold, never the 100 MB.
func TestFetchHugeBody(t *testing.T) {
	const total = 100 << 20
	var written atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := []byte(strings.Repeat("London Daily ", 5000))
		w.Write([]byte("London Daily\n\n"))
		for written.Load() < total {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	_, err := fetch(t, srv.URL, edition.Validators{})
	if !errors.Is(err, edition.ErrTooLarge) || !strings.Contains(err.Error(), "MaxInputBytes") {
		t.Fatalf("err = %v, want the input limit", err)
	}
	<-done
	if n := written.Load(); n >= total/2 {
		t.Errorf("the server wrote %d bytes of %d before the client gave up; want it stopped near the %d byte limit", n, total, edition.MaxInputBytes)
	}
}
