package edition_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"newsletter/edition"
)

// The same content again is Unchanged, before the send starts and after;
// other content after the start is still refused.
func TestStoreSameContentUnchanged(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	e := validEdition()
	id, _, err := s.Save(ctx, e, edition.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.GetByID(ctx, id)
	if got, saved, err := s.Save(ctx, validEdition(), edition.FormatText); err != nil || got != id || saved != edition.Unchanged {
		t.Fatalf("same content: %d, %v, %v; want %d Unchanged", got, saved, err, id)
	}
	if err := edition.MarkSendStarted(ctx, s.DB, id, 0, ""); err != nil {
		t.Fatal(err)
	}
	if got, saved, err := s.Save(ctx, validEdition(), edition.FormatJSON); err != nil || got != id || saved != edition.Unchanged {
		t.Fatalf("same content after the send started: %d, %v, %v; want %d Unchanged", got, saved, err, id)
	}
	after, _ := s.GetByID(ctx, id)
	if !after.ImportedAt.Equal(before.ImportedAt) || after.Format != edition.FormatJSON {
		t.Errorf("an unchanged save wrote: imported %v -> %v, format %q", before.ImportedAt, after.ImportedAt, after.Format)
	}
	changed := validEdition()
	changed.Lead.Title = "Other"
	if _, _, err := s.Save(ctx, changed, edition.FormatJSON); !errors.Is(err, edition.ErrSendStarted) {
		t.Fatalf("other content after the send started: %v, want ErrSendStarted", err)
	}
}

// A fetched edition records its source's validators, for that day only;
// one whose lead story is yesterday's is refused and changes nothing.
func TestStoreSaveFetched(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const url = "https://gazette.example/feed"
	src := edition.Source{URL: url, Validators: edition.Validators{ETag: `"v1"`, LastModified: "Thu, 13 Nov 2025 05:00:00 GMT"}}
	if _, saved, err := s.SaveFetched(ctx, validEdition(), edition.FormatRSS, src); err != nil || saved != edition.Inserted {
		t.Fatalf("SaveFetched = %v, %v", saved, err)
	}
	if v, err := s.Validators(ctx, url, date(2025, 11, 13)); err != nil || v != src.Validators {
		t.Errorf("Validators for the day = %+v, %v; want %+v", v, err, src.Validators)
	}
	for _, d := range []time.Time{date(2025, 11, 14), date(2025, 11, 12)} {
		if v, err := s.Validators(ctx, url, d); err != nil || !v.IsZero() {
			t.Errorf("Validators for %v = %+v, %v; want none", d, v, err)
		}
	}

	next := validEdition()
	next.Date = date(2025, 11, 14)
	next.Related = nil // the rest may change; the lead is what says the page is new
	_, _, err := s.SaveFetched(ctx, next, edition.FormatRSS, edition.Source{URL: url, Validators: edition.Validators{ETag: `"v2"`}})
	if !errors.Is(err, edition.ErrRepeatedLead) || err.Error() != "the lead story of 2025-11-14 is the one the edition of 2025-11-13 already had: the site has not published a new one yet" {
		t.Fatalf("repeated lead: %v", err)
	}
	if _, err := s.Get(ctx, next.Date); !errors.Is(err, edition.ErrNotFound) {
		t.Errorf("a refused edition was stored: %v", err)
	}
	if v, _ := s.Validators(ctx, url, date(2025, 11, 13)); v != src.Validators {
		t.Errorf("a refused fetch changed the validators: %+v", v)
	}
	// A file import is not a fetch: the operator chose the file.
	if _, saved, err := s.Save(ctx, next, edition.FormatJSON); err != nil || saved != edition.Inserted {
		t.Errorf("Save of the same lead on another day: %v, %v", saved, err)
	}
}

func TestStoreDeleteAndNearest(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	ids := map[int]int64{}
	for _, day := range []int{10, 13, 20} {
		e := validEdition()
		e.Date = date(2025, 11, day)
		e.Lead.Title = "Lead of the " + e.DateString()
		id, _, err := s.SaveFetched(ctx, e, edition.FormatJSON, edition.Source{URL: "https://gazette.example/" + e.DateString(), Validators: edition.Validators{ETag: `"x"`}})
		if err != nil {
			t.Fatal(err)
		}
		ids[day] = id
	}
	for _, c := range []struct{ day, before, after int }{{14, 13, 20}, {9, 0, 10}, {21, 20, 0}, {13, 10, 20}} {
		b, a, err := s.Nearest(ctx, date(2025, 11, c.day))
		if err != nil {
			t.Fatal(err)
		}
		if want := dayOrZero(c.before); !b.Equal(want) {
			t.Errorf("Nearest(%d): before %v, want %v", c.day, b, want)
		}
		if want := dayOrZero(c.after); !a.Equal(want) {
			t.Errorf("Nearest(%d): after %v, want %v", c.day, a, want)
		}
	}

	if err := edition.MarkSendStarted(ctx, s.DB, ids[10], 0, ""); err != nil {
		t.Fatal(err)
	}
	err := s.Delete(ctx, date(2025, 11, 10))
	if !errors.Is(err, edition.ErrSendStarted) || err.Error() != "edition 2025-11-10 is already being sent; it can no longer be deleted" {
		t.Errorf("Delete of a started edition: %v", err)
	}
	if err := s.Delete(ctx, date(2025, 11, 11)); !errors.Is(err, edition.ErrNotFound) {
		t.Errorf("Delete of a day without one: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, date(2025, 11, 13)); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != ids[20] || list[1].ID != ids[10] {
		t.Fatalf("List after delete = %+v, %v", list, err)
	}
	if list[0].State != "draft" || list[1].State != "sending" || list[0].Subject != "Gazette: Lead of the 2025-11-20" {
		t.Errorf("List states/subjects: %+v", list)
	}
	var sources int
	s.DB.Get(&sources, `SELECT count(*) FROM edition_sources WHERE edition_date = '2025-11-13'`)
	if sources != 0 {
		t.Error("a deleted edition's source row stayed")
	}
}

func dayOrZero(d int) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return date(2025, 11, d)
}
