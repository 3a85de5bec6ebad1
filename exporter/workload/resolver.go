// Package workload tells which server a captured connection belongs to. The
// eBPF source reports the server's PID with every connection; the resolver
// reads /proc/<pid> once per process (cgroup, network namespace, name) and
// names the server: a configured service name or the process name, plus the
// network namespace where it is not the host's, or — in Kubernetes — the
// pod's namespace, name and container, found from the container ID in the
// cgroup path through the pods of this node (Pods). Workloads that are gone
// (a deleted pod, a network namespace whose servers all exited) are retired
// after a grace period so their series disappear.
package workload

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// Rule names the servers it matches: every given condition must hold.
type Rule struct {
	// Name is the service_name of matching servers.
	Name string
	// Ports are local server ports; empty matches any.
	Ports []uint16
	// Process is a process (command) name or executable base name; empty matches any.
	Process string
}

func (r Rule) matches(info procInfo, port uint16) bool {
	if len(r.Ports) > 0 && !slices.Contains(r.Ports, port) {
		return false
	}
	if r.Process != "" && r.Process != info.comm && r.Process != info.processName() {
		return false
	}
	return true
}

// Options configures a Resolver.
type Options struct {
	// Proc is the procfs mount of the host PID namespace; default /proc.
	Proc string
	// NetnsDirs hold named network namespaces; default /run/netns and /var/run/netns.
	NetnsDirs []string
	// Rules name servers; the first match wins, else the process name is used.
	Rules []Rule
	// Pods resolves pods on this node (Kubernetes); nil outside Kubernetes.
	Pods *Pods
	// Grace is how long a gone workload keeps its series (in-flight requests
	// finish, the last increments get scraped); default 10s.
	Grace time.Duration
	// OnRetire is called, without locks held, for each workload retired.
	OnRetire func(*traffic.Workload)
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Resolver names the servers of connections. Identify is safe for
// concurrent use with Sweep and the pod callbacks.
type Resolver struct {
	o     Options
	proc  procFS
	host  uint64
	mu    sync.Mutex
	procs map[uint32]*proc
	// workloads interns identities: one *traffic.Workload per label set while it lives.
	workloads map[key]*entry
	// pending are bindings of pods (or containers) the API server has not reported yet.
	pending map[string][]*binding
	netns   netnsNames

	pidfds  bool
	lookups [numResults]atomic.Uint64
	retired atomic.Uint64
	descs   collectorDescs
}

// key is a workload's label values.
type key struct{ service, netns, namespace, pod, container string }

func keyOf(w *traffic.Workload) key {
	return key{w.ServiceName, w.NetNS, w.K8sNamespace, w.K8sPod, w.K8sContainer}
}

type proc struct {
	pid   uint32
	start uint64
	// pidfd refers to this very process (-1 when unavailable): while it is
	// alive the pid cannot have been reused, which one syscall tells.
	pidfd    int
	info     procInfo
	bindings map[string]*binding // by rule name, "" for the default name
}

// binding is one (process, service rule) pair and the Server its connections share.
type binding struct {
	srv   *traffic.Server
	entry *entry
	proc  *proc
	rule  string
}

type entry struct {
	w      *traffic.Workload
	kind   kind
	refs   int       // bindings of live processes
	idle   time.Time // when refs last dropped to 0
	podUID string
	gone   time.Time // pod deletion seen
}

type kind uint8

const (
	kindHost kind = iota
	kindNetNS
	kindPod
	numKinds
)

var kindNames = [numKinds]string{"host", "netns", "kubernetes"}

type result uint8

const (
	resultCached result = iota
	resultResolved
	resultGone
	resultNoPID
	numResults
)

var resultNames = [numResults]string{"cached", "resolved", "process_gone", "no_pid"}

// New returns a Resolver. With Pods set it subscribes to pod changes.
func New(o Options) *Resolver {
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.NetnsDirs == nil {
		o.NetnsDirs = []string{"/run/netns", "/var/run/netns"}
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{
		o:         o,
		proc:      procFS{root: o.Proc},
		procs:     make(map[uint32]*proc),
		workloads: make(map[key]*entry),
		pending:   make(map[string][]*binding),
		netns:     netnsNames{dirs: o.NetnsDirs},
		descs:     newCollectorDescs(),
	}
	r.host = r.proc.hostNetNS()
	// pidfds only mean something for the real /proc of this machine.
	r.pidfds = o.Proc == "/proc"
	if o.Pods != nil {
		o.Pods.subscribe(r.podChanged, r.podDeleted)
	}
	return r
}

// Identify names the server of the connection an event opened (the
// httpparse.Options.Identify hook). /proc/<pid> is read once per process; a
// known process is checked to still be the one its pid names (pidfd, or the
// start time where pidfds are not available), so a reused pid is never taken
// for the process it replaced.
func (r *Resolver) Identify(ev *traffic.Event) *traffic.Server {
	if ev.PID == 0 {
		r.lookups[resultNoPID].Add(1)
		return nil
	}
	var port uint16
	if ev.Local.IsValid() {
		port = ev.Local.Port()
	}
	now := r.o.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.procs[ev.PID]
	res := resultCached
	if p == nil || !r.alive(p) {
		if p != nil {
			r.dropProc(p, now)
		}
		var err error
		if p, err = r.resolve(ev.PID); err != nil {
			r.lookups[resultGone].Add(1)
			return nil
		}
		r.procs[ev.PID] = p
		res = resultResolved
	}
	rule := ""
	for _, ru := range r.o.Rules {
		if ru.matches(p.info, port) {
			rule = ru.Name
			break
		}
	}
	b := p.bindings[rule]
	if b == nil {
		b = &binding{proc: p, rule: rule}
		k, podUID, kd, pending := r.identity(p.info, rule)
		b.entry = r.acquire(k, kd, podUID)
		b.srv = traffic.NewServer(b.entry.w)
		p.bindings[rule] = b
		if pending {
			uid := p.info.cgroup.PodUID
			r.pending[uid] = append(r.pending[uid], b)
		}
	}
	r.lookups[res].Add(1)
	return b.srv
}

// alive reports whether p is still the process its pid names: through its
// pidfd (one syscall), else by its start time in /proc/<pid>/stat.
func (r *Resolver) alive(p *proc) bool {
	if p.pidfd >= 0 {
		return unix.PidfdSendSignal(p.pidfd, 0, nil, 0) == nil
	}
	start, err := r.proc.start(p.pid)
	return err == nil && start == p.start
}

// resolve reads what names a process. The pidfd is opened first, so the
// information read afterwards belongs to the process it refers to once the
// pidfd is found alive again.
func (r *Resolver) resolve(pid uint32) (*proc, error) {
	p := &proc{pid: pid, pidfd: -1, bindings: make(map[string]*binding, 1)}
	if r.pidfds {
		if fd, err := unix.PidfdOpen(int(pid), 0); err == nil {
			p.pidfd = fd
		}
	}
	var err error
	if p.start, err = r.proc.start(pid); err == nil {
		p.info, err = r.proc.info(pid)
	}
	if err == nil && p.pidfd >= 0 && !r.alive(p) {
		err = errors.New("process exited")
	}
	if err != nil {
		p.closeFD()
		return nil, err
	}
	return p, nil
}

func (p *proc) closeFD() {
	if p.pidfd >= 0 {
		_ = unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

// identity computes the labels of a process under a rule. pending is set
// when the process runs in a pod that the pod index cannot fully name yet.
func (r *Resolver) identity(info procInfo, rule string) (k key, podUID string, kd kind, pending bool) {
	service := rule
	if service == "" {
		service = info.processName()
	}
	if uid := info.cgroup.PodUID; uid != "" && r.o.Pods != nil {
		if ref, ok := r.o.Pods.lookup(uid, info.cgroup.ContainerID); ok {
			if rule == "" && ref.Service != "" {
				service = ref.Service
			}
			return key{service: service, namespace: ref.Namespace, pod: ref.Name, container: ref.Container},
				uid, kindPod, ref.Container == ""
		}
		pending = true
	}
	k = key{service: service}
	if info.netns != 0 && info.netns != r.host {
		k.netns = r.netns.name(info.netns, r.o.Now())
		return k, "", kindNetNS, pending
	}
	return k, "", kindHost, pending
}

func (r *Resolver) acquire(k key, kd kind, podUID string) *entry {
	e := r.workloads[k]
	if e == nil {
		w := &traffic.Workload{ServiceName: k.service, NetNS: k.netns,
			K8sNamespace: k.namespace, K8sPod: k.pod, K8sContainer: k.container}
		e = &entry{w: w, kind: kd, podUID: podUID}
		r.workloads[k] = e
	}
	e.refs++
	return e
}

func (r *Resolver) release(e *entry, now time.Time) {
	e.refs--
	if e.refs == 0 {
		e.idle = now
	}
}

func (r *Resolver) dropProc(p *proc, now time.Time) {
	delete(r.procs, p.pid)
	p.closeFD()
	for _, b := range p.bindings {
		r.release(b.entry, now)
		r.unpend(b)
	}
}

func (r *Resolver) unpend(b *binding) {
	uid := b.proc.info.cgroup.PodUID
	list := r.pending[uid]
	if i := slices.Index(list, b); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(r.pending, uid)
		} else {
			r.pending[uid] = list
		}
	}
}

// podChanged re-resolves bindings that waited for this pod.
func (r *Resolver) podChanged(uid string) {
	now := r.o.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.pending[uid]
	keep := list[:0]
	for _, b := range list {
		k, podUID, kd, pending := r.identity(b.proc.info, b.rule)
		if k != keyOf(b.entry.w) {
			e := r.acquire(k, kd, podUID)
			r.release(b.entry, now)
			b.entry = e
			b.srv.Set(e.w)
		}
		if pending {
			keep = append(keep, b)
		}
	}
	if len(keep) == 0 {
		delete(r.pending, uid)
	} else {
		r.pending[uid] = keep
	}
}

// podDeleted starts the grace period of the pod's workloads.
func (r *Resolver) podDeleted(uid string) {
	now := r.o.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.workloads {
		if e.podUID == uid && e.gone.IsZero() {
			e.gone = now
		}
	}
	delete(r.pending, uid)
}

// Sweep forgets processes that exited and retires workloads that are gone:
// pods deleted more than Grace ago, and servers in other network namespaces
// whose processes all exited more than Grace ago. Servers in the host
// namespace keep their series (their names are bounded by the configuration
// and the processes serving the observed ports).
func (r *Resolver) Sweep() {
	now := r.o.Now()
	var retired []*traffic.Workload
	r.mu.Lock()
	for _, p := range r.procs {
		if !r.alive(p) {
			r.dropProc(p, now)
		}
	}
	for k, e := range r.workloads {
		gone := false
		switch e.kind {
		case kindPod:
			gone = !e.gone.IsZero() && now.Sub(e.gone) >= r.o.Grace
		case kindNetNS:
			gone = e.refs == 0 && now.Sub(e.idle) >= r.o.Grace
		}
		if !gone {
			continue
		}
		delete(r.workloads, k)
		for _, p := range r.procs {
			for _, b := range p.bindings {
				if b.entry == e {
					r.dropProc(p, now)
					break
				}
			}
		}
		e.w.Retire()
		retired = append(retired, e.w)
	}
	r.mu.Unlock()
	for _, w := range retired {
		r.retired.Add(1)
		r.o.Logger.Debug("workload retired", "service_name", w.ServiceName, "netns", w.NetNS,
			"k8s_namespace_name", w.K8sNamespace, "k8s_pod_name", w.K8sPod, "k8s_container_name", w.K8sContainer)
		if r.o.OnRetire != nil {
			r.o.OnRetire(w)
		}
	}
}

// Run sweeps every half grace period until done is closed.
func (r *Resolver) Run(done <-chan struct{}) {
	t := time.NewTicker(r.o.Grace / 2)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			r.Sweep()
		}
	}
}

// Collector exposes the resolver's own counters.
func (r *Resolver) Collector() prometheus.Collector { return resolverCollector{r} }

type collectorDescs struct {
	lookups, workloads, procs, retired *prometheus.Desc
}

func newCollectorDescs() collectorDescs {
	return collectorDescs{
		lookups: prometheus.NewDesc("autoglm_exporter_workload_lookups_total",
			"Connections whose server was looked up, by result (cached: known process; resolved: /proc read; process_gone; no_pid).",
			[]string{"result"}, nil),
		workloads: prometheus.NewDesc("autoglm_exporter_workloads",
			"Workloads (label sets of servers) currently known, by kind (host, netns, kubernetes).", []string{"kind"}, nil),
		procs: prometheus.NewDesc("autoglm_exporter_workload_processes",
			"Server processes whose identity is cached.", nil, nil),
		retired: prometheus.NewDesc("autoglm_exporter_workloads_retired_total",
			"Workloads that were gone (deleted pods, network namespaces without servers) and had their series removed.", nil, nil),
	}
}

type resolverCollector struct{ r *Resolver }

func (c resolverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.r.descs.lookups
	ch <- c.r.descs.workloads
	ch <- c.r.descs.procs
	ch <- c.r.descs.retired
}

func (c resolverCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	for i := range numResults {
		ch <- prometheus.MustNewConstMetric(r.descs.lookups, prometheus.CounterValue, float64(r.lookups[i].Load()), resultNames[i])
	}
	var kinds [numKinds]int
	r.mu.Lock()
	for _, e := range r.workloads {
		kinds[e.kind]++
	}
	procs := len(r.procs)
	r.mu.Unlock()
	for i := range numKinds {
		ch <- prometheus.MustNewConstMetric(r.descs.workloads, prometheus.GaugeValue, float64(kinds[i]), kindNames[i])
	}
	ch <- prometheus.MustNewConstMetric(r.descs.procs, prometheus.GaugeValue, float64(procs))
	ch <- prometheus.MustNewConstMetric(r.descs.retired, prometheus.CounterValue, float64(r.retired.Load()))
}
