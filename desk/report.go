package desk

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/html"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/newsroom"
)

// GmailClip is the size of a message's HTML past which Gmail shows only
// its start and a "[Message clipped]" link, hiding the rest (and the
// unsubscribe footer).
const GmailClip = 102 * 1024

// preview is what the edition page shows of the message a subscriber gets.
type preview struct {
	Text      string
	Headers   []header
	Size      int // the whole message
	HTMLSize  int
	Clipped   bool
	NoAltImgs []string // the src of each image without an alt attribute
}

type header struct{ Name, Value string }

func (d *Desk) preview(ed *edition.Edition) (*preview, error) {
	eml, err := d.Room.Preview(ed, newsroom.PreviewEML)
	if err != nil {
		return nil, err
	}
	htm, err := d.Room.Preview(ed, newsroom.PreviewHTML)
	if err != nil {
		return nil, err
	}
	text, err := d.Room.Preview(ed, newsroom.PreviewText)
	if err != nil {
		return nil, err
	}
	p := &preview{Text: string(text), Size: len(eml), HTMLSize: len(htm), Clipped: len(htm) > GmailClip, NoAltImgs: imagesWithoutAlt(htm)}
	m, err := mail.ReadMessage(bytes.NewReader(eml))
	if err != nil {
		return nil, fmt.Errorf("read the previewed message: %w", err)
	}
	for name, vs := range m.Header {
		for _, v := range vs {
			p.Headers = append(p.Headers, header{name, v})
		}
	}
	sort.Slice(p.Headers, func(i, j int) bool { return p.Headers[i].Name < p.Headers[j].Name })
	return p, nil
}

// imagesWithoutAlt lists the images a screen reader, or a mail client
// blocking images, has nothing to say for. An empty alt marks an image as
// decoration, which is fine.
func imagesWithoutAlt(htm []byte) []string {
	var out []string
	z := html.NewTokenizer(bytes.NewReader(htm))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		if t := z.Token(); t.Data == "img" {
			src, alt := "", false
			for _, a := range t.Attr {
				switch a.Key {
				case "src":
					src = a.Val
				case "alt":
					alt = true
				}
			}
			if !alt {
				out = append(out, src)
			}
		}
	}
}

// failureGroup is the failed deliveries that got one answer.
type failureGroup struct {
	Permanent bool
	Reply     string
	Count     int64
}

// failures groups the edition's failed deliveries by the server's answer;
// a pruned send has only its summary's counts by code.
func (d *Desk) failures(ctx context.Context, id int64, rep *newsroom.Report) ([]failureGroup, error) {
	if rep.Pruned {
		var out []failureGroup
		for _, f := range rep.Failures {
			out = append(out, failureGroup{Permanent: f.Permanent, Reply: strings.TrimSpace(strconv.Itoa(f.Code) + " " + f.Enhanced), Count: f.Count})
		}
		return out, nil
	}
	groups := map[failureGroup]int64{}
	err := d.Room.Queue.EachUndelivered(ctx, id, func(u delivery.Undelivered) error {
		if u.Status != "failed" {
			return nil
		}
		g := failureGroup{Permanent: u.Permanent != nil && *u.Permanent, Reply: "no answer (connection failed)"}
		if u.Reply != nil {
			g.Reply = *u.Reply
		}
		groups[g]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]failureGroup, 0, len(groups))
	for g, n := range groups {
		g.Count = n
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out, nil
}

// progress is the small answer the edition page polls while it sends.
type progress struct {
	State     string  `json:"state"`
	Total     int64   `json:"total"`
	Sent      int64   `json:"sent"`
	Failed    int64   `json:"failed"`
	Remaining int64   `json:"remaining"`
	Percent   float64 `json:"percent"`
	Rate      float64 `json:"rate"`
	ETA       string  `json:"eta"`
}

func (d *Desk) status(w http.ResponseWriter, r *http.Request, _ *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	rep, err := d.Room.Status(r.Context(), st)
	if err != nil {
		return err
	}
	c := rep.Counts
	p := progress{State: rep.State, Total: c.Total, Sent: c.Sent, Failed: rep.Failed, Remaining: c.Queued + c.Sending,
		Percent: rep.PercentDone, Rate: rep.Rate}
	if rep.EstimatedFinish != nil {
		p.ETA = rep.EstimatedFinish.In(d.location()).Format("15:04:05")
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(p)
}

func (d *Desk) location() *time.Location {
	if d.Room.Location != nil {
		return d.Room.Location
	}
	return time.UTC
}

// undeliveredCSV is every recipient of the edition not sent, with why.
func (d *Desk) undeliveredCSV(w http.ResponseWriter, r *http.Request, _ *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="undelivered-`+st.Edition.DateString()+`.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"email", "status", "permanent", "attempts", "smtp_code", "smtp_enhanced", "reply"})
	err = d.Room.Queue.EachUndelivered(r.Context(), st.ID, func(u delivery.Undelivered) error {
		rec := []string{u.Email, u.Status, "", strconv.Itoa(u.Attempts), "", "", ""}
		if u.Permanent != nil {
			rec[2] = strconv.FormatBool(*u.Permanent)
		}
		if u.Code != nil {
			rec[4] = strconv.Itoa(*u.Code)
		}
		if u.Enhanced != nil {
			rec[5] = *u.Enhanced
		}
		if u.Reply != nil {
			rec[6] = *u.Reply
		}
		for i, v := range rec {
			rec[i] = cell(v)
		}
		return cw.Write(rec)
	})
	cw.Flush()
	return err
}

// cell keeps a spreadsheet from reading a value as a formula: an address
// or a server's reply may start with '=', '+', '-' or '@' (OWASP's CSV
// injection advice: prefix a quote).
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
