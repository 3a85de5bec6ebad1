package config

import "fmt"

// Receiver is the "receiver:" section. Its keys are documented in receiver/README.md.
type Receiver struct {
	Storage  ReceiverStorage    `yaml:"storage"`
	Channels map[string]Channel `yaml:"channels"`
	Routes   []Route            `yaml:"routes"`
}

// ReceiverStorage configures the embedded durable store.
type ReceiverStorage struct {
	Path string `yaml:"path"`
}

// Route selects channels for notifications whose labels match.
type Route struct {
	Matchers      []string `yaml:"matchers"`
	Channels      []string `yaml:"channels"`
	Fallback      []string `yaml:"fallback"`
	EscalateAfter Duration `yaml:"escalate_after"`
	Continue      bool     `yaml:"continue"`
}

func defaultReceiver() Receiver {
	return Receiver{Storage: ReceiverStorage{Path: "data/receiver"}}
}

func (c Receiver) validate(f *File) []error {
	var errs []error
	for name, ch := range c.Channels {
		errs = append(errs, ch.validate(f, fmt.Sprintf("receiver.channels.%s", name))...)
	}
	for i, r := range c.Routes {
		for j, ch := range append(append([]string{}, r.Channels...), r.Fallback...) {
			if _, ok := c.Channels[ch]; !ok {
				errs = append(errs, Errorf(fmt.Sprintf("receiver.routes[%d]", i), "channel %q (#%d) is not defined under receiver.channels", ch, j))
			}
		}
	}
	return errs
}
