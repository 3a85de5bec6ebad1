package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

func TestAppendsOneLinePerNotification(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.jsonl")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := New("console", &Config{Path: p}, tmpl.New(tmpl.Options{Language: "en"}), func() time.Time { return now }, nil)
	if err := n.Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), fixture.Notification("B", 2, 10), fixture.Notification("C", 1, 10)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var lines []Line
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	if lines[0].ID != "n-A" || lines[0].Title != "[P1][FIRING:1] A" || lines[0].Channel != "console" || !lines[0].Time.Equal(now) || lines[0].Digest != 0 {
		t.Errorf("line 0 = %+v", lines[0])
	}
	if lines[1].ID != "n-B" || len(lines[1].Alerts) != 2 || lines[1].Digest != 2 || lines[2].ID != "n-C" {
		t.Errorf("digest lines = %+v / %+v", lines[1], lines[2])
	}
}

func TestWritesToWriter(t *testing.T) {
	var buf bytes.Buffer
	if err := New("c", &Config{Path: "-"}, nil, nil, &buf).Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
		t.Fatal(err)
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("output %q", buf.String())
	}
}
