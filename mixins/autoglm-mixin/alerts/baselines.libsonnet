// Series-mode baseline alerts: each SLI against the band rulegen exposes as
// autoglm_rulegen_baseline. Rulegen's own generated rule files carry their
// alerts under other names; these are the mixin's and need only the scrape of
// rulegen (with honor_labels) and the recording rules.
local sli = import '../lib/sli.libsonnet';
local lib = import 'lib.libsonnet';

{
  prometheusAlerts+:: {
    local c = $._config,
    local on = function(s) std.join(', ', s.by),
    // Several rulegen replicas expose the same band; take the widest.
    local bound = function(s, b, agg)
      '%(agg)s by (%(on)s) (%(baseline)s{sli="%(sli)s", bound="%(b)s"})' % {
        agg: agg,
        on: on(s),
        baseline: sli.metrics.rulegenBaseline,
        sli: s.name,
        b: b,
      },
    local check = function(s, op, b, agg)
      |||
        (%(record)s{%(sel)s} %(op)s on (%(on)s) %(bound)s)
        and on (%(on)s)
        (%(traffic)s{%(sel)s} > %(min)g)
      ||| % {
        record: s.record,
        sel: c.exporterSelector,
        op: op,
        on: on(s),
        bound: bound(s, b, agg),
        traffic: s.traffic,
        min: c.minRequestRate,
      },
    local query = function(s)
      if std.member(s.by, 'gen_ai_request_model') then lib.modelQuery else lib.routeQuery,
    local value = function(s)
      if s.kind == 'ratio' then '{{ $value | humanizePercentage }}'
      else if s.kind == 'latency' then '{{ $value | humanizeDuration }}'
      else '{{ $value | humanize }} requests/s',
    local where = function(s)
      '{{ $labels.job }} route {{ $labels.http_route }}' +
      (if std.member(s.by, 'gen_ai_request_model') then ' model {{ $labels.gen_ai_request_model }}' else '') +
      lib.workload,

    groups+: if !c.baselineAlerts then [] else [
      {
        name: 'autoglm-baselines',
        rules: [
          lib.alert(
            c,
            'AutoGLMSLIAboveBaseline',
            'warning',
            'LLM API SLI is above its learned baseline',
            'SLI %s of %s is %s, above the upper bound of the baseline rulegen learned from its history.' % [s.name, where(s), value(s)],
            check(s, '>', 'upper', 'max'),
            c.baselineFor,
            'baselines',
            query(s),
            cooldown=true,
            labels={ sli: s.name },
          )
          for s in sli.slis
        ] + [
          lib.alert(
            c,
            'AutoGLMSLIBelowBaseline',
            'warning',
            'LLM API SLI is below its learned baseline',
            'SLI %s of %s is %s, below the lower bound of the baseline rulegen learned from its history.' % [s.name, where(s), value(s)],
            check(s, '<', 'lower', 'min'),
            c.baselineFor,
            'baselines',
            query(s),
            cooldown=true,
            labels={ sli: s.name },
          )
          // Only too little traffic is a problem; fewer errors or faster responses are not.
          for s in sli.slis
          if s.kind == 'rate'
        ],
      },
    ],
  },
}
