// Command go_acme_client drives golang.org/x/crypto/acme, the library cert-manager's ACME issuer
// is forked from, through cert-manager's flow: an RSA-2048 account key (optionally bound with
// EAB, HS256), an order with notAfter, http-01 answered by its own solver listener, an RSA-2048
// certificate key, the bundle written as PEM, then (optionally) revocation by the account.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

func main() {
	directory := flag.String("directory", "", "ACME directory URL")
	rootPath := flag.String("ca", "", "PEM file of the roots to trust")
	solver := flag.String("http01", "127.0.0.1:5002", "address the http-01 solver listens on")
	names := flag.String("names", "", "comma-separated DNS names")
	eabKID := flag.String("eab-kid", "", "external account binding key id")
	eabKey := flag.String("eab-key", "", "external account binding HMAC key (base64url)")
	notAfter := flag.Duration("not-after", 0, "ask for notAfter = now + this (0: the server's default)")
	out := flag.String("out", "chain.pem", "where to write the certificate and its chain")
	revoke := flag.Bool("revoke", false, "revoke the certificate after issuance")
	flag.Parse()
	if err := run(*directory, *rootPath, *solver, strings.Split(*names, ","), *eabKID, *eabKey, *notAfter, *out, *revoke); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(directory, rootPath, solver string, names []string, eabKID, eabKey string, notAfter time.Duration, out string, revoke bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	roots := x509.NewCertPool()
	pemRoots, err := os.ReadFile(rootPath)
	if err != nil {
		return err
	}
	if !roots.AppendCertsFromPEM(pemRoots) {
		return fmt.Errorf("no certificate in %s", rootPath)
	}
	accountKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	client := &acme.Client{
		Key:          accountKey,
		DirectoryURL: directory,
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}},
	}
	account := &acme.Account{Contact: []string{"mailto:ops@example.com"}}
	if eabKID != "" {
		key, err := base64.RawURLEncoding.DecodeString(eabKey)
		if err != nil {
			return fmt.Errorf("eab key: %w", err)
		}
		account.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: eabKID, Key: key}
	}
	if _, err := client.Register(ctx, account, acme.AcceptTOS); err != nil {
		return fmt.Errorf("register: %w", err)
	}

	responses := map[string]string{}
	var mu sync.Mutex
	listener := &http.Server{Addr: solver, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body, ok := responses[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	})}
	go listener.ListenAndServe()
	defer listener.Close()

	var options []acme.OrderOption
	if notAfter > 0 {
		options = append(options, acme.WithOrderNotAfter(time.Now().Add(notAfter).Truncate(time.Second)))
	}
	order, err := client.AuthorizeOrder(ctx, acme.DomainIDs(names...), options...)
	if err != nil {
		return fmt.Errorf("new order: %w", err)
	}
	for _, url := range order.AuthzURLs {
		authz, err := client.GetAuthorization(ctx, url)
		if err != nil {
			return fmt.Errorf("authorization: %w", err)
		}
		if authz.Status == acme.StatusValid {
			continue
		}
		var challenge *acme.Challenge
		for _, c := range authz.Challenges {
			if c.Type == "http-01" {
				challenge = c
			}
		}
		if challenge == nil {
			return fmt.Errorf("no http-01 challenge for %s", authz.Identifier.Value)
		}
		body, err := client.HTTP01ChallengeResponse(challenge.Token)
		if err != nil {
			return err
		}
		mu.Lock()
		responses[client.HTTP01ChallengePath(challenge.Token)] = body
		mu.Unlock()
		if _, err := client.Accept(ctx, challenge); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		if _, err := client.WaitAuthorization(ctx, url); err != nil {
			return fmt.Errorf("wait authorization: %w", err)
		}
	}
	if _, err := client.WaitOrder(ctx, order.URI); err != nil {
		return fmt.Errorf("wait order: %w", err)
	}
	certKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
	}, certKey)
	if err != nil {
		return err
	}
	chain, _, err := client.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return fmt.Errorf("finalize: %w", err)
	}
	var bundle []byte
	for _, der := range chain {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(out, bundle, 0o644); err != nil {
		return err
	}
	if revoke {
		if err := client.RevokeCert(ctx, nil, chain[0], acme.CRLReasonSuperseded); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
	}
	return nil
}
