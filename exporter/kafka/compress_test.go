package kafka

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The compressor's batches are standard zstd frames without a content
// checksum, decode to the input at every level, and fall back to no
// compression for brokers that cannot take zstd.
func TestZstdCompressor(t *testing.T) {
	e := testEncoder(SourceEBPF, false)
	var src []byte
	for i, r := range benchRequests()[:300] {
		src = append(src, byte(i))
		src = e.Append(src, &r)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for level := 1; level <= 4; level++ {
		c, err := newZstdCompressor(level)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // encoders come back from the pool with no state of the last batch
			out, codec := c.Compress(new(bytes.Buffer), src)
			if codec != kgo.CodecZstd {
				t.Fatalf("level %d: codec %v", level, codec)
			}
			if len(out) >= len(src)/5 {
				t.Errorf("level %d: %d bytes from %d", level, len(out), len(src))
			}
			var h zstd.Header
			if err := h.Decode(out); err != nil {
				t.Fatal(err)
			}
			if h.HasCheckSum {
				t.Errorf("level %d: frame has a checksum", level)
			}
			got, err := dec.DecodeAll(out, nil)
			if err != nil {
				t.Fatalf("level %d: %v", level, err)
			}
			if !bytes.Equal(got, src) {
				t.Fatalf("level %d: round trip differs", level)
			}
		}
	}
	c, err := newZstdCompressor(1)
	if err != nil {
		t.Fatal(err)
	}
	if out, codec := c.Compress(new(bytes.Buffer), src, kgo.CompressDisableZstd); codec != kgo.CodecNone || !bytes.Equal(out, src) {
		t.Errorf("zstd disabled: codec %v, %d bytes", codec, len(out))
	}
	for _, level := range []int{-1, 0, 5} {
		if _, err := newZstdCompressor(level); err == nil {
			t.Errorf("level %d accepted", level)
		}
	}
}
