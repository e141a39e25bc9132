package templates

import (
	"time"

	"newsletter/edition"
)

// The sample data Load checks the templates with. Between them the samples
// take both sides of every {{if}}/{{with}}/{{range}} in the built-in
// templates (a linked and an unlinked lead, every block kind, related
// headlines with and without links and none at all, optional fields set and
// empty), so a field an override misspells fails Load whichever branch it
// is in.

func sampleEditions() []*edition.Edition {
	date := time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC)
	full := &edition.Edition{
		Date: date,
		Site: edition.Site{Name: "Sample Daily", Tagline: "A sample tagline.", URL: "https://news.example.com/"},
		Lead: edition.Story{
			Title:   "Sample headline",
			URL:     "https://news.example.com/story",
			Summary: "A sample summary.",
			Body: []edition.Block{
				{Kind: edition.Paragraph, Text: "A first paragraph."},
				{Kind: edition.Caption, Text: "A caption."},
				{Kind: edition.Heading, Text: "A subhead"},
				{Kind: edition.Paragraph, Text: "A second paragraph."},
			},
		},
		Related: []edition.Story{
			{Title: "Linked headline", URL: "https://news.example.com/related"},
			{Title: "Unlinked headline"},
		},
	}
	bare := &edition.Edition{
		Date: date,
		Site: edition.Site{Name: "Sample Daily"},
		Lead: edition.Story{Title: "Sample headline"},
	}
	return []*edition.Edition{full, bare}
}

func sampleEditionData() []EditionData {
	return []EditionData{
		{
			BaseURL:       "https://news.example.com/newsletter",
			WebURL:        "https://news.example.com/newsletter/editions/2025-11-13",
			ListName:      "Sample Daily newsletter",
			Reason:        "A sample reason.",
			PostalAddress: "1 Sample Street, London",
		},
		{},
	}
}

func samplePages() map[string][]any {
	var views []any
	for _, e := range sampleEditions() {
		for _, d := range sampleEditionData() {
			views = append(views, newView(e, d))
		}
	}
	return map[string][]any{
		"edition.html": views,
		"unsubscribe.html": {
			UnsubscribePage{SiteName: "Sample Daily", Action: "/u/token", MaskedEmail: "a***@example.com"},
			UnsubscribePage{SiteName: "Sample Daily", Action: "/u/token"},
			UnsubscribePage{SiteName: "Sample Daily", Done: true},
			UnsubscribePage{SiteName: "Sample Daily", Done: true, ManageURL: "/u/token"},
			UnsubscribePage{SiteName: "Sample Daily", Action: "/u/token", MaskedEmail: "a***@example.com", Pending: true,
				CSRF: "csrf", ManageURL: "/u/token", ResubscribeAction: "/u/token/resubscribe", NameAction: "/u/token/name", EmailAction: "/u/token/email",
				Name: "Ada", NewEmail: "new@example", NameError: "A sample error.", EmailError: "A sample error.", Notice: "A sample notice."},
			UnsubscribePage{SiteName: "Sample Daily", Action: "/u/token", Left: true, CSRF: "csrf", ManageURL: "/u/token",
				ResubscribeAction: "/u/token/resubscribe", NameAction: "/u/token/name", EmailAction: "/u/token/email"},
			UnsubscribePage{SiteName: "Sample Daily", Action: "/u/token", MaskedEmail: "a***@example.com", Left: true, CSRF: "csrf", Done: true,
				ResubscribeAction: "/u/token/resubscribe"},
		},
		"message.html": {
			MessagePage{SiteName: "Sample Daily", Title: "Sample title", Message: "A sample message."},
			MessagePage{SiteName: "Sample Daily", Title: "Sample title", Message: "A sample message.", LinkURL: "/subscribe", LinkText: "A sample link"},
		},
		"subscribe.html": {
			SubscribePage{SiteName: "Sample Daily", Action: "/subscribe", CSRF: "csrf", ArchiveURL: "/editions"},
			SubscribePage{SiteName: "Sample Daily", Action: "/subscribe", CSRF: "csrf", Email: "ada@example", Name: "Ada", Error: "A sample error.", NameError: "A sample error."},
		},
		"confirm.html": {
			ConfirmPage{SiteName: "Sample Daily", Action: "/confirm/token", CSRF: "csrf", MaskedEmail: "a***@example.com"},
			ConfirmPage{SiteName: "Sample Daily", Action: "/confirm/token", CSRF: "csrf", MaskedEmail: "a***@example.com", ChangeAddress: true},
		},
		"archive.html": {
			ArchivePage{SiteName: "Sample Daily", BaseURL: "/newsletter", Editions: []ArchiveEntry{{Date: time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC), Title: "Sample headline"}}},
			ArchivePage{SiteName: "Sample Daily"},
		},
	}
}

func sampleConfirmEmails() []ConfirmEmail {
	return []ConfirmEmail{
		{SiteName: "Sample Daily", Name: "Ada", Email: "ada@example.com", ConfirmURL: "https://news.example.com/confirm/token", ValidFor: "7 days", BaseURL: "https://news.example.com"},
		{SiteName: "Sample Daily", Email: "ada@example.com", ConfirmURL: "https://news.example.com/confirm/token", ValidFor: "7 days", ChangeAddress: true},
	}
}
