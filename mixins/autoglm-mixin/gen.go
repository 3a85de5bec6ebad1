package mixin

//go:generate go run ./internal/render -dir .
