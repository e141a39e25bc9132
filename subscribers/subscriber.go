// Package subscribers owns the people on the list: their addresses and
// names, their status, the tokens in their links, and the import of a list.
package subscribers

import (
	"errors"
	"fmt"
	"time"
)

// Status is where a subscriber stands. Only confirmed subscribers are sent
// editions.
type Status string

const (
	Pending      Status = "pending"
	Confirmed    Status = "confirmed"
	Unsubscribed Status = "unsubscribed"
	Bounced      Status = "bounced"
)

// ParseStatus accepts the statuses a person or a CSV may set. Bounced is
// set by delivery only.
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case Pending, Confirmed, Unsubscribed:
		return st, nil
	}
	return "", fmt.Errorf("status %q: want pending, confirmed or unsubscribed", s)
}

// Subscriber is one row of the subscribers table.
type Subscriber struct {
	ID             int64      `db:"id" json:"id"`
	UUID           string     `db:"uuid" json:"uuid"`
	Email          string     `db:"email" json:"email"`
	Name           string     `db:"name" json:"name"`
	Status         Status     `db:"status" json:"status"`
	CreatedAt      time.Time  `db:"created_at" json:"created_at"`
	UpdatedAt      time.Time  `db:"updated_at" json:"updated_at"`
	ConfirmedAt    *time.Time `db:"confirmed_at" json:"confirmed_at"`
	UnsubscribedAt *time.Time `db:"unsubscribed_at" json:"unsubscribed_at"`
}

var (
	// ErrNotFound: no subscriber matches.
	ErrNotFound = errors.New("subscriber not found")
	// ErrExists: the address is already on the list.
	ErrExists = errors.New("subscriber already exists")
	// ErrSuppressed: the address is on the suppression list (erased on
	// its owner's request, bounced, complained, or put there by hand) and
	// may come back only through the form's double opt-in.
	ErrSuppressed = errors.New("the address is suppressed (on the suppression list: `newsletter suppression list`); only the person can sign up again, on the form")
)
