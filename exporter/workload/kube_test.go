package workload

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/open-autoglm/autoglm-monitor/exporter/httpparse"
	"github.com/open-autoglm/autoglm-monitor/exporter/metrics"
	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

const (
	uidA = "6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b"
	uidB = "0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
	uidC = "11111111-2222-4333-8444-555555555555"
	uidD = "9e8d7c6b-5a49-4382-b716-a5b4c3d2e1f0"
	cidA = "4e0c1f7c5b9a8d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e"
	cidB = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	cidE = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"
	cidD = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func pod(ns, name, uid, node string, owner *metav1.OwnerReference, labels map[string]string, containers map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	for _, n := range []string{"server", "envoy"} {
		id, ok := containers[n]
		if !ok {
			continue
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "registry.example/" + n})
		if id != "" {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: n, ContainerID: id, Ready: true})
		}
	}
	return p
}

func owner(kind, name string) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "owner-" + types.UID(name), Controller: &yes}
}

// feeder drives the real HTTP parser with the events a capture would emit.
type feeder struct {
	p    *httpparse.Parser
	t    time.Time
	next traffic.ConnID
}

func (f *feeder) open(pid uint32) traffic.ConnID {
	f.next++
	f.p.Handle(&traffic.Event{Kind: traffic.Open, Conn: f.next, PID: pid, Time: f.t,
		Local: netipPort(8000), Remote: netipPort(41000)})
	return f.next
}

func (f *feeder) exchange(c traffic.ConnID, pid uint32, status string) {
	req := []byte("POST /v1/chat/completions HTTP/1.1\r\nHost: llm\r\nContent-Length: 2\r\n\r\n{}")
	resp := []byte("HTTP/1.1 " + status + "\r\nContent-Length: 2\r\n\r\n{}")
	f.t = f.t.Add(time.Millisecond)
	f.p.Handle(&traffic.Event{Kind: traffic.Data, Conn: c, PID: pid, Time: f.t, Dir: traffic.Ingress, Size: uint32(len(req)), Data: req})
	f.t = f.t.Add(time.Millisecond)
	f.p.Handle(&traffic.Event{Kind: traffic.Data, Conn: c, PID: pid, Time: f.t, Dir: traffic.Egress, Size: uint32(len(resp)), Data: resp})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counts maps each http_server_request_duration_seconds series' count to its workload labels.
func counts(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(exposition(t, c), "\n") {
		rest, ok := strings.CutPrefix(line, "http_server_request_duration_seconds_count{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		byName := map[string]string{}
		for _, pair := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(pair, "=")
			byName[k] = strings.Trim(v, `"`)
		}
		var k []string
		for _, l := range sli.WorkloadLabels() {
			k = append(k, l+"="+byName[l])
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out[strings.Join(k, ",")] += n
	}
	return out
}

func TestKubernetesPodsThroughFakeAPIServer(t *testing.T) {
	api := newAPIServer(t, "node-a")
	api.add(pod("llm", "vllm-0", uidA, "node-a", owner("StatefulSet", "vllm"), nil, map[string]string{"server": "containerd://" + cidA}))
	api.add(pod("chat", "chat-7c9d8-x2k4q", uidB, "node-a", owner("ReplicaSet", "chat-7c9d8"),
		map[string]string{"pod-template-hash": "7c9d8"}, map[string]string{"server": "containerd://" + cidB, "envoy": "containerd://" + cidE}))
	api.add(pod("other", "elsewhere", uidC, "node-b", nil, nil, map[string]string{"server": "containerd://" + cidA}))

	fp := newFakeProc(t)
	us := func(u string) string { return strings.ReplaceAll(u, "-", "_") }
	fp.add(100, 10, "python3", "/usr/bin/python3", 4026532100,
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+us(uidA)+".slice/cri-containerd-"+cidA+".scope\n")
	fp.add(200, 20, "gunicorn", "/usr/bin/python3", 4026532200, "0::/kubepods/burstable/pod"+uidB+"/"+cidB+"\n")
	fp.add(201, 21, "envoy", "/usr/local/bin/envoy", 4026532200, "0::/kubepods/burstable/pod"+uidB+"/"+cidE+"\n")
	fp.add(400, 40, "python3", "/usr/bin/python3", 4026532400,
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"+us(uidD)+".slice/cri-containerd-"+cidD+".scope\n")

	pods, err := NewPods(PodsOptions{Config: &rest.Config{Host: api.srv.URL}, NodeName: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	col := metrics.New(metrics.Options{Endpoints: []string{"/v1/chat/completions"}, TopModels: 5, TopClients: 5, ClientPrefixV4: 24, ClientPrefixV6: 64})
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r := New(Options{Proc: fp.root, NetnsDirs: []string{}, Pods: pods, Grace: 10 * time.Second, Now: clk.now, OnRetire: col.Forget})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pods.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the pods of node-a to be listed", pods.HasSynced)

	f := &feeder{p: httpparse.New(httpparse.Options{Identify: r.Identify, OnStart: col.Start, OnRequest: col.Finish, OnDrop: col.Drop}), t: clk.now()}
	cA, cB, cE, cD := f.open(100), f.open(200), f.open(201), f.open(400)
	for range 3 {
		f.exchange(cA, 100, "200 OK")
	}
	f.exchange(cB, 200, "200 OK")
	f.exchange(cB, 200, "503 Service Unavailable")
	f.exchange(cE, 201, "200 OK")
	f.exchange(cD, 400, "200 OK") // vllm-1 is not known yet

	const (
		vllm0  = "service_name=vllm,netns=,k8s_namespace_name=llm,k8s_pod_name=vllm-0,k8s_container_name=server"
		chat   = "service_name=chat,netns=,k8s_namespace_name=chat,k8s_pod_name=chat-7c9d8-x2k4q,k8s_container_name=server"
		envoy  = "service_name=chat,netns=,k8s_namespace_name=chat,k8s_pod_name=chat-7c9d8-x2k4q,k8s_container_name=envoy"
		early  = "service_name=python3,netns=4026532400,k8s_namespace_name=,k8s_pod_name=,k8s_container_name="
		vllm1  = "service_name=vllm,netns=,k8s_namespace_name=llm,k8s_pod_name=vllm-1,k8s_container_name=server"
		vllm1s = "vllm-1"
	)
	check := func(want map[string]float64) {
		t.Helper()
		got := counts(t, col)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %g requests, want %g", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected series %s (%g)", k, v)
			}
		}
	}
	check(map[string]float64{vllm0: 3, chat: 2, envoy: 1, early: 1})

	// The pod appears (the API server reported it late): open connections
	// carry its name from their next request on.
	d := pod("llm", "vllm-1", uidD, "node-a", owner("StatefulSet", "vllm"), nil, map[string]string{"server": ""})
	api.add(d)
	d.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", ContainerID: "containerd://" + cidD}}
	api.update(d)
	waitFor(t, "vllm-1 to be named", func() bool { return r.Identify(open(400, 8000)).Workload().K8sPod == vllm1s })
	f.exchange(cD, 400, "200 OK")
	f.exchange(cD, 400, "200 OK")
	check(map[string]float64{vllm0: 3, chat: 2, envoy: 1, early: 1, vllm1: 2})

	// vllm-0 is deleted: its series stay for the grace period, then go; so
	// does the placeholder of vllm-1 nobody uses any more.
	api.remove(pod("llm", "vllm-0", uidA, "node-a", nil, nil, nil))
	waitFor(t, "vllm-0 to leave the index", func() bool { _, ok := pods.lookup(uidA, cidA); return !ok })
	fp.exit(100)
	r.Sweep()
	check(map[string]float64{vllm0: 3, chat: 2, envoy: 1, early: 1, vllm1: 2})
	clk.add(10 * time.Second)
	r.Sweep()
	check(map[string]float64{chat: 2, envoy: 1, vllm1: 2})
	// A request of the deleted pod still in the parser is not counted and brings nothing back.
	f.exchange(cA, 100, "200 OK")
	check(map[string]float64{chat: 2, envoy: 1, vllm1: 2})
	if got := exposition(t, col); strings.Contains(got, "vllm-0") || strings.Contains(got, "4026532400") {
		t.Errorf("retired workloads still exported:\n%s", got)
	}

	// A pod deleted while the watch was down (and the history compacted) is
	// still removed: the informer relists after 410 Gone.
	api.compact()
	api.remove(pod("chat", "chat-7c9d8-x2k4q", uidB, "node-a", nil, nil, nil))
	api.srv.CloseClientConnections()
	waitFor(t, "the chat pod to leave the index after a relist", func() bool { _, ok := pods.lookup(uidB, cidB); return !ok })
	clk.add(10 * time.Second)
	r.Sweep()
	check(map[string]float64{vllm1: 2})

	if _, ok := pods.lookup(uidC, cidA); ok {
		t.Error("a pod of another node is indexed")
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.refused) > 0 {
		t.Errorf("requests without the node's field selector: %v", api.refused)
	}
	watched := false
	for _, u := range api.requests {
		watched = watched || strings.Contains(u, "watch=")
	}
	if !watched {
		t.Errorf("the pods were never watched: %v", api.requests)
	}
}

func TestPodServiceName(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"deployment", pod("a", "chat-5d8f9-abcde", uidA, "n", owner("ReplicaSet", "chat-5d8f9"), map[string]string{"pod-template-hash": "5d8f9"}, nil), "chat"},
		{"statefulset", pod("a", "vllm-2", uidA, "n", owner("StatefulSet", "vllm"), nil, nil), "vllm"},
		{"daemonset", pod("a", "agent-x7", uidA, "n", owner("DaemonSet", "agent"), nil, nil), "agent"},
		{"name label", pod("a", "p", uidA, "n", owner("StatefulSet", "vllm"), map[string]string{"app.kubernetes.io/name": "inference"}, nil), "inference"},
		{"instance label first", pod("a", "p", uidA, "n", nil, map[string]string{"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "vllm-prod"}, nil), "vllm-prod"},
		{"bare pod", pod("a", "debug", uidA, "n", nil, nil, nil), "debug"},
	} {
		if got := serviceName(tc.pod); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	p := pod("a", "p", uidA, "n", nil, map[string]string{"app.kubernetes.io/name": "x"}, nil)
	p.Annotations = map[string]string{"resource.opentelemetry.io/service.name": "explicit"}
	if got := serviceName(p); got != "explicit" {
		t.Errorf("annotation: %q", got)
	}
}

func TestNewPodsNeedsNode(t *testing.T) {
	_, err := NewPods(PodsOptions{Config: &rest.Config{Host: "http://127.0.0.1:1"}})
	if err == nil || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Errorf("err = %v, want a hint at NODE_NAME", err)
	}
}

func exposition(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	b, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, sli.HTTPDuration, sli.HTTPActive, sli.HTTPRequestSize,
		sli.HTTPResponseSize, sli.GenAIDuration, sli.GenAITTFT, sli.GenAITPOT, sli.GenAITokens, sli.ClientRequests)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
