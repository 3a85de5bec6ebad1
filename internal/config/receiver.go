package config

// Receiver is the "receiver:" section. Its keys are documented in README.md.
type Receiver struct{}

func defaultReceiver() Receiver { return Receiver{} }

func (c Receiver) validate(_ *File) []error { return nil }
