// Package templates renders the newsletter: the edition email (HTML and plain
// text, rendered once per edition and personalised per recipient by
// splicing) and the web pages served by `newsletter serve`.
//
// The templates are embedded (email/ and web/ in this directory) and can be
// replaced file by file from an override directory, NEWSLETTER_TEMPLATES,
// laid out the same way: <dir>/email/subject.txt replaces the built-in
// subject. Load parses them all and runs each against sample data, so a
// broken override fails at start-up, naming the file, not at send time.
//
// The files:
//
//	email/subject.txt     text/template, data View: the Subject header
//	email/edition.html    html/template, data View: the HTML part
//	email/edition.txt     text/template, data View: the plain-text part
//	email/content.html    {{define "lead"}} and {{define "related"}}: the
//	                      story and headlines, shared by the HTML email and
//	                      the web edition so the content is written once
//	web/base.html         {{define "base"}}: the layout of every web page
//	web/edition.html      data View: an edition on the web
//	web/archive.html      data ArchivePage
//	web/unsubscribe.html  data UnsubscribePage: the List-Unsubscribe link's
//	                      page, where a reader also resubscribes and changes
//	                      their name or address
//	web/message.html      data MessagePage
//	web/subscribe.html    data SubscribePage: the sign-up form
//	web/confirm.html      data ConfirmPage: a confirmation link's page
//	email/confirm-subject.txt, email/confirm.txt, email/confirm.html
//	                      data ConfirmEmail: the double opt-in email (and the
//	                      one that confirms a new address)
//
// Text templates have wrap, hang, underline, oneLine, longDate and isoDate
// (see textfmt.go); HTML templates have longDate and isoDate.
package templates

import (
	"embed"
	"fmt"
	htemplate "html/template"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	ttemplate "text/template"
)

//go:embed email web
var embedded embed.FS

// EnvVar names the override directory in the environment; Load's errors
// name it so an operator knows which setting to fix.
const EnvVar = "NEWSLETTER_TEMPLATES"

const (
	fileSubject   = "email/subject.txt"
	fileEmailHTML = "email/edition.html"
	fileEmailText = "email/edition.txt"
	fileContent   = "email/content.html"
	fileBase      = "web/base.html"

	fileConfirmSubject = "email/confirm-subject.txt"
	fileConfirmText    = "email/confirm.txt"
	fileConfirmHTML    = "email/confirm.html"
)

// pageNames are the pages Page renders, each web/<name>.
var pageNames = []string{"archive.html", "confirm.html", "edition.html", "message.html", "subscribe.html", "unsubscribe.html"}

// Set is a loaded, checked set of templates. It is safe for concurrent use.
type Set struct {
	subject   *ttemplate.Template
	emailText *ttemplate.Template
	emailHTML *htemplate.Template
	pages     map[string]*htemplate.Template

	confirmSubject *ttemplate.Template
	confirmText    *ttemplate.Template
	confirmHTML    *htemplate.Template
	// name is each file's template name: its path here for a built-in
	// file, its path on disk for an override, so that errors html/template
	// and text/template report (which name the template the failing node
	// was parsed from) say which file to fix.
	name map[string]string
}

var htmlFuncs = htemplate.FuncMap{
	"longDate": longDate,
	"isoDate":  isoDate,
}

var textFuncs = ttemplate.FuncMap{
	"longDate":  longDate,
	"isoDate":   isoDate,
	"wrap":      wrap,
	"hang":      hang,
	"underline": underline,
	"oneLine":   oneLine,
}

// Load parses the built-in templates, with any file of the same name in
// overrideDir (normally $NEWSLETTER_TEMPLATES) in place of the built-in one,
// and checks every template by running it against sample data. An empty
// overrideDir means the built-in templates only. A file in overrideDir that
// doesn't replace a built-in one is an error, so a misspelt name is caught
// rather than silently ignored; names starting with "." (editor and VCS
// files) are skipped.
func Load(overrideDir string) (*Set, error) {
	if overrideDir == "" {
		return load(nil, "")
	}
	fi, err := os.Stat(overrideDir)
	if err != nil {
		return nil, fmt.Errorf("templates: %s=%s: %w", EnvVar, overrideDir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("templates: %s=%s: not a directory", EnvVar, overrideDir)
	}
	return load(os.DirFS(overrideDir), overrideDir)
}

func load(override fs.FS, dir string) (*Set, error) {
	src, err := readBuiltin()
	if err != nil {
		return nil, err
	}
	if override != nil {
		if err := src.readOverrides(override, dir); err != nil {
			return nil, err
		}
	}
	s, err := src.parse()
	if err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// sources is every template file's text, and the name its errors give
// (see Set.name), by its path in the embedded tree.
type sources struct {
	text, name map[string]string
}

func readBuiltin() (sources, error) {
	src := sources{text: map[string]string{}, name: map[string]string{}}
	err := fs.WalkDir(embedded, ".", func(file string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(embedded, file)
		src.text[file], src.name[file] = string(b), file
		return err
	})
	if err != nil {
		return src, fmt.Errorf("templates: reading built-in templates: %w", err)
	}
	return src, nil
}

// readOverrides puts each file of override, the directory dir, in place
// of the built-in one of the same name.
func (src sources) readOverrides(override fs.FS, dir string) error {
	err := fs.WalkDir(override, ".", func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if file != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if _, ok := src.text[file]; !ok {
			return fmt.Errorf("unknown template file %s: an override must have the name of a built-in template (%s)",
				filepath.Join(dir, filepath.FromSlash(file)), strings.Join(slices.Sorted(maps.Keys(src.text)), ", "))
		}
		b, err := fs.ReadFile(override, file)
		src.text[file], src.name[file] = string(b), filepath.Join(dir, filepath.FromSlash(file))
		return err
	})
	if err != nil {
		return fmt.Errorf("templates: %s=%s: %w", EnvVar, dir, err)
	}
	return nil
}

// parse parses every template; it runs none.
func (src sources) parse() (*Set, error) {
	s := &Set{pages: map[string]*htemplate.Template{}, name: src.name}
	var err error
	if s.subject, err = src.parseText(fileSubject); err != nil {
		return nil, err
	}
	if s.emailText, err = src.parseText(fileEmailText); err != nil {
		return nil, err
	}
	s.emailHTML = htemplate.New(src.name[fileEmailHTML]).Funcs(htmlFuncs)
	if err := src.parseInto(s.emailHTML.New(src.name[fileContent]), fileContent); err != nil {
		return nil, err
	}
	if err := src.parseInto(s.emailHTML, fileEmailHTML); err != nil {
		return nil, err
	}
	if s.confirmSubject, err = src.parseText(fileConfirmSubject); err != nil {
		return nil, err
	}
	if s.confirmText, err = src.parseText(fileConfirmText); err != nil {
		return nil, err
	}
	s.confirmHTML = htemplate.New(src.name[fileConfirmHTML]).Funcs(htmlFuncs)
	if err := src.parseInto(s.confirmHTML, fileConfirmHTML); err != nil {
		return nil, err
	}
	if err := src.parsePages(s.pages); err != nil {
		return nil, err
	}
	return s, nil
}

// parsePages parses each web page into pages. Each page gets its own copy
// of the layout and the shared content, so pages can define the same
// blocks ("title", "main") differently.
func (src sources) parsePages(pages map[string]*htemplate.Template) error {
	base := htemplate.New(src.name[fileBase]).Funcs(htmlFuncs)
	if err := src.parseInto(base, fileBase); err != nil {
		return err
	}
	if err := src.parseInto(base.New(src.name[fileContent]), fileContent); err != nil {
		return err
	}
	for _, p := range pageNames {
		t, err := base.Clone()
		if err != nil {
			return err // only fails after execution, and nothing has run
		}
		file := "web/" + p
		if err := src.parseInto(t.New(src.name[file]), file); err != nil {
			return err
		}
		pages[p] = t
	}
	return nil
}

func (src sources) parseText(file string) (*ttemplate.Template, error) {
	t, err := ttemplate.New(src.name[file]).Funcs(textFuncs).Parse(src.text[file])
	if err != nil {
		return nil, src.parseErr(file, err)
	}
	return t, nil
}

// parseInto parses file into t.
func (src sources) parseInto(t *htemplate.Template, file string) error {
	if _, err := t.Parse(src.text[file]); err != nil {
		return src.parseErr(file, err)
	}
	return nil
}

func (src sources) parseErr(file string, err error) error {
	return fmt.Errorf("templates: parsing %s: %w", src.name[file], err)
}

// check runs every template against sample data that takes every branch of
// the built-in templates, so that a reference to a missing field, a call to
// an undefined template, an escaping error or an unspliceable recipient
// field fails Load rather than a send.
func (s *Set) check() error {
	for _, e := range sampleEditions() {
		for _, d := range sampleEditionData() {
			if _, err := s.RenderEdition(e, d); err != nil {
				return err
			}
			if err := s.WebEdition(io.Discard, e, d); err != nil {
				return err
			}
		}
	}
	for _, d := range sampleConfirmEmails() {
		if _, err := s.ConfirmEmail(d); err != nil {
			return err
		}
	}
	for name, samples := range samplePages() {
		for _, data := range samples {
			if err := s.Page(io.Discard, name, data); err != nil {
				return err
			}
		}
	}
	return nil
}
