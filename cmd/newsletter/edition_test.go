package main

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"newsletter/edition"
)

// An edition over a limit is refused with the limit's name, and what was
// stored stays as it was.
func TestEditionImportLimits(t *testing.T) {
	h := newHarness(t)
	h.setup()
	var before string
	h.db.Get(&before, `SELECT content::text FROM editions WHERE date = '2025-11-13'`)

	// Small enough to read, too much HTML once rendered.
	e := map[string]any{"date": "2025-11-13", "site": map[string]string{"name": "London Daily"}}
	var body []map[string]string
	para := strings.Repeat("A long paragraph. ", 80)
	for range edition.MaxRenderedHTML/len(para) + 10 {
		body = append(body, map[string]string{"kind": "paragraph", "text": para})
	}
	e["lead"] = map[string]any{"title": "Lead", "body": body}
	big, _ := json.Marshal(e)
	if len(big) > edition.MaxInputBytes {
		t.Fatalf("test edition of %d bytes is over the input limit", len(big))
	}
	for name, c := range map[string]struct{ src, limit string }{
		"rendered": {string(big), "MaxRenderedHTML"},
		"input":    {strings.Repeat("x", edition.MaxInputBytes+1), "MaxInputBytes"},
	} {
		code, _, errs := h.run("edition", "import", h.file(name+".json", c.src))
		if code == 0 || !strings.Contains(errs, c.limit) {
			t.Errorf("%s: exit %d, stderr %q; want a refusal naming %s", name, code, errs, c.limit)
		}
	}
	var after string
	h.db.Get(&after, `SELECT content::text FROM editions WHERE date = '2025-11-13'`)
	if after != before {
		t.Error("a refused import changed the stored edition")
	}
}

// What the cleaner leaves out of a story, import says.
func TestEditionImportSaysWhatWasDropped(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	feed := `<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Gazette</title>
<item><title>Lead story</title><pubDate>Thu, 13 Nov 2025 06:00:00 GMT</pubDate>
<content:encoded>` + html.EscapeString(`<p>One</p><svg><text>Chart</text><p>Two</p><svg/><p>Three</p>`) + `</content:encoded></item></channel></rss>`
	code, out, errs := h.run("edition", "import", h.file("feed.rss", feed))
	if code != 0 || strings.TrimSpace(out) != "2025-11-13" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !strings.Contains(errs, "kept_paragraphs=3") || !strings.Contains(errs, "dropped_elements=1") {
		t.Errorf("stderr %q does not say 3 paragraphs kept and 1 element dropped", errs)
	}
}

// The feed served by a site: 500 at first, then the page with its
// validators, 304 to a request conditional on them.
type feedSite struct {
	mu       sync.Mutex
	failures int      // answers of 500 still to give
	requests []string // User-Agent and If-None-Match of each request
}

func (f *feedSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.UserAgent()+" | "+r.Header.Get("If-None-Match"))
	switch {
	case f.failures > 0:
		f.failures--
		http.Error(w, "the CMS is down", http.StatusInternalServerError)
	case r.Header.Get("If-None-Match") == `"front-1"`:
		w.WriteHeader(http.StatusNotModified)
	default:
		w.Header().Set("ETag", `"front-1"`)
		http.ServeFile(w, r, seedPath)
	}
}

func (f *feedSite) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func londonToday(t *testing.T) string {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return time.Now().In(loc).Format(edition.DateLayout)
}

// `edition import URL`: today's edition in NEWSLETTER_TZ; a failing site is
// an error that stores nothing; the cron job's second run is a 304,
// unchanged; the same page for another day is yesterday's lead, refused.
func TestEditionImportURL(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	site := &feedSite{failures: 1}
	srv := httptest.NewServer(site)
	defer srv.Close()
	url := srv.URL + "/front-page.txt"
	editions := func() (n int, imported time.Time) {
		h.db.Get(&n, `SELECT count(*) FROM editions`)
		h.db.Get(&imported, `SELECT coalesce(max(imported_at), 'epoch') FROM editions`)
		return n, imported
	}

	code, _, errs := h.run("edition", "import", url)
	if n, _ := editions(); code != 1 || !strings.Contains(errs, "500 Internal Server Error") || n != 0 {
		t.Fatalf("500: exit %d, stderr %q, %d editions; want a refusal naming the status, nothing stored", code, errs, n)
	}
	first := londonToday(t)
	out := h.must("edition", "import", url)
	if got := strings.TrimSpace(out); got != first && got != londonToday(t) {
		t.Fatalf("import printed %q, want today in Europe/London %s (not the page's 2025-11-13)", got, first)
	}
	today := strings.TrimSpace(out)
	if ua := site.last(); !strings.HasPrefix(ua, "newsletter") || !strings.HasSuffix(ua, " | ") {
		t.Errorf("first fetch sent %q, want the newsletter's User-Agent and no If-None-Match", ua)
	}
	n, imported := editions()

	code, out, errs = h.run("edition", "import", url, "--date", today)
	if code != 0 || strings.TrimSpace(out) != today || !strings.Contains(errs, "unchanged") {
		t.Fatalf("second run: exit %d, stdout %q, stderr %q; want %s, unchanged", code, out, errs, today)
	}
	if !strings.HasSuffix(site.last(), ` | "front-1"`) {
		t.Errorf("second fetch sent %q, want If-None-Match \"front-1\"", site.last())
	}
	if n2, imported2 := editions(); n2 != n || !imported2.Equal(imported) {
		t.Errorf("a 304 changed what is stored: %d editions imported %v, was %d at %v", n2, imported2, n, imported)
	}

	day, _ := edition.ParseDate(today)
	tomorrow := day.AddDate(0, 0, 1).Format(edition.DateLayout)
	code, _, errs = h.run("edition", "import", url, "--date", tomorrow)
	if code != 1 || !strings.Contains(errs, "is the one the edition of "+today+" already had") {
		t.Fatalf("the same page tomorrow: exit %d, stderr %q; want the repeated lead refused", code, errs)
	}
	if !strings.HasSuffix(site.last(), " | ") {
		t.Errorf("a fetch for another day was conditional: %q", site.last())
	}
	if n2, _ := editions(); n2 != n {
		t.Errorf("the refused import stored an edition")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/b", http.StatusFound) })
	mux.HandleFunc("/b", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/a", http.StatusFound) })
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><html><body><p>Subscribe!</p></body></html>")
	})
	bad := httptest.NewServer(mux)
	defer bad.Close()
	for path, want := range map[string]string{"/a": "redirect loop", "/page": "an HTML page, not an edition"} {
		code, _, errs := h.run("edition", "import", bad.URL+path, "--date", tomorrow)
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%s: exit %d, stderr %q; want %q", path, code, errs, want)
		}
	}
	if n2, _ := editions(); n2 != n {
		t.Errorf("a refused import stored an edition")
	}
}

// list, show and delete; a day without an edition names the nearest ones;
// the seed imported again once sent is unchanged, exit 0.
func TestEditionListShowDelete(t *testing.T) {
	h := newHarness(t)
	h.setup()
	later := `{"date": "2025-11-15", "site": {"name": "London Daily"}, "lead": {"title": "Saturday's lead", "body": [{"kind": "paragraph", "text": "Text."}]}, "related": []}`
	h.must("edition", "import", h.file("later.json", later))
	h.must("send", "--date", "2025-11-13")

	out := h.must("edition", "import", seedPath, "--site-url", "https://london-daily.example")
	if strings.TrimSpace(out) != "2025-11-13" {
		t.Errorf("re-import of the sent seed printed %q", out)
	}

	lines := strings.Split(strings.TrimSpace(h.must("edition", "list")), "\n")
	want := []string{
		"date\tstate\tsent\tfailed\tpending\tskipped\tsubject",
		"2025-11-15\tdraft\t0\t0\t0\t0\tLondon Daily: Saturday's lead",
		"2025-11-13\tfinished\t4\t0\t0\t0\tLondon Daily: Russia and Belarus hold military drills as migrant crisis on EU border grows",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("edition list:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	var entries []struct {
		Date  string `json:"date"`
		State string `json:"state"`
		Sent  int    `json:"sent"`
	}
	if err := json.Unmarshal([]byte(h.must("edition", "list", "--json")), &entries); err != nil || len(entries) != 2 || entries[1].Sent != 4 {
		t.Errorf("edition list --json: %+v, %v", entries, err)
	}

	show := h.must("edition", "show", "2025-11-13")
	for _, s := range []string{"edition 2025-11-13: finished", "subject:   London Daily: Russia and Belarus", "imported:  ", " from text", "send:      started "} {
		if !strings.Contains(show, s) {
			t.Errorf("edition show lacks %q:\n%s", s, show)
		}
	}
	// --json is what import reads back.
	js := h.must("edition", "show", "2025-11-15", "--json")
	var back edition.Edition
	if err := json.Unmarshal([]byte(js), &back); err != nil || back.Lead.Title != "Saturday's lead" {
		t.Errorf("edition show --json: %q, %v", js, err)
	}

	code, _, errs := h.run("edition", "delete", "2025-11-13")
	if code != 1 || !strings.Contains(errs, "edition 2025-11-13 is already being sent; it can no longer be deleted") {
		t.Errorf("delete of a sent edition: exit %d, %q", code, errs)
	}
	if out := h.must("edition", "delete", "2025-11-15"); strings.TrimSpace(out) != "deleted 2025-11-15" {
		t.Errorf("delete printed %q", out)
	}
	for _, args := range [][]string{
		{"preview", "--date", "2025-11-14"}, {"send", "--date", "2025-11-14"}, {"status", "--date", "2025-11-14"},
		{"edition", "show", "2025-11-14"}, {"edition", "delete", "2025-11-15"},
	} {
		code, _, errs := h.run(args...)
		day := args[len(args)-1]
		if want := "no edition for " + day + "; nearest: 2025-11-13 (--date 2025-11-13)"; code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%v: exit %d, stderr %q; want %q", args, code, errs, want)
		}
	}
}
