package store

import (
	"testing"
	"time"
)

func TestIncidentsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Incidents(); err != nil || len(got) != 0 {
		t.Fatalf("fresh store: %v %v", got, err)
	}
	rec := &Record{Time: time.Now(), Outcome: "claimed", GroupKey: "g1", Channel: "ops"}
	if err := s.PutIncidents(map[string][]byte{"a": []byte(`{"id":"a"}`), "b": []byte(`{"id":"b"}`)}, nil, []*Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIncidents(map[string][]byte{"a": []byte(`{"id":"a","steps_done":2}`)}, []string{"b"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Incidents()
	if err != nil || len(got) != 1 || string(got["a"]) != `{"id":"a","steps_done":2}` {
		t.Errorf("incidents after reopen = %q, %v", got, err)
	}
	recs, _, err := s.Audit(Query{Outcome: "claimed"})
	if err != nil || len(recs) != 1 || recs[0].Channel != "ops" {
		t.Errorf("audit = %+v, %v", recs, err)
	}
}
