// Engine and GPU saturation: vLLM, SGLang, TGI and DCGM metrics normalised
// per engine instance and node, and joined to the routes by node and port.
local sli = import '../lib/sli.libsonnet';

{
  prometheusRules+:: {
    groups+: [
      {
        name: 'autoglm-engine.rules',
        rules: [
          { record: r.record, expr: r.expr }
          for r in sli.engineRecordingRules
        ],
      },
    ],
  },
}
