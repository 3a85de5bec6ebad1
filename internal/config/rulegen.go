package config

// Rulegen is the "rulegen:" section. Its keys are documented in README.md.
type Rulegen struct{}

func defaultRulegen() Rulegen { return Rulegen{} }

func (c Rulegen) validate(_ *File) []error { return nil }
