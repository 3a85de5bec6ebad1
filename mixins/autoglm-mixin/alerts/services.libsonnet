// Health of the monitor itself: exporter, rulegen and receiver.
local sli = import '../lib/sli.libsonnet';
local lib = import 'lib.libsonnet';
local m = sli.metrics;

{
  prometheusAlerts+:: {
    local c = $._config,
    groups+: [
      {
        name: 'autoglm-exporter',
        rules: [
          lib.alert(
            c,
            'AutoGLMExporterDown',
            'critical',
            'AutoGLM exporter is down',
            'Prometheus cannot scrape the exporter {{ $labels.instance }} of {{ $labels.job }}; LLM API traffic on that node is not monitored.',
            'up{%s} == 0' % c.exporterSelector,
            '5m',
            'exporter',
            lib.instanceQuery,
          ),
          lib.alert(
            c,
            'AutoGLMExporterLosingEvents',
            'warning',
            'AutoGLM exporter is losing capture events',
            'The exporter {{ $labels.instance }} of {{ $labels.job }} loses {{ $value | humanizePercentage }} of its capture events; traffic metrics undercount.',
            |||
              sum by (job, instance) (rate(%(lost)s{%(sel)s}[5m]))
              /
              sum by (job, instance) (rate(%(events)s{%(sel)s}[5m]))
              > %(ratio)g
            ||| % { lost: m.exporterEventsLost, events: m.exporterEvents, sel: c.exporterSelector, ratio: c.lostEventsRatio },
            '10m',
            'exporter',
            lib.instanceQuery,
          ),
          lib.alert(
            c,
            'AutoGLMExporterRingBufferFull',
            'warning',
            'AutoGLM exporter ring buffer is nearly full',
            'The ring buffer of exporter {{ $labels.instance }} of {{ $labels.job }} is {{ $value | humanizePercentage }} full; the kernel drops events when it fills up.',
            'max by (job, instance) (%(fill)s{%(sel)s}) > %(ratio)g' % { fill: m.exporterRingbufFill, sel: c.exporterSelector, ratio: c.ringBufferFillRatio },
            '10m',
            'exporter',
            lib.instanceQuery,
          ),
          lib.alert(
            c,
            'AutoGLMExporterParseErrors',
            'info',
            'AutoGLM exporter cannot parse part of the traffic',
            'The exporter {{ $labels.instance }} of {{ $labels.job }} fails to parse {{ $value | humanize }} payloads/s (reason {{ $labels.reason }}); those requests are missing from the traffic metrics.',
            'sum by (job, instance, reason) (rate(%(errors)s{%(sel)s}[15m])) > %(rate)g' % { errors: m.exporterParseErrors, sel: c.exporterSelector, rate: c.parseErrorsPerSecond },
            '15m',
            'exporter',
            lib.instanceQuery,
          ),
        ],
      },
      {
        name: 'autoglm-rulegen',
        rules: [
          lib.alert(
            c,
            'AutoGLMRulegenDown',
            'warning',
            'AutoGLM rulegen is down',
            'Prometheus cannot scrape rulegen {{ $labels.instance }} of {{ $labels.job }}; baselines are not refitted and series-mode baseline alerts go quiet.',
            'up{%s} == 0' % c.rulegenSelector,
            '10m',
            'baselines',
            '?var-rulegen_job={{ $labels.job }}&var-instance={{ $labels.instance }}',
          ),
          lib.alert(
            c,
            'AutoGLMRulegenFitStale',
            'warning',
            'AutoGLM rulegen has not fitted baselines successfully for too long',
            'Rulegen {{ $labels.instance }} of {{ $labels.job }} last fitted and wrote rules successfully {{ $value | humanizeDuration }} ago.',
            'time() - %(last)s{%(sel)s} > %(age)d' % { last: m.rulegenLastSuccess, sel: c.rulegenSelector, age: c.rulegenStaleSeconds },
            '10m',
            'baselines',
            '?var-rulegen_job={{ $labels.job }}&var-instance={{ $labels.instance }}',
          ),
          lib.alert(
            c,
            'AutoGLMRulegenFitFailing',
            'warning',
            'AutoGLM rulegen keeps failing to fit baselines',
            'Rulegen {{ $labels.instance }} of {{ $labels.job }} failed {{ $value | humanize }} fits in the last hour (reason {{ $labels.reason }}); it keeps serving the last good rules.',
            'sum by (job, instance, reason) (increase(%(failures)s{%(sel)s, reason!="no_history"}[1h])) > 0' % { failures: m.rulegenFitFailures, sel: c.rulegenSelector },
            '1h',
            'baselines',
            '?var-rulegen_job={{ $labels.job }}&var-instance={{ $labels.instance }}',
          ),
          lib.alert(
            c,
            'AutoGLMRulegenReloadFailing',
            'warning',
            'AutoGLM rulegen cannot reload the rules it wrote',
            'Rulegen {{ $labels.instance }} of {{ $labels.job }} had {{ $value | humanize }} failed rule reloads in the last 30 minutes; Prometheus runs outdated rules.',
            'sum by (job, instance) (increase(%(reloads)s{%(sel)s, result!="success"}[30m])) > 0' % { reloads: m.rulegenReloads, sel: c.rulegenSelector },
            '5m',
            'baselines',
            '?var-rulegen_job={{ $labels.job }}&var-instance={{ $labels.instance }}',
          ),
        ],
      },
      {
        name: 'autoglm-receiver',
        rules: [
          lib.alert(
            c,
            'AutoGLMReceiverDown',
            'critical',
            'AutoGLM receiver is down',
            'Prometheus cannot scrape the receiver {{ $labels.instance }} of {{ $labels.job }}; notifications through it are not delivered.',
            'up{%s} == 0' % c.receiverSelector,
            '5m',
            'alerting',
            lib.instanceQuery,
          ),
          lib.alert(
            c,
            'AutoGLMReceiverDeadLetters',
            'warning',
            'AutoGLM receiver gave up on notifications',
            'The receiver {{ $labels.instance }} of {{ $labels.job }} dead-lettered {{ $value | humanize }} notifications on channel {{ $labels.channel }} in the last 15 minutes.',
            'sum by (job, instance, channel) (increase(%(dead)s{%(sel)s}[15m])) > 0' % { dead: m.receiverDeadLetters, sel: c.receiverSelector },
            '0m',
            'alerting',
            lib.instanceQuery,
          ),
          lib.alert(
            c,
            'AutoGLMReceiverBacklog',
            'critical',
            'AutoGLM receiver notifications are late',
            'The oldest pending notification of receiver {{ $labels.instance }} of {{ $labels.job }} has waited {{ $value | humanizeDuration }}; P1 alerts must reach a person within 5 minutes.',
            'max by (job, instance) (%(oldest)s{%(sel)s}) > %(age)d' % { oldest: m.receiverOldestPending, sel: c.receiverSelector, age: c.receiverBacklogSeconds },
            '2m',
            'alerting',
            lib.instanceQuery,
          ),
        ],
      },
    ],
  },
}
