package edition

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// What a fetch of the day's edition may take. A news site's page or feed
// answers in a second or two and is some hundreds of kilobytes; these are
// far above that, there so that a stalled or runaway site cannot hold an
// import (or the schedule that runs it) or its memory.
const (
	// FetchTimeout bounds the whole fetch: connecting, redirects and
	// reading the body.
	FetchTimeout = 30 * time.Second
	// MaxRedirects is how many redirects a fetch follows.
	MaxRedirects = 5
)

// Validators are what a server said identifies the version of the page it
// sent (RFC 9110 section 8.8), for the next fetch's conditional request.
type Validators struct {
	ETag         string // section 8.8.3, as the server wrote it (quotes and W/ included)
	LastModified string // section 8.8.2, as the server wrote it
}

// IsZero says there is nothing to make a request conditional on.
func (v Validators) IsZero() bool { return v == Validators{} }

// Fetcher GETs editions from a site.
type Fetcher struct {
	// Client is NewFetcher's: FetchTimeout, at most MaxRedirects
	// redirects and none in a loop.
	Client *http.Client
	// UserAgent names the newsletter to the site (RFC 9110 section
	// 10.1.5), so its operators know whose fetches they see.
	UserAgent string
}

// NewFetcher is a Fetcher with its limits.
func NewFetcher(userAgent string) *Fetcher {
	return &Fetcher{
		Client:    &http.Client{Timeout: FetchTimeout, CheckRedirect: checkRedirect},
		UserAgent: userAgent,
	}
}

// checkRedirect refuses a redirect back to a URL already visited (a loop
// would otherwise run to the limit and say only that) and more than
// MaxRedirects of them.
func checkRedirect(req *http.Request, via []*http.Request) error {
	next := req.URL.String()
	chain := make([]string, 0, len(via)+1)
	for _, r := range via {
		chain = append(chain, r.URL.String())
	}
	chain = append(chain, next)
	for _, r := range via {
		if r.URL.String() == next {
			return fmt.Errorf("redirect loop: %s", strings.Join(chain, " -> "))
		}
	}
	if len(via) > MaxRedirects {
		return fmt.Errorf("more than %d redirects: %s", MaxRedirects, strings.Join(chain, " -> "))
	}
	return nil
}

// Fetched is what a fetch got: the edition read from the page and the
// page's validators, or NotModified.
type Fetched struct {
	*Imported // nil when NotModified
	Validators
	// NotModified: the server answered 304 to the conditional request,
	// the page is the one the validators came from.
	NotModified bool
}

// Fetch GETs url and reads the edition on it (see Read and Parse): at most
// MaxInputBytes, refused without reading further, within FetchTimeout.
// When cond is not zero the request is conditional on it (RFC 9110
// sections 13.1.2 and 13.1.3) and a 304 answer is Fetched.NotModified. Any
// other answer but a 2xx is an error naming the status.
func (f *Fetcher) Fetch(ctx context.Context, url string, cond Validators, opts ParseOptions) (*Fetched, error) {
	if _, ok := httpURL(url); !ok {
		return nil, fmt.Errorf("fetch %q: want an http or https URL without a user name or password", url)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	req.Header.Set("User-Agent", f.UserAgent)
	// Section 12.5.1: what Parse reads, the others last.
	req.Header.Set("Accept", "application/rss+xml, application/atom+xml, application/json, text/plain;q=0.9, */*;q=0.5")
	if cond.ETag != "" {
		req.Header.Set("If-None-Match", cond.ETag)
	}
	if cond.LastModified != "" {
		req.Header.Set("If-Modified-Since", cond.LastModified)
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	// Closing without reading to the end drops the connection: a body
	// refused at the limit is not drained.
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && !cond.IsZero():
		return &Fetched{Validators: cond, NotModified: true}, nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, fmt.Errorf("fetch %s: the server answered %s, not a page", url, resp.Status)
	case resp.ContentLength > MaxInputBytes:
		return nil, fmt.Errorf("fetch %s: %w", url, inputTooLarge(resp.ContentLength))
	}
	im, err := Read(resp.Body, opts)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	return &Fetched{Imported: im, Validators: Validators{
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
	}}, nil
}
