package kafka

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// zstdCompressor compresses record batches with zstd like franz-go's own
// compressor (64 KiB window, one goroutine, no dictionary) but without the
// frame's content checksum: the checksum is optional in the zstd format,
// Kafka's consumers and brokers do not need it (every record batch carries
// its own CRC-32C), and hashing each batch a second time was a tenth of
// the compression's cost.
type zstdCompressor struct {
	// encoders are used one batch at a time (a client compresses for each
	// broker on its own goroutine).
	encoders sync.Pool
}

// newZstdCompressor returns a compressor at level 1 (fastest) .. 4 (best),
// the levels of franz-go's ZstdCompression().WithLevel.
func newZstdCompressor(level int) (*zstdCompressor, error) {
	if level < int(zstd.SpeedFastest) || level > int(zstd.SpeedBestCompression) {
		return nil, fmt.Errorf("kafka output: zstd level %d is not between 1 and 4", level)
	}
	opts := []zstd.EOption{
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		zstd.WithWindowSize(64 << 10),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
	}
	// Check the options once, so that New fails rather than a batch.
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka output: zstd: %w", err)
	}
	c := &zstdCompressor{}
	c.encoders.Put(enc)
	c.encoders.New = func() any {
		enc, _ := zstd.NewWriter(nil, opts...)
		return enc
	}
	return c, nil
}

// Compress implements kgo.Compressor.
func (c *zstdCompressor) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	for _, f := range flags {
		if f == kgo.CompressDisableZstd {
			// A broker older than Kafka 2.1 (produce v7): as franz-go
			// does when zstd is the only codec, send uncompressed.
			return src, kgo.CodecNone
		}
	}
	enc := c.encoders.Get().(*zstd.Encoder)
	defer c.encoders.Put(enc)
	if n := enc.MaxEncodedSize(len(src)); n > dst.Cap() {
		dst.Grow(n)
	}
	return enc.EncodeAll(src, dst.Bytes()[:0]), kgo.CodecZstd
}
