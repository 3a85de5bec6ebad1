// Command tlsserver is the Go TLS server of the exporter's tests: the
// llmapi handler over HTTPS, HTTP/1.1 only.
//
//	tlsserver ADDR CERT KEY
package main

import (
	"crypto/tls"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/testdata/llmapi"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: tlsserver ADDR CERT KEY")
	}
	srv := &http.Server{
		Addr:              os.Args[1],
		Handler:           llmapi.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// HTTP/1.1 only: the plaintext is parsed as HTTP/1.x.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	log.Fatal(srv.ListenAndServeTLS(os.Args[2], os.Args[3]))
}
