// Generated from the dashboards/ generator; do not edit.
{
  'autoglm-overview.json': import 'overview.json',
  'autoglm-models.json': import 'models.json',
  'autoglm-baselines.json': import 'baselines.json',
  'autoglm-alerting.json': import 'alerting.json',
  'autoglm-exporter.json': import 'exporter.json',
  'autoglm-engine.json': import 'engine.json',
  'autoglm-slo.json': import 'slo.json',
}
