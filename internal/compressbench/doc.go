// Package compressbench compares gzip, which the store's compressing
// Serializer uses, with zstd (github.com/klauspost/compress) on gob-encoded
// sessions, to back the choice recorded in BENCHMARKS.md. It is a module of
// its own so that the store's module does not require zstd.
package compressbench
