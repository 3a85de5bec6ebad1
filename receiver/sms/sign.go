package sms

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// percentEncode is RFC 3986 encoding as Alibaba Cloud canonicalises it:
// space → %20, * → %2A, ~ kept.
func percentEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

// CanonicalQuery sorts parameters by name and percent-encodes names and values.
func CanonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(percentEncode(k))
			b.WriteByte('=')
			b.WriteString(percentEncode(v))
		}
	}
	return b.String()
}

// canonicalHeaders returns "name:value\n" lines sorted by lower-case name and
// the ';'-joined names. lowerValues lower-cases values too (Tencent's rule).
func canonicalHeaders(h map[string]string, lowerValues bool) (string, string) {
	names := make([]string, 0, len(h))
	lower := make(map[string]string, len(h))
	for k, v := range h {
		lk := strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if lowerValues {
			v = strings.ToLower(v)
		}
		lower[lk] = v
		names = append(names, lk)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(lower[n])
		b.WriteByte('\n')
	}
	return b.String(), strings.Join(names, ";")
}

// ACS3 is an Alibaba Cloud V3 (ACS3-HMAC-SHA256) signature.
type ACS3 struct {
	CanonicalRequest       string
	HashedCanonicalRequest string
	SignedHeaders          string
	Signature              string
	Authorization          string
}

// SignACS3 signs a request the V3 way. headers are the headers to sign (host,
// x-acs-*, and content-type when there is a body), including
// x-acs-content-sha256 = hex(sha256(body)).
func SignACS3(method, path, canonicalQuery string, headers map[string]string, body []byte, accessKeyID, accessKeySecret string) ACS3 {
	if path == "" {
		path = "/"
	}
	ch, signed := canonicalHeaders(headers, false)
	cr := method + "\n" + path + "\n" + canonicalQuery + "\n" + ch + "\n" + signed + "\n" + sha256Hex(body)
	hashed := sha256Hex([]byte(cr))
	sig := hex.EncodeToString(hmacSHA256([]byte(accessKeySecret), "ACS3-HMAC-SHA256\n"+hashed))
	return ACS3{
		CanonicalRequest: cr, HashedCanonicalRequest: hashed, SignedHeaders: signed, Signature: sig,
		Authorization: "ACS3-HMAC-SHA256 Credential=" + accessKeyID + ",SignedHeaders=" + signed + ",Signature=" + sig,
	}
}

// TC3 is a Tencent Cloud API 3.0 (TC3-HMAC-SHA256) signature.
type TC3 struct {
	CanonicalRequest       string
	HashedCanonicalRequest string
	StringToSign           string
	SignedHeaders          string
	Signature              string
	Authorization          string
}

// SignTC3 signs a request for service at timestamp ts. headers are the
// headers to sign (at least content-type and host).
func SignTC3(method, path, canonicalQuery string, headers map[string]string, body []byte, service string, ts time.Time, secretID, secretKey string) TC3 {
	if path == "" {
		path = "/"
	}
	ch, signed := canonicalHeaders(headers, true)
	cr := method + "\n" + path + "\n" + canonicalQuery + "\n" + ch + "\n" + signed + "\n" + sha256Hex(body)
	hashed := sha256Hex([]byte(cr))
	date := ts.UTC().Format("2006-01-02")
	scope := date + "/" + service + "/tc3_request"
	sts := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts.Unix(), 10) + "\n" + scope + "\n" + hashed
	kDate := hmacSHA256([]byte("TC3"+secretKey), date)
	kService := hmacSHA256(kDate, service)
	kSigning := hmacSHA256(kService, "tc3_request")
	sig := hex.EncodeToString(hmacSHA256(kSigning, sts))
	return TC3{
		CanonicalRequest: cr, HashedCanonicalRequest: hashed, StringToSign: sts, SignedHeaders: signed, Signature: sig,
		Authorization: "TC3-HMAC-SHA256 Credential=" + secretID + "/" + scope + ", SignedHeaders=" + signed + ", Signature=" + sig,
	}
}
