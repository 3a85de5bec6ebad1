// Helpers that give every alert the same shape: CamelCase name with the
// AutoGLM prefix, a severity, a static summary, a templated description, a
// runbook section and a dashboard link.
local sli = import '../lib/sli.libsonnet';

{
  alert(config, name, severity, summary, description, expr, forDuration, dashboard, query='', cooldown=false, labels={}):: {
    alert: name,
    expr: expr,
    'for': forDuration,
    labels: { severity: severity } + labels,
    annotations: {
      summary: summary,
      description: description,
      runbook_url: '%s#%s' % [config.runbookUrl, std.asciiLower(name)],
      dashboard_url: '%s/d/%s%s' % [config.grafanaUrl, sli.dashboards[dashboard], query],
    },
  } + (if cooldown then { keep_firing_for: '%ds' % config.cooldownSeconds } else {}),

  // Dashboard variables that narrow a dashboard to the alert's job and route.
  routeQuery:: '?var-job={{ $labels.job }}&var-route={{ $labels.http_route }}',
  modelQuery:: '?var-job={{ $labels.job }}&var-route={{ $labels.http_route }}&var-model={{ $labels.gen_ai_request_model }}',
  instanceQuery:: '?var-job={{ $labels.job }}&var-instance={{ $labels.instance }}',
}
