package exporter

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// startH2CServer serves llmHandler over cleartext HTTP/2 (prior knowledge
// and the Upgrade: h2c dance) and HTTP/1.1 on a free loopback port.
func startH2CServer(t testing.TB) uint16 {
	t.Helper()
	port := testenv.FreePort(t)
	ln, err := net.Listen("tcp", testenv.Addr(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(llmHandler(), &http2.Server{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return uint16(port)
}

// h2load runs nghttp2's load generator (HTTP/2 with prior knowledge) and
// returns how many requests succeeded.
func h2load(t *testing.T, url string, n, conns, streams int, body string) int {
	t.Helper()
	args := []string{"-n", strconv.Itoa(n), "-c", strconv.Itoa(conns), "-m", strconv.Itoa(streams)}
	if body != "" {
		f := filepath.Join(t.TempDir(), "body.json")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-d", f, "-H", "content-type: application/json")
	}
	out, err := exec.Command(testenv.Tool(t, "h2load"), append(args, url)...).CombinedOutput()
	if err != nil {
		t.Fatalf("h2load %s: %v\n%s", url, err, out)
	}
	m := regexp.MustCompile(`requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("h2load output without a request count:\n%s", out)
	}
	ok, _ := strconv.Atoi(string(m[1]))
	if !regexp.MustCompile(`Application protocol: h2c?\n`).Match(out) {
		t.Fatalf("h2load did not speak HTTP/2:\n%s", out)
	}
	return ok
}

// curlStatus runs curl with the given protocol flag and returns the status code.
func curlStatus(t *testing.T, flag, url string) int {
	t.Helper()
	// -k: the TLS tests' own self-signed certificate.
	out, err := exec.Command(testenv.Tool(t, "curl"), "-sSk", flag, "-o", "/dev/null", "-w", "%{http_version} %{http_code}", url).Output()
	if err != nil {
		t.Fatalf("curl %s %s: %v", flag, url, err)
	}
	version, code, _ := strings.Cut(string(out), " ")
	if version != "2" {
		t.Fatalf("curl %s %s spoke HTTP/%s", flag, url, version)
	}
	n, _ := strconv.Atoi(code)
	return n
}

func checkHTTP2(t *testing.T, h *harness) {
	checkHTTP2At(t, h, h.base, "--http2-prior-knowledge", true)
}

// checkHTTP2At drives HTTP/2 at base (h2c, or h2 after TLS where flag is
// curl's --http2) and checks the exporter's exact counts; upgrade adds the
// Upgrade: h2c requests, which exist in cleartext only.
func checkHTTP2At(t *testing.T, h *harness, base, flag string, upgrade bool) {
	chat := `{"messages":[{"role":"user","content":"` + strings.Repeat("private prompt text ", 20) + `"}],`
	if got := h2load(t, base+"/v1/models/glm-4", 30, 2, 10, ""); got != 30 {
		t.Fatalf("h2load GET: %d of 30 succeeded", got)
	}
	if got := h2load(t, base+"/v1/chat/completions", 10, 1, 5, chat+`"stream":true,"model":"glm-4"}`); got != 10 {
		t.Fatalf("h2load streams: %d of 10 succeeded", got)
	}
	if got := h2load(t, base+"/v1/chat/completions", 10, 2, 4, chat+`"model":"glm-4"}`); got != 10 {
		t.Fatalf("h2load chat: %d of 10 succeeded", got)
	}
	for i := 0; i < 3; i++ {
		if got := curlStatus(t, flag, base+"/fail"); got != 503 {
			t.Fatalf("curl /fail: %d", got)
		}
	}
	for i := 0; i < 2; i++ {
		if got := curlStatus(t, flag, base+"/nope"); got != 404 {
			t.Fatalf("curl /nope: %d", got)
		}
	}
	// HTTP/1.1 with Upgrade: h2c, answered on HTTP/2 stream 1 (over TLS: h2 from the start).
	for i := 0; i < 4; i++ {
		f := flag
		if upgrade {
			f = "--http2"
		}
		if got := curlStatus(t, f, base+"/v1/models/up"); got != 200 {
			t.Fatalf("curl %s: %d", f, got)
		}
	}
	h.waitObserved(59)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{sli.HTTPDuration, nil, 59},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "/v1/models/{model}", sli.LabelStatus: "200"}, 34},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "POST", sli.LabelRoute: "/v1/chat/completions", sli.LabelStatus: "200", sli.LabelErrorType: ""}, 20},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "other", sli.LabelStatus: "503", sli.LabelErrorType: "503"}, 3},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "other", sli.LabelStatus: "404", sli.LabelErrorType: ""}, 2},
		{sli.GenAIDuration, map[string]string{sli.LabelOperation: "chat", sli.LabelModel: "glm-4"}, 20},
		{sli.GenAITTFT, map[string]string{sli.LabelRoute: "/v1/chat/completions", sli.LabelModel: "glm-4"}, 10},
		{sli.GenAITokens, map[string]string{sli.LabelTokenType: "input", sli.LabelModel: "glm-4"}, 20 * 11},
		{sli.GenAITokens, map[string]string{sli.LabelTokenType: "output", sli.LabelModel: "glm-4"}, 10*3 + 10*4},
		{sli.HTTPActive, nil, 0},
		{"autoglm_exporter_parse_errors_total", nil, 0},
		{"autoglm_exporter_requests_dropped_total", nil, 0},
	} {
		if got := h.sum(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %g, want %g", tc.name, tc.labels, got, tc.want)
		}
	}
	checkNoLoss(t, h)
}

func checkNoLoss(t *testing.T, h *harness) {
	if !h.ebpf {
		return
	}
	for _, reason := range []string{"ringbuf_full", "map_full", "malformed", "truncated"} {
		if got := h.sum("autoglm_exporter_events_lost_total", map[string]string{"reason": reason}); got != 0 {
			t.Errorf("lost events (%s) = %g, want 0", reason, got)
		}
	}
}

func TestPipelineHTTP2(t *testing.T) { checkHTTP2(t, start(t, startH2CServer(t), false)) }

func TestEBPFHTTP2(t *testing.T) {
	testenv.Root(t)
	checkHTTP2(t, start(t, startH2CServer(t), true))
}

// The gRPC test service: Complete (unary) and GenerateStream (server
// streaming), registered without generated code; wrapperspb.StringValue
// is the message both ways.
const grpcService = "autoglm.test.Generator"

func startGRPCServer(t testing.TB) uint16 {
	t.Helper()
	port := testenv.FreePort(t)
	ln, err := net.Listen("tcp", testenv.Addr(port))
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: grpcService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Complete", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			switch in.GetValue() {
			case "overload":
				return nil, status.Error(codes.Unavailable, "overloaded")
			case "missing":
				return nil, status.Error(codes.NotFound, "no such model")
			}
			return wrapperspb.String("answer to " + in.GetValue()), nil
		}}},
		Streams: []grpc.StreamDesc{{StreamName: "GenerateStream", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			in := new(wrapperspb.StringValue)
			if err := ss.RecvMsg(in); err != nil {
				return err
			}
			for i := 0; i < 5; i++ {
				if err := ss.SendMsg(wrapperspb.String("token " + strconv.Itoa(i))); err != nil {
					return err
				}
				time.Sleep(2 * time.Millisecond)
			}
			return nil
		}}},
	}, struct{}{})
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return uint16(port)
}

func checkGRPC(t *testing.T, h *harness) {
	grpcWorkload(t, h.base)
	h.waitObserved(22)
	checkGRPCMetrics(t, h)
}

// grpcWorkload makes 22 calls: 15 unary (10 OK, 3 UNAVAILABLE, 2 NOT_FOUND), 2 to an unknown method, 5 streams.
func grpcWorkload(t *testing.T, base string) {
	cc, err := grpc.NewClient(strings.TrimPrefix(base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unary := func(method, in string) codes.Code {
		out := new(wrapperspb.StringValue)
		return status.Code(cc.Invoke(ctx, "/"+grpcService+"/"+method, wrapperspb.String(in), out))
	}
	for i := 0; i < 10; i++ {
		if c := unary("Complete", "hi"); c != codes.OK {
			t.Fatalf("Complete: %s", c)
		}
	}
	for i := 0; i < 3; i++ {
		if c := unary("Complete", "overload"); c != codes.Unavailable {
			t.Fatalf("Complete overload: %s", c)
		}
	}
	for i := 0; i < 2; i++ {
		if c := unary("Complete", "missing"); c != codes.NotFound {
			t.Fatalf("Complete missing: %s", c)
		}
		if c := unary("Unknown", "x"); c != codes.Unimplemented {
			t.Fatalf("Unknown: %s", c)
		}
	}
	for i := 0; i < 5; i++ {
		st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/"+grpcService+"/GenerateStream")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SendMsg(wrapperspb.String("prompt")); err != nil {
			t.Fatal(err)
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			err := st.RecvMsg(new(wrapperspb.StringValue))
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 5 {
			t.Fatalf("stream %d: %d messages", i, n)
		}
	}
}

func checkGRPCMetrics(t *testing.T, h *harness) {
	complete, stream := "/"+grpcService+"/Complete", "/"+grpcService+"/GenerateStream"
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{sli.HTTPDuration, nil, 22},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "POST", sli.LabelRoute: complete, sli.LabelStatus: "200", sli.LabelErrorType: ""}, 12},
		{sli.HTTPDuration, map[string]string{sli.LabelRoute: complete, sli.LabelErrorType: "UNAVAILABLE"}, 3},
		{sli.HTTPDuration, map[string]string{sli.LabelRoute: "other", sli.LabelErrorType: "UNIMPLEMENTED"}, 2},
		{sli.GRPCResponses, map[string]string{sli.LabelRoute: complete, sli.LabelGRPCStatus: "OK"}, 10},
		{sli.GRPCResponses, map[string]string{sli.LabelRoute: complete, sli.LabelGRPCStatus: "UNAVAILABLE"}, 3},
		{sli.GRPCResponses, map[string]string{sli.LabelRoute: complete, sli.LabelGRPCStatus: "NOT_FOUND"}, 2},
		{sli.GRPCResponses, map[string]string{sli.LabelRoute: "other", sli.LabelGRPCStatus: "UNIMPLEMENTED"}, 2},
		{sli.GRPCResponses, map[string]string{sli.LabelRoute: stream, sli.LabelGRPCStatus: "OK"}, 5},
		{sli.GenAIDuration, map[string]string{sli.LabelRoute: stream, sli.LabelOperation: "generate"}, 5},
		{sli.GenAITTFT, map[string]string{sli.LabelRoute: stream}, 5},
		{sli.GenAITTFT, map[string]string{sli.LabelRoute: complete}, 0},
		{sli.HTTPActive, nil, 0},
		{"autoglm_exporter_parse_errors_total", nil, 0},
		{"autoglm_exporter_requests_dropped_total", nil, 0},
	} {
		if got := h.sum(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %g, want %g", tc.name, tc.labels, got, tc.want)
		}
	}
	checkNoLoss(t, h)
}

// gRPC methods are routes like any path: listed in metrics.endpoints, else "other".
const grpcEndpoints = `["/autoglm.test.Generator/Complete", "/autoglm.test.Generator/GenerateStream"]`

func TestPipelineGRPC(t *testing.T) {
	checkGRPC(t, startWith(t, startGRPCServer(t), false, grpcEndpoints))
}

func TestEBPFGRPC(t *testing.T) {
	testenv.Root(t)
	checkGRPC(t, startWith(t, startGRPCServer(t), true, grpcEndpoints))
}

// TestTLSNginxHTTP2 is HTTP/2 after TLS: nginx terminating TLS with ALPN h2
// in front of the Go server, its plaintext read by the OpenSSL probes.
func TestTLSNginxHTTP2(t *testing.T) {
	testenv.Root(t)
	cert, key := selfSigned(t, t.TempDir())
	port := uint16(testenv.FreePort(t))
	h := start(t, port, true)
	startNginxTLSConf(t, strings.Replace(nginxTLSConf, " ssl;", " ssl http2;", 1), port, cert, key, startGoServer(t))
	h.waitTLSAttached("openssl", 3)
	checkHTTP2At(t, h, "https://"+testenv.Addr(int(port)), "--http2", false)
}
