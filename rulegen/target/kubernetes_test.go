package target

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// applyServer is a fake API server for server-side apply: PATCH with
// application/apply-patch+yaml, a fieldManager, force=true, the object's
// apiVersion, kind, name and namespace matching the URL. Anything else is
// answered as the API server would (415, 422, 403).
type applyServer struct {
	t      *testing.T
	mu     sync.Mutex
	bodies map[string][]byte // path → last applied object
	forbid bool
}

func (a *applyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": msg})
	}
	if a.forbid {
		status(http.StatusForbidden, `prometheusrules.monitoring.coreos.com "autoglm-rulegen" is forbidden: User "system:serviceaccount:monitoring:rulegen" cannot patch resource`)
		return
	}
	if r.Method != http.MethodPatch || r.Header.Get("Content-Type") != "application/apply-patch+yaml" {
		status(http.StatusUnsupportedMediaType, "the body of the request was in an unknown format")
		return
	}
	q := r.URL.Query()
	if q.Get("fieldManager") != FieldManager || q.Get("force") != "true" {
		status(http.StatusUnprocessableEntity, "fieldManager is required for apply requests; force resolves conflicts")
		return
	}
	body, _ := io.ReadAll(r.Body)
	var meta struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name, Namespace string
		} `yaml:"metadata"`
	}
	if err := yaml.Unmarshal(body, &meta); err != nil {
		status(http.StatusBadRequest, err.Error())
		return
	}
	parts := strings.Split(r.URL.Path, "/")
	if len(parts) < 4 || parts[len(parts)-1] != meta.Metadata.Name || parts[len(parts)-3] != meta.Metadata.Namespace {
		status(http.StatusBadRequest, "the name or namespace of the object does not match the URL")
		return
	}
	a.mu.Lock()
	a.bodies[r.URL.Path] = body
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{}`))
}

func TestKubernetesApplyPrometheusRule(t *testing.T) {
	fake := &applyServer{t: t, bodies: map[string][]byte{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	k := &KubernetesApply{Kind: KindPrometheusRule, Name: "autoglm-rulegen", Namespace: "monitoring",
		Labels: map[string]string{"release": "kube-prometheus-stack"}, Host: srv.URL, Client: srv.Client()}
	ctx := context.Background()
	res, err := k.Deliver(ctx, set(t, 0.05))
	if err != nil || res.Written != 1 {
		t.Fatalf("first apply: %+v %v", res, err)
	}
	path := "/apis/monitoring.coreos.com/v1/namespaces/monitoring/prometheusrules/autoglm-rulegen"
	body := fake.bodies[path]
	var obj struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	if obj.APIVersion != "monitoring.coreos.com/v1" || obj.Kind != "PrometheusRule" || obj.Metadata.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("object header: %+v", obj)
	}
	// The spec is a rule file: Prometheus' own parser accepts it.
	spec, err := yaml.Marshal(&obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Validate(spec); err != nil {
		t.Errorf("spec does not validate as rule groups: %v", err)
	}
	// Unchanged rules are not applied again; changed ones are.
	if res, err := k.Deliver(ctx, set(t, 0.05)); err != nil || res.Written != 0 {
		t.Errorf("unchanged apply: %+v %v", res, err)
	}
	if res, err := k.Deliver(ctx, set(t, 0.1)); err != nil || res.Written != 1 || bytes.Equal(fake.bodies[path], body) {
		t.Errorf("changed apply: %+v %v", res, err)
	}
	// A refusal says who was refused what, and the rules are applied again next time.
	fake.forbid = true
	if _, err := k.Deliver(ctx, set(t, 0.2)); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "cannot patch") {
		t.Errorf("forbidden apply: %v", err)
	}
}

func TestKubernetesApplyConfigMap(t *testing.T) {
	fake := &applyServer{t: t, bodies: map[string][]byte{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	k := &KubernetesApply{Kind: KindConfigMap, Name: "autoglm-rules", Namespace: "monitoring", Host: srv.URL, Client: srv.Client()}
	s := set(t, 0.05)
	if res, err := k.Deliver(context.Background(), s); err != nil || res.Written != 1 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	// Decoded strictly into the real ConfigMap type: a misspelled field fails.
	j, err := sigsyaml.YAMLToJSON(fake.bodies["/api/v1/namespaces/monitoring/configmaps/autoglm-rules"])
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	var cm corev1.ConfigMap
	if err := dec.Decode(&cm); err != nil {
		t.Fatalf("not a ConfigMap: %v\n%s", err, j)
	}
	if cm.Kind != "ConfigMap" || cm.APIVersion != "v1" || len(cm.Data) != len(s.Rendered) {
		t.Fatalf("ConfigMap %s/%s with %d keys", cm.APIVersion, cm.Kind, len(cm.Data))
	}
	for name, want := range s.Rendered {
		if cm.Data[name] != string(want) {
			t.Errorf("key %s differs from the rendered file", name)
		}
	}
}
