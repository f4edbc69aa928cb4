package main

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of the Compose file format docker-compose.yml
// uses. Decoding is strict, so a misspelt key fails the test; a key this
// struct lacks must be added here before the file can use it.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	WorkingDir  string            `yaml:"working_dir"`
	Command     []string          `yaml:"command"`
	User        string            `yaml:"user"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   []string          `yaml:"depends_on"`
	Restart     string            `yaml:"restart"`
}

// port is a published port: "host_ip:host_port:container_port".
type port struct{ hostIP, host, container string }

func parsePort(t *testing.T, s string) port {
	t.Helper()
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		t.Fatalf("port %q: want host_ip:host_port:container_port", s)
	}
	return port{parts[0], parts[1], parts[2]}
}

// mount is a volume entry: "source:target[:mode]".
type mount struct{ source, target, mode string }

func parseMount(t *testing.T, s string) mount {
	t.Helper()
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		t.Fatalf("volume %q: want source:target[:mode]", s)
	}
	m := mount{source: parts[0], target: parts[1]}
	if len(parts) == 3 {
		m.mode = parts[2]
	}
	if !path.IsAbs(m.target) {
		t.Errorf("volume %q: target is not an absolute path", s)
	}
	return m
}

// mountedAt reports whether p lies inside the target of one of mounts.
func mountedAt(mounts []mount, p string) (mount, bool) {
	for _, m := range mounts {
		if p == m.target || strings.HasPrefix(p, m.target+"/") {
			return m, true
		}
	}
	return mount{}, false
}

// TestDockerCompose checks docker-compose.yml without Docker: that it parses,
// that DynamoDB Local keeps its data in a volume, and that the app's
// settings, read by the server's own loadConfig, point at that DynamoDB and
// the published port.
func TestDockerCompose(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if err := dec.Decode(new(any)); err != io.EOF {
		t.Fatalf("docker-compose.yml holds more than one document (%v)", err)
	}
	if f.Name == "" {
		t.Error("no project name")
	}

	// Every named volume a service mounts is declared, and every declared
	// one is used.
	used := map[string]bool{}
	for name, svc := range f.Services {
		for _, v := range svc.Volumes {
			m := parseMount(t, v)
			if strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") {
				continue // a bind mount
			}
			if _, ok := f.Volumes[m.source]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", name, m.source)
			}
			used[m.source] = true
		}
		for _, dep := range svc.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
		}
		if svc.Image == "" {
			t.Errorf("service %s has no image", name)
		} else if _, tag, _ := strings.Cut(svc.Image, ":"); tag == "" || tag == "latest" {
			t.Errorf("service %s: image %s is not pinned to a version", name, svc.Image)
		}
		for _, p := range svc.Ports {
			if pp := parsePort(t, p); pp.hostIP != "127.0.0.1" {
				t.Errorf("service %s publishes %s beyond this machine; want 127.0.0.1", name, p)
			}
		}
	}
	for v := range f.Volumes {
		if !used[v] {
			t.Errorf("volume %s is declared but not used", v)
		}
	}

	ddb, ok := f.Services["dynamodb-local"]
	if !ok {
		t.Fatal("no dynamodb-local service")
	}
	if !strings.HasPrefix(ddb.Image, "amazon/dynamodb-local:") {
		t.Errorf("dynamodb-local image %s, want amazon/dynamodb-local", ddb.Image)
	}
	if !slices.Contains(ddb.Command, "-sharedDb") {
		t.Error("DynamoDB Local runs without -sharedDb: each access key and region would see its own tables")
	}
	var ddbMounts []mount
	for _, v := range ddb.Volumes {
		ddbMounts = append(ddbMounts, parseMount(t, v))
	}
	if i := slices.Index(ddb.Command, "-dbPath"); i < 0 || i+1 >= len(ddb.Command) {
		t.Error("DynamoDB Local runs in memory: sessions would not survive a restart")
	} else {
		dbPath := ddb.Command[i+1]
		if !path.IsAbs(dbPath) {
			dbPath = path.Join(ddb.WorkingDir, dbPath)
		}
		if _, ok := mountedAt(ddbMounts, dbPath); !ok {
			t.Errorf("DynamoDB Local keeps its data in %s, which is not a volume", dbPath)
		}
	}
	ddbPort := "8000"
	if i := slices.Index(ddb.Command, "-port"); i >= 0 && i+1 < len(ddb.Command) {
		ddbPort = ddb.Command[i+1]
	}

	app, ok := f.Services["app"]
	if !ok {
		t.Fatal("no app service")
	}
	if !slices.Contains(app.DependsOn, "dynamodb-local") {
		t.Error("app does not depend on dynamodb-local")
	}
	// The app is `go run ./server` in the examples module of the mounted
	// repository.
	var appMounts []mount
	for _, v := range app.Volumes {
		appMounts = append(appMounts, parseMount(t, v))
	}
	src, ok := mountedAt(appMounts, app.WorkingDir)
	if !ok || src.source != "." || app.WorkingDir != path.Join(src.target, "examples") {
		t.Errorf("app working_dir %s is not the examples folder of the repository mounted from .", app.WorkingDir)
	}
	i := slices.Index(app.Command, "./server")
	if len(app.Command) < 3 || app.Command[0] != "go" || app.Command[1] != "run" || i < 0 {
		t.Fatalf("app command %q, want go run ./server [flags]", app.Command)
	}

	// The server reads its environment and flags as it would in the
	// container.
	cfg, err := loadConfig(app.Command[i+1:], func(k string) string { return app.Environment[k] }, io.Discard)
	if err != nil {
		t.Fatalf("the app's settings do not parse: %v", err)
	}
	if host, _, err := net.SplitHostPort(cfg.addr); err != nil || (host != "0.0.0.0" && host != "") {
		t.Errorf("app listens on %q; in a container it must listen on all interfaces", cfg.addr)
	}
	_, listenPort, _ := net.SplitHostPort(cfg.addr)
	if len(app.Ports) != 1 || parsePort(t, app.Ports[0]).container != listenPort {
		t.Errorf("app ports %q do not publish the port it listens on, %s", app.Ports, listenPort)
	}
	u, err := url.Parse(cfg.endpoint)
	if err != nil || u.Hostname() != "dynamodb-local" || u.Port() != ddbPort {
		t.Errorf("app endpoint %q, want http://dynamodb-local:%s", cfg.endpoint, ddbPort)
	}
	if !cfg.createTable {
		t.Error("app does not create its table")
	}
	if _, ok := mountedAt(appMounts, path.Dir(cfg.keyFile)); !ok || cfg.sessionKey != "" {
		t.Errorf("app key file %s is not in a volume: sessions would not survive a new container", cfg.keyFile)
	}
	if src.mode != "ro" {
		t.Error("the repository is mounted writable into the app container")
	}
}
