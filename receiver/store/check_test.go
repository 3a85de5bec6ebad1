package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// filled returns a closed store directory holding a few hundred deliveries
// and audit records, spread over many pages.
func filled(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, dir, c)
	for i := 0; i < 300; i++ {
		d := &Delivery{ID: fmt.Sprintf("id-%d", i), Channel: "x", GroupKey: fmt.Sprintf("g%d", i), LastError: strings.Repeat("e", 200)}
		if _, _, err := s.Accept(&Record{Time: c.Now(), Outcome: OutcomeReceived, Alertnames: []string{"A"}}, []*Delivery{d}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "receiver.db")
}

// A damaged store stops the receiver with an error that names the file,
// says what is wrong and what to do; it never crashes (SIGBUS, panic) and
// never starts empty.
func TestDamagedStoreIsDiagnosed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string
	}{
		{"empty file", func(t *testing.T, p string) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}, "empty (0 bytes)"},
		{"truncated", func(t *testing.T, p string) {
			// bbolt grows the file ahead of use: cut into the pages in use.
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m, err := readMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, int64(m.hwm/2)*int64(m.pageSize)); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"truncated inside the header", func(t *testing.T, p string) {
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"overwritten data pages", func(t *testing.T, p string) {
			overwrite(t, p, 3*4096, 12*4096)
		}, "damaged"},
		{"overwritten header pages", func(t *testing.T, p string) {
			overwrite(t, p, 0, 2*4096)
		}, "header pages"},
		{"not a store", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte(strings.Repeat("not bbolt\n", 5000)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a receiver store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := filled(t)
			tc.damage(t, path)
			s, err := Open(dir, Options{})
			if err == nil {
				p, _ := s.Pending()
				_ = s.Close()
				t.Fatalf("opened a damaged store (%d pending)", len(p))
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error is not a CorruptError: %v", err)
			}
			for _, w := range []string{path, tc.want, "mv " + path, "backup"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// overwrite fills [from, to) of the file with a repeating pattern, as a
// stray write or a bad disk block would.
func overwrite(t *testing.T, path string, from, to int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", int(to-from)/4))
	if _, err := f.WriteAt(junk, from); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A fresh store is created under another name and renamed: no half-made
// receiver.db is ever left, and opening it again finds it intact.
func TestNewStoreIsCreatedWhole(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "receiver.db.new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}
