package tmpl

import amtemplate "github.com/prometheus/alertmanager/template"

// Name is the group's headline: its alertname, else the distinct alert names.
func (g *Group) Name() string { return dataName(g.Data) }

// Name is the message's headline (the first group's for a digest).
func (d *Data) Name() string { return dataName(d.Data) }

func dataName(d *amtemplate.Data) string {
	if d == nil {
		return ""
	}
	if n := d.CommonLabels["alertname"]; n != "" {
		return n
	}
	if n := d.GroupLabels["alertname"]; n != "" {
		return n
	}
	seen := map[string]bool{}
	out := ""
	for _, a := range d.Alerts {
		n := a.Labels["alertname"]
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if out != "" {
			out += ", "
		}
		out += n
	}
	return out
}

var dictionary = map[string]map[string]string{
	"zh": {
		"firing": "告警", "resolved": "恢复", "digest": "告警摘要", "notifications": "条通知",
		"alerts": "条告警", "severity": "级别", "instance": "实例", "started": "开始", "ended": "结束",
		"labels": "标签", "source": "查看来源", "dashboard": "仪表盘", "runbook": "处理手册",
		"truncated": "另有告警未包含", "route": "路由", "more": "更多",
		"omitted": "另有 %d 条告警未在此列出（一条通知最多 %d 段消息）", "all_alerts": "查看全部告警", "cut": "……（消息过长，已截断）",
		"claimed": "已认领", "claim": "认领",
	},
	"en": {
		"firing": "FIRING", "resolved": "RESOLVED", "digest": "Alert digest", "notifications": "notifications",
		"alerts": "alerts", "severity": "Severity", "instance": "Instance", "started": "Started", "ended": "Ended",
		"labels": "Labels", "source": "Source", "dashboard": "Dashboard", "runbook": "Runbook",
		"truncated": "more alerts not included", "route": "Route", "more": "more",
		"omitted": "%d more alerts are not listed here (a notification takes at most %d messages)", "all_alerts": "All alerts", "cut": "... (message too long, cut)",
		"claimed": "CLAIMED", "claim": "Claim",
	},
}

// The built-ins only use words through l10n, so one set of templates serves
// both languages; builtins maps language → name → text for symmetry with overrides.
const titleTmpl = `{{ if .Digest }}[{{ .Priority }}][{{ l10n "digest" }}] {{ len .Groups }} {{ l10n "notifications" }}: {{ .Name }}{{ else if .Note }}[{{ .Priority }}][{{ l10n "claimed" }}] {{ .Name }}{{ else }}[{{ .Priority }}][{{ statusText .Status }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}] {{ .Name }}{{ end }}`

// A group of several alerts (one alert over several routes or models: the
// way Alertmanager groups an incident) is rendered compactly: what the
// alerts share once — summary, labels, the first alert's source and
// dashboard links (one rule gives one source link), runbook —, then one line
// per alert naming what sets it apart (its route, model …) with its
// description, and links only where they differ from the first alert's, so
// a six-series incident stays one readable message within the robots' size
// limits. A single alert keeps the full layout.
const markdownTmpl = `{{ if .Digest }}### {{ l10n "digest" }} ({{ len .Groups }} {{ l10n "notifications" }})
{{ end }}{{ range .Groups }}{{ $g := . }}
#### {{ if .Note }}✅ [{{ .Priority }}][{{ l10n "claimed" }}]{{ else if eq .Status "firing" }}{{ severityIcon .CommonLabels.severity }} [{{ .Priority }}][{{ statusText .Status }}]{{ else }}✅ [{{ .Priority }}][{{ statusText .Status }}]{{ end }} {{ .Name }}
{{ with .Note }}> **{{ . }}**
{{ else }}{{ if gt (len .Alerts) 1 }}{{ with .CommonAnnotations.summary }}> {{ . }}
{{ end }}{{ with labelValues "http_route" .Alerts }}
**{{ l10n "route" }}** ({{ len . }}): {{ join ", " . }}
{{ end }}
{{ $src := (index .Alerts 0).GeneratorURL }}{{ $dash := dashboardURL (index .Alerts 0) }}{{ range .Alerts }}- {{ if eq .Status "firing" }}{{ severityIcon .Labels.severity }}{{ else }}✅{{ end }} **{{ labelsText (uniqueLabels .Labels $g.CommonLabels) }}**{{ with .Annotations.summary }}{{ if ne . $g.CommonAnnotations.summary }} {{ . }}{{ end }}{{ end }}{{ with .Annotations.description }}: {{ . }}{{ end }}{{ if eq .Status "resolved" }} · {{ statusText .Status }} {{ localTime .EndsAt }}{{ end }}{{ if ne .GeneratorURL $src }} [{{ l10n "source" }}]({{ .GeneratorURL }}){{ end }}{{ if ne (dashboardURL .) $dash }} [{{ l10n "dashboard" }}]({{ dashboardURL . }}){{ end }}
{{ end }}- {{ l10n "started" }}: {{ localTime (index .Alerts 0).StartsAt }}
- {{ l10n "labels" }}: {{ labelsText .CommonLabels }}
{{ if or $src $dash .CommonAnnotations.runbook_url }}- {{ with $src }}[{{ l10n "source" }}]({{ . }}) {{ end }}{{ with $dash }}[{{ l10n "dashboard" }}]({{ . }}) {{ end }}{{ with .CommonAnnotations.runbook_url }}[{{ l10n "runbook" }}]({{ . }}){{ end }}
{{ end }}{{ else }}{{ range .Alerts }}
- **{{ .Labels.alertname }}** {{ if eq .Status "firing" }}{{ severityIcon .Labels.severity }}{{ else }}✅{{ end }} {{ statusText .Status }}{{ with .Labels.severity }} · {{ . }}{{ end }}
{{ with .Annotations.summary }}  > {{ . }}
{{ end }}{{ with .Annotations.description }}  > {{ . }}
{{ end }}  - {{ l10n "started" }}: {{ localTime .StartsAt }}{{ if eq .Status "resolved" }} · {{ l10n "ended" }}: {{ localTime .EndsAt }}{{ end }}
  - {{ l10n "labels" }}: {{ labelsText .Labels }}
{{ if or .GeneratorURL (dashboardURL .) .Annotations.runbook_url }}  - {{ with .GeneratorURL }}[{{ l10n "source" }}]({{ . }}) {{ end }}{{ with dashboardURL . }}[{{ l10n "dashboard" }}]({{ . }}) {{ end }}{{ with .Annotations.runbook_url }}[{{ l10n "runbook" }}]({{ . }}){{ end }}
{{ end }}{{ end }}{{ end }}{{ if .TruncatedAlerts }}
> +{{ .TruncatedAlerts }} {{ l10n "truncated" }}
{{ end }}{{ end }}{{ with .Actions }}
{{ range . }}[{{ .Label }}]({{ .URL }})  {{ end }}
{{ end }}{{ end }}`

const textTmpl = `{{ if .Digest }}{{ l10n "digest" }} ({{ len .Groups }} {{ l10n "notifications" }})
{{ end }}{{ range .Groups }}{{ $g := . }}
[{{ .Priority }}][{{ if .Note }}{{ l10n "claimed" }}{{ else }}{{ statusText .Status }}{{ end }}] {{ .Name }}
{{ with .Note }}{{ . }}
{{ else }}{{ if gt (len .Alerts) 1 }}{{ with .CommonAnnotations.summary }}{{ . }}
{{ end }}{{ with labelValues "http_route" .Alerts }}{{ l10n "route" }} ({{ len . }}): {{ join ", " . }}
{{ end }}{{ $src := (index .Alerts 0).GeneratorURL }}{{ $dash := dashboardURL (index .Alerts 0) }}{{ range .Alerts }}- {{ labelsText (uniqueLabels .Labels $g.CommonLabels) }}{{ if eq .Status "resolved" }} [{{ statusText .Status }}]{{ end }}{{ with .Annotations.summary }}{{ if ne . $g.CommonAnnotations.summary }} {{ . }}{{ end }}{{ end }}{{ with .Annotations.description }}: {{ . }}{{ end }}
{{ if ne .GeneratorURL $src }}  {{ l10n "source" }}: {{ .GeneratorURL }}
{{ end }}{{ if ne (dashboardURL .) $dash }}  {{ l10n "dashboard" }}: {{ dashboardURL . }}
{{ end }}{{ end }}{{ l10n "started" }}: {{ localTime (index .Alerts 0).StartsAt }}
{{ l10n "labels" }}: {{ labelsText .CommonLabels }}
{{ with $src }}{{ l10n "source" }}: {{ . }}
{{ end }}{{ with $dash }}{{ l10n "dashboard" }}: {{ . }}
{{ end }}{{ with .CommonAnnotations.runbook_url }}{{ l10n "runbook" }}: {{ . }}
{{ end }}{{ else }}{{ range .Alerts }}- {{ .Labels.alertname }} {{ statusText .Status }}{{ with .Labels.severity }} ({{ . }}){{ end }}
{{ with .Annotations.summary }}  {{ . }}
{{ end }}{{ with .Annotations.description }}  {{ . }}
{{ end }}  {{ l10n "started" }}: {{ localTime .StartsAt }}
  {{ l10n "labels" }}: {{ labelsText .Labels }}
{{ with .GeneratorURL }}  {{ l10n "source" }}: {{ . }}
{{ end }}{{ with dashboardURL . }}  {{ l10n "dashboard" }}: {{ . }}
{{ end }}{{ with .Annotations.runbook_url }}  {{ l10n "runbook" }}: {{ . }}
{{ end }}{{ end }}{{ end }}{{ if .TruncatedAlerts }}+{{ .TruncatedAlerts }} {{ l10n "truncated" }}
{{ end }}{{ end }}{{ range .Actions }}{{ .Label }}: {{ .URL }}
{{ end }}{{ end }}`

const emailHTMLTmpl = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ .Name }}</title></head>
<body style="font-family:sans-serif">
{{ if .Digest }}<h2>{{ l10n "digest" }} ({{ len .Groups }} {{ l10n "notifications" }})</h2>{{ end }}
{{ range .Groups }}{{ $g := . }}
<h3>[{{ .Priority }}][{{ if .Note }}{{ l10n "claimed" }}{{ else }}{{ statusText .Status }}{{ end }}] {{ .Name }}</h3>
{{ with .Note }}<p><b>✅ {{ . }}</b></p>{{ end }}
{{ with .Actions }}<p>{{ range . }}<a href="{{ .URL }}" style="display:inline-block;padding:6px 14px;margin-right:8px;border:1px solid #888;border-radius:4px;text-decoration:none">{{ .Label }}</a>{{ end }}</p>{{ end }}
{{ if gt (len .Alerts) 1 }}{{ with .CommonAnnotations.summary }}<p>{{ . }}</p>{{ end }}
{{ with labelValues "http_route" .Alerts }}<p><b>{{ l10n "route" }}</b> ({{ len . }}): {{ join ", " . }}</p>{{ end }}
<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">
{{ $src := (index .Alerts 0).GeneratorURL }}{{ $dash := dashboardURL (index .Alerts 0) }}{{ range .Alerts }}<tr><td><b>{{ labelsText (uniqueLabels .Labels $g.CommonLabels) }}</b><br>{{ statusText .Status }}</td>
<td>{{ with .Annotations.summary }}{{ if ne . $g.CommonAnnotations.summary }}<p>{{ . }}</p>{{ end }}{{ end }}{{ with .Annotations.description }}<p>{{ . }}</p>{{ end }}</td>
<td>{{ if ne .GeneratorURL $src }}<a href="{{ .GeneratorURL }}">{{ l10n "source" }}</a> {{ end }}{{ if ne (dashboardURL .) $dash }}<a href="{{ dashboardURL . }}">{{ l10n "dashboard" }}</a>{{ end }}</td></tr>
{{ end }}</table>
<p>{{ l10n "started" }}: {{ localTime (index .Alerts 0).StartsAt }}</p><p><small>{{ labelsText .CommonLabels }}</small></p>
<p>{{ with $src }}<a href="{{ . }}">{{ l10n "source" }}</a> {{ end }}{{ with $dash }}<a href="{{ . }}">{{ l10n "dashboard" }}</a> {{ end }}{{ with .CommonAnnotations.runbook_url }}<a href="{{ . }}">{{ l10n "runbook" }}</a>{{ end }}</p>
{{ else }}<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">
{{ range .Alerts }}<tr><td><b>{{ .Labels.alertname }}</b><br>{{ statusText .Status }}{{ with .Labels.severity }} · {{ . }}{{ end }}</td>
<td>{{ with .Annotations.summary }}<p>{{ . }}</p>{{ end }}{{ with .Annotations.description }}<p>{{ . }}</p>{{ end }}
<p>{{ l10n "started" }}: {{ localTime .StartsAt }}</p><p><small>{{ labelsText .Labels }}</small></p>
<p>{{ with .GeneratorURL }}<a href="{{ . }}">{{ l10n "source" }}</a> {{ end }}{{ with dashboardURL . }}<a href="{{ . }}">{{ l10n "dashboard" }}</a> {{ end }}{{ with .Annotations.runbook_url }}<a href="{{ . }}">{{ l10n "runbook" }}</a>{{ end }}</p></td></tr>
{{ end }}</table>{{ end }}
{{ if .TruncatedAlerts }}<p>+{{ .TruncatedAlerts }} {{ l10n "truncated" }}</p>{{ end }}
{{ end }}
</body></html>`

const smsTmpl = `[{{ .Priority }}][{{ if .Note }}{{ l10n "claimed" }}{{ else }}{{ statusText .Status }}{{ end }}] {{ .Name }}{{ with .Note }}: {{ . }}{{ end }}{{ if gt (len .Alerts) 1 }} ({{ len .Alerts }} {{ l10n "alerts" }}){{ end }}{{ with .CommonAnnotations.summary }}: {{ . }}{{ else }}{{ with .Alerts }}{{ with (index . 0).Annotations.summary }}: {{ . }}{{ end }}{{ end }}{{ end }}{{ with .ClaimURL }} {{ l10n "claim" }}: {{ . }}{{ end }}`

var builtins = func() map[string]map[string]string {
	set := map[string]string{
		Title: titleTmpl, Markdown: markdownTmpl, Text: textTmpl,
		EmailSubject: titleTmpl, EmailText: textTmpl, EmailHTML: emailHTMLTmpl, SMS: smsTmpl,
	}
	return map[string]map[string]string{"zh": set, "en": set}
}()
