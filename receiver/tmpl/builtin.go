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
	},
	"en": {
		"firing": "FIRING", "resolved": "RESOLVED", "digest": "Alert digest", "notifications": "notifications",
		"alerts": "alerts", "severity": "Severity", "instance": "Instance", "started": "Started", "ended": "Ended",
		"labels": "Labels", "source": "Source", "dashboard": "Dashboard", "runbook": "Runbook",
		"truncated": "more alerts not included", "route": "Route", "more": "more",
		"omitted": "%d more alerts are not listed here (a notification takes at most %d messages)", "all_alerts": "All alerts", "cut": "... (message too long, cut)",
	},
}

// The built-ins only use words through l10n, so one set of templates serves
// both languages; builtins maps language → name → text for symmetry with overrides.
const titleTmpl = `{{ if .Digest }}[{{ .Priority }}][{{ l10n "digest" }}] {{ len .Groups }} {{ l10n "notifications" }}: {{ .Name }}{{ else }}[{{ .Priority }}][{{ statusText .Status }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}] {{ .Name }}{{ end }}`

const markdownTmpl = `{{ if .Digest }}### {{ l10n "digest" }} ({{ len .Groups }} {{ l10n "notifications" }})
{{ end }}{{ range .Groups }}
#### {{ if eq .Status "firing" }}{{ severityIcon .CommonLabels.severity }}{{ else }}✅{{ end }} [{{ .Priority }}][{{ statusText .Status }}] {{ .Name }}
{{ range .Alerts }}
- **{{ .Labels.alertname }}** {{ if eq .Status "firing" }}{{ severityIcon .Labels.severity }}{{ else }}✅{{ end }} {{ statusText .Status }}{{ with .Labels.severity }} · {{ . }}{{ end }}
{{ with .Annotations.summary }}  > {{ . }}
{{ end }}{{ with .Annotations.description }}  > {{ . }}
{{ end }}  - {{ l10n "started" }}: {{ localTime .StartsAt }}{{ if eq .Status "resolved" }} · {{ l10n "ended" }}: {{ localTime .EndsAt }}{{ end }}
  - {{ l10n "labels" }}: {{ labelsText .Labels }}
{{ if or .GeneratorURL (dashboardURL .) .Annotations.runbook_url }}  - {{ with .GeneratorURL }}[{{ l10n "source" }}]({{ . }}) {{ end }}{{ with dashboardURL . }}[{{ l10n "dashboard" }}]({{ . }}) {{ end }}{{ with .Annotations.runbook_url }}[{{ l10n "runbook" }}]({{ . }}){{ end }}
{{ end }}{{ end }}{{ if .TruncatedAlerts }}
> +{{ .TruncatedAlerts }} {{ l10n "truncated" }}
{{ end }}{{ end }}`

const textTmpl = `{{ if .Digest }}{{ l10n "digest" }} ({{ len .Groups }} {{ l10n "notifications" }})
{{ end }}{{ range .Groups }}
[{{ .Priority }}][{{ statusText .Status }}] {{ .Name }}
{{ range .Alerts }}- {{ .Labels.alertname }} {{ statusText .Status }}{{ with .Labels.severity }} ({{ . }}){{ end }}
{{ with .Annotations.summary }}  {{ . }}
{{ end }}{{ with .Annotations.description }}  {{ . }}
{{ end }}  {{ l10n "started" }}: {{ localTime .StartsAt }}
  {{ l10n "labels" }}: {{ labelsText .Labels }}
{{ with .GeneratorURL }}  {{ l10n "source" }}: {{ . }}
{{ end }}{{ with dashboardURL . }}  {{ l10n "dashboard" }}: {{ . }}
{{ end }}{{ with .Annotations.runbook_url }}  {{ l10n "runbook" }}: {{ . }}
{{ end }}{{ end }}{{ if .TruncatedAlerts }}+{{ .TruncatedAlerts }} {{ l10n "truncated" }}
{{ end }}{{ end }}`

const emailHTMLTmpl = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ .Name }}</title></head>
<body style="font-family:sans-serif">
{{ if .Digest }}<h2>{{ l10n "digest" }} ({{ len .Groups }} {{ l10n "notifications" }})</h2>{{ end }}
{{ range .Groups }}
<h3>[{{ .Priority }}][{{ statusText .Status }}] {{ .Name }}</h3>
<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">
{{ range .Alerts }}<tr><td><b>{{ .Labels.alertname }}</b><br>{{ statusText .Status }}{{ with .Labels.severity }} · {{ . }}{{ end }}</td>
<td>{{ with .Annotations.summary }}<p>{{ . }}</p>{{ end }}{{ with .Annotations.description }}<p>{{ . }}</p>{{ end }}
<p>{{ l10n "started" }}: {{ localTime .StartsAt }}</p><p><small>{{ labelsText .Labels }}</small></p>
<p>{{ with .GeneratorURL }}<a href="{{ . }}">{{ l10n "source" }}</a> {{ end }}{{ with dashboardURL . }}<a href="{{ . }}">{{ l10n "dashboard" }}</a> {{ end }}{{ with .Annotations.runbook_url }}<a href="{{ . }}">{{ l10n "runbook" }}</a>{{ end }}</p></td></tr>
{{ end }}</table>
{{ if .TruncatedAlerts }}<p>+{{ .TruncatedAlerts }} {{ l10n "truncated" }}</p>{{ end }}
{{ end }}
</body></html>`

const smsTmpl = `[{{ .Priority }}][{{ statusText .Status }}] {{ .Name }}{{ if gt (len .Alerts) 1 }} ({{ len .Alerts }} {{ l10n "alerts" }}){{ end }}{{ with .CommonAnnotations.summary }}: {{ . }}{{ else }}{{ with .Alerts }}{{ with (index . 0).Annotations.summary }}: {{ . }}{{ end }}{{ end }}{{ end }}`

var builtins = func() map[string]map[string]string {
	set := map[string]string{
		Title: titleTmpl, Markdown: markdownTmpl, Text: textTmpl,
		EmailSubject: titleTmpl, EmailText: textTmpl, EmailHTML: emailHTMLTmpl, SMS: smsTmpl,
	}
	return map[string]map[string]string{"zh": set, "en": set}
}()
