package desk_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The edition page's edit, schedule and cancel forms act through the
// newsroom: the edit shows in the edition, a refused edit names its field
// and changes nothing, a schedule sets the send's time, and cancel takes
// it back to a draft; each is audited.
func TestEditScheduleCancel(t *testing.T) {
	f := newFixture(t)
	ed := f.client()
	csrf := f.signIn(ed, "ed@news.example")
	typed := url.Values{"csrf": {csrf}, "source": {"form"}, "date": {"2025-11-13"}, "site": {"London Daily"},
		"lead_title": {"A headline"}, "paragraphs": {"One.\n\nTwo."},
		"related": {"First | https://news.example.com/1\nSecond | https://news.example.com/2\nThird | https://news.example.com/3"}}
	if code, body, _ := f.do(ed, "POST", "/desk/editions", typed); code != http.StatusSeeOther {
		t.Fatalf("import: %d\n%s", code, body)
	}
	page := func() string {
		t.Helper()
		code, body, _ := f.do(ed, "GET", "/desk/editions/2025-11-13", nil)
		if code != 200 {
			t.Fatalf("edition page: %d\n%s", code, body)
		}
		return body
	}
	if p := page(); !strings.Contains(p, `value="0, 1, 2"`) || !strings.Contains(p, "<li>Second</li>") {
		t.Fatalf("the edit form does not number the headlines:\n%s", p)
	}

	edit := url.Values{"csrf": {csrf}, "subject": {"Rain, strikes and coffee"}, "preheader": {"Today in London"}, "related": {"2, 0"}}
	if code, body, hd := f.do(ed, "POST", "/desk/editions/2025-11-13/edit", edit); code != http.StatusSeeOther || !strings.HasSuffix(hd.Get("Location"), "done=edit") {
		t.Fatalf("edit: %d %s\n%s", code, hd.Get("Location"), body)
	}
	p := page()
	if !strings.Contains(p, "<h1>Rain, strikes and coffee</h1>") || !strings.Contains(p, `value="Today in London"`) ||
		!strings.Contains(p, "<li>Third</li><li>First</li></ol>") {
		t.Fatalf("the edits are not shown:\n%s", p)
	}
	if f.audit("edit") != 1 {
		t.Errorf("edit audited %d times, want 1", f.audit("edit"))
	}

	// A subject with a line break is refused, naming the subject; nothing changes.
	bad := url.Values{"csrf": {csrf}, "subject": {"Two\nlines"}, "preheader": {"Today in London"}, "related": {"0, 1"}}
	if code, body, _ := f.do(ed, "POST", "/desk/editions/2025-11-13/edit", bad); code != http.StatusBadRequest || !strings.Contains(strings.ToLower(body), "subject") {
		t.Fatalf("a bad subject: %d\n%s", code, body)
	}
	if p := page(); !strings.Contains(p, "<h1>Rain, strikes and coffee</h1>") || !strings.Contains(p, `value="0, 1"`) {
		t.Fatalf("a refused edit changed the edition:\n%s", p)
	}

	// Schedule a day ahead, then cancel: back to a draft, nobody queued.
	at := time.Now().Add(24 * time.Hour).In(time.Local).Format("2006-01-02T15:04")
	if code, body, _ := f.do(ed, "POST", "/desk/editions/2025-11-13/schedule", url.Values{"csrf": {csrf}, "at": {at}}); code != http.StatusSeeOther {
		t.Fatalf("schedule: %d\n%s", code, body)
	}
	var state string
	if err := f.db.Get(&state, `SELECT coalesce(to_char(send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), 'none') FROM editions`); err != nil {
		t.Fatal(err)
	}
	if want := time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04"); state != want {
		t.Errorf("scheduled for %s, want %s", state, want)
	}
	if p := page(); !strings.Contains(p, `id="unschedule"`) || !strings.Contains(p, "scheduled") {
		t.Fatalf("the page does not show the schedule:\n%s", p)
	}
	if code, body, _ := f.do(ed, "POST", "/desk/editions/2025-11-13/cancel", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("cancel: %d\n%s", code, body)
	}
	if err := f.db.Get(&state, `SELECT concat_ws(' ', coalesce(send_at::text, 'unscheduled'), coalesce(send_started_at::text, 'not started'), (SELECT count(*) FROM deliveries)) FROM editions`); err != nil {
		t.Fatal(err)
	}
	if state != "unscheduled not started 0" {
		t.Errorf("after cancelling the schedule: %s", state)
	}
	if f.audit("schedule") != 1 || f.audit("unschedule") != 1 {
		t.Errorf("schedule audited %d, unschedule %d; want 1 each", f.audit("schedule"), f.audit("unschedule"))
	}
}
