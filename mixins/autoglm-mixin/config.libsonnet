// Defaults of everything a user may want to change. Thresholds of the shared
// config file (alert_rules.*) come from lib/sli.libsonnet, generated from the
// Go defaults, so the mixin and the binaries agree.
local sli = import 'lib/sli.libsonnet';

{
  _config+:: {
    // Selectors of the scrape jobs.
    exporterSelector: 'job="autoglm-exporter"',
    rulegenSelector: 'job="autoglm-rulegen"',
    receiverSelector: 'job="autoglm-receiver"',

    // alert_rules.qps_threshold: per-instance requests per second.
    qpsThreshold: sli.alertRules.qpsThreshold,
    // alert_rules.error_rate: error ratio (0..1) that raises a warning.
    errorRatioThreshold: sli.alertRules.errorRate,
    // Error ratio that pages when the last hour also exceeds errorRatioThreshold.
    errorRatioCriticalThreshold: sli.static.errorRatioCritical,
    // rulegen.for: how long the error ratio must stay above errorRatioThreshold before the warning.
    staticAlertFor: sli.static['for'],
    // alert_rules.cooldown: how long an alert keeps firing after its condition clears.
    cooldownSeconds: sli.alertRules.cooldownSeconds,

    // Objectives (95th percentile).
    latencyP95Seconds: 30,
    ttftP95Seconds: 2,

    // Requests per second a route needs before ratio and latency alerts may fire.
    minRequestRate: 0.1,
    // Traffic drop: 5m rate below this share of the last hour's rate.
    trafficDropRatio: 0.5,
    // Traffic surge: 5m rate above this multiple of the last hour's rate ...
    trafficSurgeRatio: 3,
    // ... and above this many requests per second.
    trafficSurgeMinRequestRate: 1,
    // How far back a route must have had traffic for a silence to be an outage.
    trafficOutageLookback: '3h',

    // Share of capture events the exporter may lose.
    lostEventsRatio: 0.01,
    ringBufferFillRatio: 0.9,
    // Payloads per second the exporter may fail to parse before saying so.
    parseErrorsPerSecond: 1,
    // Rulegen is stale when its last successful fit is older than this.
    rulegenStaleSeconds: 3 * 3600,
    // A notification older than this is late (P1 must reach a person within 5 minutes).
    receiverBacklogSeconds: 300,
    // How long an SLI must stay outside its rulegen band.
    baselineFor: '10m',
    // The mixin's own series-mode baseline alerts; turn off when Prometheus
    // also loads the baseline alerts rulegen writes.
    baselineAlerts: true,

    // Engine saturation (requests queueing, KV cache ≥ 90 % or
    // preemptions, see internal/sli) must last this long to alert.
    engineSaturatedFor: '2m',
    // GPU framebuffer share and average utilisation that alert.
    gpuMemoryRatio: 0.95,
    gpuUtilizationRatio: 0.95,

    // Links in annotations.
    grafanaUrl: 'http://127.0.0.1:3000',
    runbookUrl: 'https://github.com/open-autoglm/autoglm-monitor/blob/main/mixins/autoglm-mixin/runbook.md',
    dashboardTags: ['autoglm'],
  },
}
