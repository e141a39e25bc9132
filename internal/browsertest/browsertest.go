// Package browsertest drives a real headless Chromium for the tests of the
// pages (chromedp over the DevTools protocol): start it, open and click,
// type, read, and photograph a page at phone and desktop width into the
// artefacts folder.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the browser; a machine without it fails the test (CI
// installs it: .ci/run).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: apt-get install chromium (.ci/run does)")
	return ""
}

// New starts a headless Chromium with a profile of its own and returns a
// tab, at phone width.
func New(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // Chromium refuses to sandbox as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	ctx, cancel := context.WithTimeout(tab, 4*time.Minute)
	t.Cleanup(func() { cancel(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, Phone()); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

func Phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait)
}

func Desktop() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(1280, 900)
}

// Artefacts is where the screenshots go: $TEST_ARTIFACTS_DIR, or root's
// .artifacts (the repository's, ignored by git), in screenshots.
func Artefacts(t *testing.T, root string) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(dir, "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Shoot photographs the page at phone and desktop width into dir, checks
// that it fits a phone's width without sideways scrolling, and leaves the
// tab at phone width.
func Shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Errorf("%s: the page is wider than a phone's screen", name)
	}
	for _, v := range []struct {
		suffix string
		size   chromedp.Action[chromedp.Void]
	}{{"phone", Phone()}, {"desktop", Desktop()}} {
		if err := chromedp.Do(ctx, v.size); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+v.suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, Phone()); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of %s in %s", name, dir)
}

// Click presses the element and waits for the page it leads to; it returns
// that page's HTTP status.
func Click(t *testing.T, ctx context.Context, selector string) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("click %s: %v", selector, err)
	}
	return resp.Status
}

func Open(t *testing.T, ctx context.Context, url string) int64 {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return resp.Status
}

func Text(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("text of %s: %v", selector, err)
	}
	return strings.TrimSpace(s)
}

func TypeInto(t *testing.T, ctx context.Context, selector, s string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(selector), s)); err != nil {
		t.Fatalf("type into %s: %v", selector, err)
	}
}
