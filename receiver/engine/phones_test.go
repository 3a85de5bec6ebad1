package engine

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// An SMS gateway that echoes the recipient's number in its error body: the
// number is masked in the log and in the audit records.
func TestPhoneNumbersEchoedByProvidersAreMasked(t *testing.T) {
	// Real HTTP, so no synctest bubble (a connection waiting on the network
	// never lets the bubble settle); the 400 is permanent, nothing waits on a timer.
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"number 13800001234 is not allowed for account +8613912345678"}`))
	}))
	defer gw.Close()
	n, err := sms.New(&sms.Config{
		HTTP: sms.DefaultConfig().HTTP, Provider: "generic", PhoneNumbers: []string{"13800001234"}, Method: "POST",
		Gateway: chanhttp.Endpoint{URL: fileconfig.Secret(gw.URL + "/send")}, Body: `{{ .Phone }} {{ .Message }}`,
	}, tmpl.New(tmpl.Options{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	en := newEnv(t, "", notify.Integration{Name: "sms", Notifier: n})
	en.accept(spec{group: "g", status: "firing", channels: []string{"sms"}})
	for deadline := time.Now().Add(10 * time.Second); en.eng.Depth() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	recs, _, err := en.store.Audit(store.Query{Channel: "sms", Limit: 10})
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit: %v %v", recs, err)
	}
	var audit strings.Builder
	for _, r := range recs {
		audit.WriteString(r.Error + "\n")
	}
	for what, text := range map[string]string{"log": en.logs.String(), "audit": audit.String()} {
		for _, phone := range []string{"13800001234", "13912345678"} {
			if strings.Contains(text, phone) {
				t.Errorf("%s shows %s unmasked:\n%s", what, phone, text)
			}
		}
		if !strings.Contains(text, "138****1234") {
			t.Errorf("%s lacks the masked number:\n%s", what, text)
		}
	}
}
