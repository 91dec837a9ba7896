// Command gowebhook is the physical-limit baseline for the benchmarks: a minimal mutating
// admission webhook on Go's net/http over TLS, standard library only.
//
// It decodes the AdmissionReview (as any webhook must, to echo request.uid) and answers
// allowed with a fixed JSONPatch: the one our webhook returns for the benchmark pod, so both
// servers send the API server the same bytes to apply. HTTP/2 is off: gunicorn speaks only
// HTTP/1.1, and the comparison is of servers, not protocols.
//
//	gowebhook -listen 127.0.0.1:9443 -cert tls.crt -key tls.key -patch patch.json [-record body.json]
//
// With -record, the first request body that carries an object is written to that file (how
// the benchmarks capture a real AdmissionReview exactly as kube-apiserver sends it).
package main

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"sync"
	"time"
)

type admissionReview struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Request    *struct {
		UID    string          `json:"uid"`
		Object json.RawMessage `json:"object"`
	} `json:"request,omitempty"`
	Response *admissionResponse `json:"response,omitempty"`
}

type admissionResponse struct {
	UID       string `json:"uid"`
	Allowed   bool   `json:"allowed"`
	PatchType string `json:"patchType,omitempty"`
	Patch     string `json:"patch,omitempty"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9443", "address to serve TLS on")
	certFile := flag.String("cert", "", "PEM certificate")
	keyFile := flag.String("key", "", "PEM private key")
	patchFile := flag.String("patch", "", "JSONPatch (a JSON array) to return; empty: no patch")
	record := flag.String("record", "", "write the first request body to this file")
	flag.Parse()

	patch := ""
	if *patchFile != "" {
		raw, err := os.ReadFile(*patchFile)
		if err != nil {
			log.Fatalf("reading patch: %v", err)
		}
		var ops []map[string]any
		if err := json.Unmarshal(raw, &ops); err != nil {
			log.Fatalf("patch is not a JSON array: %v", err)
		}
		patch = base64.StdEncoding.EncodeToString(raw)
	}
	var recordOnce sync.Once

	mux := http.NewServeMux()
	mux.HandleFunc("POST /mutate", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 3<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var review admissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
			return
		}
		if *record != "" && len(review.Request.Object) > 0 { // not a readiness probe
			recordOnce.Do(func() {
				if err := os.WriteFile(*record+".partial", body, 0o600); err == nil {
					_ = os.Rename(*record+".partial", *record)
				}
			})
		}
		response := admissionResponse{UID: review.Request.UID, Allowed: true}
		if patch != "" {
			response.PatchType, response.Patch = "JSONPatch", patch
		}
		out, _ := json.Marshal(admissionReview{
			APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Response: &response,
		})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})

	server := &http.Server{
		Addr:              *listen,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       75 * time.Second, // as gunicorn.conf.py's keepalive
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // no HTTP/2
	}
	log.Printf("gowebhook listening on https://%s", *listen)
	log.Fatal(server.ListenAndServeTLS(*certFile, *keyFile))
}
