(import 'traffic.libsonnet') +
(import 'services.libsonnet') +
(import 'baselines.libsonnet')
