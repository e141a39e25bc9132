package edition_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"newsletter/edition"
	"newsletter/internal/pgtest"
)

func newStore(t *testing.T) *edition.Store {
	return &edition.Store{DB: pgtest.New(t)}
}

func TestStoreSaveGetReplace(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	e, _ := parseFile(t, seedPath, edition.ParseOptions{SiteURL: "https://london-daily.example"})

	before := time.Now().Add(-time.Minute)
	id, saved, err := s.Save(ctx, e, edition.FormatText)
	if err != nil || id <= 0 || saved != edition.Inserted {
		t.Fatalf("Save = %d, %v, %v; want a new id", id, saved, err)
	}
	got, err := s.Get(ctx, date(2025, 11, 13))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.Format != edition.FormatText || got.SendStartedAt != nil || got.ImportedAt.Before(before) {
		t.Errorf("Get = id %d format %q started %v imported %v", got.ID, got.Format, got.SendStartedAt, got.ImportedAt)
	}
	if !reflect.DeepEqual(got.Edition, e) {
		t.Errorf("stored edition differs:\n%+v\nwant\n%+v", got.Edition, e)
	}
	byID, err := s.GetByID(ctx, id)
	if err != nil || !reflect.DeepEqual(byID, got) {
		t.Errorf("GetByID = %+v, %v; want %+v", byID, err, got)
	}
	// The day is the civil date of the time given, in its own zone.
	late := time.Date(2025, 11, 13, 23, 30, 0, 0, time.FixedZone("", -8*3600))
	if st, err := s.Get(ctx, late); err != nil || st.ID != id {
		t.Errorf("Get(%v) = %v, %v", late, st, err)
	}

	// Replacing before the send starts: same row, new content.
	changed := *e
	changed.Lead.Title = "Corrected headline"
	changed.Related = e.Related[:3]
	id2, saved, err := s.Save(ctx, &changed, edition.FormatJSON)
	if err != nil || id2 != id || saved != edition.Replaced {
		t.Fatalf("replace: Save = %d, %v, %v; want id %d replaced", id2, saved, err, id)
	}
	got, err = s.Get(ctx, date(2025, 11, 13))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Edition, &changed) || got.Format != edition.FormatJSON {
		t.Errorf("after replace: %q with %d related, format %q", got.Edition.Lead.Title, len(got.Edition.Related), got.Format)
	}
}

func TestStoreRefusesReplaceAfterSendStarted(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	e, _ := parseFile(t, seedPath, edition.ParseOptions{})
	id, _, err := s.Save(ctx, e, edition.FormatText)
	if err != nil {
		t.Fatal(err)
	}
	if err := edition.MarkSendStarted(ctx, s.DB, id, 0, ""); err != nil {
		t.Fatal(err)
	}
	first, err := s.GetByID(ctx, id)
	if err != nil || first.SendStartedAt == nil {
		t.Fatalf("after MarkSendStarted: %+v, %v", first, err)
	}

	changed := *e
	changed.Lead.Title = "Too late"
	_, _, err = s.Save(ctx, &changed, edition.FormatText)
	if !errors.Is(err, edition.ErrSendStarted) {
		t.Fatalf("Save after send start: err = %v, want ErrSendStarted", err)
	}
	if want := "edition 2025-11-13 is already being sent; it can no longer be replaced"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	got, err := s.GetByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Edition.Lead.Title != e.Lead.Title || !reflect.DeepEqual(got.Edition, e) {
		t.Errorf("content changed after refusal: lead %q", got.Edition.Lead.Title)
	}

	// Marking again keeps the first start time.
	if err := edition.MarkSendStarted(ctx, s.DB, id, 0, ""); err != nil {
		t.Fatal(err)
	}
	again, err := s.GetByID(ctx, id)
	if err != nil || again.SendStartedAt == nil || !again.SendStartedAt.Equal(*first.SendStartedAt) {
		t.Errorf("second mark moved send_started_at: %v -> %v (%v)", first.SendStartedAt, again.SendStartedAt, err)
	}
}

func TestStoreNotFound(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Get(ctx, date(2030, 1, 1)); !errors.Is(err, edition.ErrNotFound) {
		t.Errorf("Get: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetByID(ctx, 4242); !errors.Is(err, edition.ErrNotFound) {
		t.Errorf("GetByID: err = %v, want ErrNotFound", err)
	}
	if err := edition.MarkSendStarted(ctx, s.DB, 4242, 0, ""); !errors.Is(err, edition.ErrNotFound) {
		t.Errorf("MarkSendStarted: err = %v, want ErrNotFound", err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want empty", list, err)
	}
}

func TestStoreSaveRefusesInvalid(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	bad := validEdition()
	bad.Lead.Title = "Lead\r\nBcc: everyone@example.com"
	if _, _, err := s.Save(ctx, bad, edition.FormatJSON); err == nil {
		t.Error("saved an edition with CR/LF in its lead title")
	}
	if _, _, err := s.Save(ctx, validEdition(), edition.Format("pdf")); err == nil {
		t.Error("saved with an unknown format")
	}
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want nothing stored", list, err)
	}
}

func TestStoreList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var ids []int64
	for i, d := range []time.Time{date(2025, 11, 12), date(2025, 11, 14), date(2025, 11, 13)} {
		e := validEdition()
		e.Date = d
		e.Lead.Title = "Lead of " + d.Format("Jan 2")
		id, _, err := s.Save(ctx, e, edition.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if i == 0 {
			if err := edition.MarkSendStarted(ctx, s.DB, id, 0, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sum := range list {
		got = append(got, sum.Date.Format(edition.DateLayout)+" "+sum.LeadTitle)
	}
	want := []string{"2025-11-14 Lead of Nov 14", "2025-11-13 Lead of Nov 13", "2025-11-12 Lead of Nov 12"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	if list[0].ID != ids[1] || list[2].ID != ids[0] || list[0].SendStartedAt != nil || list[2].SendStartedAt == nil {
		t.Errorf("List ids/send starts wrong: %+v", list)
	}
}

// Saves of the same new date at once: the losers of the insert race find
// the winner's row (with their content: Unchanged) instead of failing on
// the unique date. Several
// rounds, each released together on warm connections, so the race happens.
func TestStoreConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const n = 8
	s.DB.SetMaxIdleConns(n)
	for round := range 10 {
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			ids   [n]int64
			saved [n]edition.Saved
			errs  [n]error
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := validEdition()
				e.Date = date(2025, 12, 1+round)
				<-start
				ids[i], saved[i], errs[i] = s.Save(ctx, e, edition.FormatJSON)
			}()
		}
		close(start)
		wg.Wait()
		inserts := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, save %d: %v", round, i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Errorf("round %d: save %d got id %d, save 0 id %d", round, i, ids[i], ids[0])
			}
			if saved[i] == edition.Inserted {
				inserts++
			}
		}
		if inserts != 1 {
			t.Errorf("round %d: %d saves inserted, want exactly 1", round, inserts)
		}
	}
}

// The send-by deadline is fixed at the first start: a window after it, or
// NULL for none; marking again changes neither.
func TestSendByFixedAtFirstStart(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	sendBy := func(id int64) *time.Time {
		t.Helper()
		st, err := s.SendState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.SendBy
	}
	var none, hour int64
	for i, id := range []*int64{&none, &hour} {
		e := validEdition()
		e.Date = date(2025, 11, 12+i)
		var err error
		if *id, _, err = s.Save(ctx, e, edition.FormatJSON); err != nil {
			t.Fatal(err)
		}
	}
	if err := edition.MarkSendStarted(ctx, s.DB, none, 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := edition.MarkSendStarted(ctx, s.DB, hour, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if got := sendBy(none); got != nil {
		t.Errorf("window 0: send_by %v, want NULL (no deadline)", got)
	}
	st, err := s.SendState(ctx, hour)
	if err != nil {
		t.Fatal(err)
	}
	if st.SendBy == nil || st.SendBy.Sub(*st.StartedAt) != time.Hour {
		t.Fatalf("window 1h: send_by %v, started %v", st.SendBy, st.StartedAt)
	}
	// A rerun with another window keeps what the first start fixed.
	if err := edition.MarkSendStarted(ctx, s.DB, none, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if err := edition.MarkSendStarted(ctx, s.DB, hour, 0, ""); err != nil {
		t.Fatal(err)
	}
	if got := sendBy(none); got != nil {
		t.Errorf("marked again with a window: send_by %v, want still NULL", got)
	}
	if got := sendBy(hour); got == nil || !got.Equal(*st.SendBy) {
		t.Errorf("marked again without a window: send_by %v, want %v", got, st.SendBy)
	}
}
