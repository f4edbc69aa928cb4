package ddb

import (
	"path/filepath"
	"strings"
	"testing"
)

// env returns a getenv func over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfig(t *testing.T) {
	// Keep the machine's AWS settings out of the way.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(k, "")
	}

	t.Run("DynamoDB Local works without AWS setup", func(t *testing.T) {
		cfg, err := Config(t.Context(), "", "http://127.0.0.1:8000", env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Region != LocalRegion {
			t.Errorf("region %q, want %q", cfg.Region, LocalRegion)
		}
		creds, err := cfg.Credentials.Retrieve(t.Context())
		if err != nil {
			t.Fatalf("no credentials: %v", err)
		}
		if creds.AccessKeyID != "local" {
			t.Errorf("access key %q, want the static dummy one", creds.AccessKeyID)
		}
	})

	t.Run("region flag", func(t *testing.T) {
		cfg, err := Config(t.Context(), "ap-south-1", "http://127.0.0.1:8000", env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Region != "ap-south-1" {
			t.Errorf("region %q, want ap-south-1", cfg.Region)
		}
	})

	t.Run("AWS needs a region", func(t *testing.T) {
		_, err := Config(t.Context(), "", "", env(nil))
		if err == nil || !strings.Contains(err.Error(), "-region") {
			t.Fatalf("Config without a region = %v, want an error naming -region", err)
		}
	})
}
