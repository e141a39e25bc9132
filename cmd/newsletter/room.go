package main

import (
	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/newsroom"
	"newsletter/subscribers"
	"newsletter/templates"
)

// room is the newsroom's operations with this process's settings: the
// command line, the JSON API and the desk share them.
func (a *app) room(subs *subscribers.Store) *newsroom.Room {
	if subs == nil {
		subs = &subscribers.Store{DB: a.db, Tokens: a.cfg.tokens, Confirm: a.cfg.confirm}
	}
	fromDomain := ""
	if a.cfg.fromAddr != nil { // not every subcommand reads NEWSLETTER_FROM
		fromDomain = a.cfg.fromDomain()
	}
	return &newsroom.Room{
		DB:          a.db,
		Editions:    &edition.Store{DB: a.db},
		Queue:       &delivery.Queue{DB: a.db},
		Subscribers: subs,
		Render: func(ed *edition.Edition) (*templates.Rendered, error) {
			return a.tpl.RenderEdition(ed, a.cfg.editionData(ed))
		},
		Compose:    func(ed *edition.Edition) (*delivery.Composer, error) { return a.composer(ed, subs) },
		Fetch:      a.importURL,
		SMTP:       a.cfg.smtp,
		FromDomain: fromDomain,
		BaseURL:    a.cfg.baseURL,
		SendWindow: a.cfg.sendWindow,
		Location:   a.cfg.location,
		Log:        a.log,
	}
}
