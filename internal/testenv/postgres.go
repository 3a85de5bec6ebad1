package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL cluster of the test's own: initdb into a
// temporary directory, the server on a free loopback port with password
// authentication, stopped and removed when the test ends.
type Postgres struct {
	Host     string
	Port     int
	User     string
	Password string
	dir      string
	bin      string
}

// pgBin finds the directory of initdb and pg_ctl: on PATH, or Debian's
// /usr/lib/postgresql/<version>/bin (the package does not put them on PATH).
func pgBin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	missing(t, "PostgreSQL server binaries (initdb, pg_ctl) not found (run `make test-deps`: Debian package postgresql)")
	return ""
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// NewPostgres starts a cluster for t. As root, the server runs as the
// postgres user (PostgreSQL refuses to run as root).
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := pgBin(t)
	dir, err := os.MkdirTemp("", "autoglm-pg-")
	if err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root needs the postgres user to start PostgreSQL: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg := &Postgres{Host: "127.0.0.1", Port: FreePort(t), User: "autoglm", Password: randomHex(12), dir: dir, bin: bin}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("%s: %v\n%s\n%s", name, err, out, log)
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		_ = os.Chown(pwfile, int(cred.Uid), int(cred.Gid))
	}
	data := filepath.Join(dir, "data")
	run("initdb", "-D", data, "-U", pg.User, "--pwfile="+pwfile, "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
	_ = os.Remove(pwfile)
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		_ = cmd.Run()
		_ = os.RemoveAll(dir)
	})
	opts := fmt.Sprintf("-p %d -h 127.0.0.1 -c unix_socket_directories='' -c max_connections=200 -c shared_buffers=64MB", pg.Port)
	run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-o", opts, "-w", "-t", "60", "start")
	return pg
}

// URL is a connection URL for database db without the password (give it
// through a password file, as a deployment would).
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", p.User, p.Host, p.Port, db)
}

// Database creates an empty database for t and returns its name.
func (p *Postgres) Database(t testing.TB) string {
	t.Helper()
	name := "t_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(p.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = p.Password
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return name
}

// PasswordFile writes the password to a file under dir and returns its path.
func (p *Postgres) PasswordFile(t testing.TB, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(f, []byte(p.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
