package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

func TestForwardsAlertmanagerPayload(t *testing.T) {
	var bodies []map[string]any
	var status = http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("bad json %s", b)
		}
		if r.Header.Get("X-Team") != "sre" {
			t.Errorf("header missing")
		}
		bodies = append(bodies, m)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	n, err := New(&Config{HTTP: DefaultConfig().HTTP, Endpoint: ep(srv.URL + "/hook?token=hook-secret"), Headers: map[string]string{"X-Team": "sre"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), fixture.Notification("A", 2, 10)); err != nil {
		t.Fatal(err)
	}
	m := bodies[0]
	if m["version"] != "4" || m["status"] != "firing" || m["receiver"] != "autoglm" || m["priority"] != "P1" || len(m["alerts"].([]any)) != 2 || m["groupKey"] == "" {
		t.Errorf("payload %v", m)
	}
	if err := n.Notify(context.Background(), fixture.Notification("A", 2, 10), fixture.Notification("B", 1, 10)); err != nil {
		t.Fatal(err)
	}
	d := bodies[1]
	if d["digest"] != true || len(d["groups"].([]any)) != 2 || len(d["alerts"].([]any)) != 3 {
		t.Errorf("digest %v", d)
	}
	status = http.StatusBadGateway
	err = n.Notify(context.Background(), fixture.Notification("A", 1, 10))
	if c, code, _ := notify.Classify(err); c != notify.Retry || code != "502" || strings.Contains(err.Error(), "hook-secret") {
		t.Fatalf("got %v", err)
	}
	status = http.StatusUnprocessableEntity
	if c, _, _ := notify.Classify(n.Notify(context.Background(), fixture.Notification("A", 1, 10))); c != notify.Permanent {
		t.Fatalf("422 class %s", c)
	}
}

// ep is the url key of a channel.
func ep(u string) chanhttp.Endpoint { return chanhttp.Endpoint{URL: fileconfig.Secret(u)} }
