package workload

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// apiServer is a fake Kubernetes API server for pods that keeps the
// list/watch contract client-go relies on: resource versions that grow with
// every change, lists with a collection resourceVersion, watches from a
// resourceVersion (410 Gone when it is older than the history kept), the
// watch-list form (sendInitialEvents=true: the current pods as ADDED, then
// a BOOKMARK annotated k8s.io/initial-events-end), field selectors on
// spec.nodeName, and timeoutSeconds. A request that does not select the
// expected node is refused with 403 and recorded: the exporter must only
// ever ask for its own node's pods.
type apiServer struct {
	t    *testing.T
	node string
	srv  *httptest.Server

	mu       sync.Mutex
	rv       int
	pods     map[string]*corev1.Pod // namespace/name
	history  []event                // every change, in order
	oldest   int                    // lowest resourceVersion a watch may start from
	changed  chan struct{}          // closed and replaced on every change
	requests []string
	refused  []string
}

type event struct {
	typ string
	rv  int
	pod *corev1.Pod
}

func newAPIServer(t *testing.T, node string) *apiServer {
	a := &apiServer{t: t, node: node, pods: map[string]*corev1.Pod{}, changed: make(chan struct{})}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.close)
	return a
}

func (a *apiServer) close() {
	a.mu.Lock()
	close(a.changed)
	a.changed = nil
	a.mu.Unlock()
	a.srv.CloseClientConnections()
	a.srv.Close()
}

func (a *apiServer) apply(typ string, pod *corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rv++
	p := pod.DeepCopy()
	p.ResourceVersion = strconv.Itoa(a.rv)
	key := p.Namespace + "/" + p.Name
	if typ == "DELETED" {
		delete(a.pods, key)
	} else {
		a.pods[key] = p
	}
	a.history = append(a.history, event{typ: typ, rv: a.rv, pod: p})
	if a.changed != nil {
		close(a.changed)
		a.changed = make(chan struct{})
	}
}

func (a *apiServer) add(p *corev1.Pod)    { a.apply("ADDED", p) }
func (a *apiServer) update(p *corev1.Pod) { a.apply("MODIFIED", p) }
func (a *apiServer) remove(p *corev1.Pod) { a.apply("DELETED", p) }

// compact forgets the history, as etcd compaction does: watches from an older version get 410.
func (a *apiServer) compact() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.history = nil
	a.oldest = a.rv
}

func (a *apiServer) status(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg})
}

func (a *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a.mu.Lock()
	a.requests = append(a.requests, r.URL.RequestURI())
	a.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/pods" {
		a.status(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the fake serves GET /api/v1/pods only")
		return
	}
	if want := "spec.nodeName=" + a.node; q.Get("fieldSelector") != want {
		a.mu.Lock()
		a.refused = append(a.refused, r.URL.RequestURI())
		a.mu.Unlock()
		a.status(w, http.StatusForbidden, metav1.StatusReasonForbidden,
			fmt.Sprintf("pods is forbidden: the node's service account may only read pods with fieldSelector %s", want))
		return
	}
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		a.watch(w, r)
		return
	}
	a.mu.Lock()
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.Itoa(a.rv)}}
	for _, p := range a.pods {
		if p.Spec.NodeName == a.node {
			list.Items = append(list.Items, *p)
		}
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

func (a *apiServer) watch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	timeout := 5 * time.Minute
	if s := q.Get("timeoutSeconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			a.status(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "bad timeoutSeconds")
			return
		}
		timeout = time.Duration(n) * time.Second
	}
	initial := q.Get("sendInitialEvents") == "true"
	if initial && (q.Get("resourceVersionMatch") != string(metav1.ResourceVersionMatchNotOlderThan) || q.Get("allowWatchBookmarks") != "true") {
		a.status(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
			"sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(typ string, obj runtime.Object) bool {
		raw, err := json.Marshal(obj)
		if err != nil {
			a.t.Errorf("fake API server: %v", err)
			return false
		}
		if err := enc.Encode(metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: raw}}); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	pod := func(p *corev1.Pod) *corev1.Pod {
		c := p.DeepCopy()
		c.TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
		return c
	}

	a.mu.Lock()
	from := 0
	if s := q.Get("resourceVersion"); s != "" && s != "0" {
		from, _ = strconv.Atoi(s)
	}
	if !initial && from < a.oldest {
		a.mu.Unlock()
		send("ERROR", &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
			Code: http.StatusGone, Reason: metav1.StatusReasonExpired, Message: fmt.Sprintf("too old resource version: %d (%d)", from, a.oldest)})
		return
	}
	var start []*corev1.Pod
	if initial {
		for _, p := range a.pods {
			if p.Spec.NodeName == a.node {
				start = append(start, pod(p))
			}
		}
		from = a.rv
	}
	rv := a.rv
	a.mu.Unlock()
	for _, p := range start {
		if !send("ADDED", p) {
			return
		}
	}
	if initial {
		send("BOOKMARK", &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{
			ResourceVersion: strconv.Itoa(rv), Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
	}
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		var next []event
		for _, e := range a.history {
			if e.rv > from {
				next = append(next, e)
			}
		}
		changed := a.changed
		a.mu.Unlock()
		for _, e := range next {
			from = e.rv
			if e.pod.Spec.NodeName != a.node {
				continue
			}
			if !send(e.typ, pod(e.pod)) {
				return
			}
		}
		if changed == nil {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		}
	}
}
