package sms

import (
	"net/url"
	"testing"
	"time"
)

// The worked example of Alibaba Cloud's "V3版本请求体&签名机制" (RunInstances
// on ECS with fixed date and nonce).
func TestSignACS3OfficialExample(t *testing.T) {
	q := url.Values{"ImageId": {"win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"}, "RegionId": {"cn-shanghai"}}
	cq := CanonicalQuery(q)
	if cq != "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai" {
		t.Fatalf("canonical query %s", cq)
	}
	h := map[string]string{
		"host":                  "ecs.cn-shanghai.aliyuncs.com",
		"x-acs-action":          "RunInstances",
		"x-acs-version":         "2014-05-26",
		"x-acs-date":            "2023-10-26T10:22:32Z",
		"x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
		"x-acs-content-sha256":  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	}
	s := SignACS3("POST", "/", cq, h, nil, "YourAccessKeyId", "YourAccessKeySecret")
	for _, c := range []struct{ name, got, want string }{
		{"hashed canonical request", s.HashedCanonicalRequest, "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"},
		{"signature", s.Signature, "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"},
		{"authorization", s.Authorization, "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

// The worked example of Tencent Cloud API 3.0 "签名方法 v3" (CVM
// DescribeInstances, timestamp 1551113065).
func TestSignTC3OfficialExample(t *testing.T) {
	body := []byte(`{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}`)
	if got := sha256Hex(body); got != "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064" {
		t.Fatalf("payload hash %s", got)
	}
	h := map[string]string{"Content-Type": "application/json; charset=utf-8", "Host": "cvm.tencentcloudapi.com"}
	s := SignTC3("POST", "/", "", h, body, "cvm", time.Unix(1551113065, 0), "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE")
	for _, c := range []struct{ name, got, want string }{
		{"canonical request", s.CanonicalRequest, "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"},
		{"hashed canonical request", s.HashedCanonicalRequest, "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"},
		{"string to sign", s.StringToSign, "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"},
		{"signature", s.Signature, "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"},
		{"authorization", s.Authorization, "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestPercentEncode(t *testing.T) {
	for in, want := range map[string]string{"a b": "a%20b", "a*b": "a%2Ab", "a~b": "a~b", "告警": "%E5%91%8A%E8%AD%A6", `{"k":"v"}`: "%7B%22k%22%3A%22v%22%7D"} {
		if got := percentEncode(in); got != want {
			t.Errorf("percentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}
