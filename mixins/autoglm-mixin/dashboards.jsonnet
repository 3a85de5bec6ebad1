// Render with: jsonnet -J vendor -m dashboards_out dashboards.jsonnet
(import 'mixin.libsonnet').grafanaDashboards
