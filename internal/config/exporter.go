package config

// Exporter is the "exporter:" section. Its keys are documented in README.md.
type Exporter struct{}

func defaultExporter() Exporter { return Exporter{} }

func (c Exporter) validate(_ *File) []error { return nil }
