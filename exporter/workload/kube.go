package workload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Labels and annotations the service name of a pod is derived from, in
// OpenTelemetry's order for Kubernetes.
const (
	annotationServiceName = "resource.opentelemetry.io/service.name"
	labelInstance         = "app.kubernetes.io/instance"
	labelName             = "app.kubernetes.io/name"
	labelPodTemplateHash  = "pod-template-hash"
)

// PodsOptions configures Pods.
type PodsOptions struct {
	// Config reaches the API server (rest.InClusterConfig in a pod).
	Config *rest.Config
	// NodeName is this node's name (the downward API's spec.nodeName); only its pods are watched.
	NodeName string
	Logger   *slog.Logger
}

// PodRef names a container of a pod.
type PodRef struct {
	Namespace, Name string
	// Container is the container's name, "" while the pod's status does not list it yet.
	Container string
	// Service is the pod's service name (annotation resource.opentelemetry.io/service.name,
	// label app.kubernetes.io/instance or app.kubernetes.io/name, the owning workload, the pod).
	Service string
}

// Pods is a live index of the pods scheduled on one node, kept by a
// client-go informer that lists and watches only pods with
// spec.nodeName=<node> (so the exporter's RBAC is get/list/watch on pods and
// its memory grows with the node, not the cluster).
type Pods struct {
	informer cache.SharedIndexInformer
	logger   *slog.Logger
	node     string

	mu          sync.RWMutex
	byUID       map[string]*podInfo
	byContainer map[string]string // container ID → pod UID
	onChange    func(uid string)
	onDelete    func(uid string)

	podsDesc, syncedDesc *prometheus.Desc
}

type podInfo struct {
	namespace, name, service string
	containers               map[string]string // container ID → container name
	only                     string            // the pod's single container, "" if several
}

// NewPods prepares the informer; Run starts it.
func NewPods(o PodsOptions) (*Pods, error) {
	if o.NodeName == "" {
		return nil, errors.New("kubernetes: node name unknown: set exporter.kubernetes.node_name or the NODE_NAME environment variable (downward API fieldRef spec.nodeName)")
	}
	if o.Config == nil {
		return nil, errors.New("kubernetes: no API server configuration")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := podsClient(o.Config)
	if err != nil {
		return nil, err
	}
	selector := fields.OneTermEqualSelector("spec.nodeName", o.NodeName).String()
	lw := cache.NewFilteredListWatchFromClient(client, "pods", metav1.NamespaceAll,
		func(lo *metav1.ListOptions) { lo.FieldSelector = selector })
	p := &Pods{
		informer:    cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{}),
		logger:      o.Logger,
		node:        o.NodeName,
		byUID:       make(map[string]*podInfo),
		byContainer: make(map[string]string),
		podsDesc: prometheus.NewDesc("autoglm_exporter_kubernetes_pods",
			"Pods of this node known from the API server.", nil, nil),
		syncedDesc: prometheus.NewDesc("autoglm_exporter_kubernetes_synced",
			"1 once the pods of this node have been listed from the API server.", nil, nil),
	}
	// Keep only what names a container: the store holds every pod of the node.
	if err := p.informer.SetTransform(slimPod); err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	if _, err := p.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.upsert(obj) },
		UpdateFunc: func(_, obj any) { p.upsert(obj) },
		DeleteFunc: p.delete,
	}); err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return p, nil
}

// podsClient is a REST client for the core v1 API that knows only pods: the
// generated clientset registers every API group and would triple the binary.
func podsClient(c *rest.Config) (*rest.RESTClient, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("kubernetes: scheme: %w", err)
	}
	cfg := rest.CopyConfig(c)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "autoglm-exporter"
	}
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	client, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	return client, nil
}

// subscribe registers the resolver's callbacks; call before Run.
func (p *Pods) subscribe(onChange, onDelete func(uid string)) {
	p.mu.Lock()
	p.onChange, p.onDelete = onChange, onDelete
	p.mu.Unlock()
}

// Run lists and watches until ctx is done.
func (p *Pods) Run(ctx context.Context) { p.informer.RunWithContext(ctx) }

// HasSynced reports whether the first list has been processed.
func (p *Pods) HasSynced() bool { return p.informer.HasSynced() }

func (p *Pods) lookup(uid, containerID string) (PodRef, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pi := p.byUID[uid]
	if pi == nil {
		return PodRef{}, false
	}
	c := pi.containers[containerID]
	if c == "" {
		c = pi.only
	}
	return PodRef{Namespace: pi.namespace, Name: pi.name, Container: c, Service: pi.service}, true
}

func (p *Pods) upsert(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	uid := string(pod.UID)
	pi := &podInfo{namespace: pod.Namespace, name: pod.Name, service: serviceName(pod), containers: map[string]string{}}
	if len(pod.Spec.Containers) == 1 {
		pi.only = pod.Spec.Containers[0].Name
	}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, cs := range list {
			if id := containerID(cs.ContainerID); id != "" {
				pi.containers[id] = cs.Name
			}
			if cs.LastTerminationState.Terminated != nil {
				if id := containerID(cs.LastTerminationState.Terminated.ContainerID); id != "" {
					pi.containers[id] = cs.Name
				}
			}
		}
	}
	p.mu.Lock()
	if old := p.byUID[uid]; old != nil {
		for id := range old.containers {
			delete(p.byContainer, id)
		}
	}
	p.byUID[uid] = pi
	for id := range pi.containers {
		p.byContainer[id] = uid
	}
	onChange := p.onChange
	p.mu.Unlock()
	if onChange != nil {
		onChange(uid)
	}
}

func (p *Pods) delete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	uid := string(pod.UID)
	p.mu.Lock()
	if old := p.byUID[uid]; old != nil {
		for id := range old.containers {
			delete(p.byContainer, id)
		}
	}
	delete(p.byUID, uid)
	onDelete := p.onDelete
	p.mu.Unlock()
	p.logger.Debug("pod deleted", "namespace", pod.Namespace, "pod", pod.Name)
	if onDelete != nil {
		onDelete(uid)
	}
}

// containerID strips the runtime scheme: "containerd://<id>" → "<id>".
func containerID(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}

// serviceName follows OpenTelemetry's derivation of service.name for a pod.
func serviceName(pod *corev1.Pod) string {
	if v := pod.Annotations[annotationServiceName]; v != "" {
		return v
	}
	for _, l := range []string{labelInstance, labelName} {
		if v := pod.Labels[l]; v != "" {
			return v
		}
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		if ref.Kind == "ReplicaSet" {
			// A Deployment's ReplicaSet is <deployment>-<pod-template-hash>.
			if h := pod.Labels[labelPodTemplateHash]; h != "" {
				if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok {
					return d
				}
			}
		}
		return ref.Name
	}
	return pod.Name
}

// slimPod drops everything the index does not read, before the informer stores the pod.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			OwnerReferences: pod.OwnerReferences,
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName},
	}
	keep := func(m map[string]string, keys ...string) map[string]string {
		var out map[string]string
		for _, k := range keys {
			if v, ok := m[k]; ok {
				if out == nil {
					out = make(map[string]string, len(keys))
				}
				out[k] = v
			}
		}
		return out
	}
	slim.Labels = keep(pod.Labels, labelInstance, labelName, labelPodTemplateHash)
	slim.Annotations = keep(pod.Annotations, annotationServiceName)
	for _, c := range pod.Spec.Containers {
		slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Name: c.Name})
	}
	statuses := func(in []corev1.ContainerStatus) []corev1.ContainerStatus {
		out := make([]corev1.ContainerStatus, 0, len(in))
		for _, cs := range in {
			s := corev1.ContainerStatus{Name: cs.Name, ContainerID: cs.ContainerID}
			if t := cs.LastTerminationState.Terminated; t != nil {
				s.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ContainerID: t.ContainerID}
			}
			out = append(out, s)
		}
		return out
	}
	slim.Status.ContainerStatuses = statuses(pod.Status.ContainerStatuses)
	slim.Status.InitContainerStatuses = statuses(pod.Status.InitContainerStatuses)
	slim.Status.EphemeralContainerStatuses = statuses(pod.Status.EphemeralContainerStatuses)
	return slim, nil
}

// Collector exposes the pod index's state.
func (p *Pods) Collector() prometheus.Collector { return podsCollector{p} }

type podsCollector struct{ p *Pods }

func (c podsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.p.podsDesc
	ch <- c.p.syncedDesc
}

func (c podsCollector) Collect(ch chan<- prometheus.Metric) {
	c.p.mu.RLock()
	n := len(c.p.byUID)
	c.p.mu.RUnlock()
	synced := 0.0
	if c.p.HasSynced() {
		synced = 1
	}
	ch <- prometheus.MustNewConstMetric(c.p.podsDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.p.syncedDesc, prometheus.GaugeValue, synced)
}
