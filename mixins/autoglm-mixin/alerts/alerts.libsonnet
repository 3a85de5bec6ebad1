(import 'traffic.libsonnet') +
(import 'services.libsonnet') +
(import 'baselines.libsonnet') +
(import 'engine.libsonnet')
