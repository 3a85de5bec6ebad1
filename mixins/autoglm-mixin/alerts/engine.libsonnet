// Saturation of the serving engines (vLLM, SGLang, TGI) and of their GPUs
// (DCGM), from the engine recording rules.
local sli = import '../lib/sli.libsonnet';
local lib = import 'lib.libsonnet';
local e = sli.engineRecords;

local engineQuery = '?var-job={{ $labels.job }}&var-instance={{ $labels.instance }}';
local nodeQuery = '?var-node={{ $labels.node }}';

{
  prometheusAlerts+:: {
    local c = $._config,
    groups+: [
      {
        name: 'autoglm-engine',
        rules: [
          lib.alert(
            c,
            'AutoGLMEngineSaturated',
            'warning',
            'An LLM serving engine is saturated',
            ('Engine {{ $labels.engine }} at {{ $labels.instance }} (node {{ $labels.node }}, port {{ $labels.server_port }}) is saturated: '
             + '{{ with printf "max(%(w)s{instance=%%q})" $labels.instance | query }}{{ . | first | value | humanize }} requests waiting{{ end }}'
             + '{{ with printf "max(%(kv)s{instance=%%q})" $labels.instance | query }}, KV cache {{ . | first | value | humanizePercentage }} full{{ end }}'
             + '{{ with printf "max(%(p)s{instance=%%q})" $labels.instance | query }}, {{ . | first | value | humanize }} preemptions/s{{ end }}. Requests queue and their time to first token grows.')
            % { w: e.engineWaiting, kv: e.engineKVCache, p: e.enginePreempts },
            '%s == 1' % e.engineSaturated,
            c.engineSaturatedFor,
            'engine',
            engineQuery,
          ),
          lib.alert(
            c,
            'AutoGLMEnginePreempting',
            'warning',
            'An LLM serving engine keeps preempting sequences',
            'Engine {{ $labels.engine }} at {{ $labels.instance }} preempts {{ $value | humanize }} sequences/s: its KV cache cannot hold the running batch, so sequences are evicted and recomputed.',
            '%s > 0' % e.enginePreempts,
            '10m',
            'engine',
            engineQuery,
          ),
          lib.alert(
            c,
            'AutoGLMGPUMemoryFull',
            'warning',
            'GPU framebuffer memory is nearly full',
            'A GPU on node {{ $labels.node }} uses {{ $value | humanizePercentage }} of its framebuffer memory; the engine cannot grow its KV cache and new processes fail to allocate.',
            '%s > %g' % [e.gpuFramebuffer, c.gpuMemoryRatio],
            '10m',
            'engine',
            nodeQuery,
          ),
          lib.alert(
            c,
            'AutoGLMGPUSaturated',
            'info',
            'GPUs of a node are busy all the time',
            'The GPUs of node {{ $labels.node }} are {{ $value | humanizePercentage }} busy on average over 30 minutes; more load will queue.',
            '%s > %g' % [e.gpuUtilization, c.gpuUtilizationRatio],
            '30m',
            'engine',
            nodeQuery,
          ),
        ],
      },
    ],
  },
}
