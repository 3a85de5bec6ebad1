package ebpf

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ring reads the BPF ring buffer in place: records are handed out as
// slices of the mapped data pages (no copy) and an empty ring is seen by
// reading the positions from memory (no system call). cilium/ebpf's
// ringbuf.Reader copies every record and calls epoll_wait before each batch;
// each system call wakes the Go runtime's monitor thread, which then polls
// for a millisecond, and that polling cost more than the parsing.
type ring struct {
	// mu keeps close from unmapping the pages while they are read.
	mu         sync.Mutex
	cons, prod []byte   // the mapped consumer page and producer page + data pages
	consPos    *uintptr // written by us
	prodPos    *uintptr // written by the kernel
	data       []byte   // the data pages, mapped twice in a row so records never wrap
	mask       uintptr
}

// Record header (struct bpf_ringbuf_hdr): 32-bit length with two flag bits, 32-bit page offset.
const (
	ringHeaderSize = 8
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
)

func newRing(m *ebpf.Map) (*ring, error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("map %v is not a ring buffer", m)
	}
	size, page := int(m.MaxEntries()), os.Getpagesize()
	cons, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap consumer page: %w", err)
	}
	prod, err := unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("mmap data pages: %w", err), unix.Munmap(cons))
	}
	return &ring{
		cons:    cons,
		prod:    prod,
		consPos: (*uintptr)(unsafe.Pointer(&cons[0])),
		prodPos: (*uintptr)(unsafe.Pointer(&prod[0])),
		data:    prod[page:],
		mask:    uintptr(size - 1),
	}, nil
}

// errRingClosed is returned by drain after close.
var errRingClosed = errors.New("ring buffer closed")

// available is the number of bytes written and not yet consumed.
func (r *ring) available() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		return 0
	}
	return uint64(atomic.LoadUintptr(r.prodPos) - atomic.LoadUintptr(r.consPos))
}

// size is the capacity of the data pages.
func (r *ring) size() int { return int(r.mask) + 1 }

// consumeEvery is how many bytes drain consumes before it publishes its
// position: each store is a cache line the kernel's next record reads.
const consumeEvery = 256 << 10

// drain hands every committed record to fn, in order, and returns how many
// bytes it consumed. A record's bytes are valid only during fn: the
// kernel may reuse them once the consumer position moves past.
//
// The producer position is read once per batch and the consumer position
// written once per consumeEvery bytes and at the end: both share cache
// lines with the kernel's producer, which would otherwise move between the
// CPUs at every record.
func (r *ring) drain(fn func([]byte)) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		return 0, errRingClosed
	}
	start := atomic.LoadUintptr(r.consPos)
	cons, published := start, start
	defer func() {
		if cons != published {
			atomic.StoreUintptr(r.consPos, cons)
		}
	}()
	for {
		prod := atomic.LoadUintptr(r.prodPos)
		if cons == prod {
			return uint64(cons - start), nil
		}
		for cons != prod {
			if prod-cons < ringHeaderSize {
				return uint64(cons - start), errors.New("ring buffer: record header cut short")
			}
			// Loading the length atomically orders it after the kernel's commit.
			hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[cons&r.mask])))
			if hdr&ringBusyBit != 0 {
				// Reserved, not yet committed: read it next time.
				return uint64(cons - start), nil
			}
			n := uintptr(hdr &^ (ringBusyBit | ringDiscardBit))
			off := (cons + ringHeaderSize) & r.mask
			next := cons + ringHeaderSize + (n+7)&^7
			if next-cons > prod-cons {
				return uint64(cons - start), errors.New("ring buffer: record cut short")
			}
			if hdr&ringDiscardBit == 0 {
				fn(r.data[off : off+n : off+n])
			}
			cons = next
			if cons-published >= consumeEvery {
				atomic.StoreUintptr(r.consPos, cons)
				published = cons
			}
		}
	}
}

func (r *ring) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		return nil
	}
	err := errors.Join(unix.Munmap(r.prod), unix.Munmap(r.cons))
	r.prod, r.cons, r.data = nil, nil, nil
	return err
}
