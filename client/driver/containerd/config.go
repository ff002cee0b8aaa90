package containerd

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
)

// taskSettings is the driver config of one task (TaskConfig.Config),
// decoded. Keys are validated by the job parser; the decoders here still
// reject a value of the wrong shape with a message naming the key.
type taskSettings struct {
	image          string
	command        string
	args           []string
	entrypoint     []string
	env            map[string]string
	workDir        string
	user           string
	hostname       string
	readonlyRootfs bool
	privileged     bool
	capAdd         []string
	capDrop        []string
	mounts         []bindMount
	labels         map[string]string
	auth           *Credentials
}

// bindMount is one "mount" or "mounts" block.
type bindMount struct {
	source, target string
	readonly       bool
}

// parseSettings decodes cfg. Values arrive as decoded from HCL or JSON, so
// lists may be []any, maps map[string]any, and blocks either a map or a
// list of maps.
func parseSettings(cfg map[string]any) (*taskSettings, error) {
	s := &taskSettings{}
	var err error
	str := func(key string, dst *string) {
		if err == nil {
			*dst, err = getString(cfg, key)
		}
	}
	list := func(key string, dst *[]string) {
		if err == nil {
			*dst, err = getStringList(cfg, key)
		}
	}
	flag := func(key string, dst *bool) {
		if err == nil {
			*dst, err = getBool(cfg, key)
		}
	}
	str("image", &s.image)
	str("command", &s.command)
	list("args", &s.args)
	list("entrypoint", &s.entrypoint)
	str("work_dir", &s.workDir)
	str("user", &s.user)
	str("hostname", &s.hostname)
	flag("readonly_rootfs", &s.readonlyRootfs)
	flag("privileged", &s.privileged)
	list("cap_add", &s.capAdd)
	list("cap_drop", &s.capDrop)
	if err != nil {
		return nil, err
	}
	if s.image == "" {
		return nil, fmt.Errorf("config: image is required, such as image = \"registry.example.com/web:1.0\" or \"oci-archive:/path/image.tar\"")
	}
	if s.env, err = getStringMap(cfg, "env"); err != nil {
		return nil, err
	}
	if s.labels, err = getStringMap(cfg, "labels"); err != nil {
		return nil, err
	}
	for _, key := range []string{"mounts", "mount"} {
		blocks, err := getBlocks(cfg, key)
		if err != nil {
			return nil, err
		}
		for i, b := range blocks {
			m, err := parseMount(b)
			if err != nil {
				return nil, fmt.Errorf("config: %s block %d: %w", key, i+1, err)
			}
			s.mounts = append(s.mounts, m)
		}
	}
	auth, err := getBlocks(cfg, "auth")
	if err != nil {
		return nil, err
	}
	if len(auth) > 1 {
		return nil, fmt.Errorf("config: only one auth block is allowed (got %d)", len(auth))
	}
	if len(auth) == 1 {
		s.auth = &Credentials{}
		if s.auth.Username, err = getString(auth[0], "username"); err == nil {
			s.auth.Password, err = getString(auth[0], "password")
		}
		if err != nil {
			return nil, fmt.Errorf("config: auth block: %w", err)
		}
	}
	return s, nil
}

func parseMount(b map[string]any) (bindMount, error) {
	var m bindMount
	typ, err := getString(b, "type")
	if err != nil {
		return m, err
	}
	if typ != "" && typ != "bind" {
		return m, fmt.Errorf("type %q is not supported; only type = \"bind\" is", typ)
	}
	if m.source, err = getString(b, "source"); err != nil {
		return m, err
	}
	if m.target, err = getString(b, "target"); err != nil {
		return m, err
	}
	if m.readonly, err = getBool(b, "readonly"); err != nil {
		return m, err
	}
	if !filepath.IsAbs(m.source) {
		return m, fmt.Errorf("source %q must be an absolute host path", m.source)
	}
	if !filepath.IsAbs(m.target) {
		return m, fmt.Errorf("target %q must be an absolute path in the container", m.target)
	}
	return m, nil
}

func getString(cfg map[string]any, key string) (string, error) {
	switch v := cfg[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("config: %s must be a string (got %T)", key, v)
	}
}

func getBool(cfg map[string]any, key string) (bool, error) {
	switch v := cfg[key].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string: // JSON job files sometimes quote booleans
		if b, err := strconv.ParseBool(v); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("config: %s must be true or false (got %v)", key, cfg[key])
}

func getStringList(cfg map[string]any, key string) ([]string, error) {
	switch v := cfg[key].(type) {
	case nil:
		return nil, nil
	case []string:
		return v, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("config: %s[%d] must be a string (got %T)", key, i, e)
			}
			out[i] = s
		}
		return out, nil
	default:
		return nil, fmt.Errorf("config: %s must be a list of strings (got %T)", key, v)
	}
}

func getStringMap(cfg map[string]any, key string) (map[string]string, error) {
	blocks, err := getBlocks(cfg, key)
	if err != nil {
		if m, ok := cfg[key].(map[string]string); ok {
			return m, nil
		}
		return nil, err
	}
	out := map[string]string{}
	for _, b := range blocks {
		for k, v := range b {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("config: %s.%s must be a string (got %T)", key, k, v)
			}
			out[k] = s
		}
	}
	return out, nil
}

// getBlocks returns the value of key as a list of maps: HCL decodes a
// block as a map or as a list of maps, JSON as a list of objects.
func getBlocks(cfg map[string]any, key string) ([]map[string]any, error) {
	switch v := cfg[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return []map[string]any{v}, nil
	case []map[string]any:
		return v, nil
	case []any:
		out := make([]map[string]any, len(v))
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("config: %s[%d] must be a block (got %T)", key, i, e)
			}
			out[i] = m
		}
		return out, nil
	default:
		return nil, fmt.Errorf("config: %s must be a block (got %T)", key, v)
	}
}

// sortedEnv renders env as KEY=value entries in key order.
func sortedEnv(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + env[k]
	}
	return out
}
