package newsroom

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"newsletter/edition"
)

// Edit changes the subject line, the preheader or the related headlines
// (their order, and which are shown) of st's edition before its send; the
// audit entry "edit" names what changed. A value that is not fit is an
// *InvalidError naming the field, and a send that started is a conflict
// (edition.ErrSendStarted); either way nothing changes. It returns the
// edition as it now is.
func (r *Room) Edit(ctx context.Context, a Actor, st *edition.Stored, ed edition.Edit) (*edition.Stored, error) {
	date := st.Edition.DateString()
	shown := len(st.Edition.Related)
	after, err := r.Editions.Edit(ctx, st.Edition.Date, ed)
	var fe *edition.FieldError
	switch {
	case errors.As(err, &fe):
		return nil, &InvalidError{Field: fe.Field, Err: errors.New(fe.Reason)}
	case errors.Is(err, edition.ErrNoChange):
		return nil, &InvalidError{Field: "body", Err: edition.ErrNoChange}
	case err != nil:
		return nil, err
	}
	if err := r.audit(ctx, a, "edit", date, editDetail(ed, shown)); err != nil {
		return nil, err
	}
	return after, nil
}

// editDetail says what an edit changed, for the audit record.
func editDetail(ed edition.Edit, shown int) string {
	var parts []string
	if ed.Subject != nil {
		parts = append(parts, "subject "+strconv.Quote(strings.TrimSpace(*ed.Subject)))
	}
	if ed.Preheader != nil {
		if p := strings.TrimSpace(*ed.Preheader); p == "" {
			parts = append(parts, "preheader back to the lead's")
		} else {
			parts = append(parts, "preheader "+strconv.Quote(p))
		}
	}
	if ed.Related != nil {
		order := make([]string, len(ed.Related))
		for i, n := range ed.Related {
			order[i] = strconv.Itoa(n)
		}
		parts = append(parts, fmt.Sprintf("related headlines [%s] of %d shown (%d dropped)",
			strings.Join(order, ","), shown, shown-len(ed.Related)))
	}
	return strings.Join(parts, "; ")
}

// edited tells whether date's edition has an editor's edits, which saving
// other content clears (edition.Edits). Read before the save, it can miss
// an edit made in between; it is for telling the importer, not a guard.
func (r *Room) edited(ctx context.Context, date string) (bool, error) {
	d, err := edition.ParseDate(date)
	if err != nil {
		return false, err
	}
	v, err := r.Editions.Version(ctx, d)
	if errors.Is(err, edition.ErrNotFound) {
		return false, nil
	}
	return err == nil && v.EditedAt != nil, err
}
