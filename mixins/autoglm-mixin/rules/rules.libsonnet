// Recording rules of every SLI, taken verbatim from the Go definitions.
local sli = import '../lib/sli.libsonnet';

{
  prometheusRules+:: {
    groups+: [
      {
        name: 'autoglm-sli.rules',
        rules: [
          { record: r.record, expr: r.expr }
          for r in sli.recordingRules
        ],
      },
    ],
  },
}
