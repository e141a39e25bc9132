package edition_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"newsletter/edition"
)

const seedPath = "../demo/london-daily-2025-11-13.txt"

func parseFile(t *testing.T, path string, opts edition.ParseOptions) (*edition.Edition, edition.Format) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e, f, err := edition.Parse(data, opts)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return e, f
}

func blocksOf(s edition.Story, kind edition.BlockKind) []string {
	var out []string
	for _, b := range s.Body {
		if b.Kind == kind {
			out = append(out, b.Text)
		}
	}
	return out
}

func titles(stories []edition.Story) []string {
	out := make([]string, len(stories))
	for i, s := range stories {
		out[i] = s.Title
	}
	return out
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// seedRelated is the seed page's list of related headlines, in page order.
var seedRelated = []string{
	"UK Upholds Firm Rules on Stablecoins to Shield Financial System",
	"Brussels Divided as UK-EU Reset Stalls Over Budget Access",
	"Prince Harry’s Remembrance Day Essay Expresses Strong Regret at Leaving Britain",
	"UK Unemployment Hits 5% as Wage Growth Slows, Paving Way for Bank of England Rate Cut",
	"Starmer Warns of Resurgent Racism in UK Politics as He Vows Child-Poverty Reforms",
	"UK Grocery Inflation Slows to 4.7% as Supermarkets Launch Pre-Christmas Promotions",
	"UK Government Backs the BBC amid Editing Scandal and Trump Threat of Legal Action",
	"UK Assessment Mis-Estimated Fallout From Palestine Action Ban, Records Reveal",
	"UK Halts Intelligence Sharing with US Amid Lethal Boat-Strike Concerns",
	"King Charles III Leads Britain in Remembrance Sunday Tribute to War Dead",
	"UK Retail Sales Growth Slows as Households Hold Back Ahead of Black Friday and Budget",
	"Shell Pulls Out of Two UK Floating Wind Projects Amid Renewables Retreat",
	"Viagogo Hit With £15 Million Tax Bill After HMRC Transfer-Pricing Inquiry",
	"Jaguar Land Rover Cyberattack Pinches UK GDP, Bank of England Says",
	"UK and Germany Sound Alarm on Russian-Satellite Threat to Critical Infrastructure",
	"Former Prince Andrew Faces U.S. Congressional Request for Testimony Amid Brexit of Royal Title",
	"BBC Director-General Tim Davie and News CEO Deborah Turness Resign Amid Editing Controversy",
	"Tom Cruise Arrives by Helicopter at UK Scientology Fundraiser Amid Local Protests",
	"Prince Andrew and Sarah Ferguson Face Fresh UK Probes Amid Royal Fallout",
	"Mothers Link Teen Suicides to AI Chatbots in Growing Legal Battle",
	"UK Government to Mirror Denmark’s Tough Immigration Framework in Major Policy Shift",
	"UK Government Turns to Denmark-Style Immigration Reforms to Overhaul Border Rules",
	"UK Chancellor Warned Against Cutting Insulation Funding as Budget Looms",
	"UK Tenant Complaints Hit Record Levels as Rental Sector Faces Mounting Pressure",
	"Apple to Pay Google About One Billion Dollars Annually for Gemini AI to Power Next-Generation Siri",
	"UK Signals Major Shift as Nuclear Arms Race Looms",
	"BBC’s « Celebrity Traitors UK » Finale Breaks Records with 11.1 Million Viewers",
	"UK Spy Case Collapse Highlights Implications for UK-Taiwan Strategic Alignment",
	"On the Road to the Oscars? Meghan Markle to Star in a New Film",
	"A Vote Worth a Trillion Dollars: Elon Musk’s Defining Day",
	"AI Researchers Claim Human-Level General Intelligence Is Already Here",
	"President Donald Trump Challenges Nigeria with Military Options Over Alleged Christian Killings",
	"Nancy Pelosi Finally Announces She Will Not Seek Re-Election, Signalling End of Long Congressional Career",
	"UK Pre-Budget Blues and Rate-Cut Concerns Pile Pressure on Pound",
	"ITV Warns of Nine-Per-Cent Drop in Q4 Advertising Revenue Amid Budget Uncertainty",
	"National Grid Posts Slightly Stronger-Than-Expected Half-Year Profit as Regulatory Investments Drive Growth",
	"UK Business Lobby Urges Reeves to Break Tax Pledges and Build Fiscal Headroom",
	"UK to Launch Consultation on Stablecoin Regulation on November 10",
	"UK Savers Rush to Withdraw Pension Cash Ahead of Budget Amid Tax-Change Fears",
	"Massive Spoilers Emerge from MAFS UK 2025: Couple Swaps, Dating App Leaks and Reunion Bombshells",
	"Kurdish-led Crime Network Operates UK Mini-Marts to Exploit Migrants and Sell Illicit Goods",
	"UK Income Tax Hike Could Trigger £1 Billion Cut to Scotland’s Budget, Warns Finance Secretary",
	"Tommy Robinson Acquitted of Terror-related Charge After Phone PIN Dispute",
	"Boris Johnson Condemns Western Support for Hamas at Jewish Community Conference",
	"HII Welcomes UK’s Westley Group to Strengthen AUKUS Submarine Supply Chain",
	"Tragedy in Serbia: Coach Mladen Žižović Collapses During Match and Dies at 44",
	"Diplo Says He Dated Katy Perry — and Justin Trudeau",
	"Dick Cheney, Former U.S. Vice President, Dies at 84",
	"Trump Calls Title Removal of Andrew ‘Tragic Situation’ Amid Royal Fallout",
	"UK Bonds Rally as Chancellor Reeves Briefs Markets Ahead of November Budget",
}

const seedLead = "Russia and Belarus hold military drills as migrant crisis on EU border grows"

func TestParseSeed(t *testing.T) {
	e, f := parseFile(t, seedPath, edition.ParseOptions{})
	if f != edition.FormatText {
		t.Errorf("format = %q, want text", f)
	}
	if e.Site.Name != "London Daily" || e.Site.Tagline != "Focus on the big picture." || e.Site.URL != "" {
		t.Errorf("site = %+v", e.Site)
	}
	if !e.Date.Equal(date(2025, 11, 13)) || e.Date.Location() != time.UTC {
		t.Errorf("date = %v, want 2025-11-13 midnight UTC", e.Date)
	}
	if e.Lead.Title != seedLead {
		t.Errorf("lead title = %q", e.Lead.Title)
	}
	if e.Subject() != "London Daily: "+seedLead {
		t.Errorf("subject = %q", e.Subject())
	}
	if e.Lead.URL != "" || e.Related[0].URL != "" {
		t.Errorf("without a site URL no links can be built, got %q, %q", e.Lead.URL, e.Related[0].URL)
	}

	// The page repeats the headline as the body's first block: dropped.
	for _, b := range e.Lead.Body {
		if b.Text == seedLead {
			t.Errorf("the duplicate headline was kept as a %s block", b.Kind)
		}
	}
	paras := blocksOf(e.Lead, edition.Paragraph)
	if len(paras) != 27 {
		t.Errorf("%d paragraphs, want 27", len(paras))
	}
	if want := "Russia and Belarus flexed their military might for a third time this week near the Poland-Belarus border, where thousands of people are stranded in deplorable conditions, trapped at the center of an intensifying humanitarian and geopolitical crisis."; e.Lead.Body[0] != (edition.Block{Kind: edition.Paragraph, Text: want}) {
		t.Errorf("first block = %+v,\nwant the paragraph %q", e.Lead.Body[0], want)
	}
	if want := "As the standoff continues, people keep on coming. Belarusian authorities estimate that the number of migrant arrivals to the border could swell to 10,000 in the upcoming weeks if the situation isn't resolved."; e.Lead.Body[len(e.Lead.Body)-1] != (edition.Block{Kind: edition.Paragraph, Text: want}) {
		t.Errorf("last block = %+v,\nwant the paragraph %q", e.Lead.Body[len(e.Lead.Body)-1], want)
	}

	// A paragraph followed by two blank lines is a caption. The page has
	// four such blocks, but one is the subheading "'This will not
	// succeed'": three captions.
	wantCaptions := []string{
		"A group of migrants walk along the Belarusian-Polish border in Belarus' Grodno region on November 12, 2021.",
		"Russian President Vladimir Putin (L) and Belarusian leader Alexander Lukashenko shake hands in Sochi, Russia, earlier this year.",
		"Migrants gather to receive humanitarian aid in a camp on the Belarusian-Polish border in Belarus' Grodno region on November 12, 2021.",
	}
	if got := blocksOf(e.Lead, edition.Caption); !slices.Equal(got, wantCaptions) {
		t.Errorf("captions =\n%q\nwant\n%q", got, wantCaptions)
	}
	if got, want := blocksOf(e.Lead, edition.Heading), []string{"'This will not succeed'", "The human cost"}; !slices.Equal(got, want) {
		t.Errorf("headings = %q, want %q", got, want)
	}
	// Where they sit: the heading right before its caption, and the
	// subheading right after the second caption.
	pos := func(text string) int {
		return slices.IndexFunc(e.Lead.Body, func(b edition.Block) bool { return b.Text == text })
	}
	if pos("The human cost")+1 != pos(wantCaptions[2]) || pos(wantCaptions[1])+1 != pos("'This will not succeed'") {
		t.Errorf("headings out of place: %v", e.Lead.Body)
	}
	if n := len(e.Lead.Body); n != 27+3+2 {
		t.Errorf("%d blocks, want 32", n)
	}

	if got := titles(e.Related); !slices.Equal(got, seedRelated) {
		t.Errorf("related headlines (%d) =\n%q\nwant (%d)\n%q", len(got), got, len(seedRelated), seedRelated)
	}
	if len(e.Related) != 50 || e.Related[0].Title != "UK Upholds Firm Rules on Stablecoins to Shield Financial System" ||
		e.Related[49].Title != "UK Bonds Rally as Chancellor Reeves Briefs Markets Ahead of November Budget" {
		t.Errorf("related: %d, first %q, last %q", len(e.Related), e.Related[0].Title, e.Related[len(e.Related)-1].Title)
	}

	// Page furniture appears nowhere.
	furniture := []string{"Newsletter", "Related Articles", "0:00", "Close", "×"}
	check := func(where, text string) {
		if slices.Contains(furniture, text) {
			t.Errorf("furniture %q kept as %s", text, where)
		}
	}
	for _, b := range e.Lead.Body {
		check("a "+string(b.Kind), b.Text)
	}
	for _, s := range e.Related {
		check("a related headline", s.Title)
	}
	check("the lead title", e.Lead.Title)
	check("the tagline", e.Site.Tagline)
}

func TestParseSeedSlugLinks(t *testing.T) {
	e, _ := parseFile(t, seedPath, edition.ParseOptions{SiteURL: "https://london-daily.example/news/"})
	if e.Site.URL != "https://london-daily.example/news/" {
		t.Errorf("site URL = %q", e.Site.URL)
	}
	want := map[string]string{
		seedLead: "https://london-daily.example/news/russia-and-belarus-hold-military-drills-as-migrant-crisis-on-eu-border-grows",
		// Apostrophes vanish, accents fold, other punctuation is one dash.
		"Prince Harry’s Remembrance Day Essay Expresses Strong Regret at Leaving Britain": "https://london-daily.example/news/prince-harrys-remembrance-day-essay-expresses-strong-regret-at-leaving-britain",
		"Tragedy in Serbia: Coach Mladen Žižović Collapses During Match and Dies at 44":   "https://london-daily.example/news/tragedy-in-serbia-coach-mladen-zizovic-collapses-during-match-and-dies-at-44",
		"BBC’s « Celebrity Traitors UK » Finale Breaks Records with 11.1 Million Viewers": "https://london-daily.example/news/bbcs-celebrity-traitors-uk-finale-breaks-records-with-11-1-million-viewers",
		// Over 80 characters: cut at the last word boundary before.
		"Nancy Pelosi Finally Announces She Will Not Seek Re-Election, Signalling End of Long Congressional Career": "https://london-daily.example/news/nancy-pelosi-finally-announces-she-will-not-seek-re-election-signalling-end-of",
	}
	found := 0
	for _, s := range append([]edition.Story{e.Lead}, e.Related...) {
		if s.URL == "" {
			t.Errorf("%q has no link", s.Title)
		}
		if w, ok := want[s.Title]; ok {
			found++
			if s.URL != w {
				t.Errorf("%q: URL = %q, want %q", s.Title, s.URL, w)
			}
		}
		if slug := s.URL[strings.LastIndex(s.URL, "/")+1:]; len(slug) > 80 {
			t.Errorf("slug %q is %d characters long", slug, len(slug))
		}
	}
	if found != len(want) {
		t.Errorf("checked %d of %d titles", found, len(want))
	}
}

// page builds a small text page around a body and related lines.
func page(lead, body string, related ...string) string {
	return "Harbour Gazette\n\nNews from the waterfront.\n2025-11-13\n\n" + lead + "\n\n" + body +
		"\n\nRelated Articles\n\n" + strings.Join(related, "\n") + "\n"
}

func TestParseTextRelatedLinks(t *testing.T) {
	src := page("Ferry strike ends | https://gazette.example/ferry", "Crews voted on Thursday.",
		"Ferry timetable changes from Monday | https://gazette.example/timetable?from=monday",
		"Harbour wall repairs begin in spring https://gazette.example/wall",
		"Fish market reopens for the winter | javascript:alert(1)",
		"Lifeboat crew honoured for rescue | data:text/html,<script>alert(1)</script>",
		"Sport | Harbour regatta results are in",
		"Council meeting moved to Tuesday",
	)
	e, _, err := edition.Parse([]byte(src), edition.ParseOptions{SiteURL: "https://gazette.example"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Lead.Title != "Ferry strike ends" || e.Lead.URL != "https://gazette.example/ferry" {
		t.Errorf("lead = %q %q", e.Lead.Title, e.Lead.URL)
	}
	want := []edition.Story{
		{Title: "Ferry timetable changes from Monday", URL: "https://gazette.example/timetable?from=monday"},
		{Title: "Harbour wall repairs begin in spring", URL: "https://gazette.example/wall"},
		// Unsafe links are dropped, not kept in the title: slug links instead.
		{Title: "Fish market reopens for the winter", URL: "https://gazette.example/fish-market-reopens-for-the-winter"},
		{Title: "Lifeboat crew honoured for rescue", URL: "https://gazette.example/lifeboat-crew-honoured-for-rescue"},
		// A pipe not followed by a link is part of the title.
		{Title: "Sport | Harbour regatta results are in", URL: "https://gazette.example/sport-harbour-regatta-results-are-in"},
		{Title: "Council meeting moved to Tuesday", URL: "https://gazette.example/council-meeting-moved-to-tuesday"},
	}
	if !reflect.DeepEqual(e.Related, want) {
		t.Errorf("related =\n%+v\nwant\n%+v", e.Related, want)
	}
}

func TestParseTextMarkupAndLineBreaksInHeadline(t *testing.T) {
	// A CRLF file whose headline has a stray CR, then a stray LF, in it.
	for _, brk := range []string{"\r", "\n", "\r\n"} {
		src := strings.ReplaceAll(page("Council <script>alert(1)</script>{BR}bans \t barbecues", "Crews voted,{BR}then went home."), "\n", "\r\n")
		src = strings.ReplaceAll(src, "{BR}", brk)
		e, _, err := edition.Parse([]byte(src), edition.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := "Council <script>alert(1)</script> bans barbecues"; e.Lead.Title != want {
			t.Errorf("break %q: lead title = %q, want %q", brk, e.Lead.Title, want)
		}
		if want := []edition.Block{{Kind: edition.Paragraph, Text: "Crews voted, then went home."}}; !slices.Equal(e.Lead.Body, want) {
			t.Errorf("break %q: body = %q, want %q", brk, e.Lead.Body, want)
		}
	}
}

func TestParseTextDateLayouts(t *testing.T) {
	for _, line := range []string{
		"Thursday, Nov 13, 2025", "Thursday, November 13, 2025", "Thu, Nov 13, 2025",
		"November 13, 2025", "13 November 2025", "Thursday 13 November 2025",
		"2025-11-13", "Nov. 13th, 2025",
	} {
		src := "Harbour Gazette\n" + line + "\n\nHeadline of the day\n\nText.\n"
		e, _, err := edition.Parse([]byte(src), edition.ParseOptions{})
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if !e.Date.Equal(date(2025, 11, 13)) || e.Site.Tagline != "" {
			t.Errorf("%q: date %v, tagline %q", line, e.Date, e.Site.Tagline)
		}
	}
	// The option wins over the page.
	src := "Harbour Gazette\n2025-11-13\n\nHeadline of the day\n"
	e, _, err := edition.Parse([]byte(src), edition.ParseOptions{Date: time.Date(2025, 12, 1, 23, 30, 0, 0, time.FixedZone("", -5*3600))})
	if err != nil || !e.Date.Equal(date(2025, 12, 1)) {
		t.Errorf("with Date option: %v, %v", e, err)
	}
	// A weekday that contradicts the date is a misread date: refuse.
	_, _, err = edition.Parse([]byte("Harbour Gazette\nFriday, Nov 13, 2025\n\nHeadline\n"), edition.ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), "Thursday") {
		t.Errorf("wrong weekday: err = %v", err)
	}
}

func TestParseTextFurniture(t *testing.T) {
	src := page("Ferry strike ends",
		"Crews voted.\n\nAdvertisement\n\nServices resume.\n\n0:12 / 3:45\n\n×\n\nFollow us",
		"0:00", "Close", "•", "Watch", "Top Stories", "Ferry timetable changes from Monday", "© 2025 Harbour Gazette")
	e, _, err := edition.Parse([]byte(src), edition.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []edition.Block{{Kind: edition.Paragraph, Text: "Crews voted."}, {Kind: edition.Paragraph, Text: "Services resume."}}
	if !slices.Equal(e.Lead.Body, want) {
		t.Errorf("body = %q, want %q", e.Lead.Body, want)
	}
	if got := titles(e.Related); !slices.Equal(got, []string{"Ferry timetable changes from Monday"}) {
		t.Errorf("related = %q", got)
	}
}
