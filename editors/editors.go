// Package editors owns the desk's accounts: editors and admins with their
// passwords, the API tokens that act for them, and the audit record of who
// did what.
package editors

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"newsletter/subscribers"
)

// Role is what an account may do: an admin manages editors, tokens and
// subscribers besides what an editor does (prepare and send editions).
type Role string

const (
	Admin  Role = "admin"
	Editor Role = "editor"
)

// ParseRole accepts admin or editor.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Admin, Editor:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want admin or editor", s)
}

// Account is one editor.
type Account struct {
	ID        int64     `db:"id" json:"id"`
	Email     string    `db:"email" json:"email"`
	Role      Role      `db:"role" json:"role"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	Tokens    int       `db:"tokens" json:"tokens"`
}

var (
	ErrNotFound  = errors.New("no editor has that address")
	ErrExists    = errors.New("an editor has that address already")
	ErrLastAdmin = errors.New("that is the last admin: make another admin first")
	ErrBadToken  = errors.New("unknown or revoked API token")
	ErrTokenName = errors.New("a token has that name already")
)

// Store keeps the accounts in PostgreSQL.
type Store struct {
	DB *sqlx.DB
}

// Add makes an account. The first admin is made this way, from the
// command line: the desk has no open registration.
func (s *Store) Add(ctx context.Context, email string, role Role, password string) (*Account, error) {
	addr, err := subscribers.NormalizeAddress(email)
	if err != nil {
		return nil, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return nil, err
	}
	var a Account
	err = s.DB.GetContext(ctx, &a, `INSERT INTO editors (email, role, password_hash) VALUES ($1, $2, $3)
		RETURNING id, email, role, created_at, 0 AS tokens`, addr, role, hash)
	if pe := pq.As(err, "23505"); pe != nil {
		return nil, ErrExists
	}
	if err != nil {
		return nil, fmt.Errorf("add editor: %w", err)
	}
	return &a, nil
}

// List returns every account, by address.
func (s *Store) List(ctx context.Context) ([]Account, error) {
	var out []Account
	err := s.DB.SelectContext(ctx, &out, `SELECT e.id, e.email, e.role, e.created_at,
		(SELECT count(*) FROM api_tokens t WHERE t.editor_id = e.id) AS tokens
		FROM editors e ORDER BY lower(e.email)`)
	if err != nil {
		return nil, fmt.Errorf("list editors: %w", err)
	}
	return out, nil
}

// Remove deletes an account and its tokens; the last admin stays.
func (s *Store) Remove(ctx context.Context, email string) (*Account, error) {
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("remove editor: begin: %w", err)
	}
	defer tx.Rollback()
	// Every admin row is locked, so two removals at once can't each leave
	// the other as the last admin and end with none.
	var admins []Account
	if err := tx.SelectContext(ctx, &admins, `SELECT id, email, role, created_at, 0 AS tokens FROM editors WHERE role = 'admin' ORDER BY id FOR UPDATE`); err != nil {
		return nil, fmt.Errorf("remove editor: %w", err)
	}
	var a Account
	err = tx.GetContext(ctx, &a, `SELECT id, email, role, created_at, 0 AS tokens FROM editors WHERE lower(email) = lower($1) FOR UPDATE`, subscribers.LookupForm(email))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("remove editor: %w", err)
	}
	if a.Role == Admin && len(admins) == 1 {
		return nil, ErrLastAdmin
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM editors WHERE id = $1`, a.ID); err != nil {
		return nil, fmt.Errorf("remove editor %d: %w", a.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("remove editor %d: commit: %w", a.ID, err)
	}
	return &a, nil
}

// SetPassword replaces an account's password.
func (s *Store) SetPassword(ctx context.Context, email, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	r, err := s.DB.ExecContext(ctx, `UPDATE editors SET password_hash = $2, updated_at = now() WHERE lower(email) = lower($1)`, subscribers.LookupForm(email), hash)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Authenticate returns the account whose address and password these are,
// or ErrBadPassword, in about the same time whether the account exists or
// not.
func (s *Store) Authenticate(ctx context.Context, email, password string) (*Account, error) {
	var row struct {
		Account
		Hash string `db:"password_hash"`
	}
	err := s.DB.GetContext(ctx, &row, `SELECT id, email, role, created_at, 0 AS tokens, password_hash FROM editors WHERE lower(email) = lower($1)`, subscribers.LookupForm(email))
	if errors.Is(err, sql.ErrNoRows) {
		verifyPassword(dummyHash(), password)
		return nil, ErrBadPassword
	}
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	if len(password) > MaxPassword || !verifyPassword(row.Hash, password) {
		return nil, ErrBadPassword
	}
	return &row.Account, nil
}

// tokenPrefix starts every API token, so a leaked one is recognisable
// (secret scanners) and one pasted in the wrong place is obvious.
const tokenPrefix = "nlt_"

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// NewToken makes an API token named name acting for the account with
// email, and returns it: the only time it is seen, as only its hash is
// kept.
func (s *Store) NewToken(ctx context.Context, email, name string) (string, error) {
	if !tokenName.MatchString(name) {
		return "", fmt.Errorf("token name %q: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit", name)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	r, err := s.DB.ExecContext(ctx, `INSERT INTO api_tokens (editor_id, name, token_hash)
		SELECT id, $2, $3 FROM editors WHERE lower(email) = lower($1)`, subscribers.LookupForm(email), name, h[:])
	if pe := pq.As(err, "23505"); pe != nil {
		return "", ErrTokenName
	}
	if err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return "", ErrNotFound
	}
	return tok, nil
}

// Revoke ends the token named name at once; it returns ErrBadToken when
// there is none.
func (s *Store) Revoke(ctx context.Context, name string) error {
	r, err := s.DB.ExecContext(ctx, `DELETE FROM api_tokens WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return ErrBadToken
	}
	return nil
}

// ByToken returns the account a bearer token acts for, and the token's
// name. The token is looked up by its hash (an index probe that tells
// nothing of the token), then compared in constant time.
func (s *Store) ByToken(ctx context.Context, token string) (*Account, string, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 100 {
		return nil, "", ErrBadToken
	}
	h := sha256.Sum256([]byte(token))
	var row struct {
		Account
		Name string `db:"name"`
		Hash []byte `db:"token_hash"`
	}
	err := s.DB.GetContext(ctx, &row, `UPDATE api_tokens t SET last_used_at = now()
		FROM editors e WHERE t.token_hash = $1 AND e.id = t.editor_id
		RETURNING e.id, e.email, e.role, e.created_at, 0 AS tokens, t.name, t.token_hash`, h[:])
	if errors.Is(err, sql.ErrNoRows) || err == nil && subtle.ConstantTimeCompare(row.Hash, h[:]) != 1 {
		return nil, "", ErrBadToken
	}
	if err != nil {
		return nil, "", fmt.Errorf("check token: %w", err)
	}
	return &row.Account, row.Name, nil
}
