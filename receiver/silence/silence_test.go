package silence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
	"golang.org/x/crypto/bcrypt"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
)

// startAlertmanager runs the real Alertmanager on loopback, optionally
// behind basic auth, and returns its base URL.
func startAlertmanager(t *testing.T, user, password string) string {
	t.Helper()
	bin := testenv.Alertmanager(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + testenv.Addr(port), "--cluster.listen-address="}
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		web := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(web, []byte(fmt.Sprintf("basic_auth_users:\n  %s: %s\n", user, hash)), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--web.config.file="+web)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + testenv.Addr(port)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 || resp.StatusCode == 401 {
				return base
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("alertmanager did not become ready")
	return ""
}

func getJSON(t *testing.T, hc *http.Client, u string, v any) {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestSilenceInRealAlertmanager(t *testing.T) {
	am := startAlertmanager(t, "", "")
	// The first Alertmanager of the list is down: the next one takes the silence.
	down := "http://" + testenv.Addr(testenv.FreePort(t))
	cl, err := New(&Config{Alertmanagers: []string{down, am}, HTTP: chanhttp.DefaultSettings()})
	if err != nil {
		t.Fatal(err)
	}
	group := map[string]string{"alertname": "LLMHighErrorRate", "route": "/v1/chat/completions"}
	now := time.Now()
	res, err := cl.Create(context.Background(), Request{Labels: group, Duration: time.Hour, CreatedBy: "alice (dingtalk)", Comment: "claimed from the P1 message", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID == "" || res.Reused || res.Alertmanager != am {
		t.Fatalf("result = %+v", res)
	}

	var silences []struct {
		ID        string `json:"id"`
		CreatedBy string `json:"createdBy"`
		Comment   string `json:"comment"`
		EndsAt    time.Time
		Status    struct{ State string }
		Matchers  []struct {
			Name, Value      string
			IsRegex, IsEqual bool
		}
	}
	getJSON(t, http.DefaultClient, am+"/api/v2/silences", &silences)
	if len(silences) != 1 || silences[0].ID != res.ID || silences[0].Status.State != "active" || silences[0].CreatedBy != "alice (dingtalk)" {
		t.Fatalf("silences = %+v", silences)
	}
	if d := silences[0].EndsAt.Sub(now); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("silence lasts %s, want 1h", d)
	}
	got := map[string]string{}
	for _, m := range silences[0].Matchers {
		if m.IsRegex || !m.IsEqual {
			t.Errorf("matcher %+v is not an equality matcher", m)
		}
		got[m.Name] = m.Value
	}
	if len(got) != 2 || got["alertname"] != "LLMHighErrorRate" || got["route"] != "/v1/chat/completions" {
		t.Errorf("matchers = %v", got)
	}

	// An alert of the group is now suppressed by the silence; another group's alert is not.
	post := func(labels string) {
		body := fmt.Sprintf(`[{"labels":%s,"startsAt":%q,"endsAt":%q}]`, labels, now.Add(-time.Minute).UTC().Format(time.RFC3339), now.Add(time.Hour).UTC().Format(time.RFC3339))
		resp, err := http.Post(am+"/api/v2/alerts", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post(`{"alertname":"LLMHighErrorRate","route":"/v1/chat/completions","instance":"a"}`)
	post(`{"alertname":"LLMHighErrorRate","route":"/v1/embeddings","instance":"a"}`)
	var alerts []struct {
		Labels map[string]string
		Status struct {
			State      string
			SilencedBy []string
		}
	}
	states := map[string]string{}
	for i := 0; i < 100; i++ {
		getJSON(t, http.DefaultClient, am+"/api/v2/alerts", &alerts)
		clear(states)
		for _, a := range alerts {
			states[a.Labels["route"]] = a.Status.State
			if a.Labels["route"] == "/v1/chat/completions" && a.Status.State == "suppressed" && (len(a.Status.SilencedBy) != 1 || a.Status.SilencedBy[0] != res.ID) {
				t.Errorf("silenced by %v", a.Status.SilencedBy)
			}
		}
		if states["/v1/chat/completions"] == "suppressed" && states["/v1/embeddings"] == "active" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if states["/v1/chat/completions"] != "suppressed" || states["/v1/embeddings"] != "active" {
		t.Errorf("alert states = %v", states)
	}

	// Following the same link again reuses the silence; a longer one creates a new silence.
	again, err := cl.Create(context.Background(), Request{Labels: group, Duration: time.Hour, CreatedBy: "bob", Comment: "again", Now: now.Add(10 * time.Second)})
	if err != nil || !again.Reused || again.ID != res.ID {
		t.Errorf("second click = %+v, %v", again, err)
	}
	longer, err := cl.Create(context.Background(), Request{Labels: group, Duration: 4 * time.Hour, CreatedBy: "bob", Comment: "4h", Now: now})
	if err != nil || longer.Reused || longer.ID == res.ID {
		t.Errorf("4h silence = %+v, %v", longer, err)
	}
	// A subset of the labels is another silence, not the same one.
	sub, err := cl.Create(context.Background(), Request{Labels: map[string]string{"alertname": "LLMHighErrorRate"}, Duration: time.Hour, Now: now, CreatedBy: "x", Comment: "y"})
	if err != nil || sub.Reused {
		t.Errorf("subset silence = %+v, %v", sub, err)
	}

	if _, err := cl.Create(context.Background(), Request{Duration: time.Hour, CreatedBy: "x", Comment: "y"}); !errors.Is(err, ErrNoLabels) {
		t.Errorf("empty labels: %v", err)
	}
}

func TestSilenceWithBasicAuthAndUnreachable(t *testing.T) {
	const password = "am-Password-0042"
	am := startAlertmanager(t, "recv", password)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "am-password"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := fileconfig.Parse([]byte("{}"), filepath.Join(dir, "autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Config{Alertmanagers: []string{am}, HTTP: chanhttp.DefaultSettings()}
	c.HTTP.HTTPConfig.BasicAuth = &promconfig.BasicAuth{Username: "recv", PasswordFile: "am-password"}
	if err := c.Validate("receiver.silences", f); err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(c.Secrets(), ","); !strings.Contains(s, password) {
		t.Errorf("secrets lack the password")
	}
	cl, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Create(context.Background(), Request{Labels: map[string]string{"alertname": "A"}, Duration: time.Hour, CreatedBy: "x", Comment: "y"}); err != nil {
		t.Fatalf("with basic auth: %v", err)
	}
	// Without credentials Alertmanager refuses; the error says so without any secret.
	bare, _ := New(&Config{Alertmanagers: []string{am}, HTTP: chanhttp.DefaultSettings()})
	_, err = bare.Create(context.Background(), Request{Labels: map[string]string{"alertname": "A"}, Duration: time.Hour, CreatedBy: "x", Comment: "y"})
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("without credentials: %v", err)
	}
	down, _ := New(&Config{Alertmanagers: []string{"http://" + testenv.Addr(testenv.FreePort(t))}, HTTP: chanhttp.DefaultSettings()})
	if _, err := down.Create(context.Background(), Request{Labels: map[string]string{"alertname": "A"}, Duration: time.Hour, CreatedBy: "x", Comment: "y"}); err == nil {
		t.Error("unreachable Alertmanager: no error")
	}
}

func TestConfigValidate(t *testing.T) {
	c := &Config{Alertmanagers: []string{"am:9093", "http://u:p@am:9093", "http://am:9093"}, HTTP: chanhttp.DefaultSettings()}
	err := c.Validate("receiver.silences", nil)
	all := ""
	if err != nil {
		all = err.Error()
	}
	for _, want := range []string{"receiver.silences.alertmanagers[0]: must be an http(s) URL", "receiver.silences.alertmanagers[1]: must not carry credentials"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in %s", want, all)
		}
	}
	if strings.Contains(all, "alertmanagers[2]") || strings.Contains(all, ":p@") {
		t.Errorf("unexpected: %s", all)
	}
	if err := (&Config{}).Validate("receiver.silences", nil); err == nil || !strings.Contains(err.Error(), "must list at least one") {
		t.Errorf("empty: %v", err)
	}
}
