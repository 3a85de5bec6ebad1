package engine

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	notifications *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	deadLetters   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, e *Engine) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_receiver_notifications_total",
			Help: "Delivery outcomes per channel: delivered, retry, permanent, config, dead_letter, escalated.",
		}, []string{"channel", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "autoglm_receiver_delivery_duration_seconds",
			Help:                            "Time from receipt of the webhook to the provider accepting the notification.",
			Buckets:                         []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: 0,
		}, []string{"channel"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_receiver_dead_letters_total",
			Help: "Notifications that expired or failed permanently, per channel.",
		}, []string{"channel"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{
		m.notifications, m.duration, m.deadLetters,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "autoglm_receiver_queue_depth",
			Help: "Deliveries waiting in the outbox.",
		}, func() float64 { return float64(e.Depth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "autoglm_receiver_oldest_pending_seconds",
			Help: "Age of the oldest pending delivery, 0 when the outbox is empty.",
		}, func() float64 { return e.Oldest().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "autoglm_receiver_channels_delivering",
			Help: "Channels this replica delivers: every configured one with the embedded store, those whose lease it holds with the shared PostgreSQL store.",
		}, func() float64 { return float64(e.Delivering()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register engine metrics: %w", err)
		}
	}
	return m, nil
}
