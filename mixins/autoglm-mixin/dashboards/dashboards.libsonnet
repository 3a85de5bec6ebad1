// The dashboards are generated in Go (dashboards/ at the repository root) and
// copied here by the renderer so the mixin is self-contained when vendored.
local generated = import 'generated.libsonnet';

{
  grafanaDashboards+:: {
    [name]: generated[name] { tags: $._config.dashboardTags }
    for name in std.objectFields(generated)
  },
}
