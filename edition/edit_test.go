package edition_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"newsletter/edition"
)

func ptr(s string) *string { return &s }

// An edit shows in every read of the edition; a second edit's indexes are
// the headlines as the first left them; the imported content stays as it
// was, so the same page again is Unchanged and keeps the edit, and other
// content replaces it and clears the edit.
func TestEdit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	e, _ := parseFile(t, seedPath, edition.ParseOptions{})
	day := e.Date
	id, _, err := s.Save(ctx, e, edition.FormatText)
	if err != nil {
		t.Fatal(err)
	}
	orig := titles(e.Related)
	if len(orig) < 4 {
		t.Fatalf("the seed has %d related stories; the test needs 4", len(orig))
	}
	v0, err := s.Version(ctx, day)
	if err != nil || v0.EditedAt != nil {
		t.Fatalf("Version before any edit = %+v, %v", v0, err)
	}

	st, err := s.Edit(ctx, day, edition.Edit{Subject: ptr("  Storm warning  "), Preheader: ptr("Read this first"), Related: []int{3, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{orig[3], orig[0], orig[1]}
	if got := titles(st.Edition.Related); !reflect.DeepEqual(got, want) {
		t.Errorf("related after the edit = %q, want %q", got, want)
	}
	if st.Edition.Subject() != "Storm warning" || st.Edition.Edits.Preheader != "Read this first" || st.EditedAt == nil {
		t.Errorf("edited: subject %q, edits %+v, edited at %v", st.Edition.Subject(), st.Edition.Edits, st.EditedAt)
	}
	got, err := s.GetByID(ctx, id)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Errorf("GetByID = %+v, %v; want what Edit returned %+v", got, err, st)
	}
	if v, err := s.Version(ctx, day); err != nil || v.Same(v0) || v.EditedAt == nil {
		t.Errorf("Version after the edit = %+v, %v: want a new version", v, err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 1 || list[0].Subject != "Storm warning" {
		t.Errorf("List = %+v, %v", list, err)
	}

	// By the current numbers: [3 0 1] -> drop the first and swap.
	st, err = s.Edit(ctx, day, edition.Edit{Related: []int{2, 1}, Preheader: ptr("")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := titles(st.Edition.Related), []string{orig[1], orig[0]}; !reflect.DeepEqual(got, want) {
		t.Errorf("related after the second edit = %q, want %q", got, want)
	}
	if st.Edition.Edits.Preheader != "" || st.Edition.Subject() != "Storm warning" {
		t.Errorf("the second edit: edits %+v", st.Edition.Edits)
	}

	// The same content again: unchanged, and the edit stays.
	if _, saved, err := s.Save(ctx, e, edition.FormatText); err != nil || saved != edition.Unchanged {
		t.Fatalf("re-import = %v, %v; want unchanged", saved, err)
	}
	if again, err := s.Get(ctx, day); err != nil || !reflect.DeepEqual(again, st) {
		t.Errorf("after an unchanged re-import: %+v, %v; want %+v", again, err, st)
	}

	// Dropping them all.
	st, err = s.Edit(ctx, day, edition.Edit{Related: []int{}})
	if err != nil || len(st.Edition.Related) != 0 || st.Edition.Edits.Related == nil {
		t.Fatalf("drop all: %+v, %v", st, err)
	}

	// Other content: replaced, the edits gone with the content they were for.
	changed := *e
	changed.Lead.Title = "Corrected headline"
	if _, saved, err := s.Save(ctx, &changed, edition.FormatText); err != nil || saved != edition.Replaced {
		t.Fatalf("re-import of other content = %v, %v; want replaced", saved, err)
	}
	st, err = s.Get(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if st.EditedAt != nil || !reflect.DeepEqual(st.Edition.Edits, edition.Edits{}) || !reflect.DeepEqual(titles(st.Edition.Related), orig) ||
		st.Edition.Subject() != e.Site.Name+": Corrected headline" {
		t.Errorf("after replacing: edited at %v, edits %+v, related %q, subject %q", st.EditedAt, st.Edition.Edits, titles(st.Edition.Related), st.Edition.Subject())
	}
}

// A refused edit names its field and changes nothing; once the send
// started every edit is refused.
func TestEditRefused(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	e, _ := parseFile(t, seedPath, edition.ParseOptions{})
	day := e.Date
	id, _, err := s.Save(ctx, e, edition.FormatText)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Edit(ctx, day, edition.Edit{Subject: ptr("First"), Related: []int{1, 0}}); err != nil {
		t.Fatal(err)
	}
	before, err := s.Get(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	n := len(before.Edition.Related)
	for _, c := range []struct {
		edit  edition.Edit
		field string
	}{
		{edition.Edit{Subject: ptr("")}, "subject"},
		{edition.Edit{Subject: ptr("   ")}, "subject"},
		{edition.Edit{Subject: ptr("Two lines\r\nBcc: evil@example.com")}, "subject"},
		{edition.Edit{Subject: ptr("Tab\there")}, "subject"},
		{edition.Edit{Subject: ptr("Line\u2028separator")}, "subject"},
		{edition.Edit{Subject: ptr("bad \xff UTF-8")}, "subject"},
		{edition.Edit{Subject: ptr(strings.Repeat("é", edition.MaxSubject+1))}, "subject"},
		{edition.Edit{Preheader: ptr("a\nb")}, "preheader"},
		{edition.Edit{Preheader: ptr(strings.Repeat("x", edition.MaxPreheader+1))}, "preheader"},
		{edition.Edit{Related: []int{n}}, "related"},
		{edition.Edit{Related: []int{-1}}, "related"},
		{edition.Edit{Related: []int{0, 1, 0}}, "related"},
		// A good field does not carry a bad one through.
		{edition.Edit{Subject: ptr("Fine"), Related: []int{0, 0}}, "related"},
	} {
		_, err := s.Edit(ctx, day, c.edit)
		var fe *edition.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Reason == "" {
			t.Errorf("Edit(%+v) = %v; want a FieldError on %q", c.edit, err, c.field)
		}
	}
	if _, err := s.Edit(ctx, day, edition.Edit{}); !errors.Is(err, edition.ErrNoChange) {
		t.Errorf("an empty edit: %v", err)
	}
	if after, err := s.Get(ctx, day); err != nil || !reflect.DeepEqual(after, before) {
		t.Errorf("refused edits changed the edition:\n%+v\nwant\n%+v", after, before)
	}
	if _, err := s.Edit(ctx, date(2025, 1, 1), edition.Edit{Subject: ptr("x")}); !errors.Is(err, edition.ErrNotFound) {
		t.Errorf("edit of a missing edition: %v", err)
	}
	// Edits at the limits are fine.
	if _, err := s.Edit(ctx, day, edition.Edit{Subject: ptr(strings.Repeat("é", edition.MaxSubject)), Preheader: ptr(strings.Repeat("x", edition.MaxPreheader))}); err != nil {
		t.Errorf("an edit at the limits: %v", err)
	}
	before, _ = s.Get(ctx, day)

	if err := edition.MarkSendStarted(ctx, s.DB, id, 0, ""); err != nil {
		t.Fatal(err)
	}
	for _, ed := range []edition.Edit{{Subject: ptr("Too late")}, {Preheader: ptr("")}, {Related: []int{0}}} {
		if _, err := s.Edit(ctx, day, ed); !errors.Is(err, edition.ErrSendStarted) || !strings.Contains(err.Error(), "can no longer be edited") {
			t.Errorf("Edit(%+v) after the send started = %v; want ErrSendStarted", ed, err)
		}
	}
	after, err := s.Get(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	after.SendStartedAt = nil
	if !reflect.DeepEqual(after, before) {
		t.Errorf("a refused edit changed the edition:\n%+v\nwant\n%+v", after, before)
	}
}
