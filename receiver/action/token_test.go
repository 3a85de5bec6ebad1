package action

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

var (
	key1 = []byte("0123456789abcdef0123456789abcdef-key-one")
	key2 = []byte("fedcba9876543210fedcba9876543210-key-two")
	t0   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func signer(t *testing.T, now *time.Time, key []byte, prev ...[]byte) *Signer {
	t.Helper()
	s, err := NewSigner(func() time.Time { return *now }, key, prev...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMintVerifyRoundTrip(t *testing.T) {
	now := t0
	s := signer(t, &now, key1)
	g := GroupOf(`{}/{severity="critical"}:{alertname="LLMHighErrorRate"}`)
	for _, c := range []Claims{
		{Kind: Claim, Group: g, Channel: "ops-dingtalk", Recipient: "alice", Expires: t0.Add(24 * time.Hour)},
		{Kind: Silence, Silence: time.Hour, Group: g, Channel: "oncall-sms", Expires: t0.Add(time.Hour)},
		{Kind: Silence, Silence: 4 * time.Hour, Group: g, Expires: t0.Add(time.Minute)},
	} {
		tok, err := s.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(tok, "+/=") {
			t.Errorf("token %q is not URL-safe", tok)
		}
		got, err := s.VerifyFor(tok, g)
		if err != nil {
			t.Fatalf("verify %+v: %v", c, err)
		}
		if got.Kind != c.Kind || got.Silence != c.Silence || got.Group != c.Group || got.Channel != c.Channel ||
			got.Recipient != c.Recipient || !got.Expires.Equal(c.Expires) {
			t.Errorf("claims = %+v, want %+v", got, c)
		}
	}
}

func TestTokenFitsAnSMSLink(t *testing.T) {
	now := t0
	s := signer(t, &now, key1)
	tok, err := s.Mint(Claims{Kind: Silence, Silence: 4 * time.Hour, Group: GroupOf("g"), Channel: "oncall-sms", Recipient: "alice", Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) > 64 {
		t.Errorf("token is %d characters; SMS links need it short", len(tok))
	}
}

func TestForgedTamperedAndForeignTokensFail(t *testing.T) {
	now := t0
	s := signer(t, &now, key1)
	other := signer(t, &now, key2)
	ga, gb := GroupOf("group-a"), GroupOf("group-b")
	c := Claims{Kind: Claim, Group: ga, Channel: "ops", Recipient: "alice", Expires: t0.Add(time.Hour)}
	tok, err := s.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)

	forged, _ := other.Mint(c)
	if _, err := s.Verify(forged); !errors.Is(err, ErrSignature) {
		t.Errorf("token signed with another key: %v", err)
	}
	// Flipping any single bit anywhere (kind, length, expiry, group, names, MAC) must fail.
	for i := range raw {
		for bit := 0; bit < 8; bit++ {
			b := append([]byte(nil), raw...)
			b[i] ^= 1 << bit
			if _, err := s.Verify(base64.RawURLEncoding.EncodeToString(b)); err == nil {
				t.Fatalf("token with byte %d bit %d flipped was accepted", i, bit)
			}
		}
	}
	// A claim token turned into a silence by rewriting the kind and re-signing without the key fails too.
	b := append([]byte(nil), raw...)
	b[1] = byte(Silence)
	if _, err := s.Verify(base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrSignature) {
		t.Errorf("rewritten kind: %v", err)
	}
	for _, bad := range []string{"", "!!!", "AAAA", tok[:len(tok)-1], tok + "A", strings.Repeat("A", 200)} {
		if _, err := s.Verify(bad); err == nil {
			t.Errorf("malformed token %q accepted", bad)
		}
	}
	// The token belongs to group a: it cannot act on group b.
	if _, err := s.VerifyFor(tok, gb); !errors.Is(err, ErrGroup) {
		t.Errorf("token used for another group: %v", err)
	}
	if _, err := s.VerifyFor(tok, ga); err != nil {
		t.Errorf("own group: %v", err)
	}
}

func TestExpiredTokenIsRefused(t *testing.T) {
	now := t0
	s := signer(t, &now, key1)
	tok, err := s.Mint(Claims{Kind: Claim, Group: GroupOf("g"), Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want error
	}{
		{t0, nil},
		{t0.Add(time.Hour - time.Second), nil},
		{t0.Add(time.Hour), ErrExpired},
		{t0.Add(30 * 24 * time.Hour), ErrExpired},
	} {
		now = tc.at
		if _, err := s.Verify(tok); !errors.Is(err, tc.want) {
			t.Errorf("at %s: %v, want %v", tc.at, err, tc.want)
		}
	}
}

func TestKeyRotationAcceptsPreviousKey(t *testing.T) {
	now := t0
	old := signer(t, &now, key1)
	tok, _ := old.Mint(Claims{Kind: Claim, Group: GroupOf("g"), Expires: t0.Add(time.Hour)})
	rotated := signer(t, &now, key2, key1)
	if _, err := rotated.Verify(tok); err != nil {
		t.Errorf("token of the previous key: %v", err)
	}
	fresh, _ := rotated.Mint(Claims{Kind: Claim, Group: GroupOf("g"), Expires: t0.Add(time.Hour)})
	if _, err := old.Verify(fresh); !errors.Is(err, ErrSignature) {
		t.Errorf("new tokens must be signed with the new key: %v", err)
	}
}

func TestMintRejectsBadClaims(t *testing.T) {
	now := t0
	s := signer(t, &now, key1)
	for name, c := range map[string]Claims{
		"unknown kind":      {Kind: 9, Expires: t0.Add(time.Hour)},
		"no expiry":         {Kind: Claim},
		"silence of 0":      {Kind: Silence, Expires: t0.Add(time.Hour)},
		"silence of 90s":    {Kind: Silence, Silence: 90 * time.Second, Expires: t0.Add(time.Hour)},
		"long channel name": {Kind: Claim, Channel: strings.Repeat("c", 65), Expires: t0.Add(time.Hour)},
	} {
		if _, err := s.Mint(c); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
	if _, err := NewSigner(nil, []byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

func TestGroupIDString(t *testing.T) {
	g := GroupOf("x")
	back, err := ParseGroupID(g.String())
	if err != nil || back != g {
		t.Errorf("round trip: %v %v", back, err)
	}
	if _, err := ParseGroupID("nope!"); err == nil {
		t.Error("bad id parsed")
	}
}

func TestConfigValidateReadsKeyFileAndNeverEchoesIt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(good, append(key1, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("tiny-secret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Parse([]byte("{}"), filepath.Join(dir, "autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ok := &Config{KeyFile: "good", PreviousKeyFiles: []string{"good"}, TTL: config.Duration(time.Hour)}
	if errs := ok.Validate("receiver.actions", f); len(errs) != 0 {
		t.Fatalf("valid section: %v", errs)
	}
	if s := ok.Secrets(); len(s) != 2 || s[0] != string(key1) {
		t.Errorf("secrets = %d values", len(s))
	}
	if _, err := ok.NewSigner(nil); err != nil {
		t.Error(err)
	}
	for name, tc := range map[string]struct {
		c    Config
		want string
	}{
		"short key":      {Config{KeyFile: "short"}, "receiver.actions.key_file: signing key is 17 bytes"},
		"missing file":   {Config{KeyFile: "nope"}, "receiver.actions.key_file: cannot read secret file"},
		"no key":         {Config{TTL: config.Duration(time.Hour)}, "receiver.actions.key_file: is required"},
		"both":           {Config{Key: "x", KeyFile: "good"}, "set either key or key_file"},
		"bad silence":    {Config{KeyFile: "good", Silences: []config.Duration{config.Duration(30 * time.Second)}}, "receiver.actions.silences[0]: must be whole minutes"},
		"twice":          {Config{KeyFile: "good", Silences: []config.Duration{config.Duration(time.Hour), config.Duration(time.Hour)}}, "listed twice"},
		"bad priority":   {Config{KeyFile: "good", Priorities: []string{"P9"}}, "receiver.actions.priorities[0]"},
		"short previous": {Config{KeyFile: "good", PreviousKeyFiles: []string{"short"}}, "receiver.actions.previous_key_files[0]: signing key is 17 bytes"},
	} {
		errs := tc.c.Validate("receiver.actions", f)
		joined := ""
		for _, e := range errs {
			joined += e.Error() + "\n"
		}
		if !strings.Contains(joined, tc.want) {
			t.Errorf("%s: errors %q, want %q", name, joined, tc.want)
		}
		if strings.Contains(joined, "tiny-secret-value") || strings.Contains(joined, string(key1)) {
			t.Errorf("%s: error echoes the key", name)
		}
	}
	c := &Config{}
	if !c.ForPriority("P1") || !c.ForPriority("P2") || c.ForPriority("P3") {
		t.Error("default priorities are P1 and P2")
	}
	if got := c.SilenceLengths(); len(got) != 2 || got[0] != time.Hour || got[1] != 4*time.Hour {
		t.Errorf("default silences %v", got)
	}
}

func TestLinksCarryOneTokenPerAction(t *testing.T) {
	now := t0
	s := signer(t, &now, key1)
	g := GroupOf("g")
	links, err := s.Links(Offer{Base: "https://recv.example.com/", TTL: 12 * time.Hour, Silences: []time.Duration{time.Hour, 4 * time.Hour, 30 * time.Minute}, Language: "zh"}, g, "ops-dingtalk", "ann")
	if err != nil {
		t.Fatal(err)
	}
	labels := []string{"认领", "静默 1 小时", "静默 4 小时", "静默 30 分钟"}
	if len(links) != 4 {
		t.Fatalf("links = %+v", links)
	}
	for i, l := range links {
		if l.Label != labels[i] || !strings.HasPrefix(l.URL, "https://recv.example.com/api/v1/actions/") {
			t.Errorf("link %d = %+v", i, l)
		}
		c, err := s.VerifyFor(strings.TrimPrefix(l.URL, "https://recv.example.com/api/v1/actions/"), g)
		if err != nil || c.Kind != l.Kind || c.Channel != "ops-dingtalk" || c.Recipient != "ann" || !c.Expires.Equal(t0.Add(12*time.Hour)) {
			t.Errorf("link %d claims %+v, %v", i, c, err)
		}
	}
	en, _ := s.Links(Offer{Base: "http://r", TTL: time.Hour, Silences: []time.Duration{time.Hour}, Language: "en"}, g, "", "")
	if en[0].Label != "Claim" || en[1].Label != "Silence 1h" {
		t.Errorf("english labels = %+v", en)
	}
}
