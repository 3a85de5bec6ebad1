package api

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"alerts":[null]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(bytes.NewReader(b))
		if err != nil {
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		if m.GroupKey == "" || !validStatus(m.Status) || len(m.Alerts) == 0 {
			t.Fatalf("invalid payload accepted: %+v", m)
		}
		for _, a := range m.Alerts {
			if !validStatus(a.Status) || len(a.Labels) == 0 || a.StartsAt.IsZero() {
				t.Fatalf("invalid alert accepted: %+v", a)
			}
		}
		// What we accept must survive the round trip through the store's encoding.
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := Decode(bytes.NewReader(enc)); err != nil {
			t.Fatalf("re-decode: %v\n%s", err, enc)
		}
	})
}
