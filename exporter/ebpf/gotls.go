package ebpf

import (
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Go's crypto/tls functions whose plaintext is captured.
const (
	goTLSRead  = "crypto/tls.(*Conn).Read"
	goTLSWrite = "crypto/tls.(*Conn).Write"
)

// minGoMinor is the first Go release (1.17) whose amd64 functions take
// their arguments in registers, which the probes read.
const minGoMinor = 17

// goFunc is one probed function of a Go binary.
type goFunc struct {
	name string
	// addr is the link-time address, offset its place in the file.
	addr, size, offset uint64
	// rets are the offsets of its RET instructions from its start: return
	// probes go there, since uretprobes break Go's moving stacks.
	rets []uint64
}

// goBinary is what the probes need to know about one Go executable.
type goBinary struct {
	version      string
	read, write  goFunc
	layout       captureGoBinary
	layoutSource string // "dwarf" or "go version"
}

// knownGoLayout is crypto/tls.Conn.conn, net.conn.fd, net.netFD.pfd and
// internal/poll.FD.Sysfd as they have been laid out in every release with
// the register ABI (1.17 to 1.26): fields at the start of their structs,
// Sysfd after poll.fdMutex's 16 bytes. Used when the binary has no DWARF.
var knownGoLayout = captureGoBinary{ConnOffset: 0, FdOffset: 0, PfdOffset: 0, SysfdOffset: 16}

// errNotGo says a file is not a Go executable.
var errNotGo = errors.New("not a Go executable")

// inspectGo reads what the probes need from the Go executable at path: the
// version, the two functions with their RET instructions, the field offsets
// (DWARF when present, else the known layout) and the itab that marks a
// *net.TCPConn (when the symbol table is there).
func inspectGo(path string) (*goBinary, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, errNotGo
	}
	minor, ok := goMinor(bi.GoVersion)
	if !ok || minor < minGoMinor {
		return &goBinary{version: bi.GoVersion}, fmt.Errorf("built with %s: the probes need Go 1.%d or newer (register ABI)", bi.GoVersion, minGoMinor)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return &goBinary{version: bi.GoVersion}, fmt.Errorf("built for %s: the probes support x86-64 only", f.Machine)
	}
	b := &goBinary{version: bi.GoVersion}
	funcs, itab, err := goSymbols(f)
	if err != nil {
		return b, err
	}
	b.read, b.write = funcs[goTLSRead], funcs[goTLSWrite]
	if b.read.addr == 0 || b.write.addr == 0 {
		return b, errors.New("crypto/tls is not linked in")
	}
	for _, fn := range []*goFunc{&b.read, &b.write} {
		if err := fn.place(f); err != nil {
			return b, err
		}
	}
	b.layout, b.layoutSource = knownGoLayout, "go version"
	if d, err := f.DWARF(); err == nil {
		if l, err := dwarfLayout(d); err == nil {
			b.layout, b.layoutSource = l, "dwarf"
		}
	}
	b.layout.TcpConnItab = itab
	b.layout.FuncRead, b.layout.FuncWrite = b.read.addr, b.write.addr
	return b, nil
}

// goMinor parses "go1.22.3" (or "go1.23rc1", "go1.24-X:..."), returning 22.
func goMinor(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		rest = rest[:end]
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// goSymbols finds the two functions (symbol table, else the pclntab that
// even stripped binaries keep) and the *net.TCPConn itab (symbol table only).
func goSymbols(f *elf.File) (map[string]goFunc, uint64, error) {
	funcs := map[string]goFunc{}
	var itab uint64
	syms, err := f.Symbols()
	if err == nil {
		for _, s := range syms {
			switch s.Name {
			case goTLSRead, goTLSWrite:
				funcs[s.Name] = goFunc{name: s.Name, addr: s.Value, size: s.Size}
			case "go:itab.*net.TCPConn,net.Conn", "go.itab.*net.TCPConn,net.Conn":
				itab = s.Value
			}
		}
		if len(funcs) == 2 {
			return funcs, itab, nil
		}
	}
	// Stripped: the runtime's own function table still names every function.
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		return funcs, itab, errors.New("neither a symbol table nor .gopclntab")
	}
	data, err := pcln.Data()
	if err != nil {
		return funcs, itab, fmt.Errorf("reading .gopclntab: %w", err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return funcs, itab, fmt.Errorf("reading .gopclntab: %w", err)
	}
	for _, name := range []string{goTLSRead, goTLSWrite} {
		if fn := tab.LookupFunc(name); fn != nil {
			funcs[name] = goFunc{name: name, addr: fn.Entry, size: fn.End - fn.Entry}
		}
	}
	return funcs, itab, nil
}

// place finds the function in the file and the offsets of its RET
// instructions.
func (fn *goFunc) place(f *elf.File) error {
	size := fn.size
	var sec *elf.Section
	for _, s := range f.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_EXECINSTR != 0 && fn.addr >= s.Addr && fn.addr+size <= s.Addr+s.Size {
			sec = s
			break
		}
	}
	if sec == nil || size == 0 {
		return fmt.Errorf("%s: not in an executable section", fn.name)
	}
	code := make([]byte, size)
	if _, err := sec.ReadAt(code, int64(fn.addr-sec.Addr)); err != nil {
		return fmt.Errorf("%s: reading code: %w", fn.name, err)
	}
	rets, err := retOffsets(code)
	if err != nil {
		return fmt.Errorf("%s: %w", fn.name, err)
	}
	fn.rets = rets
	fn.offset = fn.addr - sec.Addr + sec.Offset
	return nil
}

// retOffsets decodes x86-64 code from its start and returns where its RET
// instructions are. A function whose code cannot be decoded whole gets no
// probes: a probe off an instruction boundary would corrupt it.
func retOffsets(code []byte) ([]uint64, error) {
	var rets []uint64
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			// Go pads functions with INT3 up to the next one.
			if allPadding(code[off:]) {
				break
			}
			return nil, fmt.Errorf("undecodable instruction at +%#x: %w", off, err)
		}
		if inst.Op == x86asm.RET {
			rets = append(rets, uint64(off))
		}
		off += inst.Len
	}
	if len(rets) == 0 {
		return nil, errors.New("no RET instruction")
	}
	return rets, nil
}

func allPadding(b []byte) bool {
	for _, c := range b {
		if c != 0xcc {
			return false
		}
	}
	return true
}

// dwarfLayout reads the four field offsets from DWARF.
func dwarfLayout(d *dwarf.Data) (captureGoBinary, error) {
	want := map[string]string{
		"crypto/tls.Conn":  "conn",
		"net.conn":         "fd",
		"net.netFD":        "pfd",
		"internal/poll.FD": "Sysfd",
	}
	got := map[string]uint32{}
	r := d.Reader()
	for len(got) < len(want) {
		e, err := r.Next()
		if err != nil {
			return captureGoBinary{}, err
		}
		if e == nil {
			break
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		field, ok := want[name]
		if !ok || !e.Children {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		for {
			m, err := r.Next()
			if err != nil || m == nil || m.Tag == 0 {
				break
			}
			if m.Tag == dwarf.TagMember && m.Val(dwarf.AttrName) == field {
				if off, ok := m.Val(dwarf.AttrDataMemberLoc).(int64); ok {
					got[name] = uint32(off)
				}
			}
			if m.Children {
				r.SkipChildren()
			}
		}
	}
	if len(got) < len(want) {
		return captureGoBinary{}, fmt.Errorf("DWARF describes %d of the %d structures", len(got), len(want))
	}
	return captureGoBinary{
		ConnOffset:  got["crypto/tls.Conn"],
		FdOffset:    got["net.conn"],
		PfdOffset:   got["net.netFD"],
		SysfdOffset: got["internal/poll.FD"],
	}, nil
}
