package main

import (
	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/newsroom"
	"newsletter/subscribers"
)

// room is the newsroom's operations with this process's settings: the
// command line, the JSON API and the desk share them.
func (a *app) room(subs *subscribers.Store) *newsroom.Room {
	if subs == nil {
		subs = &subscribers.Store{DB: a.db, Tokens: a.cfg.tokens, Confirm: a.cfg.confirm}
	}
	return &newsroom.Room{
		DB:          a.db,
		Editions:    &edition.Store{DB: a.db},
		Queue:       &delivery.Queue{DB: a.db},
		Subscribers: subs,
		Compose:     func(ed *edition.Edition) (*delivery.Composer, error) { return a.composer(ed, subs) },
		Fetch:       a.importURL,
		SMTP:        a.cfg.smtp,
		FromDomain:  a.cfg.fromDomain(),
		BaseURL:     a.cfg.baseURL,
		SendWindow:  a.cfg.sendWindow,
		Location:    a.cfg.location,
		Log:         a.log,
	}
}
