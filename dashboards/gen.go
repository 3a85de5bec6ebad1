package dashboards

//go:generate go run ./internal/gen -out json
