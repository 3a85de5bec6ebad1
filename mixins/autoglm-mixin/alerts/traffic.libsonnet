// Static alerts on the traffic SLIs: limits from the shared config and objectives.
local sli = import '../lib/sli.libsonnet';
local lib = import 'lib.libsonnet';
local r = sli.records;

{
  prometheusAlerts+:: {
    local c = $._config,
    local sel = c.exporterSelector,
    // Ratios and percentiles of a trickle of requests are noise, not signal.
    local busy = '%s{%s} > %g' % [r.routeRequestRate, sel, c.minRequestRate],
    // Parameters of the shared static alert templates; numbers as rulegen
    // writes them (rules.FormatNumber: 15 significant digits).
    local num(x) = '%.15g' % x,
    local limits = { qps: c.qpsThreshold, errorRatio: c.errorRatioThreshold },
    local static = {
      sel: sel,
      'for': c.staticAlertFor,
      on: lib.routeOn,
      workload: lib.workload,
      qps: num(c.qpsThreshold),
      errorRatio: num(c.errorRatioThreshold),
      errorRatioPercent: num(100 * c.errorRatioThreshold),
      errorRatioCritical: num(c.errorRatioCriticalThreshold),
      minTraffic: num(c.minRequestRate),
      rate: r.routeRequestRate,
      ratio: r.routeErrorRatio,
      ratio1h: r.routeErrorRatio1h,
      instanceRate: r.instanceRequestRate,
    },
    groups+: [
      {
        name: 'autoglm-traffic',
        // The alerts on the limits of alert_rules are defined once, in
        // rulegen/rules (StaticAlerts), and rendered here from the same
        // templates rulegen fills; a test compares the two renderings.
        rules: [
          lib.alert(
            c,
            a.alert,
            a.severity,
            a.summary % static,
            a.description % static,
            a.expr % static,
            a['for'] % static,
            a.dashboard,
            lib[a.query + 'Query'],
            cooldown=true,
          )
          for a in sli.static.alerts
          if limits[a.limit] > 0
        ] + [
          lib.alert(
            c,
            'AutoGLMHighLatency',
            'warning',
            'LLM API p95 latency is above its objective',
            'The 95th percentile request duration of route {{ $labels.http_route }}' + lib.workload + ' of {{ $labels.job }} is {{ $value | humanizeDuration }} (objective %gs).' % c.latencyP95Seconds,
            |||
              (%(p95)s{%(sel)s} > %(objective)g)
              and %(on)s
              (%(busy)s)
            ||| % { on: lib.routeOn, modelOn: lib.modelOn, p95: r.routeLatencyP95, sel: sel, objective: c.latencyP95Seconds, busy: busy },
            '10m',
            'overview',
            lib.routeQuery,
          ),
          lib.alert(
            c,
            'AutoGLMHighTimeToFirstToken',
            'warning',
            'LLM time to first token p95 is above its objective',
            'The 95th percentile time to first token of model {{ $labels.gen_ai_request_model }} on route {{ $labels.http_route }}' + lib.workload + ' of {{ $labels.job }} is {{ $value | humanizeDuration }} (objective %gs).' % c.ttftP95Seconds + sli.saturationNote,
            |||
              (%(ttft)s{%(sel)s} > %(objective)g)
              and %(modelOn)s
              (%(rate)s{%(sel)s} > %(min)g)
            ||| % { on: lib.routeOn, modelOn: lib.modelOn, ttft: r.modelTTFTP95, rate: r.modelRequestRate, sel: sel, objective: c.ttftP95Seconds, min: c.minRequestRate },
            '10m',
            'models',
            lib.modelQuery,
          ),
          lib.alert(
            c,
            'AutoGLMTrafficSharpDrop',
            'warning',
            'LLM API traffic dropped sharply',
            'Route {{ $labels.http_route }}' + lib.workload + ' of {{ $labels.job }} receives {{ $value | humanize }} requests/s, less than %g%% of its rate over the last hour.' % (100 * c.trafficDropRatio),
            |||
              (%(rate)s{%(sel)s} < %(ratio)g * %(rate1h)s{%(sel)s})
              and %(on)s
              (%(rate1h)s{%(sel)s} > %(min)g)
            ||| % { on: lib.routeOn, modelOn: lib.modelOn, rate: r.routeRequestRate, rate1h: r.routeRequestRate1h, sel: sel, ratio: c.trafficDropRatio, min: c.minRequestRate },
            '10m',
            'overview',
            lib.routeQuery,
          ),
          lib.alert(
            c,
            'AutoGLMTrafficSharpSurge',
            'warning',
            'LLM API traffic surged',
            'Route {{ $labels.http_route }}' + lib.workload + ' of {{ $labels.job }} receives {{ $value | humanize }} requests/s, more than %g times its rate over the last hour.' % c.trafficSurgeRatio,
            |||
              (%(rate)s{%(sel)s} > %(ratio)g * %(rate1h)s{%(sel)s})
              and %(on)s
              (%(rate)s{%(sel)s} > %(min)g)
            ||| % { on: lib.routeOn, modelOn: lib.modelOn, rate: r.routeRequestRate, rate1h: r.routeRequestRate1h, sel: sel, ratio: c.trafficSurgeRatio, min: c.trafficSurgeMinRequestRate },
            '5m',
            'overview',
            lib.routeQuery,
          ),
          lib.alert(
            c,
            'AutoGLMTrafficOutage',
            'critical',
            'LLM API route stopped receiving traffic',
            'Route {{ $labels.http_route }}' + lib.workload + ' of {{ $labels.job }} has received no requests for 5 minutes although it had traffic within the last %s.' % c.trafficOutageLookback,
            |||
              (%(rate)s{%(sel)s} == 0)
              and %(on)s
              (max_over_time(%(rate1h)s{%(sel)s}[%(lookback)s]) > %(min)g)
            ||| % { on: lib.routeOn, modelOn: lib.modelOn, rate: r.routeRequestRate, rate1h: r.routeRequestRate1h, sel: sel, lookback: c.trafficOutageLookback, min: c.minRequestRate },
            '5m',
            'overview',
            lib.routeQuery,
          ),
        ],
      },
    ],
  },
}
