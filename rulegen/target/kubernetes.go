package target

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// Kinds of object KubernetesApply writes.
const (
	KindPrometheusRule = "prometheusrule"
	KindConfigMap      = "configmap"
)

// FieldManager owns the fields rulegen applies.
const FieldManager = "autoglm-rulegen"

// KubernetesApply writes the rules into the cluster with server-side apply
// (PATCH, application/apply-patch+yaml, fieldManager=autoglm-rulegen, force):
// a prometheus-operator PrometheusRule holding every group, or a ConfigMap
// holding one key per rule file for a Prometheus that mounts it. Rulegen owns
// the object; nothing else needs to exist beforehand. Unchanged rules are not
// applied again.
type KubernetesApply struct {
	Kind            string
	Name, Namespace string
	Labels          map[string]string
	// Host is the API server's URL; Client carries its credentials (rest.HTTPClientFor).
	Host   string
	Client *http.Client
	last   []byte
}

// Deliver implements Target.
func (k *KubernetesApply) Deliver(ctx context.Context, set *rules.Set) (Result, error) {
	body, path, err := k.object(set)
	if err != nil {
		return Result{}, err
	}
	if bytes.Equal(body, k.last) {
		return Result{}, nil
	}
	u := strings.TrimSuffix(k.Host, "/") + path + "?" + url.Values{"fieldManager": {FieldManager}, "force": {"true"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/apply-patch+yaml")
	req.Header.Set("Accept", "application/json")
	resp, err := k.Client.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("apply %s %s/%s: %w", k.Kind, k.Namespace, k.Name, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err := resp.Body.Close(); err != nil {
		return Result{}, fmt.Errorf("close response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(msg, &st) == nil && st.Message != "" {
			msg = []byte(st.Message)
		}
		return Result{}, fmt.Errorf("apply %s %s/%s: %s: %s", k.Kind, k.Namespace, k.Name, resp.Status, strings.TrimSpace(string(msg)))
	}
	k.last = body
	return Result{Written: 1}, nil
}

// object renders the object to apply and the API path it lives at.
func (k *KubernetesApply) object(set *rules.Set) ([]byte, string, error) {
	ns := url.PathEscape(k.Namespace)
	name := url.PathEscape(k.Name)
	switch k.Kind {
	case KindPrometheusRule:
		b, err := rules.PrometheusRule(set.Groups(), k.Name, k.Namespace, k.Labels)
		if err != nil {
			return nil, "", err
		}
		return b, "/apis/monitoring.coreos.com/v1/namespaces/" + ns + "/prometheusrules/" + name, nil
	case KindConfigMap:
		cm := configMap{APIVersion: "v1", Kind: "ConfigMap", Data: map[string]string{}}
		cm.Metadata.Name, cm.Metadata.Namespace, cm.Metadata.Labels = k.Name, k.Namespace, k.Labels
		names := set.FileNames()
		sort.Strings(names)
		for _, n := range names {
			cm.Data[n] = string(set.Rendered[n])
		}
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(cm); err != nil {
			return nil, "", fmt.Errorf("encode ConfigMap: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, "", fmt.Errorf("encode ConfigMap: %w", err)
		}
		return buf.Bytes(), "/api/v1/namespaces/" + ns + "/configmaps/" + name, nil
	}
	return nil, "", fmt.Errorf("unknown kind %q", k.Kind)
}

type configMap struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels,omitempty"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
}
