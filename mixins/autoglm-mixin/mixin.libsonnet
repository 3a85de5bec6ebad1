(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'rules/engine.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
