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

  // The labels of one route of one server (job, the workload labels, the
  // route) and the matching clause, so that alerts fire per pod.
  routeLabels:: ['job'] + sli.workloadLabels + ['http_route'],
  routeOn:: 'on (%s)' % std.join(', ', self.routeLabels),
  modelOn:: 'on (%s)' % std.join(', ', self.routeLabels + ['gen_ai_request_model']),
  // " (<service>, pod <namespace>/<pod>/<container>)" in descriptions.
  workload:: sli.workloadTemplate,

  // Dashboard variables that narrow a dashboard to the alert's job, workload and route.
  local workloadVars = '{{ with $labels.k8s_namespace_name }}&var-namespace={{ . }}{{ end }}{{ with $labels.service_name }}&var-service={{ . }}{{ end }}',
  routeQuery:: '?var-job={{ $labels.job }}' + workloadVars + '&var-route={{ $labels.http_route }}',
  modelQuery:: '?var-job={{ $labels.job }}' + workloadVars + '&var-route={{ $labels.http_route }}&var-model={{ $labels.gen_ai_request_model }}',
  instanceQuery:: '?var-job={{ $labels.job }}' + workloadVars + '&var-instance={{ $labels.instance }}',
}
